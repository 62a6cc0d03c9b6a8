import EbbCore
import EbbCUDA
import EbbModel
import EbbTensor
import Foundation

/// `--load-format dummy`: random weights generated on the device for any config.json, so
/// full-size shapes run without a checkpoint. Norm weights are 1, correction biases 0, the
/// rest uniform in ±0.02·√3 (as `RandomWeights`). On a CUDA device the values come from a
/// kernel (no host work, no transfer); elsewhere `RandomWeights` fills them on the host.
struct DummyWeights: WeightSource {
    let seed: UInt64
    let name = "dummy weights"
    private let host: RandomWeights

    init(seed: UInt64 = 0) {
        self.seed = seed
        host = RandomWeights(seed: seed, name: "dummy weights")
    }

    func load(_ tensor: String, shape: [Int], into destination: Tensor, backend: any Backend) throws {
        guard let cuda = backend as? CUDABackend else {
            try host.load(tensor, shape: shape, into: destination, backend: backend)
            return
        }
        if tensor.hasSuffix("norm.weight") || tensor.hasSuffix("layernorm.weight") {
            cuda.fill(destination, value: 1)
        } else if tensor.hasSuffix("e_score_correction_bias") {
            cuda.fill(destination, value: 0)
        } else {
            try cuda.fillUniform(destination, seed: seed ^ Self.fnv1a(tensor), bound: 0.02 * Float(3).squareRoot())
        }
        try cuda.checkErrors()
    }

    func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws {}

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01B3
        }
        return h
    }
}

/// The model options shared by `generate`, `logits` and `bench forward`.
enum WeightFormat: String, CaseIterable, Sendable {
    case auto, dummy
}

extension LoadedModel {
    /// `spec` is a checkpoint directory, `builtin:NAME`, or (with `.dummy`) a directory
    /// holding config.json or the config.json itself. `numLayers` keeps only the first
    /// layers (dummy weights only; a checkpoint must match its config).
    static func load(_ spec: String, format: WeightFormat, numLayers: Int?, backend: any Backend,
                     needTokenizer: Bool) throws -> LoadedModel {
        guard format == .dummy else {
            if numLayers != nil { throw EbbError(.invalidArgument, "--num-layers needs --load-format dummy") }
            return try load(spec, backend: backend, needTokenizer: needTokenizer)
        }
        var config: ModelConfig
        var tokenizerSpec = spec
        if BuiltinModels.isBuiltin(spec) {
            config = try BuiltinModels.resolve(spec).config
        } else {
            var url = URL(fileURLWithPath: spec)
            if url.lastPathComponent == "config.json" { url = url.deletingLastPathComponent() }
            tokenizerSpec = url.path
            config = try ModelConfig.load(directory: url)
        }
        if let numLayers {
            guard numLayers > 0, numLayers <= config.numLayers else {
                throw EbbError(.invalidArgument, "--num-layers must be in 1...\(config.numLayers) for this config (got \(numLayers))")
            }
            config.numLayers = numLayers
            config.moeLayers = Array(config.moeLayers.prefix(numLayers))
        }
        let model = try CausalLM(config: config, weights: DummyWeights(), backend: backend)
        if let cuda = backend as? CUDABackend { try cuda.synchronizeChecked() }
        let tokenizer = try loadTokenizer(tokenizerSpec, needed: needTokenizer)
        return LoadedModel(model: model, tokenizer: tokenizer, name: "\(spec) (dummy weights\(numLayers.map { ", \($0) layers" } ?? ""))")
    }
}
