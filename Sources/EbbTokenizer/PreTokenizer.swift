import EbbCore

/// How a `Split` pre-tokenizer treats what its pattern matched.
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// Hugging Face `pre_tokenizers`: cut normalized text into pieces the model sees one by one.
indirect enum PreTokenizer: Sendable {
    case split(SplitPattern, SplitBehavior, invert: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// SentencePiece-style: spaces become `replacement`, which may be prepended, and the
    /// text may be split in front of each `replacement`.
    case metaspace(replacement: String, prepend: PrependScheme, split: Bool)
    case sequence([PreTokenizer])

    static func parse(_ json: TokJSON?) throws -> PreTokenizer? {
        guard let json, !json.isNull else { return nil }
        let dict = try JSONAccess.object(json, "pre_tokenizer")
        let type = try JSONAccess.type(dict, "pre_tokenizer")
        switch type {
        case "Split":
            let pattern = try SplitPattern.parse(dict["pattern"], context: "pre_tokenizer Split")
            let name = try JSONAccess.string(dict["behavior"], "pre_tokenizer Split.behavior")
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw EbbError(.tokenizer, "unsupported Split behavior '\(name)'")
            }
            return .split(pattern, behavior,
                          invert: try JSONAccess.bool(dict["invert"], default: false, "pre_tokenizer Split.invert"))
        case "ByteLevel":
            return .byteLevel(
                addPrefixSpace: try JSONAccess.bool(dict["add_prefix_space"], default: true, "pre_tokenizer ByteLevel.add_prefix_space"),
                useRegex: try JSONAccess.bool(dict["use_regex"], default: true, "pre_tokenizer ByteLevel.use_regex"))
        case "Metaspace":
            let m = try MetaspaceOptions.parse(dict, "pre_tokenizer Metaspace")
            return .metaspace(replacement: m.replacement, prepend: m.prepend, split: m.split)
        case "Sequence":
            let items = try JSONAccess.array(dict["pretokenizers"], "pre_tokenizer Sequence.pretokenizers")
            return .sequence(try items.map { item in
                guard let p = try parse(item) else { throw EbbError(.tokenizer, "pre_tokenizer Sequence: null entry") }
                return p
            })
        default:
            throw EbbError(.tokenizer, "unsupported pre_tokenizer type '\(type)'")
        }
    }

    /// Splits every piece; empty pieces are dropped (as Hugging Face does).
    func apply(_ list: inout PieceList) {
        switch self {
        case .sequence(let items):
            for item in items { item.apply(&list) }
        case .split(let pattern, let behavior, let invert):
            var out: [Piece] = []
            out.reserveCapacity(list.pieces.count * 4)
            for var piece in list.pieces {
                list.materialize(&piece)
                let slice = list.buffer[piece.range]
                for r in Self.split(matches: pattern.matches(in: slice), length: slice.count,
                                    behavior: behavior, invert: invert, base: slice.startIndex) {
                    out.append(Piece(range: r, atOrigin: piece.atOrigin && r.lowerBound == piece.range.lowerBound))
                }
            }
            list.pieces = out
        case .metaspace(let replacement, let prepend, let split):
            let rep = Array(replacement.utf8)
            var out: [Piece] = []
            out.reserveCapacity(list.pieces.count * 4)
            for var piece in list.pieces {
                list.materialize(&piece)
                if piece.range.isEmpty { continue }
                // Spaces → replacement, then the replacement in front (Hugging Face checks the
                // piece's original offset for `first`: only text at the very start gets it).
                let prefix: Bool
                switch prepend {
                case .always: prefix = true
                case .first: prefix = piece.atOrigin
                case .never: prefix = false
                }
                let bytes = Self.metaspaceBytes(list.buffer[piece.range], replacement: rep, prepend: prefix)
                let start = list.buffer.count
                list.buffer.append(contentsOf: bytes)
                let whole = start..<list.buffer.count
                guard split else {
                    out.append(Piece(range: whole, atOrigin: piece.atOrigin))
                    continue
                }
                let slice = list.buffer[whole]
                for r in Self.split(matches: SplitPattern.literalMatches(rep, in: slice), length: slice.count,
                                    behavior: .mergedWithNext, invert: false, base: start) {
                    out.append(Piece(range: r, atOrigin: piece.atOrigin && r.lowerBound == start))
                }
            }
            list.pieces = out
        case .byteLevel(let addPrefixSpace, let useRegex):
            var out: [Piece] = []
            out.reserveCapacity(list.pieces.count)
            for var piece in list.pieces where !piece.range.isEmpty || piece.prefixSpace {
                // A mapped piece would be mapped a second time, as Hugging Face would.
                if piece.mapped { list.materialize(&piece) }
                if addPrefixSpace && !piece.prefixSpace && list.buffer[piece.range.lowerBound] != 0x20 {
                    piece.prefixSpace = true
                }
                if useRegex {
                    list.materialize(&piece)
                    let scanned = ScannedText(list.buffer[piece.range])
                    for r in KnownPattern.gpt2.matches(scanned) where !r.isEmpty {
                        out.append(Piece(range: scanned.offset(r.lowerBound)..<scanned.offset(r.upperBound), mapped: true,
                                         atOrigin: piece.atOrigin && r.lowerBound == 0))
                    }
                } else {
                    piece.mapped = true
                    out.append(piece)
                }
            }
            list.pieces = out
        }
    }

    /// Spaces replaced by `replacement`, which is put in front when `prepend` and the text does
    /// not start with it already.
    static func metaspaceBytes(_ source: ArraySlice<UInt8>, replacement rep: [UInt8], prepend: Bool) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(source.count + rep.count * 2)
        // After the replacement the text starts with `rep` when it started with a space.
        if prepend && source.first != 0x20 && !source.starts(with: rep) { bytes.append(contentsOf: rep) }
        for b in source {
            if b == 0x20 { bytes.append(contentsOf: rep) } else { bytes.append(b) }
        }
        return bytes
    }

    /// Splits one string into pieces, rendered as strings (byte-level pieces in the GPT-2
    /// alphabet) — what `pre_tokenize_str` shows in Hugging Face.
    func apply(_ texts: [String]) -> [String] {
        texts.flatMap { text -> [String] in
            var list = PieceList(text)
            apply(&list)
            return list.pieces.map { list.render($0) }
        }
    }

    /// Hugging Face's `NormalizedString::split`: matches become segments, combined per
    /// `behavior`; returns the non-empty kept ranges.
    static func split(matches: [Range<Int>], length: Int, behavior: SplitBehavior, invert: Bool, base: Int = 0) -> [Range<Int>] {
        guard length > 0 else { return [] }
        var segments: [(Range<Int>, Bool)] = []
        segments.reserveCapacity(matches.count * 2 + 1)
        var prev = base
        for m in matches {
            if prev != m.lowerBound { segments.append((prev..<m.lowerBound, false)) }
            segments.append((m, true))
            prev = m.upperBound
        }
        if prev != base + length { segments.append((prev..<(base + length), false)) }
        if behavior == .isolated && !invert {
            return segments.compactMap { $0.0.isEmpty ? nil : $0.0 }
        }
        if invert { segments = segments.map { ($0.0, !$0.1) } }

        var kept: [Range<Int>] = []
        switch behavior {
        case .isolated:
            kept = segments.map(\.0)
        case .removed:
            kept = segments.filter { !$0.1 }.map(\.0)
        case .mergedWithPrevious:
            var previousMatch = false
            for (r, isMatch) in segments {
                if isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    kept.append(r)
                }
                previousMatch = isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for (r, isMatch) in segments.reversed() {
                if isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = r.lowerBound..<last.upperBound
                } else {
                    kept.append(r)
                }
                previousMatch = isMatch
            }
            kept.reverse()
        case .contiguous:
            var previousMatch = false
            for (r, isMatch) in segments {
                if isMatch == previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    kept.append(r)
                }
                previousMatch = isMatch
            }
        }
        return kept.filter { !$0.isEmpty }
    }
}

