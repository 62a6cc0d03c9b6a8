import Foundation

extension CPUBackend {
    public func writeKV(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, metadata: AttentionMetadata) {
        let tokens = metadata.numTokens
        let kRow = key.shape.count == 3 ? key.shape[1] * key.shape[2] : key.columns
        let vRow = value.shape.count == 3 ? value.shape[1] * value.shape[2] : value.columns
        precondition(key.isContiguous && value.isContiguous)
        let slots = metadata.slotMapping.int32Pointer
        let capacity = keyCache.count / kRow
        let pk = key.floatPointer, pv = value.floatPointer
        let ck = keyCache.floatPointer, cv = valueCache.floatPointer
        for t in 0..<tokens {
            let slot = Int(slots[t])
            guard slot >= 0 && slot < capacity else { continue }
            (ck + slot * kRow).update(from: pk + t * kRow, count: kRow)
            (cv + slot * vRow).update(from: pv + t * vRow, count: vRow)
        }
    }

    public func writeLatentKV(latent: Tensor, ropeKey: Tensor, cache: Tensor, metadata: AttentionMetadata) {
        let l = latent.columns, r = ropeKey.columns
        let row = l + r
        let slots = metadata.slotMapping.int32Pointer
        let capacity = cache.count / row
        let pl = latent.floatPointer, pr = ropeKey.floatPointer, pc = cache.floatPointer
        for t in 0..<metadata.numTokens {
            let slot = Int(slots[t])
            guard slot >= 0 && slot < capacity else { continue }
            (pc + slot * row).update(from: pl + t * latent.rowStride, count: l)
            (pc + slot * row + l).update(from: pr + t * ropeKey.rowStride, count: r)
        }
    }

