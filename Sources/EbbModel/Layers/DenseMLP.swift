import EbbTensor

/// SwiGLU MLP: `down(silu(gate(x)) · up(x))`, with gate and up fused into one weight.
struct DenseMLP: Sendable {
    /// `[2I, H]`: gate rows then up rows.
    let gateUp: Tensor
    /// `[H, I]`
    let down: Tensor

    /// `gate`, `up`, `down` are the checkpoint names of the three projections.
    init(_ loader: WeightLoader, gate: String, up: String, down: String, hidden: Int, intermediate: Int) throws {
        gateUp = try loader.concatenated([gate, up], shape: [intermediate, hidden])
        self.down = try loader.tensor(down, shape: [hidden, intermediate])
    }

    func callAsFunction(_ x: Tensor, _ backend: any Backend) throws -> Tensor {
        let h = try backend.linear(x, gateUp)
        let a = try backend.empty([x.rows, down.columns], dtype: backend.computeDType)
        backend.siluAndMul(h, out: a)
        return try backend.linear(a, down)
    }
}
