import EbbCore

/// Hugging Face `decoders`: a chain of steps over the list of token strings, whose results are
/// concatenated (joined with spaces when there is no decoder at all).
///
/// Byte-level tokenizers take a fast path: each token becomes a byte string and the bytes are
/// read as UTF-8 with invalid sequences replaced by U+FFFD. Other chains (SentencePiece style:
/// `Replace`, `ByteFallback`, `Fuse`, `Strip`, `Metaspace`) are run step by step as
/// `tokenizers` does, or streamed by `DecoderStream`.
struct TokenDecoder: Sendable {
    enum Step: Sendable {
        /// `ByteLevel`: characters of the GPT-2 alphabet back to bytes; all tokens fused.
        case byteLevel
        /// `Replace`: in each token.
        case replace(SplitPattern, String)
        /// `ByteFallback`: runs of `<0xXX>` tokens become their UTF-8 text (or one U+FFFD per
        /// byte when the run is not valid UTF-8).
        case byteFallback
        /// `Fuse`: all tokens into one.
        case fuse
        /// `Strip`: up to `start` leading and `stop` trailing `content` characters off each token.
        case strip(content: Unicode.Scalar, start: Int, stop: Int)
        /// `Metaspace`: `replacement` → space; in the first token dropped instead, unless the
        /// prepend scheme is `never`.
        case metaspace(replacement: Unicode.Scalar, dropInFirst: Bool)
    }

    enum Kind: Sendable, Equatable {
        /// `ByteLevel` alone.
        case byteLevel
        /// An empty `Sequence`: token strings concatenated.
        case concatenate
        /// No decoder: token strings joined with spaces (Hugging Face's default).
        case joinWithSpace
        /// Any other chain: run through `steps`.
        case chain
    }

    let steps: [Step]
    let kind: Kind

    static let joinWithSpace = TokenDecoder(steps: [], kind: .joinWithSpace)
    static let byteLevel = TokenDecoder(steps: [.byteLevel], kind: .byteLevel)

    init(steps: [Step], kind: Kind) {
        self.steps = steps
        self.kind = kind
    }

    static func parse(_ json: TokJSON?) throws -> TokenDecoder {
        guard let json, !json.isNull else { return .joinWithSpace }
        var steps: [Step] = []
        try collect(json, into: &steps)
        if steps.isEmpty { return TokenDecoder(steps: [], kind: .concatenate) }
        if steps.count == 1, case .byteLevel = steps[0] { return .byteLevel }
        return TokenDecoder(steps: steps, kind: .chain)
    }

    private static func collect(_ json: TokJSON, into steps: inout [Step]) throws {
        let dict = try JSONAccess.object(json, "decoder")
        let type = try JSONAccess.type(dict, "decoder")
        switch type {
        case "ByteLevel":
            steps.append(.byteLevel)
        case "Sequence":
            for item in try JSONAccess.array(dict["decoders"], "decoder Sequence.decoders") {
                try collect(item, into: &steps)
            }
        case "Replace":
            let pattern = try SplitPattern.parse(dict["pattern"], context: "decoder Replace")
            steps.append(.replace(pattern, try JSONAccess.string(dict["content"], "decoder Replace.content")))
        case "ByteFallback":
            steps.append(.byteFallback)
        case "Fuse":
            steps.append(.fuse)
        case "Strip":
            let content = try JSONAccess.string(dict["content"], "decoder Strip.content")
            guard content.unicodeScalars.count == 1, let scalar = content.unicodeScalars.first else {
                throw EbbError(.tokenizer, "decoder Strip.content must be one character, not \"\(content)\"")
            }
            let start = try JSONAccess.int(dict["start"], "decoder Strip.start")
            let stop = try JSONAccess.int(dict["stop"], "decoder Strip.stop")
            guard start >= 0, stop >= 0 else { throw EbbError(.tokenizer, "decoder Strip: negative start or stop") }
            steps.append(.strip(content: scalar, start: start, stop: stop))
        case "Metaspace":
            let m = try MetaspaceOptions.parse(dict, "decoder Metaspace")
            guard let scalar = m.replacement.unicodeScalars.first else {
                throw EbbError(.tokenizer, "decoder Metaspace.replacement is empty")
            }
            steps.append(.metaspace(replacement: scalar, dropInFirst: m.prepend != .never))
        default:
            throw EbbError(.tokenizer, "unsupported decoder type '\(type)'")
        }
    }