    /// Shared driver: for every (token, head) pair, the causal context of its sequence,
    /// resolved to cache slots through the block table.
    private func forEachQuery(metadata: AttentionMetadata, heads: Int,
                              _ body: (_ token: Int, _ head: Int, _ slots: UnsafeBufferPointer<Int32>, _ scores: UnsafeMutablePointer<Float>) -> Void) {
        let starts = metadata.queryStart.int32Pointer
        let lengths = metadata.contextLengths.int32Pointer
        let tables = metadata.blockTables.int32Pointer
        let tableWidth = metadata.blockTables.columns
        let bs = metadata.blockSize
        // Token → sequence lookup, and each sequence's slots resolved once.
        var sequenceOf = [Int](repeating: 0, count: metadata.numTokens)
        var slotLists = [[Int32]]()
        slotLists.reserveCapacity(metadata.numSequences)
        for s in 0..<metadata.numSequences {
            let start = Int(starts[s]), end = Int(starts[s + 1])
            for t in start..<end { sequenceOf[t] = s }
            let ctx = Int(lengths[s])
            var slots = [Int32](repeating: 0, count: ctx)
            for j in 0..<ctx {
                let block = Int(tables[s * tableWidth + j / bs])
                slots[j] = Int32(block * bs + j % bs)
            }
            slotLists.append(slots)
        }
        let maxContext = max(1, metadata.maxContextLength)
        let pairs = metadata.numTokens * heads
        sequenceOf.withUnsafeBufferPointer { seqOf in
            parallelFor(pairs, grain: 4) { range in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: maxContext)
                defer { scores.deallocate() }
                for pair in range {
                    let t = pair / heads, h = pair % heads
                    let s = seqOf[t]
                    let end = Int(starts[s + 1])
                    let ctx = Int(lengths[s])
                    // Causal: the i-th new token sits at position ctx - (end - t).
                    let visible = ctx - (end - t) + 1
                    slotLists[s].withUnsafeBufferPointer { all in
                        let slots = UnsafeBufferPointer(rebasing: all[0..<max(0, min(visible, ctx))])
                        body(t, h, slots, scores)
                    }
                }
            }
        }
    }

    /// Softmax of `scores[0..<n]` in place; returns nothing when n = 0.
    @inline(__always)
    private func softmaxInPlace(_ scores: UnsafeMutablePointer<Float>, _ n: Int) {
        var maxScore = -Float.infinity
        for j in 0..<n where scores[j] > maxScore { maxScore = scores[j] }
        var sum: Float = 0
        for j in 0..<n {
            let e = expf(scores[j] - maxScore)
            scores[j] = e
            sum += e
        }
        let inv = sum > 0 ? 1 / sum : 0
        for j in 0..<n { scores[j] *= inv }
    }

    public func pagedAttention(query: Tensor, keyCache: Tensor, valueCache: Tensor,
                               metadata: AttentionMetadata, scale: Float, out: Tensor) {
        precondition(query.shape.count == 3 && out.shape.count == 3)
        let heads = query.shape[1], d = query.columns
        let dv = out.columns
        let kvHeads = keyCache.shape[keyCache.shape.count - 2]
        let group = heads / max(kvHeads, 1)
        let kRow = kvHeads * d, vRow = kvHeads * dv
        let pq = query.floatPointer, po = out.floatPointer
        let ck = keyCache.floatPointer, cv = valueCache.floatPointer
        forEachQuery(metadata: metadata, heads: heads) { t, h, slots, scores in
            let q = pq + (t * heads + h) * query.rowStride
            let kvh = h / group
            let n = slots.count
            for j in 0..<n {
                let k = ck + Int(slots[j]) * kRow + kvh * d
                var dot: Float = 0
                for i in 0..<d { dot += q[i] * k[i] }
                scores[j] = dot * scale
            }
            softmaxInPlace(scores, n)
            let o = po + (t * heads + h) * out.rowStride
            o.update(repeating: 0, count: dv)
            for j in 0..<n {
                let p = scores[j]
                let v = cv + Int(slots[j]) * vRow + kvh * dv
                for i in 0..<dv { o[i] += p * v[i] }
            }
        }
    }

    public func expandsLatentPrefill(nopeDim: Int, ropeDim: Int, valueDim: Int) -> Bool { false }

    public func gatherContext(_ cache: Tensor, metadata: AttentionMetadata, out: Tensor) {
        guard let contextStart = metadata.contextStart else { preconditionFailure("gatherContext needs metadata.contextStart") }
        let width = out.columns
        precondition(cache.count % width == 0)
        let capacity = cache.count / width, bs = metadata.blockSize
        let starts = contextStart.int32Pointer, lengths = metadata.contextLengths.int32Pointer
        let tables = metadata.blockTables.int32Pointer, tableWidth = metadata.blockTables.columns
        let pc = cache.floatPointer, po = out.floatPointer
        for s in 0..<metadata.numSequences {
            for j in 0..<Int(lengths[s]) {
                let slot = Int(tables[s * tableWidth + j / bs]) * bs + j % bs
                guard slot >= 0 && slot < capacity else { continue }
                (po + (Int(starts[s]) + j) * out.rowStride).update(from: pc + slot * width, count: width)
            }
        }
    }

    public func expandedLatentAttention(query: Tensor, keyValues: Tensor, ropeKeys: Tensor, nopeDim: Int, valueDim: Int,
                                        metadata: AttentionMetadata, scale: Float, out: Tensor) {
        guard let contextStart = metadata.contextStart else { preconditionFailure("expandedLatentAttention needs metadata.contextStart") }
        precondition(query.shape.count == 3 && out.shape.count == 3)
        let heads = query.shape[1], n = nopeDim, v = valueDim, r = ropeKeys.columns
        precondition(query.columns == n + r && keyValues.columns == heads * (n + v) && out.columns == v)
        let starts = contextStart.int32Pointer, lengths = metadata.contextLengths.int32Pointer
        let queryStart = metadata.queryStart.int32Pointer
        let pq = query.floatPointer, pkv = keyValues.floatPointer, pr = ropeKeys.floatPointer, po = out.floatPointer
        var scores = [Float](repeating: 0, count: max(metadata.maxContextLength, 1))
        for s in 0..<metadata.numSequences {
            let begin = Int(queryStart[s]), end = Int(queryStart[s + 1])
            let context = Int(lengths[s]), first = Int(starts[s])
            for t in begin..<end {
                let visible = max(0, min(context - (end - t) + 1, context))
                for h in 0..<heads {
                    let q = pq + (t * heads + h) * query.rowStride
                    for j in 0..<visible {
                        let kv = pkv + (first + j) * keyValues.rowStride + h * (n + v)
                        let rope = pr + (first + j) * ropeKeys.rowStride
                        var dot: Float = 0
                        for i in 0..<n { dot += q[i] * kv[i] }
                        var dotRope: Float = 0
                        for i in 0..<r { dotRope += q[n + i] * rope[i] }
                        scores[j] = (dot + dotRope) * scale
                    }
                    scores.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, visible) }
                    let o = po + (t * heads + h) * out.rowStride
                    o.update(repeating: 0, count: v)
                    for j in 0..<visible {
                        let p = scores[j]
                        let value = pkv + (first + j) * keyValues.rowStride + h * (n + v) + n
                        for i in 0..<v { o[i] += p * value[i] }
                    }
                }
            }
        }
    }

    public func latentAttention(queryLatent: Tensor, queryRope: Tensor, cache: Tensor, latentDim: Int,
                                metadata: AttentionMetadata, scale: Float, out: Tensor) {
        precondition(queryLatent.shape.count == 3 && queryRope.shape.count == 3)
        let heads = queryLatent.shape[1]
        let l = latentDim, r = queryRope.columns
        let row = l + r
        let pql = queryLatent.floatPointer, pqr = queryRope.floatPointer
        let pc = cache.floatPointer, po = out.floatPointer
        forEachQuery(metadata: metadata, heads: heads) { t, h, slots, scores in
            let ql = pql + (t * heads + h) * queryLatent.rowStride
            let qr = pqr + (t * heads + h) * queryRope.rowStride
            let n = slots.count
            for j in 0..<n {
                let c = pc + Int(slots[j]) * row
                var dot: Float = 0
                for i in 0..<l { dot += ql[i] * c[i] }
                var dotRope: Float = 0
                for i in 0..<r { dotRope += qr[i] * c[l + i] }
                scores[j] = (dot + dotRope) * scale
            }
            softmaxInPlace(scores, n)
            let o = po + (t * heads + h) * out.rowStride
            o.update(repeating: 0, count: l)
            for j in 0..<n {
                let p = scores[j]
                let c = pc + Int(slots[j]) * row
                for i in 0..<l { o[i] += p * c[i] }
            }
        }
    }

    public func prepareQKV(_ qkv: Tensor, heads: Int, kvHeads: Int, qNorm: Tensor?, kNorm: Tensor?, eps: Float,
                           positions: Tensor, rope: RotaryEmbedding, query: Tensor, keyCache: Tensor, valueCache: Tensor,
                           metadata: AttentionMetadata) {
        let t = qkv.rows, d = query.columns
        precondition(qkv.columns == (heads + 2 * kvHeads) * d && query.count == t * heads * d)
        // The ops one after another, on contiguous copies of the key and value columns.
        let q = query.reshaped([t, heads * d])
        copy(qkv.columnSlice(0..<(heads * d)), into: q)
        guard let key = try? empty([t, kvHeads * d], dtype: qkv.dtype), let value = try? empty([t, kvHeads * d], dtype: qkv.dtype) else {
            preconditionFailure("host allocation failed")
        }
        copy(qkv.columnSlice((heads * d)..<((heads + kvHeads) * d)), into: key)
        copy(qkv.columnSlice(((heads + kvHeads) * d)..<((heads + 2 * kvHeads) * d)), into: value)
        let q3 = q.reshaped([t, heads, d]), k3 = key.reshaped([t, kvHeads, d])
        if let qNorm { rmsNorm(q3, weight: qNorm, eps: eps, out: q3) }
        if let kNorm { rmsNorm(k3, weight: kNorm, eps: eps, out: k3) }
        self.rope(q3, positions: positions, rope: rope)
        self.rope(k3, positions: positions, rope: rope)
        writeKV(key: k3, value: value.reshaped([t, kvHeads, d]), keyCache: keyCache, valueCache: valueCache, metadata: metadata)
    }
}
