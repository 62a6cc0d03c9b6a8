import EbbCore

/// What a `Split` pre-tokenizer (or a `Replace` normalizer) looks for.
enum SplitPattern: Sendable {
    /// A literal string (`{"String": "..."}`).
    case literal([UInt8])
    /// A well-known regex matched by a hand-written scanner (exactly as Oniguruma would).
    case known(KnownPattern)
    /// Any other regex, through Swift Regex over Unicode scalars.
    case regex(CompiledRegex, source: String)

    static func parse(_ json: TokJSON?, context: String) throws -> SplitPattern {
        let dict = try JSONAccess.object(json, "\(context).pattern")
        if let s = dict["String"] {
            return .literal(Array(try JSONAccess.string(s, "\(context).pattern.String").utf8))
        }
        if let r = dict["Regex"] {
            return try regex(try JSONAccess.string(r, "\(context).pattern.Regex"))
        }
        throw EbbError(.tokenizer, "\(context).pattern: expected {\"String\": ...} or {\"Regex\": ...}")
    }

    static func regex(_ source: String) throws -> SplitPattern {
        if let known = KnownPattern(source: source) { return .known(known) }
        return try swiftRegex(source)
    }

    /// The pattern through Swift Regex, even when a scanner exists for it.
    static func swiftRegex(_ source: String) throws -> SplitPattern {
        do {
            let regex = try Regex(Self.onigurumaToSwift(source)).matchingSemantics(.unicodeScalar)
            // Match once so the regex program is compiled before the value is shared.
            _ = "a".firstMatch(of: regex)
            return .regex(CompiledRegex(regex: regex), source: source)
        } catch {
            throw EbbError(.tokenizer, "unsupported regex pattern '\(source)': \(error)")
        }
    }

    /// Rewrites the escapes whose meaning differs between Oniguruma and Swift Regex:
    /// Oniguruma's `\d` is `\p{Nd}` (Swift's also takes other numerics such as `Ⅷ`) and its
    /// `\w` is letters, marks, decimal digits and connector punctuation.
    static func onigurumaToSwift(_ source: String) -> String {
        var out = ""
        var classDepth = 0
        var it = source.unicodeScalars.makeIterator()
        while let c = it.next() {
            if c == "\\" {
                guard let e = it.next() else { out.unicodeScalars.append(c); break }
                switch e {
                case "d": out += #"\p{Nd}"#
                case "D": out += #"\P{Nd}"#
                case "w": out += classDepth > 0 ? #"\p{L}\p{M}\p{Nd}\p{Pc}"# : #"[\p{L}\p{M}\p{Nd}\p{Pc}]"#
                case "W" where classDepth == 0: out += #"[^\p{L}\p{M}\p{Nd}\p{Pc}]"#
                default:
                    out.unicodeScalars.append(c)
                    out.unicodeScalars.append(e)
                }
                continue
            }
            if c == "[" { classDepth += 1 } else if c == "]" && classDepth > 0 { classDepth -= 1 }
            out.unicodeScalars.append(c)
        }
        return out
    }

    /// Non-overlapping matches, in order, as UTF-8 byte ranges of `text` (possibly empty).
    func matches(in text: String) -> [Range<Int>] {
        let bytes = Array(text.utf8)
        return matches(in: bytes[...])
    }

    /// Non-overlapping matches in `bytes` (valid UTF-8), as index ranges of the same buffer.
    func matches(in bytes: ArraySlice<UInt8>) -> [Range<Int>] {
        switch self {
        case .literal(let needle):
            return Self.literalMatches(needle, in: bytes)
        case .known(let known):
            let scanned = ScannedText(bytes)
            return known.matches(scanned).map { scanned.offset($0.lowerBound)..<scanned.offset($0.upperBound) }
        case .regex(let regex, _):
            let text = String(decoding: bytes, as: UTF8.self)
            var out: [Range<Int>] = []
            let utf8 = text.utf8
            let base = bytes.startIndex
            // Oniguruma's `find_iter` (as `tokenizers` uses it): nothing in empty text, and no
            // empty match right where the previous match ended.
            guard !bytes.isEmpty else { return [] }
            for m in text.matches(of: regex.regex) {
                let lo = utf8.distance(from: utf8.startIndex, to: m.range.lowerBound)
                let hi = utf8.distance(from: utf8.startIndex, to: m.range.upperBound)
                if lo == hi, let last = out.last, last.upperBound == base + lo { continue }
                out.append((base + lo)..<(base + hi))
            }
            return out
        }
    }

