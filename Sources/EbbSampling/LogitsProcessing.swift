import EbbCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The steps of the sampler, one function each, over one row of logits (vocab V).
///
/// Each works in place on a buffer the caller owns. They assume the row has been through
/// `sanitize` (no NaN, no +inf) and keep it that way. -inf marks a token that can no
/// longer be sampled. The `apply…` functions are the public, self-contained forms; the
/// sampler runs the same cores with one shared buffer of softmax weights.
public enum LogitsProcessing {
    /// NaN → -inf; +inf → the largest finite Float (so max-subtraction stays finite).
    @inline(__always)
    public static func sanitize(_ x: Float) -> Float {
        if x.isNaN { return -.infinity }
        if x == .infinity { return .greatestFiniteMagnitude }
        return x
    }

    public static func sanitize(_ logits: UnsafeMutableBufferPointer<Float>) {
        for i in logits.indices { logits[i] = sanitize(logits[i]) }
    }

    /// While fewer than `minTokens` tokens have been generated, EOS (unless `ignoreEOS`)
    /// and `stopTokenIds` get -inf. Ids outside the row are ignored.
    public static func applyMinTokens(_ logits: UnsafeMutableBufferPointer<Float>, state: SamplingState) {
        guard state.outputTokenIds.count < state.params.minTokens else { return }
        for id in state.minTokensMaskedIds where id >= 0 && id < logits.count {
            logits[id] = -.infinity
        }
    }

    /// vLLM's penalties, in vLLM's order:
    /// 1. repetition (tokens seen in the prompt or the output): `x > 0 ? x / r : x * r`;
    /// 2. frequency: `x -= f × count` (count in the output only);
    /// 3. presence: `x -= p` for tokens present in the output.
    /// Arithmetic is in Float, as vLLM's. Ids outside the row are ignored.
    public static func applyPenalties(_ logits: UnsafeMutableBufferPointer<Float>, state: SamplingState) {
        let p = state.params
        let v = logits.count
        if p.repetitionPenalty != 1 {
            let r = Float(p.repetitionPenalty)
            func penalize(_ id: Int) {
                guard id >= 0 && id < v else { return }
                let x = logits[id]
                logits[id] = sanitize(x > 0 ? x / r : x * r)
            }
            for id in state.promptTokenSet { penalize(id) }
            for id in state.outputCounts.keys where !state.promptTokenSet.contains(id) { penalize(id) }
        }
        if p.frequencyPenalty != 0 || p.presencePenalty != 0 {
            let f = Float(p.frequencyPenalty)
            let pr = Float(p.presencePenalty)
            for (id, count) in state.outputCounts where id >= 0 && id < v && count > 0 {
                logits[id] = sanitize(logits[id] - f * Float(count) - pr)
            }
        }
    }

    /// Divides by the temperature (no-op for 1 and for non-positive or non-finite values).
    ///
    /// Computes `(x - max) / t` rather than `x / t`: the softmax is the same, and large
    /// logits at a small temperature cannot overflow into ties at the largest Float.
    public static func applyTemperature(_ logits: UnsafeMutableBufferPointer<Float>, temperature: Double) {
        guard temperature != 1, temperature > 0, temperature.isFinite else { return }
        let m = maxValue(UnsafeBufferPointer(logits))
        guard m > -.infinity else { return }
        let t = Float(temperature)
        for i in logits.indices { logits[i] = sanitize((logits[i] - m) / t) }
    }

    /// min-p: drops tokens with probability below `minP` × the top probability, i.e. with
    /// `exp(x - max) < minP`. The top token always survives. No-op for `minP` ≤ 0.
    public static func applyMinP(_ logits: UnsafeMutableBufferPointer<Float>, minP: Double) {
        guard minP > 0 else { return }
        withWeights(logits) { filterMinP(values: logits, weights: $0, minP: minP) }
    }

    /// top-k: keeps the tokens whose logit is ≥ the k-th largest (ties at the boundary are
    /// kept, as vLLM's threshold mask). No-op for `k` < 1 or `k` ≥ the number of live tokens.
    /// Expected O(V) (selection, not a sort).
    public static func applyTopK(_ logits: UnsafeMutableBufferPointer<Float>, k: Int) {
        filterTopK(values: logits, weights: nil, k: k)
    }

