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
/// `sanitize` (no NaN, no +inf) and keep it that way. -inf
/// marks a token that can no longer be sampled.
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
        let m = maxValue(UnsafeBufferPointer(logits))
        guard m > -.infinity else { return }
        let thr = min(minP, 1)
        for i in logits.indices where logits[i] != m {
            if !(exp(Double(logits[i]) - Double(m)) >= thr) { logits[i] = -.infinity }
        }
    }

    /// top-k: keeps the tokens whose logit is ≥ the k-th largest (ties at the boundary are
    /// kept, as vLLM's threshold mask). No-op for `k` < 1 or `k` ≥ the number of live tokens.
    /// Expected O(V) (selection, not a sort).
    public static func applyTopK(_ logits: UnsafeMutableBufferPointer<Float>, k: Int) {
        guard k >= 1 else { return }
        var cand = liveIndices(UnsafeBufferPointer(logits))
        guard k < cand.count else { return }
        let vals = UnsafeBufferPointer(logits)
        Selection.nthElement(&cand, k - 1, values: vals)
        let threshold = vals[Int(cand[k - 1])]
        for i in logits.indices where logits[i] < threshold { logits[i] = -.infinity }
    }

    /// top-p (nucleus): with live tokens ordered by probability (descending; ties by lower
    /// id), keeps the shortest prefix whose cumulative probability is ≥ `p` (a relative
    /// slack of 1e-9 absorbs rounding, so an exact boundary counts as reached). The top token
    /// always survives. No-op for `p` ≥ 1 or NaN.
    ///
    /// Sorts only a growing head of the vocabulary (256, 1024, … tokens, chosen by
    /// selection) until the head holds mass ≥ `p`; a full sort only when it must.
    public static func applyTopP(_ logits: UnsafeMutableBufferPointer<Float>, p: Double) {
        guard p < 1 else { return }
        let vals = UnsafeBufferPointer(logits)
        var cand = liveIndices(vals)
        guard cand.count > 1 else { return }
        let m = Double(maxValue(vals))
        var total = 0.0
        for i in cand { total += exp(Double(vals[Int(i)]) - m) }
        let target = p * total - 1e-9 * total

        var head = min(cand.count, 256)
        while true {
            if head < cand.count {
                Selection.nthElement(&cand, head - 1, values: vals)
                var mass = 0.0
                for j in 0..<head { mass += exp(Double(vals[Int(cand[j])]) - m) }
                if mass < target {
                    head = min(cand.count, head * 4)
                    continue
                }
            }
            Selection.sortPrefix(&cand, head, values: vals)
            var last = cand[0]
            var cum = 0.0
            for j in 0..<head {
                last = cand[j]
                cum += exp(Double(vals[Int(last)]) - m)
                if cum >= target { break }
            }
            // Keep exactly the tokens ordered at or before `last`.
            for i in logits.indices where logits[i] > -.infinity {
                let e = Int32(truncatingIfNeeded: i)
                if e != last && !Selection.before(e, last, vals) { logits[i] = -.infinity }
            }
            return
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

    static func liveIndices(_ x: UnsafeBufferPointer<Float>) -> [Int32] {
        var out = [Int32]()
        out.reserveCapacity(x.count)
        for i in x.indices where x[i] > -.infinity { out.append(Int32(truncatingIfNeeded: i)) }
        return out
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