    static func literalMatches(_ needle: [UInt8], in hay: ArraySlice<UInt8>) -> [Range<Int>] {
        guard !needle.isEmpty, needle.count <= hay.count else { return [] }
        var out: [Range<Int>] = []
        var i = hay.startIndex
        let first = needle[0]
        while i + needle.count <= hay.endIndex {
            if hay[i] == first {
                var ok = true
                for k in 1..<needle.count where hay[i + k] != needle[k] { ok = false; break }
                if ok {
                    out.append(i..<(i + needle.count))
                    i += needle.count
                    continue
                }
            }
            i += 1
        }
        return out
    }
}

/// A Swift Regex shared between threads. `Regex` is an immutable value whose compiled
/// program is created once (we force that before sharing); matching does not mutate it.
struct CompiledRegex: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>
}

/// Text as Unicode scalars with a coarse class per scalar and its UTF-8 offset.
struct ScannedText {
    static let other: UInt8 = 0
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 3      // \s other than CR and LF
    static let newline: UInt8 = 4    // \r or \n (also \s)

    /// The UTF-8 text.
    let bytes: ArraySlice<UInt8>
    var classes: [UInt8] = []
    /// Offset (index into `bytes`) of each scalar, plus `bytes.endIndex` at the end.
    var starts: [Int] = []

    init(_ text: String) {
        self.init(Array(text.utf8)[...])
    }

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        let n = bytes.count
        classes.reserveCapacity(n)
        starts.reserveCapacity(n + 1)
        var i = bytes.startIndex
        let end = bytes.endIndex
        while i < end {
            let b0 = bytes[i]
            starts.append(i)
            if b0 < 0x80 {
                classes.append(Self.asciiClasses[Int(b0)])
                i += 1
                continue
            }
            // Decode one scalar (the input is valid UTF-8; stay in bounds regardless).
            var value: UInt32
            var len: Int
            if b0 >= 0xF0 { value = UInt32(b0 & 0x07); len = 4 }
            else if b0 >= 0xE0 { value = UInt32(b0 & 0x0F); len = 3 }
            else { value = UInt32(b0 & 0x1F); len = 2 }
            if i + len > end { len = end - i }
            for k in 1..<max(len, 1) { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
            classes.append(Self.classify(value))
            i += max(len, 1)
        }
        starts.append(end)
    }

    @inline(__always) func offset(_ scalarIndex: Int) -> Int { starts[scalarIndex] }

    /// The byte of scalar `k` when it is ASCII, else 0; U+017F (long s) reads as "s" when
    /// `foldLongS` (case-insensitive matching).
    @inline(__always)
    func asciiByte(_ k: Int, foldLongS: Bool) -> UInt8 {
        let b = bytes[starts[k]]
        if b < 0x80 { return b }
        if foldLongS && b == 0xC5 && starts[k + 1] - starts[k] == 2 && bytes[starts[k] + 1] == 0xBF { return 0x73 }
        return 0
    }

    static let asciiClasses: [UInt8] = (0..<128).map { classifySlow(UInt32($0)) }

    /// Classes of the Basic Multilingual Plane, computed once (the stdlib's property lookups
    /// are slow).
    static let bmpClasses: [UInt8] = (0..<0x10000).map { classifySlow(UInt32($0)) }

    @inline(__always)
    static func classify(_ v: UInt32) -> UInt8 {
        if v < 0x10000 { return bmpClasses[Int(v)] }
        return classifySlow(v)
    }

    static func classifySlow(_ v: UInt32) -> UInt8 {
        if v == 0x0A || v == 0x0D { return newline }
        guard let s = Unicode.Scalar(v) else { return other }
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return other
        }
    }
}

