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
    let name = "dummy weights"
    private let host: RandomWeights

    init(seed: UInt64 = 0) {
        host = RandomWeights(seed: seed, name: "dummy weights")
    }

    func load(_ tensor: String, shape: [Int], into destination: Tensor, backend: any Backend) throws {
        guard let cuda = backend as? CUDABackend else {
            try host.load(tensor, shape: shape, into: destination, backend: backend)
            return
        }
        switch host.fill(for: tensor) {
        case .constant(let v): cuda.fill(destination, value: v)
        case .uniform(let seed, let bound): try cuda.fillUniform(destination, seed: seed, bound: bound)
        }
        try cuda.checkErrors()
    }

    func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws {}
}

/// `--load-format`: the checkpoint's safetensors, or random weights for its config.json.
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
