import EbbCore

/// Hugging Face `decoders`, reduced to what byte-level BPE needs: each token becomes a byte
/// string, the pieces are joined (with a space when there is no decoder at all) and the
/// bytes are read as UTF-8 with invalid sequences replaced by U+FFFD.
enum TokenDecoder: Sendable, Equatable {
    /// `ByteLevel`: characters of the GPT-2 alphabet back to bytes.
    case byteLevel
    /// An empty `Sequence`: token strings concatenated.
    case concatenate
    /// No decoder: token strings joined with spaces (Hugging Face's default).
    case joinWithSpace

    static func parse(_ json: TokJSON?) throws -> TokenDecoder {
        guard let json, !json.isNull else { return .joinWithSpace }
        var byteLevelCount = 0
        try collect(json, byteLevelCount: &byteLevelCount)
        switch byteLevelCount {
        case 0: return .concatenate
        case 1: return .byteLevel
        default: throw EbbError(.tokenizer, "unsupported decoder: more than one ByteLevel decoder in a Sequence")
        }
    }

    private static func collect(_ json: TokJSON, byteLevelCount: inout Int) throws {
        let dict = try JSONAccess.object(json, "decoder")
        let type = try JSONAccess.type(dict, "decoder")
        switch type {
        case "ByteLevel":
            byteLevelCount += 1
        case "Sequence":
            for item in try JSONAccess.array(dict["decoders"], "decoder Sequence.decoders") {
                try collect(item, byteLevelCount: &byteLevelCount)
            }
        default:
            throw EbbError(.tokenizer, "unsupported decoder type '\(type)'")
        }
    }

    /// The bytes one token contributes.
    func bytes(of token: String) -> [UInt8] {
        switch self {
        case .byteLevel: return ByteLevelAlphabet.decode(token) ?? Array(token.utf8)
        case .concatenate, .joinWithSpace: return Array(token.utf8)
        }
    }
}
