import EbbCore
import EbbTensor

extension CUDABackend {
    public func routeTopK(logits: Tensor, correctionBias: Tensor?, router: RouterConfig, ids: Tensor, weights: Tensor) {
        let experts = logits.columns, k = router.topK
        precondition(ids.count == logits.rows * k && weights.count == logits.rows * k && k <= experts)
        perform {
            let groups = max(1, router.numGroups)
            guard groups <= 32, experts % groups == 0 else {
                throw EbbError(.unsupported, "CUDA routing supports up to 32 expert groups dividing the experts (got \(groups) for \(experts))")
            }
            guard weights.dtype == .f32, ids.dtype == .i32 else {
                throw EbbError(.invalidArgument, "routeTopK writes i32 ids and f32 weights")
            }
            let shared = 4 * 3 * experts * 4
            var name = try typed("route_topk", logits.dtype)
            if let bias = correctionBias, bias.dtype != logits.dtype {
                guard logits.dtype == .f32, bias.dtype == .bf16 else {
                    throw EbbError(.unsupported, "routeTopK with \(logits.dtype) logits and a \(bias.dtype) bias")
                }
                name = "route_topk_f32_bias_bf16"
            }
            try launch(name, grid: ((logits.rows + 3) / 4, 1, 1), block: 128, shared: shared,
                       [.tensor(logits), .int(logits.rowStride), .optionalTensor(correctionBias), .tensor(ids), .tensor(weights),
                        .int(logits.rows), .int(experts), .int(k), .int(router.scoring == .sigmoid ? 1 : 0),
                        .int(router.normalize ? 1 : 0), .int(groups), .int(router.topKGroups),
                        .int(router.groupScoreTopTwo ? 1 : 0), .float(router.scalingFactor)])
        }
    }

    public func mapExperts(_ logical: Tensor, table: Tensor, replicaCount: Tensor, slotBase: Int, slotCount: Int, out: Tensor) {
        perform {
            try launch("map_experts", grid: (gridFor(logical.count), 1, 1), block: 256,
                       [.tensor(logical), .tensor(table), .int(table.columns), .tensor(replicaCount), .int(replicaCount.count),
                        .int(slotBase), .int(slotCount), .tensor(out), .int(logical.count), .int(logical.columns)])
        }
    }

    /// Stable counting sort (see `group_stable`): on one block for a few hundred keys (a
    /// decode step's pairs), else in runs of keys, one warp each, over all SMs
    /// (`group_chunk_count`, `group_chunk_scan`, `group_chunk_place`).
    private func groupStable(keys: Tensor, count: Int, numKeys: Int, divisor: Int, weights: Tensor?,
                             outIndex: Tensor, outWeights: Tensor?, offsets: Tensor) throws {
        let buckets = numKeys + 1
        guard count >= 512 || buckets > 8192 else {
            try launch("group_stable", grid: (1, 1, 1), block: 1024, shared: buckets * 4,
                       [.tensor(keys), .int(count), .int(numKeys), .int(divisor), .optionalTensor(weights), .tensor(outIndex),
                        .optionalTensor(outWeights), .tensor(offsets)])
            return
        }
        // Runs of at least 256 keys; the scan's matrix kept to about 64k entries.
        let chunks = max(1, min((count + 255) / 256, 65536 / buckets))
        let chunk = (count + chunks - 1) / chunks
        let counts = try empty([buckets * chunks], dtype: .i32)
        let grid = (chunks * 32 + 255) / 256
        try launch("group_chunk_count", grid: (grid, 1, 1), block: 256,
                   [.tensor(keys), .int(count), .int(numKeys), .int(chunk), .int(chunks), .tensor(counts)])
        try launch("group_chunk_scan", grid: (1, 1, 1), block: 1024,
                   [.tensor(counts), .int(buckets * chunks), .int(chunks), .tensor(offsets)])
        try launch("group_chunk_place", grid: (grid, 1, 1), block: 256,
                   [.tensor(keys), .int(count), .int(numKeys), .int(divisor), .int(chunk), .int(chunks), .tensor(counts),
                    .optionalTensor(weights), .tensor(outIndex), .optionalTensor(outWeights)])
    }

