import EbbCheckpoint
import EbbCore
import EbbModel
import EbbTensor
import EbbTokenizer
import Foundation

/// A model and its tokenizer, from a checkpoint directory or `builtin:NAME`.
struct LoadedModel {
    let model: CausalLM
    let tokenizer: Tokenizer?
    let name: String

    static func load(_ spec: String, backend: any Backend, needTokenizer: Bool) throws -> LoadedModel {
        if BuiltinModels.isBuiltin(spec) {
            let (config, weights) = try BuiltinModels.resolve(spec)
            let model = try CausalLM(config: config, weights: weights, backend: backend)
            return LoadedModel(model: model, tokenizer: Tokenizer.byteLevel(), name: spec)
        }
        let directory = URL(fileURLWithPath: spec, isDirectory: true)
        let model = try CausalLM.load(directory: directory, backend: backend)
        var tokenizer: Tokenizer?
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) {
            tokenizer = try Tokenizer.load(directory: directory)
        } else if needTokenizer {
            throw EbbError(.invalidArgument, "\(directory.path) has no tokenizer.json")
        }
        return LoadedModel(model: model, tokenizer: tokenizer, name: spec)
    }

    var eosTokenIds: [Int] {
        var ids = model.config.eosTokenIds
        if let eos = tokenizer?.eosTokenId, !ids.contains(eos) { ids.append(eos) }
        return ids
    }
}

/// Parses "1,2,3" into token ids.
func parseIds(_ text: String) throws -> [Int32] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    guard !parts.isEmpty, !(parts.count == 1 && parts[0].isEmpty) else {
        throw EbbError(.invalidArgument, "expected comma-separated token ids, got '\(text)'")
    }
    return try parts.map { part in
        guard let v = Int32(part), v >= 0 else {
            throw EbbError(.invalidArgument, "'\(part)' is not a token id (a non-negative integer)")
        }
        return v
    }
}

/// Prints an error for a person and exits non-zero, instead of a stack trace.
func describe(_ error: any Error) -> String {
    switch error {
    case let e as EbbError: return e.message
    case let e as CheckpointError: return e.description
    case let e as TensorError: return e.description
    default: return "\(error)"
    }
}
