import Foundation

extension CPUBackend {
    public func routeTopK(logits: Tensor, correctionBias: Tensor?, router: RouterConfig, ids: Tensor, weights: Tensor) {
        let experts = logits.columns, k = router.topK
        precondition(ids.count == logits.rows * k && weights.count == logits.rows * k && k <= experts)
        let pl = logits.floatPointer, pid = ids.int32Pointer, pw = weights.floatPointer
        let bias = correctionBias?.floatPointer
        let groups = max(1, router.numGroups)
        let perGroup = experts / groups
        parallelFor(logits.rows, grain: 16) { rows in
            var scores = [Float](repeating: 0, count: experts)
            var choice = [Float](repeating: 0, count: experts)
            var groupScores = [Float](repeating: 0, count: groups)
            var chosen = [Int](repeating: 0, count: k)
            for t in rows {
                let row = pl + t * logits.rowStride
                switch router.scoring {
                case .softmax:
                    var m = -Float.infinity
                    for e in 0..<experts where row[e] > m { m = row[e] }
                    var sum: Float = 0
                    for e in 0..<experts {
                        scores[e] = expf(row[e] - m)
                        sum += scores[e]
                    }
                    for e in 0..<experts { scores[e] /= sum }
                case .sigmoid:
                    for e in 0..<experts { scores[e] = 1 / (1 + expf(-row[e])) }
                }
                for e in 0..<experts { choice[e] = scores[e] + (bias?[e] ?? 0) }
                if groups > 1 && router.topKGroups < groups {
                    // Group score: sum of the two best choice scores in the group.
                    for g in 0..<groups {
                        var best = -Float.infinity, second = -Float.infinity
                        for e in (g * perGroup)..<((g + 1) * perGroup) {
                            let v = choice[e]
                            if v > best { second = best; best = v } else if v > second { second = v }
                        }
                        groupScores[g] = (router.groupScoreTopTwo && perGroup >= 2) ? best + second : best
                    }
                    var keep = [Bool](repeating: false, count: groups)
                    for _ in 0..<router.topKGroups {
                        var bestGroup = -1, bestScore = -Float.infinity
                        for g in 0..<groups where !keep[g] && (bestGroup < 0 || groupScores[g] > bestScore) {
                            bestGroup = g
                            bestScore = groupScores[g]
                        }
                        if bestGroup >= 0 { keep[bestGroup] = true }
                    }
                    for g in 0..<groups where !keep[g] {
                        for e in (g * perGroup)..<((g + 1) * perGroup) { choice[e] = -Float.infinity }
                    }
                }
                // Top-k by choice score, descending, lower index first on ties.
                var taken = [Bool](repeating: false, count: experts)
                for slot in 0..<k {
                    var best = -1
                    for e in 0..<experts where !taken[e] && (best < 0 || choice[e] > choice[best]) { best = e }
                    taken[best] = true
                    chosen[slot] = best
                }
                var sum: Float = 0
                for slot in 0..<k { sum += scores[chosen[slot]] }
                let denominator: Float = router.scoring == .sigmoid ? sum + 1e-20 : sum
                for slot in 0..<k {
                    var w = scores[chosen[slot]]
                    if router.normalize { w /= denominator }
                    pid[t * k + slot] = Int32(chosen[slot])
                    pw[t * k + slot] = w * router.scalingFactor
                }
            }
        }
    }

    public func mapExperts(_ logical: Tensor, table: Tensor, replicaCount: Tensor, slotBase: Int, slotCount: Int, out: Tensor) {
        let k = logical.columns
        let experts = replicaCount.count, width = table.columns
        let pl = logical.int32Pointer, pt = table.int32Pointer, pc = replicaCount.int32Pointer, po = out.int32Pointer
        for t in 0..<logical.rows {
            for j in 0..<k {
                let e = Int(pl[t * k + j])
                var result: Int32 = -1
                if e >= 0 && e < experts {
                    let count = Int(pc[e])
                    if count > 0 {
                        let slot = Int(pt[e * width + (t % min(count, width))]) - slotBase
                        if slot >= 0 && slot < slotCount { result = Int32(slot) }
                    }
                }
                po[t * k + j] = result
            }
        }
    }

