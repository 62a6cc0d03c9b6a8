import EbbCore
import EbbTensor

/// The attention of a decoder layer.
enum AttentionModule: Sendable {
    case standard(StandardAttention)
    case latent(LatentAttention)

    func callAsFunction(_ x: Tensor, layer: Int, cache: KVCache, batch: ForwardBatch, _ backend: any Backend) throws -> Tensor {
        switch self {
        case .standard(let a): return try a(x, layer: layer, cache: cache, batch: batch, backend)
        case .latent(let a): return try a(x, layer: layer, cache: cache, batch: batch, backend)
        }
    }
}

/// The feed-forward part of a decoder layer.
enum FeedForward: Sendable {
    case dense(DenseMLP)
    case moe(MoEBlock)

    func callAsFunction(_ x: Tensor, layer: Int, expertParallel: ExpertParallelGroup?, rowMask: Tensor? = nil,
                        _ backend: any Backend) throws -> Tensor {
        switch self {
        case .dense(let m): return try m(x, backend)
        case .moe(let m):
            guard let expertParallel else { return try m(x, backend) }
            guard let out = try m.expertParallel(x, layer: layer, group: expertParallel, rowMask: rowMask, backend) else {
                throw EbbError(.internal, "expert-parallel MoE returned no output for \(x.rows) tokens")
            }
            return out
        }
    }

    var moe: MoEBlock? {
        if case .moe(let m) = self { return m }
        return nil
    }
}

/// Pre-norm decoder layer: `x += attn(norm(x)); x += mlp(norm(x))`. Each residual update
/// is fused with the norm that reads it (`addRMSNorm`): the feed-forward output is returned
/// rather than added, and the next layer (or the model, after the last) adds it.
struct DecoderLayer: Sendable {
    let inputNorm: RMSNorm
    let attention: AttentionModule
    let postAttentionNorm: RMSNorm
    let feedForward: FeedForward

    /// `pending`: the previous layer's feed-forward output, not yet added to `x`. Returns
    /// this layer's, not yet added.
    func callAsFunction(_ x: Tensor, pending: Tensor?, layer: Int, cache: KVCache, batch: ForwardBatch,
                        expertParallel: ExpertParallelGroup?, _ backend: any Backend) throws -> Tensor {
        let attended = try attention(try inputNorm(x, adding: pending, backend), layer: layer, cache: cache, batch: batch, backend)
        return try feedForward(try postAttentionNorm(x, adding: attended, backend), layer: layer, expertParallel: expertParallel,
                               rowMask: batch.attention.slotMapping, backend)
    }
}
