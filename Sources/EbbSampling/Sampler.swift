import EbbCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One (token, log-probability) pair.
public struct TopLogprob: Sendable, Equatable, Codable {
    public var tokenId: Int
    public var logprob: Float
    public init(tokenId: Int, logprob: Float) {
        self.tokenId = tokenId
        self.logprob = logprob
    }
}

/// Log-probabilities for one position: the chosen token's, its rank, and the top N.
///
/// Computed from the **raw model logits** (log_softmax before min-tokens masking,
/// penalties, temperature and truncation), as vLLM's default `logprobs_mode = raw_logprobs`:
/// the numbers describe the model, not the sampling distribution.
/// - `rank`: 1-based; the number of tokens whose logit is ≥ the chosen token's (ties count
///   ahead, as vLLM's `batched_count_greater_than`).
/// - `top`: the N most likely tokens, most likely first, ties by lower id.
/// - A row whose values are all -inf/NaN gives -inf everywhere. NaN counts as -inf; +inf
///   logits share all the mass.
public struct TokenLogprobs: Sendable, Equatable, Codable {
    public var tokenId: Int
    public var logprob: Float
    public var rank: Int
    public var top: [TopLogprob]
    public init(tokenId: Int, logprob: Float, rank: Int, top: [TopLogprob]) {
        self.tokenId = tokenId
        self.logprob = logprob
        self.rank = rank
        self.top = top
    }
}

/// The sampler's answer for one row.
public struct SampleOutput: Sendable, Equatable {
    public var tokenId: Int
    /// Present when `params.logprobs` is set.
    public var logprobs: TokenLogprobs?
    public init(tokenId: Int, logprobs: TokenLogprobs?) {
        self.tokenId = tokenId
        self.logprobs = logprobs
    }
}

/// Samples one token from one row of host logits, as vLLM's v1 sampler does:
///
/// 1. min_tokens: EOS (unless `ignoreEOS`) and `stopTokenIds` get -inf while fewer than
///    `minTokens` tokens have been generated;
/// 2. penalties: repetition, then frequency, then presence (see `LogitsProcessing.applyPenalties`);
/// 3. greedy if `temperature` < 1e-5: argmax, lowest id on ties;
/// 4. otherwise temperature → min_p → top_k → top_p → draw from the softmax of what is left.
///
/// The draw uses one uniform number from the choice's `SamplingRNG` (inverse CDF over the
/// surviving tokens in id order). Every call draws exactly once, greedy included, so the
/// generator's position is the number of tokens sampled.
///
/// Numerical safety: NaN logits count as -inf, +inf as the largest finite value; if every
/// token ends up masked, the sampler falls back to the argmax of the raw row (token 0 if
/// that is all -inf too). Work is expected O(V) per token with no full sort: one exp pass
/// feeds min-p, top-p and the draw; top-k is a size-k heap (or quickselect for large k);
/// top-p prunes by weight magnitude and then runs a weighted quickselect.
public struct Sampler: Sendable {
    public init() {}

    /// Samples from `logits` (one row, length V), appends the token to `state` and
    /// advances its generator once.
    /// - Throws: `EbbError(.invalidArgument)` for an empty row.
    public func sample(logits: UnsafeBufferPointer<Float>, state: inout SamplingState) throws -> SampleOutput {
        let v = logits.count
        guard v > 0 else { throw EbbError(.invalidArgument, "logits: empty row") }
        let u = state.rng.nextUnitDouble()
        let params = state.params

        var work = [Float](unsafeUninitializedCapacity: v) { buf, n in
            for i in 0..<v { buf[i] = LogitsProcessing.sanitize(logits[i]) }
            n = v
        }
        let token: Int = work.withUnsafeMutableBufferPointer { w in
            LogitsProcessing.applyMinTokens(w, state: state)
            LogitsProcessing.applyPenalties(w, state: state)
            if params.isGreedy {
                let ro = UnsafeBufferPointer(w)
                if LogitsProcessing.maxValue(ro) == -.infinity { return Self.fallback(logits) }
                return LogitsProcessing.argmax(ro)
            }
            LogitsProcessing.applyTemperature(w, temperature: params.temperature)
            var weights = [Float](repeating: 0, count: v)
            return weights.withUnsafeMutableBufferPointer { wt in
                // One exp pass, shared by min-p, top-p and the draw.
                LogitsProcessing.computeWeights(w, wt)
                LogitsProcessing.filterMinP(values: w, weights: wt, minP: params.minP)
                if let k = params.effectiveTopK { LogitsProcessing.filterTopK(values: w, weights: wt, k: k) }
                if params.topP < 1 { LogitsProcessing.filterTopP(values: w, weights: wt, p: params.topP) }
                return Self.draw(weights: UnsafeBufferPointer(wt), u: u) ?? Self.fallback(logits)
            }
        }

        var lp: TokenLogprobs? = nil
        if let n = params.logprobs {
            lp = Self.logprobs(row: logits, tokenId: token, topN: max(0, n))
        }
        state.append(token)
        return SampleOutput(tokenId: token, logprobs: lp)
    }

