import Foundation
import EbbCore
import EbbTensor

extension CUDABackend {
    public func writeKV(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, metadata: AttentionMetadata) {
        let kRow = key.shape.count == 3 ? key.shape[1] * key.shape[2] : key.columns
        let vRow = value.shape.count == 3 ? value.shape[1] * value.shape[2] : value.columns
        precondition(key.isContiguous && value.isContiguous)
        perform {
            try launch(typed("write_kv", key.dtype), grid: (metadata.numTokens, 1, 1), block: 128,
                       [.tensor(key), .tensor(value), .tensor(keyCache), .tensor(valueCache), .tensor(metadata.slotMapping),
                        .int(kRow), .int(vRow), .int(keyCache.count / max(kRow, 1))])
        }
    }

    public func prepareQKV(_ qkv: Tensor, heads: Int, kvHeads: Int, qNorm: Tensor?, kNorm: Tensor?, eps: Float,
                           positions: Tensor, rope: RotaryEmbedding, query: Tensor, keyCache: Tensor, valueCache: Tensor,
                           metadata: AttentionMetadata) {
        let t = qkv.rows, d = query.columns
        precondition(qkv.columns == (heads + 2 * kvHeads) * d && query.count == t * heads * d && query.isContiguous)
        perform {
            guard d <= 256, rope.dimension == d else {
                throw EbbError(.unsupported, "CUDA prepareQKV supports head dimensions up to 256 rotated whole, got \(d) (rotary \(rope.dimension))")
            }
            // The per-head norm sums in the order `rmsNorm` does.
            try launch(typed("prepare_qkv", qkv.dtype), grid: (t, heads + 2 * kvHeads, 1), block: normThreads(d),
                       [.tensor(qkv), .int(qkv.rowStride), .int(heads), .int(kvHeads), .int(d), .optionalTensor(qNorm),
                        .optionalTensor(kNorm), .float(eps), .tensor(positions), .tensor(rope.inverseFrequencies), .int(d / 2),
                        .float(rope.attentionFactor), .int(rope.interleaved ? 1 : 0), .tensor(query), .tensor(keyCache),
                        .tensor(valueCache), .tensor(metadata.slotMapping), .int(keyCache.count / max(kvHeads * d, 1))])
        }
    }

    public func writeLatentKV(latent: Tensor, ropeKey: Tensor, cache: Tensor, metadata: AttentionMetadata) {
        let l = latent.columns, r = ropeKey.columns
        perform {
            try launch(typed("write_latent_kv", cache.dtype), grid: (metadata.numTokens, 1, 1), block: 128,
                       [.tensor(latent), .int(latent.rowStride), .tensor(ropeKey), .int(ropeKey.rowStride), .tensor(cache),
                        .tensor(metadata.slotMapping), .int(l), .int(r), .int(cache.count / max(l + r, 1))])
        }
    }

    /// Elements per lane compiled for a head dimension (see `KernelAttention`).
    private func lanes(_ dim: Int, from options: [Int], what: String) throws -> Int {
        guard let e = options.first(where: { $0 * 32 >= dim }) else {
            throw EbbError(.unsupported, "CUDA attention supports \(what) up to \((options.last ?? 0) * 32), got \(dim)")
        }
        return e
    }

    /// Key-range splits so a step with few (token, head-group) blocks still fills the GPU
    /// (flash-decoding): about two blocks per multiprocessor, at least 64 keys a split.
    private func splitCount(blocks: Int, maxContext: Int) -> Int {
        guard blocks < 2 * multiprocessors, maxContext > 64 else { return 1 }
        return max(1, min((2 * multiprocessors + blocks - 1) / blocks, (maxContext + 63) / 64, 64))
    }

    /// Partial-result buffers of split attention (null pointers without splits).
    private func partials(rows: Int, splits: Int, width: Int) throws -> [Arg] {
        guard splits > 1 else { return [.raw(0), .raw(0), .raw(0)] }
        let m = try empty([rows * splits], dtype: .f32), l = try empty([rows * splits], dtype: .f32)
        let o = try empty([rows * splits, width], dtype: .f32)
        return [.tensor(m), .tensor(l), .tensor(o)]
    }

    private func combine(_ parts: [Arg], out: Tensor, rows: Int, splits: Int, width: Int) throws {
        guard splits > 1 else { return }
        try launch(typed("attention_combine", out.dtype), grid: (rows, 1, 1), block: 128,
                   parts + [.tensor(out), .int(out.rowStride), .int(splits), .int(width)])
    }

