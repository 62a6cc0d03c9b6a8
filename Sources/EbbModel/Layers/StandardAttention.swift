import EbbTensor

/// Multi-head attention with grouped KV heads over the paged cache (Qwen3-MoE, Mixtral):
/// q/k/v projections (one weight, one GEMM), optional per-head q/k RMSNorm (Qwen3), rotary
/// embedding, o_proj. The norms, rotation and cache writes after the projection are one
/// backend op (`prepareQKV`).
struct StandardAttention: Sendable {
    struct Names: Sendable {
        var q, k, v, o: String
        var qNorm: String?
        var kNorm: String?
    }

    let heads: Int
    let kvHeads: Int
    let headDim: Int
    /// `[(H + 2·Hkv)·D, hidden]`: q_proj, k_proj and v_proj rows, in that order.
    let qkv: Tensor
    let o: Tensor
    let qNorm: RMSNorm?
    let kNorm: RMSNorm?
    let rope: RotaryEmbedding
    let scale: Float

    init(_ loader: WeightLoader, names: Names, config: ModelConfig, rope: RotaryEmbedding) throws {
        heads = config.numHeads
        kvHeads = config.numKVHeads
        headDim = config.headDim
        let h = config.hiddenSize
        qkv = try loader.concatenated([(names.q, [heads * headDim, h]), (names.k, [kvHeads * headDim, h]),
                                       (names.v, [kvHeads * headDim, h])])
        o = try loader.tensor(names.o, shape: [h, heads * headDim])
        let d = config.headDim, eps = config.rmsNormEps
        qNorm = try names.qNorm.map { try RMSNorm(loader, $0, size: d, eps: eps) }
        kNorm = try names.kNorm.map { try RMSNorm(loader, $0, size: d, eps: eps) }
        self.rope = rope
        scale = config.attentionScale
    }

    static func cacheLayout(_ config: ModelConfig) -> KVCache.Layout {
        .perHead(kvHeads: config.numKVHeads, headDim: config.headDim, valueDim: config.headDim)
    }

    func callAsFunction(_ x: Tensor, layer: Int, cache: KVCache, batch: ForwardBatch, _ backend: any Backend) throws -> Tensor {
        let t = x.rows
        let projected = try backend.linear(x, qkv)
        let query = try backend.empty([t, heads, headDim], dtype: backend.computeDType)
        guard let valueCache = cache.values[layer] else { preconditionFailure("per-head cache has values") }
        backend.prepareQKV(projected, heads: heads, kvHeads: kvHeads, qNorm: qNorm?.weight, kNorm: kNorm?.weight,
                           eps: qNorm?.eps ?? kNorm?.eps ?? 1e-6, positions: batch.positions, rope: rope, query: query,
                           keyCache: cache.keys[layer], valueCache: valueCache, metadata: batch.attention)
        let attended = try backend.empty([t, heads, headDim], dtype: backend.computeDType)
        backend.pagedAttention(query: query, keyCache: cache.keys[layer], valueCache: valueCache,
                               metadata: batch.attention, scale: scale, out: attended)
        return try backend.linear(attended.reshaped([t, heads * headDim]), o)
    }
}
