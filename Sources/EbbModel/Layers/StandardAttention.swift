import EbbTensor

/// Multi-head attention with grouped KV heads over the paged cache (Qwen3-MoE, Mixtral):
/// q/k/v projections, optional per-head q/k RMSNorm (Qwen3), rotary embedding, o_proj.
struct StandardAttention: Sendable {
    struct Names: Sendable {
        var q, k, v, o: String
        var qNorm: String?
        var kNorm: String?
    }

    let heads: Int
    let kvHeads: Int
    let headDim: Int
    let q, k, v, o: Tensor
    let qNorm: RMSNorm?
    let kNorm: RMSNorm?
    let rope: RotaryEmbedding
    let scale: Float

    init(_ loader: WeightLoader, names: Names, config: ModelConfig, rope: RotaryEmbedding) throws {
        heads = config.numHeads
        kvHeads = config.numKVHeads
        headDim = config.headDim
        let h = config.hiddenSize
        q = try loader.tensor(names.q, shape: [heads * headDim, h])
        k = try loader.tensor(names.k, shape: [kvHeads * headDim, h])
        v = try loader.tensor(names.v, shape: [kvHeads * headDim, h])
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
        let query = try backend.linear(x, q).reshaped([t, heads, headDim])
        let key = try backend.linear(x, k).reshaped([t, kvHeads, headDim])
        let value = try backend.linear(x, v).reshaped([t, kvHeads, headDim])
        qNorm?.inPlace(query, backend)
        kNorm?.inPlace(key, backend)
        backend.rope(query, positions: batch.positions, rope: rope)
        backend.rope(key, positions: batch.positions, rope: rope)
        guard let valueCache = cache.values[layer] else { preconditionFailure("per-head cache has values") }
        backend.writeKV(key: key, value: value, keyCache: cache.keys[layer], valueCache: valueCache, metadata: batch.attention)
        let attended = try backend.empty([t, heads, headDim], dtype: backend.computeDType)
        backend.pagedAttention(query: query, keyCache: cache.keys[layer], valueCache: valueCache,
                               metadata: batch.attention, scale: scale, out: attended)
        return try backend.linear(attended.reshaped([t, heads * headDim]), o)
    }
}