    /// Whether `sample` would return the row's arg-max (lowest id on ties) without
    /// logprobs for this state: greedy, no penalties, no min-tokens mask in force. Then
    /// the caller may take the arg-max where the logits are (on the GPU) and `accept` it.
    public static func isPlainGreedy(_ state: SamplingState) -> Bool {
        let p = state.params
        return p.isGreedy && p.logprobs == nil && p.repetitionPenalty == 1 && p.frequencyPenalty == 0
            && p.presencePenalty == 0 && (state.outputTokenIds.count >= p.minTokens || state.minTokensMaskedIds.isEmpty)
    }

    /// Records an arg-max taken elsewhere for a plain-greedy state, exactly as `sample`
    /// would have: one draw from the generator, the token appended.
    public func accept(argmax token: Int, state: inout SamplingState) -> SampleOutput {
        _ = state.rng.nextUnitDouble()
        state.append(token)
        return SampleOutput(tokenId: token, logprobs: nil)
    }

    public func sample(logits: [Float], state: inout SamplingState) throws -> SampleOutput {
        try logits.withUnsafeBufferPointer { try sample(logits: $0, state: &state) }
    }

    /// Samples one token per state from a row-major batch (`states.count` rows of `vocabSize`).
    /// Each row uses only its own state, so results do not depend on the batch.
    public func sampleBatch(
        logits: UnsafeBufferPointer<Float>, vocabSize: Int, states: inout [SamplingState]
    ) throws -> [SampleOutput] {
        let (expected, overflow) = vocabSize.multipliedReportingOverflow(by: states.count)
        guard vocabSize > 0, !overflow, logits.count == expected else {
            throw EbbError(
                .invalidArgument,
                "logits: \(logits.count) values is not \(states.count) rows of vocab \(vocabSize)")
        }
        var out = [SampleOutput]()
        out.reserveCapacity(states.count)
        for r in states.indices {
            let row = UnsafeBufferPointer(rebasing: logits[(r * vocabSize)..<((r + 1) * vocabSize)])
            out.append(try sample(logits: row, state: &states[r]))
        }
        return out
    }

    // MARK: log-probabilities

    /// Logprobs of `tokenId` and the top `topN` in a raw row (see `TokenLogprobs`).
    public static func logprobs(row: UnsafeBufferPointer<Float>, tokenId: Int, topN: Int) -> TokenLogprobs {
        let ls = LogSoftmax(row)
        let x = tokenId >= 0 && tokenId < row.count ? LogitsProcessing.sanitizeRaw(row[tokenId]) : -.infinity
        var rank = 0
        for i in row.indices where LogitsProcessing.sanitizeRaw(row[i]) >= x { rank += 1 }
        var top = [TopLogprob]()
        if topN > 0 {
            let sanitized = row.map { LogitsProcessing.sanitizeRaw($0) }
            top = sanitized.withUnsafeBufferPointer { s in
                Selection.top(topN, values: s).map {
                    TopLogprob(tokenId: Int($0), logprob: Float(ls.logprob(s[Int($0)])))
                }
            }
        }
        return TokenLogprobs(tokenId: tokenId, logprob: Float(ls.logprob(x)), rank: max(rank, 1), top: top)
    }

    public static func logprobs(row: [Float], tokenId: Int, topN: Int) -> TokenLogprobs {
        row.withUnsafeBufferPointer { logprobs(row: $0, tokenId: tokenId, topN: topN) }
    }

