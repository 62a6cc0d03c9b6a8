import EbbCheckpoint
import EbbCluster
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

    /// `expertParallel` makes the model hold only this rank's experts and exchange tokens
    /// with the other ranks in every MoE layer.
    static func load(_ spec: String, backend: any Backend, needTokenizer: Bool,
                     expertParallel: ExpertParallelSetup? = nil,
                     wrapWeights: @Sendable (any WeightSource) -> any WeightSource = { $0 }) throws -> LoadedModel {
        let config: ModelConfig
        let weights: any WeightSource
        if BuiltinModels.isBuiltin(spec) {
            (config, weights) = try BuiltinModels.resolve(spec)
        } else {
            let directory = URL(fileURLWithPath: spec, isDirectory: true)
            config = try ModelConfig.load(directory: directory)
            weights = try CheckpointWeights(directory: directory)
        }
        let placement = try expertParallel?.placements(config: config)
        let model = try CausalLM(config: config, weights: wrapWeights(weights), backend: backend, placement: placement,
                                 expertParallel: expertParallel?.group)
        return try LoadedModel(model: model, tokenizer: loadTokenizer(spec, needed: needTokenizer), name: spec)
    }

    /// The tokenizer of `spec` alone (the front end of a multi-process deployment does not
    /// load weights).
    static func loadTokenizer(_ spec: String, needed: Bool) throws -> Tokenizer? {
        if BuiltinModels.isBuiltin(spec) { return Tokenizer.byteLevel() }
        let directory = URL(fileURLWithPath: spec, isDirectory: true)
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) {
            return try Tokenizer.load(directory: directory)
        } else if needed {
            throw EbbError(.invalidArgument, "\(directory.path) has no tokenizer.json")
        }
        return nil
    }

    /// The model's config alone.
    static func loadConfig(_ spec: String) throws -> ModelConfig {
        if BuiltinModels.isBuiltin(spec) { return try BuiltinModels.resolve(spec).config }
        return try ModelConfig.load(directory: URL(fileURLWithPath: spec, isDirectory: true))
    }

    var eosTokenIds: [Int] { Self.eosTokenIds(config: model.config, tokenizer: tokenizer) }

    static func eosTokenIds(config: ModelConfig, tokenizer: Tokenizer?) -> [Int] {
        var ids = config.eosTokenIds
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

