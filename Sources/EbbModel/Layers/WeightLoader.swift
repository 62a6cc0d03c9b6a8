import EbbCheckpoint
import EbbCore
import EbbTensor
import Foundation

/// Where weights come from: a checkpoint on disk, or generated values.
public protocol WeightSource: Sendable {
    /// A name for messages (the checkpoint directory).
    var name: String { get }
    /// Copies tensor `name`, which must have `shape`, into `destination` on `backend`.
    func load(_ name: String, shape: [Int], into destination: Tensor, backend: any Backend) throws
    /// Throws for a tensor of the source that nothing loaded and `ignoring` doesn't cover.
    func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws
    /// Throws when tensor `name` is missing or does not have `shape` — checked before any
    /// memory is allocated for it, so a config that disagrees with its weights fails fast.
    func check(_ name: String, shape: [Int]) throws
}

extension WeightSource {
    public func check(_ name: String, shape: [Int]) throws {}
}

/// Weights from a Hugging Face safetensors checkpoint.
public struct CheckpointWeights: WeightSource {
    public let checkpoint: Checkpoint
    public let name: String

    public init(directory: URL) throws {
        checkpoint = try Checkpoint(directory: directory)
        name = directory.path
    }

    public func load(_ tensor: String, shape: [Int], into destination: Tensor, backend: any Backend) throws {
        try checkpoint.withRawBytes(tensor, shape: shape) { entry, raw in
            let dtype: DType
            switch entry.dtype {
            case .f32: dtype = .f32
            case .bf16: dtype = .bf16
            case .f16: dtype = .f16
            default:
                throw CheckpointError.unknownDType(file: entry.file, tensor: tensor, dtype: "\(entry.dtype.rawValue) (weights must be F32, BF16 or F16)")
            }
            backend.copy(from: raw, sourceDType: dtype, into: destination)
        }
    }

    public func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws {
        try checkpoint.checkAllUsed(ignoring: ignoring)
    }

    public func check(_ name: String, shape: [Int]) throws {
        let entry = try checkpoint.entry(name)
        guard entry.shape == shape else {
            throw CheckpointError.shapeMismatch(file: entry.file, tensor: name, expected: shape, found: entry.shape)
        }
    }
}

/// Random weights from a fixed seed: the embedded `builtin:` models and `--load-format
/// dummy`. Norm weights are 1; other tensors are uniform in ±`scale`·√3 (std `scale`).
public struct RandomWeights: WeightSource {
    public let seed: UInt64
    public let scale: Float
    public let name: String

    public init(seed: UInt64, scale: Float = 0.02, name: String = "random weights") {
        self.seed = seed
        self.scale = scale
        self.name = name
    }

    /// What a tensor holds: a constant (norm weights 1, correction biases 0), or uniform
    /// values in ±`bound` from a generator seeded by (seed, tensor name), so every tensor
    /// is reproducible alone (and a device kernel can fill it with the same rule).
    public enum Fill: Equatable, Sendable {
        case constant(Float)
        case uniform(seed: UInt64, bound: Float)
    }

    public func fill(for tensor: String) -> Fill {
        if tensor.hasSuffix("norm.weight") || tensor.hasSuffix("layernorm.weight") { return .constant(1) }
        if tensor.hasSuffix("e_score_correction_bias") { return .constant(0) }
        return .uniform(seed: seed ^ Self.fnv1a(tensor), bound: scale * Float(3).squareRoot())
    }

    public func load(_ tensor: String, shape: [Int], into destination: Tensor, backend: any Backend) throws {
        let count = shape.reduce(1, *)
        var values: [Float]
        switch fill(for: tensor) {
        case .constant(let v):
            values = [Float](repeating: v, count: count)
        case .uniform(var state, let bound):
            // SplitMix64.
            values = [Float](repeating: 0, count: count)
            for i in 0..<count {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                let unit = Float(z >> 40) / Float(1 << 24)
                values[i] = (unit * 2 - 1) * bound
            }
        }
        values.withUnsafeBytes { backend.copy(from: $0, sourceDType: .f32, into: destination) }
    }

    public func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws {}

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01B3
        }
        return h
    }
}

/// Loads named tensors onto a backend in its compute dtype, fusing and stacking where the
/// model wants one weight for several checkpoint tensors.
final class WeightLoader: @unchecked Sendable {
    let source: any WeightSource
    let backend: any Backend
    private(set) var loadedBytes = 0

    init(source: any WeightSource, backend: any Backend) {
        self.source = source
        self.backend = backend
    }

    func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        try source.check(name, shape: shape)
        let t = try backend.empty(shape, dtype: backend.computeDType)
        try source.load(name, shape: shape, into: t, backend: backend)
        loadedBytes += t.count * t.dtype.byteSize
        return t
    }

    /// Tensors of equal `shape` joined along their first axis: the result is
    /// `[names.count · shape[0], shape[1...]]` (e.g. gate and up rows in one weight).
    func concatenated(_ names: [String], shape: [Int]) throws -> Tensor {
        for name in names { try source.check(name, shape: shape) }
        let t = try backend.empty([names.count * shape[0]] + shape.dropFirst(), dtype: backend.computeDType)
        for (i, name) in names.enumerated() {
            try source.load(name, shape: shape, into: t.slice(first: (i * shape[0])..<((i + 1) * shape[0])), backend: backend)
        }
        loadedBytes += t.count * t.dtype.byteSize
        return t
    }

    /// Tensors joined along their first axis, each with its own number of rows (the same
    /// trailing dimensions): e.g. the q, k and v projections in one weight.
    func concatenated(_ parts: [(name: String, shape: [Int])]) throws -> Tensor {
        guard let trailing = parts.first.map({ Array($0.shape.dropFirst()) }),
              parts.allSatisfy({ Array($0.shape.dropFirst()) == trailing }) else {
            throw EbbError(.internal, "concatenated tensors need equal trailing dimensions")
        }
        for p in parts { try source.check(p.name, shape: p.shape) }
        let rows = parts.reduce(0) { $0 + ($1.shape.first ?? 0) }
        let t = try backend.empty([rows] + trailing, dtype: backend.computeDType)
        var start = 0
        for p in parts {
            let n = p.shape.first ?? 0
            try source.load(p.name, shape: p.shape, into: t.slice(first: start..<(start + n)), backend: backend)
            start += n
        }
        loadedBytes += t.count * t.dtype.byteSize
        return t
    }

    /// One `[names.count, ...]` tensor whose entry i is built by `fill(i, slice)`.
    func stacked(count: Int, shape: [Int], _ fill: (Int, Tensor) throws -> Void) throws -> Tensor {
        let t = try backend.empty([count] + shape, dtype: backend.computeDType)
        for i in 0..<count {
            try fill(i, t.slice(first: i..<(i + 1)).reshaped(shape))
        }
        loadedBytes += t.count * t.dtype.byteSize
        return t
    }

    func load(_ name: String, shape: [Int], into destination: Tensor) throws {
        try source.load(name, shape: shape, into: destination, backend: backend)
    }
}
