/// Turns a stream of ids into text deltas whose concatenation equals
/// `tokenizer.decode(allIds)`: bytes of a character split across tokens are held back until
/// the character is complete.
public struct IncrementalDetokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    /// All text returned so far.
    public private(set) var text: String = ""
    private var pending: [UInt8] = []
    private var emittedToken = false

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text it completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        guard let bytes = tokenizer.tokenBytes(for: id) else { return "" }
        if skipSpecialTokens && tokenizer.isSpecialToken(id) { return "" }
        if tokenizer.decoder == .joinWithSpace && emittedToken { pending.append(0x20) }
        emittedToken = true
        pending.append(contentsOf: bytes)
        let cut = Self.incompleteSuffixStart(pending)
        guard cut > 0 else { return "" }
        let delta = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        text += delta
        return delta
    }

    /// Adds several ids; returns the text they complete.
    public mutating func append<S: Sequence>(contentsOf ids: S) -> String where S.Element == Int {
        var out = ""
        for id in ids { out += append(id) }
        return out
    }

    /// Flushes held-back bytes (an incomplete character becomes U+FFFD).
    public mutating func finish() -> String {
        guard !pending.isEmpty else { return "" }
        let delta = String(decoding: pending, as: UTF8.self)
        pending.removeAll()
        text += delta
        return delta
    }

    /// Start of a trailing sequence that is a valid but incomplete UTF-8 character (it may
    /// still be completed by later bytes), or `bytes.count` when there is none.
    static func incompleteSuffixStart(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var i = n - 1
        while i >= 0 && n - i <= 3 && bytes[i] & 0xC0 == 0x80 { i -= 1 }
        guard i >= 0 else { return n }
        let lead = bytes[i]
        let need: Int
        switch lead {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return n
        }
        let have = n - i
        guard have < need else { return n }
        if have >= 2 {
            let b1 = bytes[i + 1]
            let ok: Bool
            switch lead {
            case 0xE0: ok = (0xA0...0xBF).contains(b1)
            case 0xED: ok = (0x80...0x9F).contains(b1)
            case 0xF0: ok = (0x90...0xBF).contains(b1)
            case 0xF4: ok = (0x80...0x8F).contains(b1)
            default: ok = true
            }
            if !ok { return n }
        }
        return i
    }
}