    /// Prompt logprobs (vLLM's `prompt_logprobs`) for a run of prompt positions.
    ///
    /// Row `r` of `logits` (row-major, `vocabSize` wide) is the model output at prompt
    /// position `firstPosition + r` and so predicts the token at `firstPosition + r + 1`.
    /// Returns one entry per row that has a next prompt token (the row at the last prompt
    /// position, if included, is the first generation step and is skipped). The first
    /// prompt token has no logprob; vLLM reports `None` for it, which is the caller's to add.
    /// This form supports chunked prefill: call it per chunk with that chunk's first position.
    public static func promptLogprobs(
        logits: UnsafeBufferPointer<Float>, vocabSize: Int, promptTokenIds: [Int], firstPosition: Int = 0, topN: Int
    ) throws -> [TokenLogprobs] {
        guard vocabSize > 0, logits.count % vocabSize == 0 else {
            throw EbbError(.invalidArgument, "logits: \(logits.count) values is not a whole number of rows of vocab \(vocabSize)")
        }
        guard firstPosition >= 0 else { throw EbbError(.invalidArgument, "firstPosition: must be non-negative") }
        let rows = logits.count / vocabSize
        var out = [TokenLogprobs]()
        for r in 0..<rows {
            let next = firstPosition + r + 1
            guard next < promptTokenIds.count else { break }
            let id = promptTokenIds[next]
            guard id >= 0 && id < vocabSize else {
                throw EbbError(.invalidArgument, "promptTokenIds: token id \(id) at position \(next) is out of vocabulary (size \(vocabSize))")
            }
            let row = UnsafeBufferPointer(rebasing: logits[(r * vocabSize)..<((r + 1) * vocabSize)])
            out.append(logprobs(row: row, tokenId: id, topN: max(0, topN)))
        }
        return out
    }

    public static func promptLogprobs(
        rows: [[Float]], promptTokenIds: [Int], firstPosition: Int = 0, topN: Int
    ) throws -> [TokenLogprobs] {
        guard let v = rows.first?.count else { return [] }
        guard rows.allSatisfy({ $0.count == v }) else {
            throw EbbError(.invalidArgument, "logits: rows have different lengths")
        }
        let flat = rows.flatMap { $0 }
        return try flat.withUnsafeBufferPointer {
            try promptLogprobs(logits: $0, vocabSize: v, promptTokenIds: promptTokenIds, firstPosition: firstPosition, topN: topN)
        }
    }

    // MARK: internals

    /// Inverse-CDF draw over the token weights (unnormalized probabilities) in id order;
    /// nil if they are all zero.
    static func draw(weights w: UnsafeBufferPointer<Float>, u: Double) -> Int? {
        var total = 0.0
        for x in w { total += Double(x) }
        guard total > 0, total.isFinite else { return nil }
        let target = u * total
        var cum = 0.0
        var lastLive = -1
        for i in w.indices where w[i] > 0 {
            lastLive = i
            cum += Double(w[i])
            if target < cum { return i }
        }
        return lastLive >= 0 ? lastLive : nil
    }

    /// Argmax of the raw row (NaN as -inf), token 0 if all -inf.
    static func fallback(_ raw: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var m = -Float.infinity
        for i in raw.indices {
            let x = LogitsProcessing.sanitizeRaw(raw[i])
            if x > m { m = x; best = i }
        }
        return best
    }
}

/// log_softmax of a raw row in Double. NaN counts as -inf; +inf values share all the mass.
struct LogSoftmax {
    let maxValue: Float
    let logSumExp: Double
    let infCount: Int

    init(_ row: UnsafeBufferPointer<Float>) {
        var m = -Float.infinity
        var infs = 0
        for x in row {
            let s = LogitsProcessing.sanitizeRaw(x)
            if s == .infinity { infs += 1 }
            if s > m { m = s }
        }
        maxValue = m
        infCount = infs
        if m == -.infinity || infs > 0 {
            logSumExp = m == -.infinity ? -.infinity : .infinity
            return
        }
        var sum = 0.0
        for x in row {
            let s = LogitsProcessing.sanitizeRaw(x)
            if s > -.infinity { sum += Double(expf(s - m)) }
        }
        logSumExp = Double(m) + log(sum)
    }

    func logprob(_ x: Float) -> Double {
        if infCount > 0 { return x == .infinity ? -log(Double(infCount)) : -.infinity }
        if maxValue == -.infinity || x == -.infinity { return -.infinity }
        return Double(x) - logSumExp
    }
}

extension LogitsProcessing {
    /// For logprobs of raw rows: NaN → -inf, infinities kept.
    @inline(__always)
    static func sanitizeRaw(_ x: Float) -> Float { x.isNaN ? -.infinity : x }
}