    /// top-p (nucleus): with live tokens ordered by probability (descending; ties by lower
    /// id), keeps the shortest prefix whose cumulative probability is ≥ `p` (a relative
    /// slack of 1e-9 absorbs rounding, so an exact boundary counts as reached). The top token
    /// always survives. No-op for `p` ≥ 1 or NaN.
    ///
    /// No sort: a weighted quickselect finds the cut-off token in expected O(V).
    public static func applyTopP(_ logits: UnsafeMutableBufferPointer<Float>, p: Double) {
        guard p < 1 else { return }
        withWeights(logits) { filterTopP(values: logits, weights: $0, p: p) }
    }

    // MARK: cores over (values, weights)
    //
    // `weights[i]` is `exp(values[i] - max)` (0 for -inf), computed once per row by the
    // sampler and shared by min-p, top-p and the draw. Each core keeps the pair in step:
    // a dropped token gets value -inf and weight 0.

    /// Fills `weights` with `exp(x - max)` and returns the max (-inf if nothing is live).
    @discardableResult
    static func computeWeights(_ values: UnsafeMutableBufferPointer<Float>, _ weights: UnsafeMutableBufferPointer<Float>) -> Float {
        let m = maxValue(UnsafeBufferPointer(values))
        guard m > -.infinity else {
            for i in weights.indices { weights[i] = 0 }
            return m
        }
        for i in values.indices {
            let x = values[i]
            weights[i] = x > -.infinity ? expf(x - m) : 0
        }
        return m
    }

    static func withWeights(_ values: UnsafeMutableBufferPointer<Float>, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        var w = [Float](repeating: 0, count: values.count)
        w.withUnsafeMutableBufferPointer { wb in
            computeWeights(values, wb)
            body(wb)
        }
    }

    static func filterMinP(values: UnsafeMutableBufferPointer<Float>, weights: UnsafeMutableBufferPointer<Float>, minP: Double) {
        guard minP > 0 else { return }
        // The top token has weight 1 ≥ thr, so it always survives.
        let thr = Float(min(minP, 1))
        for i in values.indices where values[i] > -.infinity && weights[i] < thr {
            values[i] = -.infinity
            weights[i] = 0
        }
    }

    static func filterTopK(values: UnsafeMutableBufferPointer<Float>, weights: UnsafeMutableBufferPointer<Float>?, k: Int) {
        guard k >= 1 else { return }
        guard let threshold = kthLargest(UnsafeBufferPointer(values), k: k) else { return }
        for i in values.indices where values[i] < threshold {
            values[i] = -.infinity
            weights?[i] = 0
        }
    }

    /// The k-th largest live value (duplicates counted), or nil when there are at most k
    /// live values. A size-k min-heap for small k (one compare per element, mostly), a
    /// quickselect over a copy of the live values otherwise.
    static func kthLargest(_ x: UnsafeBufferPointer<Float>, k: Int) -> Float? {
        guard k >= 1 else { return nil }
        if k <= 1024 {
            var heap = [Float]()
            heap.reserveCapacity(k)
            var live = 0
            for v in x where v > -.infinity {
                live += 1
                if heap.count < k {
                    heap.append(v)
                    var c = heap.count - 1
                    while c > 0 {
                        let p = (c - 1) / 2
                        if heap[p] <= heap[c] { break }
                        heap.swapAt(p, c)
                        c = p
                    }
                } else if v > heap[0] {
                    heap[0] = v
                    var p = 0
                    while true {
                        let l = 2 * p + 1, r = l + 1
                        var m = p
                        if l < k && heap[l] < heap[m] { m = l }
                        if r < k && heap[r] < heap[m] { m = r }
                        if m == p { break }
                        heap.swapAt(p, m)
                        p = m
                    }
                }
            }
            return live > k ? heap.first : nil
        }
        var vals = x.filter { $0 > -.infinity }
        guard k < vals.count else { return nil }
        // k-th largest = element at position k-1 in descending order.
        let n = k - 1
        var lo = 0, hi = vals.count - 1
        var budget = 2 * (Int.bitWidth - vals.count.leadingZeroBitCount) + 8
        return vals.withUnsafeMutableBufferPointer { a -> Float in
            while hi > lo {
                if budget == 0 {
                    a[lo...hi].sort(by: >)
                    return a[n]
                }
                budget -= 1
                let mid = lo + (hi - lo) / 2
                if a[mid] > a[lo] { a.swapAt(mid, lo) }
                if a[hi] > a[lo] { a.swapAt(hi, lo) }
                if a[mid] > a[hi] { a.swapAt(mid, hi) }
                let pivot = a[hi]
                // three-way partition: [> pivot][== pivot][< pivot]
                var lt = lo, i = lo, gt = hi
                while i <= gt {
                    if a[i] > pivot { a.swapAt(i, lt); lt += 1; i += 1 }
                    else if a[i] < pivot { a.swapAt(i, gt); gt -= 1 }
                    else { i += 1 }
                }
                if n < lt { hi = lt - 1 } else if n > gt { lo = gt + 1 } else { return pivot }
            }
            return a[n]
        }
    }