    /// Whether a step's attention runs on tensor cores (`flash_prefill`): bf16, equal key and
    /// value dimensions the kernel is compiled for, and sequences carrying 16 or more query
    /// tokens on average (prefill and chunked prefill; decode keeps `paged_attention`).
    /// `EBB_CUDA_PREFILL_ATTENTION=cuda-cores` turns it off, to compare.
    static func usesFlashPrefill(dtype: DType, d: Int, dv: Int, queryStride: Int, outStride: Int,
                                 metadata: AttentionMetadata) -> Bool {
        flashPrefillEnabled && dtype == .bf16 && d == dv && KernelFlashAttention.headDims.contains(d)
            && queryStride % 2 == 0 && outStride % 2 == 0 && metadata.numTokens >= 16 * max(metadata.numSequences, 1)
    }

    /// `EBB_CUDA_PREFILL_ATTENTION`, read once (not on every layer's attention).
    static let flashPrefillEnabled = ProcessInfo.processInfo.environment["EBB_CUDA_PREFILL_ATTENTION"]?.lowercased() != "cuda-cores"

    public func pagedAttention(query: Tensor, keyCache: Tensor, valueCache: Tensor,
                               metadata: AttentionMetadata, scale: Float, out: Tensor) {
        precondition(query.shape.count == 3 && out.shape.count == 3)
        let heads = query.shape[1], d = query.columns, dv = out.columns
        let kvHeads = keyCache.shape[keyCache.shape.count - 2]
        perform {
            guard kvHeads > 0, heads % kvHeads == 0 else {
                throw EbbError(.invalidArgument, "\(heads) query heads do not divide into \(kvHeads) KV heads")
            }
            if Self.usesFlashPrefill(dtype: query.dtype, d: d, dv: dv, queryStride: query.rowStride, outStride: out.rowStride,
                                     metadata: metadata) {
                // Blocks: an upper bound on the (sequence, 64-token tile) pairs.
                let tiles = (metadata.numTokens + 63) / 64 + metadata.numSequences
                try launch("flash_prefill_bf16_d\(d)", grid: (tiles, heads, 1), block: 128,
                           shared: KernelFlashAttention.sharedBytes(keyDim: d, valueDim: d),
                           [.tensor(query), .int(query.rowStride), .tensor(keyCache), .tensor(valueCache), .tensor(out),
                            .int(out.rowStride), .tensor(metadata.queryStart), .tensor(metadata.contextLengths),
                            .tensor(metadata.blockTables), .int(metadata.blockTables.columns), .int(metadata.blockSize),
                            .int(metadata.numSequences), .int(heads), .int(kvHeads), .float(scale * 1.4426950408889634)])
                return
            }
            let group = heads / kvHeads
            let epl = try lanes(max(d, dv), from: KernelAttention.attentionEPL, what: "head dimensions")
            let name = try typed("paged_attention", query.dtype) + "_e\(epl)"
            let groupChunks = (group + 7) / 8
            let splits = splitCount(blocks: metadata.numTokens * kvHeads * groupChunks, maxContext: metadata.maxContextLength)
            let chunkLen = (metadata.maxContextLength + splits - 1) / splits
            let parts = try partials(rows: metadata.numTokens * heads, splits: splits, width: dv)
            try launch(name, grid: (metadata.numTokens, kvHeads, groupChunks * splits), block: 256,
                       [.tensor(query), .int(query.rowStride), .tensor(keyCache), .tensor(valueCache), .tensor(out), .int(out.rowStride),
                        .tensor(metadata.queryStart), .tensor(metadata.contextLengths), .tensor(metadata.blockTables),
                        .int(metadata.blockTables.columns), .int(metadata.blockSize), .int(metadata.numSequences),
                        .int(heads), .int(kvHeads), .int(d), .int(dv), .float(scale), .int(groupChunks), .int(chunkLen)] + parts)
            try combine(parts, out: out, rows: metadata.numTokens * heads, splits: splits, width: dv)
        }
    }

    public func expandsLatentPrefill(nopeDim: Int, ropeDim: Int, valueDim: Int) -> Bool {
        computeDType == .bf16 && Self.flashPrefillEnabled
            && KernelFlashAttention.latentShapes.contains { $0 == (nopeDim, ropeDim, valueDim) }
    }

