import ArgumentParser
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
enum WeightFormat: String, CaseIterable, Sendable, ExpressibleByArgument {
    case auto, dummy
}

/// `--load-format` and `--num-layers`, shared by `serve`, `engine-core`, `generate`, `logits`
/// and the benchmarks.
struct WeightOptions: ParsableArguments, Sendable {
    @Option(help: "auto (the checkpoint's safetensors) or dummy (random weights for the directory's config.json)")
    var loadFormat: WeightFormat = .auto

    @Option(help: "With --load-format dummy: keep only the first N layers")
    var numLayers: Int?

    /// The same options as command-line arguments (for the engine cores a deployment starts).
    var arguments: [String] {
        var a = ["--load-format", loadFormat.rawValue]
        if let numLayers { a += ["--num-layers", "\(numLayers)"] }
        return a
    }
}
