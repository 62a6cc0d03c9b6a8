import EbbCheckpoint
import EbbCluster
import EbbCore
import EbbCUDA
import EbbModel
import EbbTensor
import EbbTokenizer
import Foundation

/// A model and its tokenizer, from a checkpoint directory or `builtin:NAME`.
struct LoadedModel {
    let model: CausalLM
    let tokenizer: Tokenizer?
    let name: String

    /// `spec` is a checkpoint directory or `builtin:NAME`; with `weights: .dummy` also a
    /// directory holding only config.json (or the file itself), `numLayers` then keeping the
    /// first layers. `expertParallel` makes the model hold only this rank's experts and
    /// exchange tokens with the other ranks in every MoE layer.
    static func load(_ spec: String, weights: WeightOptions = WeightOptions(), backend: any Backend, needTokenizer: Bool,
                     expertParallel: ExpertParallelSetup? = nil,
                     wrapWeights: @Sendable (any WeightSource) -> any WeightSource = { $0 }) throws -> LoadedModel {
        let config = try loadConfig(spec, weights: weights)
        let source = try weightSource(spec, weights: weights)
        let placement = try expertParallel?.placements(config: config)
        let model = try CausalLM(config: config, weights: wrapWeights(source), backend: backend, placement: placement,
                                 expertParallel: expertParallel?.group)
        if let cuda = backend as? CUDABackend { try cuda.synchronizeChecked() }
        let tokenizer = try loadTokenizer(spec, needed: needTokenizer, bytesIfMissing: weights.loadFormat == .dummy)
        let layers = weights.numLayers.map { ", \($0) layers" } ?? ""
        return LoadedModel(model: model, tokenizer: tokenizer,
                           name: weights.loadFormat == .dummy ? "\(spec) (dummy weights\(layers))" : spec)
    }

    /// Where `spec`'s weights come from: the checkpoint (memory-mapped), the built-in
    /// model's generator, or dummy values.
    static func weightSource(_ spec: String, weights: WeightOptions = WeightOptions()) throws -> any WeightSource {
        if weights.loadFormat == .dummy { return DummyWeights() }
        if BuiltinModels.isBuiltin(spec) { return try BuiltinModels.resolve(spec).weights }
        return try CheckpointWeights(directory: URL(fileURLWithPath: spec, isDirectory: true))
    }

    /// The tokenizer of `spec` alone (the front end of a multi-process deployment does not
    /// load weights).
    /// `bytesIfMissing` (dummy weights): a directory without tokenizer.json gets the byte-level
    /// tokenizer, so a bare config.json can be served and benchmarked.
    static func loadTokenizer(_ spec: String, needed: Bool, bytesIfMissing: Bool = false) throws -> Tokenizer? {
        if BuiltinModels.isBuiltin(spec) { return Tokenizer.byteLevel() }
        var directory = URL(fileURLWithPath: spec, isDirectory: true)
        if directory.lastPathComponent == "config.json" { directory = directory.deletingLastPathComponent() }
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) {
            return try Tokenizer.load(directory: directory)
        } else if bytesIfMissing {
            return Tokenizer.byteLevel()
        } else if needed {
            throw EbbError(.invalidArgument, "\(directory.path) has no tokenizer.json")
        }
        return nil
    }

    /// The model's config alone (cut to `weights.numLayers` with dummy weights).
    static func loadConfig(_ spec: String, weights: WeightOptions = WeightOptions()) throws -> ModelConfig {
        var config: ModelConfig
        if BuiltinModels.isBuiltin(spec) {
            config = try BuiltinModels.resolve(spec).config
        } else {
            var url = URL(fileURLWithPath: spec)
            if weights.loadFormat == .dummy && url.lastPathComponent == "config.json" { url = url.deletingLastPathComponent() }
            config = try ModelConfig.load(directory: url)
        }
        guard let numLayers = weights.numLayers else { return config }
        guard weights.loadFormat == .dummy else { throw EbbError(.invalidArgument, "--num-layers needs --load-format dummy") }
        guard numLayers > 0, numLayers <= config.numLayers else {
            throw EbbError(.invalidArgument, "--num-layers must be in 1...\(config.numLayers) for this config (got \(numLayers))")
        }
        config.numLayers = numLayers
        config.moeLayers = Array(config.moeLayers.prefix(numLayers))
        return config
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

