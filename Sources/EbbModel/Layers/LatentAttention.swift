import EbbTensor

/// DeepSeek multi-head latent attention (MLA), computed in the absorbed form over a cache
/// that holds, per token, the normalized KV latent and the rotated rope key:
///
///     q = q_b(norm(q_a(x)))                   [T, H, nope + rope]
///     c, k_rope = split(kv_a(x)); c = norm(c)  [T, L], [T, R]
///     score = q_nope·W_uk·c + q_rope·k_rope    (W_uk absorbed into the query)
///     out = o(W_uv · Σ softmax · c)
///
/// which equals the expanded form `k = [W_uk c, k_rope]`, `v = W_uv c` of transformers.
struct LatentAttention: Sendable {
    struct Names: Sendable {
        var qA: String?, qANorm: String?, qB: String?, q: String?
        var kvA: String, kvANorm: String, kvB: String, o: String
    }

    let heads: Int
    let mla: MLAConfig
    let qA: Tensor?, qANorm: RMSNorm?, qB: Tensor?, qProj: Tensor?
    let kvA: Tensor, kvANorm: RMSNorm, kvB: Tensor, o: Tensor
    let rope: RotaryEmbedding
    let scale: Float

    init(_ loader: WeightLoader, names: Names, config: ModelConfig, mla: MLAConfig, rope: RotaryEmbedding) throws {
        heads = config.numHeads
        self.mla = mla
        let h = config.hiddenSize
        let qOut = heads * mla.qkHeadDim
        if let rank = mla.qLoraRank, let a = names.qA, let an = names.qANorm, let b = names.qB {
            qA = try loader.tensor(a, shape: [rank, h])
            qANorm = try RMSNorm(loader, an, size: rank, eps: config.rmsNormEps)
            qB = try loader.tensor(b, shape: [qOut, rank])
            qProj = nil
        } else {
            qA = nil
            qANorm = nil
            qB = nil
            qProj = try loader.tensor(names.q ?? "q_proj", shape: [qOut, h])
        }
        kvA = try loader.tensor(names.kvA, shape: [mla.kvLoraRank + mla.qkRopeHeadDim, h])
        kvANorm = try RMSNorm(loader, names.kvANorm, size: mla.kvLoraRank, eps: config.rmsNormEps)
        kvB = try loader.tensor(names.kvB, shape: [heads * (mla.qkNopeHeadDim + mla.vHeadDim), mla.kvLoraRank])
        o = try loader.tensor(names.o, shape: [h, heads * mla.vHeadDim])
        self.rope = rope
        scale = config.attentionScale
    }

    static func cacheLayout(_ mla: MLAConfig) -> KVCache.Layout {
        .latent(latentDim: mla.kvLoraRank, ropeDim: mla.qkRopeHeadDim)
    }

    func callAsFunction(_ x: Tensor, layer: Int, cache: KVCache, batch: ForwardBatch, _ backend: any Backend) throws -> Tensor {
        let t = x.rows
        let nope = mla.qkNopeHeadDim, r = mla.qkRopeHeadDim, l = mla.kvLoraRank, v = mla.vHeadDim
        let qk = nope + r
        let query: Tensor
        if let qA, let qANorm, let qB {
            query = try backend.linear(try qANorm(try backend.linear(x, qA), backend), qB)
        } else if let qProj {
            query = try backend.linear(x, qProj)
        } else {
            preconditionFailure("MLA without query weights")
        }
        let q3 = query.reshaped([t, heads, qk])
        let qRope = q3.columnSlice(nope..<qk)
        backend.rope(qRope, positions: batch.positions, rope: rope)

        let compressed = try backend.linear(x, kvA)
        let latent = try kvANorm(compressed.columnSlice(0..<l), backend)
        let kRope = compressed.columnSlice(l..<(l + r)).reshaped([t, 1, r])
        backend.rope(kRope, positions: batch.positions, rope: rope)
        backend.writeLatentKV(latent: latent, ropeKey: kRope.reshaped([t, r]), cache: cache.keys[layer], metadata: batch.attention)
        if batch.attention.contextStart != nil && batch.attention.totalContext > 0
            && backend.expandsLatentPrefill(nopeDim: nope, ropeDim: r, valueDim: v) {
            return try expandedPrefill(query: q3, cache: cache.keys[layer], batch: batch, backend)
        }

        // Absorb W_uk: qLatent[:, h] = q_nope[:, h] · W_uk[h]   ([T, nope] · [nope, L]).
        let qLatent = try backend.empty([t, heads, l], dtype: backend.computeDType)
        let rowsPerHead = nope + v
        backend.gemm(MatrixOperand(query, offset: 0, leadingDimension: heads * qk, batchStride: qk),
                     MatrixOperand(kvB, offset: 0, leadingDimension: l, batchStride: rowsPerHead * l),
                     MatrixOperand(qLatent, offset: 0, leadingDimension: heads * l, batchStride: l),
                     m: t, n: l, k: nope, batch: heads, alpha: 1, beta: 0)
        let latentOut = try backend.empty([t, heads, l], dtype: backend.computeDType)
        backend.latentAttention(queryLatent: qLatent, queryRope: qRope, cache: cache.keys[layer], latentDim: l,
                                metadata: batch.attention, scale: scale, out: latentOut)
        // Values: out[:, h] = latentOut[:, h] · W_uv[h]ᵀ   ([T, L] · [L, v]).
        let values = try backend.empty([t, heads, v], dtype: backend.computeDType)
        backend.gemm(MatrixOperand(latentOut, offset: 0, leadingDimension: heads * l, batchStride: l),
                     MatrixOperand(kvB, offset: nope * l, leadingDimension: l, batchStride: rowsPerHead * l, transposed: true),
                     MatrixOperand(values, offset: 0, leadingDimension: heads * v, batchStride: v),
                     m: t, n: v, k: l, batch: heads, alpha: 1, beta: 0)
        return try backend.linear(values.reshaped([t, heads * v]), o)
    }

    /// Prefill in the expanded form (where the backend prefers it): each sequence's context
    /// gathered from the latent cache, multiplied by W_kv_b once into per-head keys and
    /// values, then ordinary causal attention with keys [nope part, shared rope key].
    private func expandedPrefill(query: Tensor, cache: Tensor, batch: ForwardBatch, _ backend: any Backend) throws -> Tensor {
        let t = query.shape[0], l = mla.kvLoraRank, r = mla.qkRopeHeadDim, nope = mla.qkNopeHeadDim, v = mla.vHeadDim
        let context = try backend.empty([batch.attention.totalContext, l + r], dtype: backend.computeDType)
        backend.gatherContext(cache, metadata: batch.attention, out: context)
        let keyValues = try backend.linear(context.columnSlice(0..<l), kvB)
        let values = try backend.empty([t, heads, v], dtype: backend.computeDType)
        backend.expandedLatentAttention(query: query, keyValues: keyValues, ropeKeys: context.columnSlice(l..<(l + r)),
                                        nopeDim: nope, valueDim: v, metadata: batch.attention, scale: scale, out: values)
        return try backend.linear(values.reshaped([t, heads * v]), o)
    }
}