    public func groupBySlot(_ slots: Tensor, weights: Tensor, pairsPerToken: Int, numSlots: Int,
                            tokenIndex: Tensor, sortedWeights: Tensor, offsets: Tensor) {
        let n = slots.count
        precondition(tokenIndex.count == n && sortedWeights.count == n && offsets.count == numSlots + 1 && pairsPerToken > 0)
        perform {
            if n == 0 {
                fill(offsets, value: 0)
                return
            }
            try groupStable(keys: slots, count: n, numKeys: numSlots, divisor: pairsPerToken, weights: weights,
                            outIndex: tokenIndex, outWeights: sortedWeights, offsets: offsets)
        }
    }

    /// Deterministic: each row adds its entries in ascending order, as the CPU backend does —
    /// for a decode step's few entries listed by one kernel (`scatter_add_listed`), else
    /// grouped by target row with the stable sort first.
    public func scatterAddWeighted(_ x: Tensor, rowIndex: Tensor, weight: Tensor, out: Tensor) {
        let d = x.columns
        precondition(out.columns == d && rowIndex.count == weight.count && weight.count <= x.rows)
        let n = rowIndex.count
        guard n > 0, out.rows > 0 else { return }
        perform {
            let threads = min(1024, max(32, (d + 31) / 32 * 32))
            if n <= 512 {
                try launch(typed("scatter_add_listed", out.dtype), grid: (out.rows, 1, 1), block: threads,
                           [.tensor(x), .int(x.rowStride), .tensor(rowIndex), .tensor(weight), .int(n), .tensor(out),
                            .int(out.rowStride), .int(d)])
                return
            }
            let perm = try empty([n], dtype: .i32)
            let offsets = try empty([out.rows + 1], dtype: .i32)
            try groupStable(keys: rowIndex, count: n, numKeys: out.rows, divisor: 1, weights: nil,
                            outIndex: perm, outWeights: nil, offsets: offsets)
            try launch(typed("scatter_gather_add", out.dtype), grid: (out.rows, 1, 1), block: threads,
                       [.tensor(x), .int(x.rowStride), .tensor(perm), .tensor(offsets), .tensor(weight), .tensor(out),
                        .int(out.rowStride), .int(d)])
        }
    }

    // MARK: Expert-parallel exchange with fixed sizes

    public func maskPairs(_ slots: Tensor, rowMask: Tensor) {
        perform {
            try launch("mask_pairs", grid: (gridFor(slots.count), 1, 1), block: 256,
                       [.tensor(slots), .tensor(rowMask), .int(min(slots.rows, rowMask.count)), .int(slots.columns)])
        }
    }

    public func rebaseSlots(_ slots: Tensor, base: Int, count: Int, out: Tensor) {
        perform {
            try launch("rebase_slots", grid: (gridFor(slots.count), 1, 1), block: 256,
                       [.tensor(slots), .int(base), .int(count), .tensor(out), .int(min(slots.count, out.count))])
        }
    }

    public func scatterRows(_ x: Tensor, rowIndex: Tensor, out: Tensor) {
        let d = x.columns
        precondition(out.columns == d && rowIndex.count <= x.rows)
        perform {
            try launch(typed("scatter_rows", out.dtype), grid: (rowIndex.count, 1, 1), block: min(1024, max(32, (d + 31) / 32 * 32)),
                       [.tensor(x), .int(x.rowStride), .tensor(rowIndex), .tensor(out), .int(out.rowStride), .int(out.rows), .int(d)])
        }
    }

    public func countSlots(_ slots: Tensor, counts: Tensor) {
        perform {
            try launch("count_slots", grid: (gridFor(slots.count), 1, 1), block: 256,
                       [.tensor(slots), .int(slots.count), .tensor(counts), .int(counts.count)])
        }
    }

    public func combinePairs(_ received: Tensor, slots: Tensor, logical: Tensor, weights: Tensor, slotsPerRank: Int,
                             pairsPerRank: Int, out: Tensor) {
        let d = out.columns, k = slots.columns
        precondition(received.columns == d && slots.count == logical.count && slots.count == weights.count && slotsPerRank > 0)
        perform {
            guard k <= 32 else { throw EbbError(.unsupported, "the CUDA expert combine handles top-k up to 32, not \(k)") }
            try launch(typed("combine_pairs", out.dtype), grid: (out.rows, 1, 1), block: min(1024, max(32, (d + 31) / 32 * 32)),
                       [.tensor(received), .int(received.rowStride), .int(received.rows), .tensor(slots), .tensor(logical),
                        .tensor(weights), .int(k), .int(slotsPerRank), .int(pairsPerRank), .tensor(out), .int(out.rowStride), .int(d)])
        }
    }
}