    // MARK: Whole sequences

    /// The decoded text of `tokens` (token strings, special tokens already filtered).
    func decode(_ tokens: [String]) -> String {
        switch kind {
        case .joinWithSpace: return tokens.joined(separator: " ")
        case .concatenate: return tokens.joined()
        case .byteLevel, .chain:
            var list = tokens
            for step in steps { list = Self.apply(step, to: list) }
            return list.joined()
        }
    }

    static func apply(_ step: Step, to tokens: [String]) -> [String] {
        switch step {
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens { bytes.append(contentsOf: ByteLevelAlphabet.decode(t) ?? Array(t.utf8)) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .replace(let pattern, let content):
            return tokens.map { pattern.replaceAll(in: $0, with: content) }
        case .fuse:
            return [tokens.joined()]
        case .byteFallback:
            var out: [String] = []
            out.reserveCapacity(tokens.count)
            var run: [UInt8] = []
            func flush() {
                guard !run.isEmpty else { return }
                out.append(contentsOf: byteRunText(run))
                run.removeAll()
            }
            for t in tokens {
                if let b = parseByteToken(t) {
                    run.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                let scalars = Array(token.unicodeScalars)
                var startCut = 0
                while startCut < min(start, scalars.count) && scalars[startCut] == content { startCut += 1 }
                var stopCut = scalars.count
                // Hugging Face panics when both ends overlap; here the start wins.
                while scalars.count - stopCut < stop && stopCut > startCut && scalars[stopCut - 1] == content { stopCut -= 1 }
                return String(String.UnicodeScalarView(scalars[startCut..<stopCut]))
            }
        case .metaspace(let replacement, let dropInFirst):
            return tokens.enumerated().map { i, token in
                guard token.unicodeScalars.contains(replacement) else { return token }
                var view = String.UnicodeScalarView()
                for s in token.unicodeScalars {
                    if s != replacement {
                        view.append(s)
                    } else if !(i == 0 && dropInFirst) {
                        view.append(" ")
                    }
                }
                return String(view)
            }
        }
    }

    /// `ByteFallback`'s text of a run of byte tokens: the run as UTF-8, or one U+FFFD per byte
    /// when it is not valid UTF-8.
    static func byteRunText(_ run: [UInt8]) -> [String] {
        if let s = String(validating: run, as: UTF8.self) { return [s] }
        return Array(repeating: "\u{FFFD}", count: run.count)
    }

    /// The byte of a `<0xXX>` token (6 bytes; the two in the middle read as Rust's
    /// `u8::from_str_radix(_, 16)` does, which also takes a `+` sign and lowercase digits).
    static func parseByteToken(_ token: String) -> UInt8? {
        let u = token.utf8
        guard u.count == 6 else { return nil }
        var it = u.makeIterator()
        guard it.next() == 0x3C, it.next() == 0x30, it.next() == 0x78,
              let h = it.next(), let l = it.next(), it.next() == 0x3E else { return nil }
        func digit(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        guard let lo = digit(l) else { return nil }
        if h == 0x2B { return lo }
        guard let hi = digit(h) else { return nil }
        return hi << 4 | lo
    }

    // MARK: Single tokens

    /// The bytes one token contributes in the middle of a sequence (used for logprob bytes and
    /// the byte-level fast paths): byte tokens give their byte, `▁` its space; steps that
    /// depend on neighbours (a `Strip` after tokens are fused) are left out.
    func bytes(of token: String) -> [UInt8] {
        switch kind {
        case .byteLevel: return ByteLevelAlphabet.decode(token) ?? Array(token.utf8)
        case .concatenate, .joinWithSpace: return Array(token.utf8)
        case .chain: break
        }
        var text = token
        var raw: [UInt8]?
        var fused = false
        for step in steps {
            switch step {
            case .byteLevel:
                let bytes = ByteLevelAlphabet.decode(raw.map { String(decoding: $0, as: UTF8.self) } ?? text)
                    ?? raw ?? Array(text.utf8)
                raw = bytes
                text = String(decoding: bytes, as: UTF8.self)
                fused = true
            case .byteFallback:
                if raw == nil, let b = Self.parseByteToken(text) { return [b] }
            case .fuse:
                fused = true
            case .strip:
                if !fused {
                    text = Self.apply(step, to: [text])[0]
                    raw = nil
                }
            case .metaspace(let replacement, _):
                text = Self.apply(.metaspace(replacement: replacement, dropInFirst: false), to: [text])[0]
                raw = nil
            case .replace:
                text = Self.apply(step, to: [text])[0]
                raw = nil
            }
        }
        return raw ?? Array(text.utf8)
    }
}

/// Streams a decoder chain token by token: the concatenated output equals
/// `TokenDecoder.decode` of all tokens, except that a run of byte-fallback tokens is
/// streamed as soon as it holds complete characters — should the run later turn out not
/// to be valid UTF-8, Hugging Face would show every byte of it as U+FFFD, while the
/// characters already streamed stay. Only the incomplete rest is held back. (Steps after
/// `Fuse` or `ByteFallback` see text in streamed pieces: a `Replace` pattern spanning two
/// pieces there would not be replaced — no known tokenizer has one.)
struct DecoderStream: Sendable {
    /// Part of a token: `continues` marks the continuation of the previous token.
    struct Chunk {
        var text: String
        var continues: Bool
    }

    enum StageState: Sendable {
        case stateless
        case byteFallback(pending: [UInt8], runStreamed: Bool, poisoned: Bool)
        case fuse(started: Bool)
        case strip(startLeft: Int, held: String.UnicodeScalarView)
        case metaspace(index: Int)
        case byteLevel(pending: [UInt8], started: Bool)
    }

    let decoder: TokenDecoder
    private var states: [StageState]
    private var emittedToken = false

    init(decoder: TokenDecoder) {
        self.decoder = decoder
        states = decoder.steps.map { step in
            switch step {
            case .replace: return .stateless
            case .byteFallback: return .byteFallback(pending: [], runStreamed: false, poisoned: false)
            case .fuse: return .fuse(started: false)
            case .strip(_, let start, _): return .strip(startLeft: start, held: .init())
            case .metaspace: return .metaspace(index: -1)
            case .byteLevel: return .byteLevel(pending: [], started: false)
            }
        }
    }

    /// Adds one token string; returns the text it completes (possibly empty).
    mutating func push(_ token: String) -> String {
        var chunks = [Chunk(text: token, continues: false)]
        for i in states.indices { chunks = run(stage: i, chunks, finishing: false) }
        return join(chunks)
    }

    /// Forgets what is held back (incomplete characters, trailing characters a `Strip` may
    /// still remove), keeping the context (whether a first token was seen).
    mutating func discardPending() {
        for i in states.indices {
            switch states[i] {
            case .byteFallback: states[i] = .byteFallback(pending: [], runStreamed: false, poisoned: false)
            case .strip(let startLeft, _): states[i] = .strip(startLeft: startLeft, held: .init())
            case .byteLevel(_, let started): states[i] = .byteLevel(pending: [], started: started)
            case .stateless, .fuse, .metaspace: break
            }
        }
    }

    /// Ends the stream: flushes whatever was held back.
    mutating func finish() -> String {
        var chunks: [Chunk] = []
        for i in states.indices { chunks = run(stage: i, chunks, finishing: true) }
        return join(chunks)
    }

    private mutating func join(_ chunks: [Chunk]) -> String {
        var out = ""
        for c in chunks {
            if decoder.kind == .joinWithSpace && !c.continues {
                if emittedToken { out += " " }
                emittedToken = true
            }
            out += c.text
        }
        return out
    }

    private mutating func run(stage i: Int, _ input: [Chunk], finishing: Bool) -> [Chunk] {
        let step = decoder.steps[i]
        var out: [Chunk] = []
        switch (step, states[i]) {
        case (.replace(let pattern, let content), _):
            out = input.map { Chunk(text: pattern.replaceAll(in: $0.text, with: content), continues: $0.continues) }

        case (.byteFallback, .byteFallback(var pending, var streamed, var poisoned)):
            func endRun() {
                // An incomplete character at the end of a run: the run is not valid UTF-8.
                for _ in pending { out.append(Chunk(text: "\u{FFFD}", continues: false)) }
                pending.removeAll()
                streamed = false
                poisoned = false
            }
            for c in input {
                if !c.continues, let b = TokenDecoder.parseByteToken(c.text) {
                    if poisoned {
                        out.append(Chunk(text: "\u{FFFD}", continues: false))
                        continue
                    }
                    pending.append(b)
                    switch Self.validPrefix(pending) {
                    case nil:
                        // Not UTF-8: every byte not yet streamed becomes U+FFFD, and so will
                        // the rest of the run.
                        for _ in pending { out.append(Chunk(text: "\u{FFFD}", continues: false)) }
                        pending.removeAll()
                        poisoned = true
                    case let n? where n > 0:
                        out.append(Chunk(text: String(decoding: pending[..<n], as: UTF8.self), continues: streamed))
                        pending.removeFirst(n)
                        streamed = true
                    default:
                        break
                    }
                } else {
                    endRun()
                    out.append(c)
                }
            }
            if finishing { endRun() }
            states[i] = .byteFallback(pending: pending, runStreamed: streamed, poisoned: poisoned)

        case (.fuse, .fuse(var started)):
            for c in input {
                out.append(Chunk(text: c.text, continues: started))
                started = true
            }
            states[i] = .fuse(started: started)

        case (.strip(let content, let start, let stop), .strip(var startLeft, var held)):
            for c in input {
                if !c.continues {
                    // The previous token ended: its held trailing characters are stripped.
                    held = .init()
                    startLeft = start
                }
                var view = String.UnicodeScalarView()
                for s in c.text.unicodeScalars {
                    // Up to `start` leading `content` characters go; the first other one ends that.
                    if startLeft > 0 && s == content {
                        startLeft -= 1
                        continue
                    }
                    startLeft = 0
                    // Trailing `content` characters wait (at most `stop`) until the token ends.
                    if stop > 0 && s == content {
                        held.append(s)
                        if held.count > stop { view.append(held.removeFirst()) }
                    } else {
                        view.append(contentsOf: held)
                        held = .init()
                        view.append(s)
                    }
                }
                out.append(Chunk(text: String(view), continues: c.continues))
            }
            if finishing { held = .init() }
            states[i] = .strip(startLeft: startLeft, held: held)

        case (.metaspace(let replacement, let dropInFirst), .metaspace(var index)):
            for c in input {
                if !c.continues { index += 1 }
                let text = TokenDecoder.apply(.metaspace(replacement: replacement, dropInFirst: dropInFirst && index == 0),
                                              to: [c.text])[0]
                out.append(Chunk(text: text, continues: c.continues))
            }
            states[i] = .metaspace(index: index)

        case (.byteLevel, .byteLevel(var pending, var started)):
            for c in input {
                pending.append(contentsOf: ByteLevelAlphabet.decode(c.text) ?? Array(c.text.utf8))
            }
            let cut = finishing ? pending.count : IncrementalDetokenizer.incompleteSuffixStart(pending)
            if cut > 0 {
                out.append(Chunk(text: String(decoding: pending[..<cut], as: UTF8.self), continues: started))
                pending.removeFirst(cut)
                started = true
            }
            states[i] = .byteLevel(pending: pending, started: started)

        default:
            out = input
        }
        return out
    }

    /// Length of the longest prefix of `bytes` made of complete UTF-8 characters when the
    /// rest may still become one; nil when `bytes` holds an invalid sequence.
    static func validPrefix(_ bytes: [UInt8]) -> Int? {
        let cut = IncrementalDetokenizer.incompleteSuffixStart(bytes)
        guard String(validating: bytes[..<cut], as: UTF8.self) != nil else { return nil }
        return cut
    }
}