    static func filterTopP(values: UnsafeMutableBufferPointer<Float>, weights: UnsafeMutableBufferPointer<Float>, p: Double) {
        guard p < 1 else { return }
        let vals = UnsafeBufferPointer(values)
        // Mass per binary order of magnitude of the weight (Float exponent): walking down from
        // the heaviest bucket finds the bucket where the cumulative mass reaches the target;
        // the cut-off token lies there, so only tokens in it or above are candidates.
        var bucketMass = [Double](repeating: 0, count: 256)
        var total = 0.0
        var live = 0
        for i in values.indices where values[i] > -.infinity {
            let w = weights[i]
            bucketMass[Int(w.exponentBitPattern)] += Double(w)
            total += Double(w)
            live += 1
        }
        guard live > 1 else { return }
        let need = max(p * total - 1e-9 * total, Double.leastNonzeroMagnitude)
        var lowestBucket = 0
        var cum = 0.0
        for b in stride(from: 255, through: 0, by: -1) {
            cum += bucketMass[b]
            if cum >= need { lowestBucket = b; break }
        }
        var cand = [Int32]()
        for i in values.indices where values[i] > -.infinity && Int(weights[i].exponentBitPattern) >= lowestBucket {
            cand.append(Int32(truncatingIfNeeded: i))
        }
        guard !cand.isEmpty else { return }
        let last = Selection.weightedCutoff(&cand, values: vals, weights: UnsafeBufferPointer(weights), need: need)
        // Keep exactly the tokens ordered at or before `last`.
        for i in values.indices where values[i] > -.infinity {
            let e = Int32(truncatingIfNeeded: i)
            if e != last && !Selection.before(e, last, vals) {
                values[i] = -.infinity
                weights[i] = 0
            }
        }
    }

    // MARK: helpers

    /// The largest value (-inf for an empty or all -inf row).
    public static func maxValue(_ x: UnsafeBufferPointer<Float>) -> Float {
        var m = -Float.infinity
        for v in x where v > m { m = v }
        return m
    }

    /// Index of the largest value, lowest index on ties; 0 if every value is -inf/NaN.
    public static func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var m = -Float.infinity
        for i in x.indices {
            let v = x[i]
            if v > m { m = v; best = i }
        }
        return best
    }
}

/// Selection over token indices ordered by (value descending, index ascending) — a strict
/// total order, so results are deterministic.
enum Selection {
    @inline(__always)
    static func before(_ a: Int32, _ b: Int32, _ v: UnsafeBufferPointer<Float>) -> Bool {
        let va = v[Int(a)], vb = v[Int(b)]
        return va > vb || (va == vb && a < b)
    }