/// Regexes of well-known byte-level BPE tokenizers, matched by hand. Each scanner follows
/// the regex's alternatives in order with Oniguruma's leftmost-first, greedy-with-backtracking
/// semantics over Unicode scalars.
enum KnownPattern: Sendable, Equatable {
    /// GPT-2 / ByteLevel(use_regex): `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Qwen2 (`maxDigits` 1) and Llama-3 (`maxDigits` 3):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case qwen2(maxDigits: Int)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(source: String) {
        switch source {
        case Self.gpt2Source: self = .gpt2
        case Self.qwen2Source: self = .qwen2(maxDigits: 1)
        case Self.llama3Source: self = .qwen2(maxDigits: 3)
        default: return nil
        }
    }

    /// Matches as scalar index ranges.
    func matches(_ t: ScannedText) -> [Range<Int>] {
        switch self {
        case .gpt2: return Self.scanGPT2(t)
        case .qwen2(let maxDigits): return Self.scanQwen2(t, maxDigits: maxDigits)
        }
    }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i`, or 0.
    @inline(__always)
    static func contraction(_ t: ScannedText, _ i: Int, caseInsensitive: Bool) -> Int {
        let n = t.classes.count
        guard t.bytes[t.starts[i]] == 0x27, i + 1 < n else { return 0 }
        func fold(_ v: UInt8) -> UInt8 {
            guard caseInsensitive else { return v }
            return (v >= 0x41 && v <= 0x5A) ? v + 0x20 : v
        }
        let a = fold(t.asciiByte(i + 1, foldLongS: caseInsensitive))
        switch a {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        default: break
        }
        guard i + 2 < n, a != 0 else { return 0 }
        let b = fold(t.asciiByte(i + 2, foldLongS: caseInsensitive))
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return 3 }  // re ve ll
        return 0
    }

    @inline(__always)
    static func run(_ c: [UInt8], from i: Int, _ pred: (UInt8) -> Bool) -> Int {
        var j = i
        while j < c.count && pred(c[j]) { j += 1 }
        return j
    }

    @inline(__always) static func isSpace(_ c: UInt8) -> Bool { c == ScannedText.space || c == ScannedText.newline }
    /// `[^\s\p{L}\p{N}]`
    @inline(__always) static func isPunct(_ c: UInt8) -> Bool { c == ScannedText.other }

    /// The whitespace alternatives `\s+(?!\S)|\s+` at `i` (which must be whitespace).
    @inline(__always)
    static func trailingSpace(_ c: [UInt8], _ i: Int) -> Int {
        let j = run(c, from: i, isSpace)
        if j == c.count { return j }
        if j - 1 > i { return j - 1 }
        return j
    }

    static func scanGPT2(_ t: ScannedText) -> [Range<Int>] {
        let c = t.classes, n = c.count
        var out: [Range<Int>] = []
        out.reserveCapacity(n / 3 + 1)
        var i = 0
        while i < n {
            var end: Int
            let k = contraction(t, i, caseInsensitive: false)
            if k > 0 {
                end = i + k
            } else {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
                var j = i
                if t.bytes[t.starts[i]] == 0x20, i + 1 < n, c[i + 1] != ScannedText.space, c[i + 1] != ScannedText.newline { j = i + 1 }
                switch c[j] {
                case ScannedText.letter: end = run(c, from: j) { $0 == ScannedText.letter }
                case ScannedText.number: end = run(c, from: j) { $0 == ScannedText.number }
                case ScannedText.other: end = run(c, from: j, isPunct)
                default: end = trailingSpace(c, i)
                }
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    static func scanQwen2(_ t: ScannedText, maxDigits: Int) -> [Range<Int>] {
        let c = t.classes, n = c.count
        var out: [Range<Int>] = []
        out.reserveCapacity(n / 3 + 1)
        var i = 0
        while i < n {
            var end = 0
            let ci = c[i]
            let k = contraction(t, i, caseInsensitive: true)
            if k > 0 {
                end = i + k
            } else if ci == ScannedText.letter {
                // `[^\r\n\p{L}\p{N}]?\p{L}+` without the optional character
                end = run(c, from: i) { $0 == ScannedText.letter }
            } else if ci != ScannedText.newline && ci != ScannedText.number && i + 1 < n && c[i + 1] == ScannedText.letter {
                // `[^\r\n\p{L}\p{N}]?\p{L}+` with it
                end = run(c, from: i + 1) { $0 == ScannedText.letter }
            } else if ci == ScannedText.number {
                // `\p{N}{1,maxDigits}`
                end = i + 1
                while end < n && end - i < maxDigits && c[end] == ScannedText.number { end += 1 }
            } else if ci == ScannedText.other || (t.bytes[t.starts[i]] == 0x20 && i + 1 < n && c[i + 1] == ScannedText.other) {
                // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
                let j = ci == ScannedText.other ? i : i + 1
                end = run(c, from: j, isPunct)
                end = run(c, from: end) { $0 == ScannedText.newline }
            } else {
                // whitespace: `\s*[\r\n]+`, then `\s+(?!\S)`, then `\s+`
                let j = run(c, from: i, isSpace)
                var lastNewline = -1
                var q = j - 1
                while q >= i {
                    if c[q] == ScannedText.newline { lastNewline = q; break }
                    q -= 1
                }
                if lastNewline >= 0 {
                    end = lastNewline + 1
                } else {
                    end = trailingSpace(c, i)
                }
            }
            out.append(i..<end)
            i = end
        }
        return out
    }
}
