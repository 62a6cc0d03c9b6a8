import EbbTensor

extension Backend {
    /// `x [M, K] · weight[N, K]ᵀ → [M, N]` (PyTorch Linear layout), into a new tensor.
    func linear(_ x: Tensor, _ weight: Tensor) throws -> Tensor {
        let out = try empty([x.rows, weight.shape[0]], dtype: computeDType)
        linear(x, weight, out: out)
        return out
    }

    func linear(_ x: Tensor, _ weight: Tensor, out: Tensor) {
        precondition(x.columns == weight.columns, "linear: input has \(x.columns) columns, weight expects \(weight.columns)")
        gemm(MatrixOperand(x), MatrixOperand(weight, transposed: true), MatrixOperand(out),
             m: x.rows, n: weight.rows, k: x.columns, batch: 1, alpha: 1, beta: 0)
    }

    func rmsNorm(_ x: Tensor, _ weight: Tensor, eps: Float) throws -> Tensor {
        let out = try empty([x.rows, x.columns], dtype: computeDType)
        rmsNorm(x, weight: weight, eps: eps, out: out)
        return out
    }
}
