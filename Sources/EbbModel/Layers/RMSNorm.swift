import EbbTensor

/// Root-mean-square normalization with a learned scale (`*.layernorm.weight`, `*.norm.weight`).
struct RMSNorm: Sendable {
    let weight: Tensor
    let eps: Float

    init(_ loader: WeightLoader, _ name: String, size: Int, eps: Float) throws {
        weight = try loader.tensor(name, shape: [size])
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor, _ backend: any Backend) throws -> Tensor {
        try backend.rmsNorm(x, weight, eps: eps)
    }

    /// Adds `branch` (when given) to the residual stream `x` in place, then normalizes it.
    func callAsFunction(_ x: Tensor, adding branch: Tensor?, _ backend: any Backend) throws -> Tensor {
        guard let branch else { return try self(x, backend) }
        let out = try backend.empty([x.rows, x.columns], dtype: backend.computeDType)
        backend.addRMSNorm(x, branch, weight: weight, eps: eps, out: out)
        return out
    }

    /// Normalizes in place (the op reads a row fully before writing it).
    func inPlace(_ x: Tensor, _ backend: any Backend) {
        backend.rmsNorm(x, weight: weight, eps: eps, out: x)
    }
}