    public func groupBySlot(_ slots: Tensor, weights: Tensor, pairsPerToken: Int, numSlots: Int,
                            tokenIndex: Tensor, sortedWeights: Tensor, offsets: Tensor) {
        let n = slots.count
        precondition(tokenIndex.count == n && sortedWeights.count == n && offsets.count == numSlots + 1 && pairsPerToken > 0)
        let ps = slots.int32Pointer, pw = weights.floatPointer
        let pti = tokenIndex.int32Pointer, psw = sortedWeights.floatPointer, pf = offsets.int32Pointer
        var counts = [Int](repeating: 0, count: numSlots + 1)
        @inline(__always) func bucket(_ i: Int) -> Int {
            let s = Int(ps[i])
            return (s >= 0 && s < numSlots) ? s : numSlots
        }
        for i in 0..<n { counts[bucket(i)] += 1 }
        var cursor = [Int](repeating: 0, count: numSlots + 1)
        var running = 0
        for s in 0...numSlots {
            cursor[s] = running
            pf[min(s, numSlots)] = Int32(running)
            running += counts[s]
        }
        for i in 0..<n {
            let b = bucket(i)
            let at = cursor[b]
            cursor[b] += 1
            if b < numSlots {
                pti[at] = Int32(i / pairsPerToken)
                psw[at] = pw[i]
            } else {
                pti[at] = -1
                psw[at] = 0
            }
        }
    }

    public func scatterAddWeighted(_ x: Tensor, rowIndex: Tensor, weight: Tensor, out: Tensor) {
        let d = x.columns
        precondition(out.columns == d && rowIndex.count == weight.count && weight.count <= x.rows)
        let px = x.floatPointer, pr = rowIndex.int32Pointer, pw = weight.floatPointer, po = out.floatPointer
        // Rows are processed in order so every output row accumulates in a fixed order;
        // columns are split across threads.
        parallelFor(d, grain: 64) { cols in
            for i in 0..<rowIndex.count {
                let r = Int(pr[i])
                guard r >= 0 && r < out.rows else { continue }
                let w = pw[i]
                let src = px + i * x.rowStride, dst = po + r * out.rowStride
                for c in cols { dst[c] += w * src[c] }
            }
        }
    }

    public func maskPairs(_ slots: Tensor, rowMask: Tensor) {
        let k = slots.columns, ps = slots.int32Pointer, pm = rowMask.int32Pointer
        for t in 0..<min(slots.rows, rowMask.count) where pm[t] < 0 {
            for j in 0..<k { ps[t * k + j] = -1 }
        }
    }

    public func rebaseSlots(_ slots: Tensor, base: Int, count: Int, out: Tensor) {
        let ps = slots.int32Pointer, po = out.int32Pointer
        for i in 0..<min(slots.count, out.count) {
            let s = Int(ps[i]) - base
            po[i] = ps[i] >= 0 && s >= 0 && s < count ? Int32(s) : -1
        }
    }

    public func scatterRows(_ x: Tensor, rowIndex: Tensor, out: Tensor) {
        let d = x.columns
        precondition(out.columns == d && rowIndex.count <= x.rows)
        let px = x.floatPointer, pr = rowIndex.int32Pointer, po = out.floatPointer
        for i in 0..<rowIndex.count {
            let r = Int(pr[i])
            guard r >= 0 && r < out.rows else { continue }
            (po + r * out.rowStride).update(from: px + i * x.rowStride, count: d)
        }
    }

    public func countSlots(_ slots: Tensor, counts: Tensor) {
        let ps = slots.int32Pointer, pc = counts.int32Pointer
        for i in 0..<slots.count {
            let s = Int(ps[i])
            if s >= 0 && s < counts.count { pc[s] &+= 1 }
        }
    }

    public func combinePairs(_ received: Tensor, slots: Tensor, logical: Tensor, weights: Tensor, slotsPerRank: Int,
                             pairsPerRank: Int, out: Tensor) {
        let k = slots.columns, d = out.columns, tokens = out.rows
        precondition(received.columns == d && slots.count == logical.count && slots.count == weights.count && slotsPerRank > 0)
        let ps = slots.int32Pointer, pl = logical.int32Pointer, pw = weights.floatPointer
        let px = received.floatPointer, po = out.floatPointer
        for t in 0..<tokens {
            // Pairs of token t in ascending logical expert order (insertion sort: k is small).
            var order = [Int]()
            for j in 0..<k where ps[t * k + j] >= 0 {
                var at = order.count
                while at > 0 && pl[t * k + order[at - 1]] > pl[t * k + j] { at -= 1 }
                order.insert(j, at: at)
            }
            let dst = po + t * out.rowStride
            for c in 0..<d { dst[c] = 0 }
            for j in order {
                let p = t * k + j
                let row = (Int(ps[p]) / slotsPerRank) * pairsPerRank + p
                guard row < received.rows else { continue }
                let w = pw[p], src = px + row * received.rowStride
                for c in 0..<d { dst[c] += w * src[c] }
            }
        }
    }
}