/// One pre-tokenized piece: a range of `PieceList.buffer`, possibly with a space in front
/// (`add_prefix_space`) and possibly to be read through the byte-level alphabet.
struct Piece {
    var range: Range<Int>
    /// The piece is `" "` followed by the bytes of `range`.
    var prefixSpace = false
    /// The piece's text is its bytes mapped through the GPT-2 byte alphabet.
    var mapped = false
    /// The piece starts at offset 0 of the original input (Metaspace `prepend_scheme: first`).
    var atOrigin = false
}

/// Pieces of one stretch of text, sharing one UTF-8 buffer.
struct PieceList {
    var buffer: [UInt8]
    var pieces: [Piece]

    /// `atOrigin`: the text starts at offset 0 of the original input.
    init(_ text: String, atOrigin: Bool = true) {
        buffer = Array(text.utf8)
        pieces = buffer.isEmpty ? [] : [Piece(range: 0..<buffer.count, atOrigin: atOrigin)]
    }

    /// The bytes of the piece's text before any byte-level mapping (with the prefix space).
    func rawBytes(_ piece: Piece) -> ArraySlice<UInt8> {
        if !piece.prefixSpace { return buffer[piece.range] }
        return ([0x20] + buffer[piece.range])[...]
    }

    /// Rewrites `piece` so that its text is plainly the UTF-8 bytes of its range (prefix
    /// space and byte-level mapping applied), appending to the buffer when needed.
    mutating func materialize(_ piece: inout Piece) {
        guard piece.prefixSpace || piece.mapped else { return }
        var bytes = Array(rawBytes(piece))
        if piece.mapped { bytes = ByteLevelAlphabet.encode(bytes: bytes) }
        let start = buffer.count
        buffer.append(contentsOf: bytes)
        piece = Piece(range: start..<buffer.count, atOrigin: piece.atOrigin)
    }

