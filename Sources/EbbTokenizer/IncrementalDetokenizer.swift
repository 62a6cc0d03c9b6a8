/// Turns a stream of ids into text deltas whose concatenation equals
/// `tokenizer.decode(allIds)`: bytes of a character split across tokens (byte-level
/// characters, or `<0xXX>` byte-fallback tokens) are held back until the character is
/// complete, and context such as the leading space that SentencePiece-style decoders strip
/// from the first token is kept as `decode` applies it. (One exception, see `DecoderStream`:
/// a byte-fallback run that turns invalid after complete characters were streamed.)
public struct IncrementalDetokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    /// All text returned so far.
    public private(set) var text: String = ""
    private var pending: [UInt8] = []
    private var emittedToken = false
    /// For decoder chains other than the byte-level ones.
    private var stream: DecoderStream?

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        if tokenizer.decoder.kind == .chain { stream = DecoderStream(decoder: tokenizer.decoder) }
    }

    /// Adds one id; returns the text it completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        if stream != nil {
            guard let token = tokenizer.token(for: id) else { return "" }
            if skipSpecialTokens && tokenizer.isSpecialToken(id) { return "" }
            let delta = stream?.push(token) ?? ""
            text += delta
            return delta
        }
        guard let bytes = tokenizer.tokenBytes(for: id) else { return "" }
        if skipSpecialTokens && tokenizer.isSpecialToken(id) { return "" }
        if tokenizer.decoder.kind == .joinWithSpace && emittedToken { pending.append(0x20) }
        emittedToken = true
        pending.append(contentsOf: bytes)
        let cut = Self.incompleteSuffixStart(pending)
        guard cut > 0 else { return "" }
        let delta = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        text += delta
        return delta
    }

    /// Feeds ids that precede the streamed ones (the end of the prompt) without returning
    /// their text, so that the first streamed token decodes in context. For SentencePiece
    /// decoders this keeps its leading space (`▁Hello` → " Hello"), as vLLM's detokenizer,
    /// which is primed with the prompt, gives it; unprimed, the stream starts like `decode`
    /// of the generated ids alone ("Hello"). Bytes of a character left incomplete at the end
    /// of `ids` are dropped; `text` stays empty.
    public mutating func prime<S: Sequence>(with ids: S) where S.Element == Int {
        for id in ids { _ = append(id) }
        pending.removeAll()
        stream?.discardPending()
        text = ""
    }

    /// Adds several ids; returns the text they complete.
    public mutating func append<S: Sequence>(contentsOf ids: S) -> String where S.Element == Int {
        var out = ""
        for id in ids { out += append(id) }
        return out
    }

    /// Flushes held-back bytes (an incomplete character becomes U+FFFD).
    public mutating func finish() -> String {
        if stream != nil {
            let delta = stream?.finish() ?? ""
            text += delta
            return delta
        }
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