    /// Rearranges `idx` so that position `n` holds the element that would be there if
    /// sorted, everything before it comes before it, everything after comes after.
    /// Introselect: median-of-three quickselect, falling back to a sort of the remaining
    /// range if it takes too many rounds.
    static func nthElement(_ idx: inout [Int32], _ n: Int, values v: UnsafeBufferPointer<Float>) {
        guard n >= 0 && n < idx.count else { return }
        var lo = 0
        var hi = idx.count - 1
        var budget = 2 * (Int.bitWidth - idx.count.leadingZeroBitCount) + 8
        idx.withUnsafeMutableBufferPointer { a in
            while hi > lo {
                if budget == 0 {
                    let sorted = a[lo...hi].sorted { before($0, $1, v) }
                    for (k, e) in sorted.enumerated() { a[lo + k] = e }
                    return
                }
                budget -= 1
                // median of three to a[hi] as pivot
                let mid = lo + (hi - lo) / 2
                if before(a[mid], a[lo], v) { a.swapAt(mid, lo) }
                if before(a[hi], a[lo], v) { a.swapAt(hi, lo) }
                if before(a[mid], a[hi], v) { a.swapAt(mid, hi) }
                let pivot = a[hi]
                var store = lo
                for i in lo..<hi where before(a[i], pivot, v) {
                    a.swapAt(i, store)
                    store += 1
                }
                a.swapAt(store, hi)
                if store == n { return }
                if n < store { hi = store - 1 } else { lo = store + 1 }
            }
        }
    }

    /// The token at which the cumulative weight, in order, first reaches `need` (> 0):
    /// a quickselect that keeps the mass of the part it discards. Expected O(n); falls back
    /// to sorting the remaining range if it takes too many rounds.
    static func weightedCutoff(
        _ idx: inout [Int32], values v: UnsafeBufferPointer<Float>, weights w: UnsafeBufferPointer<Float>, need: Double
    ) -> Int32 {
        guard let first = idx.first else { return 0 }
        var need = need
        var lastConsumed = first
        var lo = 0
        var hi = idx.count - 1
        var budget = 2 * (Int.bitWidth - idx.count.leadingZeroBitCount) + 8
        return idx.withUnsafeMutableBufferPointer { a -> Int32 in
            while lo <= hi {
                if budget == 0 || hi - lo < 16 {
                    a[lo...hi].sort { before($0, $1, v) }
                    for j in lo...hi {
                        let wj = Double(w[Int(a[j])])
                        if wj >= need { return a[j] }
                        need -= wj
                        lastConsumed = a[j]
                    }
                    return lastConsumed
                }
                budget -= 1
                let mid = lo + (hi - lo) / 2
                if before(a[mid], a[lo], v) { a.swapAt(mid, lo) }
                if before(a[hi], a[lo], v) { a.swapAt(hi, lo) }
                if before(a[mid], a[hi], v) { a.swapAt(mid, hi) }
                let pivot = a[hi]
                var store = lo
                var massBefore = 0.0
                for i in lo..<hi where before(a[i], pivot, v) {
                    massBefore += Double(w[Int(a[i])])
                    a.swapAt(i, store)
                    store += 1
                }
                a.swapAt(store, hi)
                let wp = Double(w[Int(pivot)])
                if massBefore >= need && store > lo {
                    hi = store - 1
                } else if massBefore + wp >= need {
                    return pivot
                } else {
                    need -= massBefore + wp
                    lastConsumed = pivot
                    lo = store + 1
                }
            }
            return lastConsumed
        }
    }

    /// Sorts the first `count` elements by the order (the rest untouched).
    static func sortPrefix(_ idx: inout [Int32], _ count: Int, values v: UnsafeBufferPointer<Float>) {
        let c = min(count, idx.count)
        guard c > 1 else { return }
        idx.withUnsafeMutableBufferPointer { a in
            a[0..<c].sort { before($0, $1, v) }
        }
    }

    /// The `n` best indices in order.
    static func top(_ n: Int, values v: UnsafeBufferPointer<Float>) -> [Int32] {
        let n = min(n, v.count)
        guard n > 0 else { return [] }
        if n <= 64 {
            // Insertion into a small sorted buffer; most elements fail the first compare.
            var best = [Int32]()
            best.reserveCapacity(n + 1)
            for i in v.indices {
                let e = Int32(truncatingIfNeeded: i)
                if best.count == n, let last = best.last, !before(e, last, v) { continue }
                var pos = best.count
                while pos > 0 && before(e, best[pos - 1], v) { pos -= 1 }
                best.insert(e, at: pos)
                if best.count > n { best.removeLast() }
            }
            return best
        }
        var all = (0..<v.count).map { Int32(truncatingIfNeeded: $0) }
        if n < all.count { nthElement(&all, n - 1, values: v) }
        sortPrefix(&all, n, values: v)
        return Array(all[0..<n])
    }
}