    /// The piece's text as the model sees it.
    func render(_ piece: Piece) -> String {
        let raw = String(decoding: rawBytes(piece), as: UTF8.self)
        return piece.mapped ? ByteLevelAlphabet.encode(raw) : raw
    }
}

/// Metaspace `prepend_scheme`.
enum PrependScheme: String, Sendable {
    case first, always, never
}

/// The options shared by the Metaspace pre-tokenizer and decoder, read as Hugging Face does:
/// `prepend_scheme` defaults to `always`, `split` to true; the legacy `add_prefix_space: false`
/// needs `prepend_scheme: never` (anything else is refused, as in `tokenizers`).
struct MetaspaceOptions {
    let replacement: String
    let prepend: PrependScheme
    let split: Bool

    static func parse(_ dict: JSONObject, _ context: String) throws -> MetaspaceOptions {
        let replacement = try JSONAccess.string(dict["replacement"], "\(context).replacement")
        guard replacement.unicodeScalars.count == 1 else {
            throw EbbError(.tokenizer, "\(context).replacement must be one character, not \"\(replacement)\"")
        }
        var prepend = PrependScheme.always
        if let value = dict["prepend_scheme"], !value.isNull {
            let name = try JSONAccess.string(value, "\(context).prepend_scheme")
            guard let scheme = PrependScheme(rawValue: name) else {
                throw EbbError(.tokenizer, "unsupported \(context).prepend_scheme '\(name)'")
            }
            prepend = scheme
        }
        if case .bool(false)? = dict["add_prefix_space"] {
            guard prepend == .never else {
                throw EbbError(.tokenizer, "\(context): add_prefix_space does not match declared prepend_scheme")
            }
        }
        return MetaspaceOptions(replacement: replacement, prepend: prepend,
                                split: try JSONAccess.bool(dict["split"], default: true, "\(context).split"))
    }
}
