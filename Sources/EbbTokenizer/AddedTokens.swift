import EbbCore

/// One entry of `added_tokens`.
struct AddedToken: Sendable {
    let id: Int
    let content: String
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool
    let special: Bool

    static func parse(_ json: TokJSON, index: Int) throws -> AddedToken {
        let ctx = "added_tokens[\(index)]"
        let dict = try JSONAccess.object(json, ctx)
        let id = try JSONAccess.int(dict["id"], "\(ctx).id")
        guard id >= 0, id < Tokenizer.maxVocabSize else { throw EbbError(.tokenizer, "\(ctx).id \(id) is out of range") }
        let special = try JSONAccess.bool(dict["special"], default: false, "\(ctx).special")
        return AddedToken(
            id: id,
            content: try JSONAccess.string(dict["content"], "\(ctx).content"),
            singleWord: try JSONAccess.bool(dict["single_word"], default: false, "\(ctx).single_word"),
            lstrip: try JSONAccess.bool(dict["lstrip"], default: false, "\(ctx).lstrip"),
            rstrip: try JSONAccess.bool(dict["rstrip"], default: false, "\(ctx).rstrip"),
            normalized: try JSONAccess.bool(dict["normalized"], default: !special, "\(ctx).normalized"),
            special: special)
    }
}

/// A piece of input: text still to be tokenized, or an added token already recognized.
enum Segment {
    case text(String)
    case token(Int)
}

/// Finds added tokens in text: leftmost match first, the longest at that position (the
/// aho-corasick `LeftmostLongest` search of Hugging Face's `AddedVocabulary`).
struct AddedTokenMatcher: Sendable {
    struct Entry: Sendable {
        let bytes: [UInt8]
        let token: AddedToken
    }
    /// Candidates by first byte, longest first.
    let byFirstByte: [[Entry]]
    let isEmpty: Bool

    /// `patterns` pairs the text to look for with its token (the text is the normalized
    /// content for normalized tokens).
    init(_ patterns: [(String, AddedToken)]) {
        var table = [[Entry]](repeating: [], count: 256)
        for (text, token) in patterns where !text.isEmpty {
            let bytes = Array(text.utf8)
            table[Int(bytes[0])].append(Entry(bytes: bytes, token: token))
        }
        for i in 0..<256 { table[i].sort { $0.bytes.count > $1.bytes.count } }
        byFirstByte = table
        isEmpty = patterns.allSatisfy { $0.0.isEmpty }
    }

    func split(_ text: String) -> [Segment] {
        if isEmpty || text.isEmpty { return text.isEmpty ? [] : [.text(text)] }
        let bytes = Array(text.utf8)
        let n = bytes.count
        var out: [Segment] = []
        var startOffset = 0
        var i = 0
        while i < n {
            let candidates = byFirstByte[Int(bytes[i])]
            var found: Entry?
            if !candidates.isEmpty {
                for e in candidates where e.bytes.count <= n - i {
                    var ok = true
                    for k in 1..<e.bytes.count where bytes[i + k] != e.bytes[k] { ok = false; break }
                    if ok { found = e; break }
                }
            }
            guard let e = found else { i += 1; continue }
            var start = i
            var stop = i + e.bytes.count
            let t = e.token
            if t.singleWord {
                let before = start == 0 ? nil : Self.lastScalar(bytes, before: start)
                let after = stop == n ? nil : Self.firstScalar(bytes, at: stop)
                if let before, Self.isWordChar(before) { i = stop; continue }
                if let after, Self.isWordChar(after) { i = stop; continue }
            }
            if t.lstrip {
                var s = start
                while s > startOffset, let c = Self.lastScalar(bytes, before: s), c.properties.isWhitespace {
                    s -= UTF8.width(c)
                }
                start = max(s, startOffset)
            }
            if t.rstrip {
                while stop < n, let c = Self.firstScalar(bytes, at: stop), c.properties.isWhitespace {
                    stop += UTF8.width(c)
                }
            }
            if startOffset < start {
                out.append(.text(String(decoding: bytes[startOffset..<start], as: UTF8.self)))
            }
            out.append(.token(t.id))
            startOffset = stop
            i = stop
        }
        if startOffset < n {
            out.append(.text(String(decoding: bytes[startOffset..<n], as: UTF8.self)))
        }
        return out
    }

    static func isWordChar(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || c.properties.numericType != nil || c == "_"
    }

    static func firstScalar(_ bytes: [UInt8], at i: Int) -> Unicode.Scalar? {
        var it = bytes[i...].makeIterator()
        var decoder = UTF8()
        if case .scalarValue(let s) = decoder.decode(&it) { return s }
        return nil
    }

    static func lastScalar(_ bytes: [UInt8], before end: Int) -> Unicode.Scalar? {
        var s = end - 1
        while s > 0 && bytes[s] & 0xC0 == 0x80 && end - s < 4 { s -= 1 }
        return firstScalar(bytes, at: s)
    }
}