    public func gatherContext(_ cache: Tensor, metadata: AttentionMetadata, out: Tensor) {
        let width = out.columns
        perform {
            guard let contextStart = metadata.contextStart else {
                throw EbbError(.invalidArgument, "gatherContext needs the step's context starts")
            }
            guard cache.count % max(width, 1) == 0, cache.dtype == out.dtype else {
                throw EbbError(.invalidArgument, "gatherContext: a cache of \(cache.count) \(cache.dtype) values into rows of \(width) \(out.dtype)")
            }
            let chunks = (metadata.maxContextLength + 63) / 64
            try launch(typed("gather_context", out.dtype), grid: (metadata.numSequences, max(chunks, 1), 1), block: 128,
                       [.tensor(cache), .int(width), .int(cache.count / max(width, 1)), .tensor(metadata.blockTables),
                        .int(metadata.blockTables.columns), .int(metadata.blockSize), .tensor(metadata.contextLengths),
                        .tensor(contextStart), .tensor(out), .int(out.rowStride)])
        }
    }

    public func expandedLatentAttention(query: Tensor, keyValues: Tensor, ropeKeys: Tensor, nopeDim: Int, valueDim: Int,
                                        metadata: AttentionMetadata, scale: Float, out: Tensor) {
        precondition(query.shape.count == 3 && out.shape.count == 3)
        let heads = query.shape[1], n = nopeDim, v = valueDim, r = ropeKeys.columns
        perform {
            guard let contextStart = metadata.contextStart else {
                throw EbbError(.invalidArgument, "expandedLatentAttention needs the step's context starts")
            }
            guard KernelFlashAttention.latentShapes.contains(where: { $0 == (n, r, v) }),
                  [query, keyValues, ropeKeys, out].allSatisfy({ $0.dtype == .bf16 && $0.rowStride % 8 == 0 && pointer($0) % 16 == 0 }),
                  query.columns == n + r, keyValues.columns == heads * (n + v), out.columns == v else {
                throw EbbError(.unsupported, "expanded MLA attention for nope \(n), rope \(r), value \(v) (bf16, aligned rows)")
            }
            let tiles = (metadata.numTokens + 63) / 64 + metadata.numSequences
            try launch(KernelFlashAttention.latentKernel(nope: n, rope: r, value: v), grid: (tiles, heads, 1), block: 128,
                       shared: KernelFlashAttention.sharedBytes(keyDim: n + r, valueDim: v),
                       [.tensor(query), .int(query.rowStride), .tensor(keyValues), .int(keyValues.rowStride), .tensor(ropeKeys),
                        .int(ropeKeys.rowStride), .tensor(out), .int(out.rowStride), .tensor(metadata.queryStart),
                        .tensor(metadata.contextLengths), .tensor(contextStart), .int(metadata.numSequences), .int(heads),
                        .float(scale * 1.4426950408889634)])
        }
    }

    public func latentAttention(queryLatent: Tensor, queryRope: Tensor, cache: Tensor, latentDim: Int,
                                metadata: AttentionMetadata, scale: Float, out: Tensor) {
        precondition(queryLatent.shape.count == 3 && queryRope.shape.count == 3)
        let heads = queryLatent.shape[1], l = latentDim, r = queryRope.columns
        perform {
            let el = try lanes(l, from: KernelAttention.latentEL, what: "latent dimensions")
            let er = try lanes(r, from: KernelAttention.latentER, what: "rope dimensions")
            let name = try typed("latent_attention", queryLatent.dtype) + "_l\(el)_r\(er)"
            let splits = splitCount(blocks: metadata.numTokens * ((heads + 3) / 4), maxContext: metadata.maxContextLength)
            let chunkLen = (metadata.maxContextLength + splits - 1) / splits
            let parts = try partials(rows: metadata.numTokens * heads, splits: splits, width: l)
            try launch(name, grid: (metadata.numTokens, (heads + 3) / 4, splits), block: 256,
                       [.tensor(queryLatent), .int(queryLatent.rowStride), .tensor(queryRope), .int(queryRope.rowStride),
                        .tensor(cache), .tensor(out), .int(out.rowStride),
                        .tensor(metadata.queryStart), .tensor(metadata.contextLengths), .tensor(metadata.blockTables),
                        .int(metadata.blockTables.columns), .int(metadata.blockSize), .int(metadata.numSequences),
                        .int(heads), .int(l), .int(r), .float(scale), .int(chunkLen)] + parts)
            try combine(parts, out: out, rows: metadata.numTokens * heads, splits: splits, width: l)
        }
    }
}
