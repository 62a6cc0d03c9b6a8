import EbbCore

/// Hugging Face `processors`, for single sequences: the special tokens a template puts around
/// the encoded text (Mixtral/Llama's `<s>`) when special tokens are asked for.
indirect enum PostProcessor: Sendable {
    /// `ByteLevel` (it only trims offsets) and the like: ids unchanged.
    case none
    /// `TemplateProcessing`'s `single` template: ids of special tokens, or nil for the sequence.
    case template([[Int]?])
    case sequence([PostProcessor])

    static func parse(_ json: TokJSON?) throws -> PostProcessor {
        guard let json, !json.isNull else { return .none }
        let dict = try JSONAccess.object(json, "post_processor")
        let type = try JSONAccess.type(dict, "post_processor")
        switch type {
        case "ByteLevel":
            return .none
        case "TemplateProcessing":
            return try parseTemplate(dict)
        case "BertProcessing", "RobertaProcessing":
            // Single sequence: cls, the sequence, sep.
            let cls = try specialPair(dict["cls"], "post_processor \(type).cls")
            let sep = try specialPair(dict["sep"], "post_processor \(type).sep")
            return .template([[cls], nil, [sep]])
        case "Sequence":
            let items = try JSONAccess.array(dict["processors"], "post_processor Sequence.processors")
            return .sequence(try items.map { try parse($0) })
        default:
            throw EbbError(.tokenizer, "unsupported post_processor type '\(type)'")
        }
    }

    /// `["[CLS]", 101]`: the id.
    private static func specialPair(_ value: TokJSON?, _ context: String) throws -> Int {
        let pair = try JSONAccess.array(value, context)
        guard pair.count == 2 else { throw EbbError(.tokenizer, "\(context): expected [token, id]") }
        let id = try JSONAccess.int(pair[1], "\(context)[1]")
        guard id >= 0, id < Tokenizer.maxVocabSize else { throw EbbError(.tokenizer, "\(context): id \(id) is out of range") }
        return id
    }

    private static func parseTemplate(_ dict: JSONObject) throws -> PostProcessor {
        let ctx = "post_processor TemplateProcessing"
        var specials: [ExactString: [Int]] = [:]
        if let map = dict["special_tokens"], !map.isNull {
            for (name, value) in try JSONAccess.object(map, "\(ctx).special_tokens").entries {
                let entry = try JSONAccess.object(value, "\(ctx).special_tokens[\"\(name)\"]")
                let ids = try JSONAccess.array(entry["ids"], "\(ctx).special_tokens[\"\(name)\"].ids").map {
                    try JSONAccess.int($0, "\(ctx).special_tokens[\"\(name)\"].ids")
                }
                guard ids.allSatisfy({ $0 >= 0 && $0 < Tokenizer.maxVocabSize }) else {
                    throw EbbError(.tokenizer, "\(ctx).special_tokens[\"\(name)\"]: id out of range")
                }
                specials[ExactString(name)] = ids
            }
        }
        var pieces: [[Int]?] = []
        for (i, item) in try JSONAccess.array(dict["single"], "\(ctx).single").enumerated() {
            let piece = try JSONAccess.object(item, "\(ctx).single[\(i)]")
            if let seq = piece["Sequence"] {
                let id = try JSONAccess.string(try JSONAccess.object(seq, "\(ctx).single[\(i)].Sequence")["id"],
                                               "\(ctx).single[\(i)].Sequence.id")
                guard id == "A" else {
                    throw EbbError(.tokenizer, "\(ctx): the single template uses sequence '\(id)'")
                }
                pieces.append(nil)
            } else if let special = piece["SpecialToken"] {
                let name = try JSONAccess.string(try JSONAccess.object(special, "\(ctx).single[\(i)].SpecialToken")["id"],
                                                 "\(ctx).single[\(i)].SpecialToken.id")
                guard let ids = specials[ExactString(name)] else {
                    throw EbbError(.tokenizer, "\(ctx): missing special token '\(name)' in special_tokens")
                }
                pieces.append(ids)
            } else {
                throw EbbError(.tokenizer, "\(ctx).single[\(i)]: expected {\"Sequence\": ...} or {\"SpecialToken\": ...}")
            }
        }
        return .template(pieces)
    }

    /// The ids of a single encoded sequence after processing.
    func process(_ ids: [Int], addSpecialTokens: Bool) -> [Int] {
        switch self {
        case .none:
            return ids
        case .template(let pieces):
            var out: [Int] = []
            out.reserveCapacity(ids.count + pieces.count)
            for piece in pieces {
                if let special = piece {
                    if addSpecialTokens { out.append(contentsOf: special) }
                } else {
                    out.append(contentsOf: ids)
                }
            }
            return out
        case .sequence(let items):
            return items.reduce(ids) { $1.process($0, addSpecialTokens: addSpecialTokens) }
        }
    }

    /// Whether processing can change ids.
    var isIdentity: Bool {
        switch self {
        case .none: return true
        case .template(let pieces): return pieces.count == 1 && pieces[0] == nil
        case .sequence(let items): return items.allSatisfy(\.isIdentity)
        }
    }
}
