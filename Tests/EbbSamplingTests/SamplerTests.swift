import Foundation
import Testing
import EbbCore
@testable import EbbSampling

/// Draws `count` tokens from one fixed row (the state is rebuilt so penalties don't kick in).
func drawCounts(_ logits: [Float], _ params: SamplingParams, count: Int, seed: UInt64 = 1234) throws -> [Int] {
    var counts = [Int](repeating: 0, count: logits.count)
    var rng = SamplingRNG(seed: seed)
    let sampler = Sampler()
    for _ in 0..<count {
        var st = SamplingState(params: params, promptTokenIds: [], rng: rng)
        let out = try sampler.sample(logits: logits, state: &st)
        counts[out.tokenId] += 1
        rng = st.rng
    }
    return counts
}

func softmaxD(_ x: [Double]) -> [Double] {
    let m = x.max() ?? 0
    let e = x.map { exp($0 - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

func logSoftmaxD(_ x: [Float]) -> [Double] {
    let d = x.map(Double.init)
    let m = d.max() ?? 0
    let lse = m + log(d.map { exp($0 - m) }.reduce(0, +))
    return d.map { $0 - lse }
}

/// Deterministic pseudo-random logits.
func randomLogits(_ v: Int, seed: UInt64, scale: Double = 4) -> [Float] {
    var r = SamplingRNG(seed: seed)
    return (0..<v).map { _ in Float((r.nextUnitDouble() * 2 - 1) * scale) }
}

func process(_ logits: [Float], _ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
    var w = logits
    w.withUnsafeMutableBufferPointer { body($0) }
    return w
}

@Suite struct SamplerTests {
    let sampler = Sampler()

    // MARK: greedy

    @Test func greedyPicksArgmaxLowestIndexOnTies() throws {
        var st = SamplingState(params: SamplingParams(temperature: 0), promptTokenIds: [])
        #expect(try sampler.sample(logits: [0.1, 2.5, -1, 2.4], state: &st).tokenId == 1)
        #expect(try sampler.sample(logits: [1, 3, 3, 0], state: &st).tokenId == 1)
        #expect(st.outputTokenIds == [1, 1])
        let big = randomLogits(150_000, seed: 3)
        let expected = big.indices.max { big[$0] < big[$1] } ?? -1
        #expect(try sampler.sample(logits: big, state: &st).tokenId == expected)
    }

    @Test func greedyAdvancesRNGOncePerToken() throws {
        var st = SamplingState(params: SamplingParams(temperature: 0, seed: 11), promptTokenIds: [])
        var ref = SamplingRNG(seed: 11)
        for _ in 0..<3 { _ = try sampler.sample(logits: [0, 1], state: &st); _ = ref.next() }
        #expect(st.rng == ref)
    }

    /// The device arg-max shortcut applies exactly when `sample` would return the plain
    /// arg-max without logprobs, and `accept` leaves the state as `sample` does.
    @Test func plainGreedyShortcutMatchesSample() throws {
        func state(_ p: SamplingParams, eos: [Int] = [2]) -> SamplingState {
            SamplingState(params: p, promptTokenIds: [1, 3], eosTokenIds: eos)
        }
        #expect(Sampler.isPlainGreedy(state(SamplingParams(temperature: 0))))
        #expect(!Sampler.isPlainGreedy(state(SamplingParams(temperature: 0.7))))
        #expect(!Sampler.isPlainGreedy(state(SamplingParams(temperature: 0, logprobs: 0))))
        #expect(!Sampler.isPlainGreedy(state(SamplingParams(temperature: 0, repetitionPenalty: 1.2))))
        #expect(!Sampler.isPlainGreedy(state(SamplingParams(temperature: 0, frequencyPenalty: 0.5))))
        #expect(!Sampler.isPlainGreedy(state(SamplingParams(temperature: 0, presencePenalty: 0.5))))
        // min_tokens masks EOS until reached; with nothing to mask it is still plain.
        var masked = state(SamplingParams(temperature: 0, minTokens: 1))
        #expect(!Sampler.isPlainGreedy(masked))
        masked.append(5)
        #expect(Sampler.isPlainGreedy(masked))
        #expect(Sampler.isPlainGreedy(state(SamplingParams(temperature: 0, minTokens: 3, ignoreEOS: true), eos: [2])))

        let logits = randomLogits(1000, seed: 9)
        var viaSample = state(SamplingParams(temperature: 0, seed: 4)), viaAccept = viaSample
        let sampled = try sampler.sample(logits: logits, state: &viaSample)
        let argmax = logits.indices.max { logits[$0] < logits[$1] } ?? -1
        let accepted = sampler.accept(argmax: argmax, state: &viaAccept)
        #expect(sampled.tokenId == accepted.tokenId)
        #expect(viaSample.outputTokenIds == viaAccept.outputTokenIds && viaSample.rng == viaAccept.rng)
    }

    // MARK: seeds

    @Test func seededRequestIsReproducibleAndSeedsDiffer() throws {
        let logits = randomLogits(500, seed: 8, scale: 2)
        func run(seed: UInt64, choice: Int = 0) throws -> [Int] {
            var st = SamplingState(params: SamplingParams(temperature: 1.0, seed: seed), promptTokenIds: [1, 2], choiceIndex: choice)
            return try (0..<40).map { _ in try sampler.sample(logits: logits, state: &st).tokenId }
        }
        let a = try run(seed: 42)
        #expect(try run(seed: 42) == a)
        #expect(try run(seed: 43) != a)
        #expect(try run(seed: 42, choice: 1) != a)  // n > 1: distinct stream per choice
    }

    @Test func choicesHaveDistinctStreams() throws {
        let seeded = SamplingState.choices(params: SamplingParams(n: 3, seed: 5), promptTokenIds: [1])
        #expect(seeded.count == 3)
        #expect(seeded.map(\.rng) == (0..<3).map { SamplingRNG(seed: 5, stream: UInt64($0)) })
        let unseeded = SamplingState.choices(params: SamplingParams(n: 2), promptTokenIds: [])
        #expect(unseeded[0].rng != unseeded[1].rng)
    }

    @Test func seededResultIndependentOfBatch() throws {
        let v = 64
        let rowA = randomLogits(v, seed: 100, scale: 1)
        let params = SamplingParams(temperature: 0.9, topP: 0.95, seed: 77)
        // Alone.
        var alone = [SamplingState(params: params, promptTokenIds: [3])]
        var aloneTokens = [Int]()
        for _ in 0..<20 {
            let out = try rowA.withUnsafeBufferPointer { try sampler.sampleBatch(logits: $0, vocabSize: v, states: &alone) }
            aloneTokens.append(out[0].tokenId)
        }
        // In a batch with two other (unseeded) requests, at a different row.
        var batch = [
            SamplingState(params: SamplingParams(), promptTokenIds: [9]),
            SamplingState(params: params, promptTokenIds: [3]),
            SamplingState(params: SamplingParams(temperature: 0.5), promptTokenIds: []),
        ]
        var batchTokens = [Int]()
        for step in 0..<20 {
            let flat = randomLogits(v, seed: UInt64(step)) + rowA + randomLogits(v, seed: UInt64(1000 + step))
            let out = try flat.withUnsafeBufferPointer { try sampler.sampleBatch(logits: $0, vocabSize: v, states: &batch) }
            batchTokens.append(out[1].tokenId)
        }
        #expect(aloneTokens == batchTokens)
        #expect(Set(aloneTokens).count > 1)
    }

    @Test func batchShapeMismatchThrows() {
        var states = [SamplingState(params: SamplingParams(), promptTokenIds: [])]
        #expect(throws: EbbError.self) {
            try [Float](repeating: 0, count: 5).withUnsafeBufferPointer { try sampler.sampleBatch(logits: $0, vocabSize: 3, states: &states) }
        }
    }

    // MARK: temperature

    @Test(arguments: [1.0, 0.5, 2.0])
    func temperatureDistributionMatchesSoftmax(_ t: Double) throws {
        let logits: [Float] = [0, 1, 2, 0.5, -1]
        let n = 20_000
        let counts = try drawCounts(logits, SamplingParams(temperature: t), count: n, seed: 99)
        let p = softmaxD(logits.map { Double($0) / t })
        var chi2 = 0.0
        for i in p.indices {
            let e = p[i] * Double(n)
            chi2 += (Double(counts[i]) - e) * (Double(counts[i]) - e) / e
        }
        // df = 4; the 0.999 quantile is 18.47. Fixed seed → deterministic.
        #expect(chi2 < 18.47, "chi2 \(chi2) counts \(counts) expected \(p.map { $0 * Double(n) })")
    }

    // MARK: top-k / top-p / min-p

    @Test func topKRestrictsSupportExactly() throws {
        let logits = randomLogits(50, seed: 5, scale: 1)
        let top5 = Set(logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5))
        let counts = try drawCounts(logits, SamplingParams(topK: 5), count: 10_000)
        let support = Set(counts.indices.filter { counts[$0] > 0 })
        #expect(support == top5)
    }

    @Test func topKKeepsTiesAtBoundaryLikeVLLM() {
        let out = process([3, 2, 2, 1, -5]) { LogitsProcessing.applyTopK($0, k: 2) }
        #expect(out == [3, 2, 2, -.infinity, -.infinity])
        let one = process([3, 2, 2, 1]) { LogitsProcessing.applyTopK($0, k: 1) }
        #expect(one == [3, -.infinity, -.infinity, -.infinity])
        // k ≥ V: no-op.
        #expect(process([1, 2]) { LogitsProcessing.applyTopK($0, k: 5) } == [1, 2])
    }

    @Test func topPInclusiveBoundary() {
        // probabilities 0.5, 0.3, 0.2 (in shuffled id order)
        let logits: [Float] = [Float(log(0.3)), Float(log(0.5)), Float(log(0.2))]
        func kept(_ p: Double) -> Set<Int> {
            let out = process(logits) { LogitsProcessing.applyTopP($0, p: p) }
            return Set(out.indices.filter { out[$0] > -.infinity })
        }
        #expect(kept(0.5) == [1])          // 0.5 ≥ 0.5: the top token alone
        #expect(kept(0.49) == [1])
        #expect(kept(0.51) == [1, 0])
        #expect(kept(0.8) == [1, 0])       // exact boundary: smallest set with mass ≥ 0.8
        #expect(kept(0.81) == [1, 0, 2])
        #expect(kept(1e-9) == [1])         // always at least one token
    }

    @Test func topPOnLargeVocabMatchesFullSortReference() {
        // Large vocab exercises the growing-head selection.
        for (seed, p) in [(UInt64(1), 0.9), (2, 0.5), (3, 0.99), (4, 0.999)] {
            let logits = randomLogits(20_000, seed: seed, scale: 3)
            let out = process(logits) { LogitsProcessing.applyTopP($0, p: p) }
            let probs = softmaxD(logits.map(Double.init))
            let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            var expected = Set<Int>()
            var cum = 0.0
            for i in order {
                expected.insert(i)
                cum += probs[i]
                if cum >= p { break }
            }
            let kept = Set(out.indices.filter { out[$0] > -.infinity })
            #expect(kept == expected, "seed \(seed) p \(p): kept \(kept.count) expected \(expected.count)")
        }
    }

    @Test(arguments: [1, 7, 50, 1024, 1025, 3000, 4999, 5000])
    func topKMatchesReferenceWithDuplicates(_ k: Int) {
        // Values on a 0.25 grid → many ties; some -inf and NaN mixed in.
        var logits = randomLogits(5000, seed: 12, scale: 8).map { ($0 * 4).rounded() / 4 }
        for i in stride(from: 0, to: 5000, by: 97) { logits[i] = -.infinity }
        let live = logits.filter { $0 > -.infinity }
        let threshold = live.sorted(by: >)[min(k, live.count) - 1]
        let expected = logits.map { $0 >= threshold || k >= live.count ? $0 : -.infinity }
        let out = process(logits) { LogitsProcessing.applyTopK($0, k: k) }
        #expect(out == expected)
    }

    @Test func topPMatchesReferenceOnPeakedAndTiedRows() {
        let peaked = randomLogits(30_000, seed: 9, scale: 25)
        let tied = randomLogits(30_000, seed: 10, scale: 2).map { ($0 * 2).rounded() / 2 }
        for (row, p) in [(peaked, 0.9), (peaked, 0.3), (tied, 0.7), (tied, 0.999)] {
            let out = process(row) { LogitsProcessing.applyTopP($0, p: p) }
            let probs = softmaxD(row.map(Double.init))
            let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            var expected = Set<Int>()
            var cum = 0.0
            for i in order {
                expected.insert(i)
                cum += probs[i]
                if cum >= p { break }
            }
            let kept = Set(out.indices.filter { out[$0] > -.infinity })
            #expect(kept == expected, "p \(p): kept \(kept.count) expected \(expected.count)")
        }
    }

    @Test func topPRestrictsSampledSupport() throws {
        let logits: [Float] = [Float(log(0.3)), Float(log(0.5)), Float(log(0.2))]
        let counts = try drawCounts(logits, SamplingParams(topP: 0.8), count: 10_000)
        #expect(counts[2] == 0)
        // Renormalized over {0.5, 0.3}: 0.625 / 0.375.
        #expect(abs(Double(counts[1]) / 10_000 - 0.625) < 0.02)
    }

    @Test func minPRestrictsSupport() throws {
        let logits: [Float] = [Float(log(0.5)), Float(log(0.3)), Float(log(0.15)), Float(log(0.05))]
        func kept(_ m: Double) -> Set<Int> {
            let out = process(logits) { LogitsProcessing.applyMinP($0, minP: m) }
            return Set(out.indices.filter { out[$0] > -.infinity })
        }
        #expect(kept(0.5) == [0, 1])      // threshold 0.25
        #expect(kept(0.2) == [0, 1, 2])   // threshold 0.10
        #expect(kept(0.61) == [0])
        #expect(kept(1.0) == [0])
        #expect(kept(0) == [0, 1, 2, 3])
        let counts = try drawCounts(logits, SamplingParams(minP: 0.5), count: 10_000)
        #expect(counts[2] == 0 && counts[3] == 0 && counts[0] > 0 && counts[1] > 0)
    }

    @Test func combinedFiltersOrderTemperatureThenMinPThenTopKThenTopP() throws {
        // After T=0.5, min_p 0.01 drops the tail; top_k 3; top_p 0.9.
        let logits: [Float] = [2.0, 1.8, 1.0, 0.0, -3.0, -4.0]
        let out = process(logits) { w in
            LogitsProcessing.applyTemperature(w, temperature: 0.5)
            LogitsProcessing.applyMinP(w, minP: 0.01)
            LogitsProcessing.applyTopK(w, k: 3)
            LogitsProcessing.applyTopP(w, p: 0.9)
        }
        // Reference in Double.
        var x = logits.map { Double($0) / 0.5 }
        let mx = x.max() ?? 0
        x = x.map { exp($0 - mx) >= 0.01 ? $0 : -.infinity }
        let kth = x.sorted(by: >)[2]
        x = x.map { $0 >= kth ? $0 : -.infinity }
        let pr = softmaxD(x)
        var keep = Set<Int>(); var cum = 0.0
        for i in x.indices.sorted(by: { x[$0] > x[$1] }) { keep.insert(i); cum += pr[i]; if cum >= 0.9 { break } }
        #expect(Set(out.indices.filter { out[$0] > -.infinity }) == keep)
        let counts = try drawCounts(logits, SamplingParams(temperature: 0.5, topP: 0.9, topK: 3, minP: 0.01), count: 5_000)
        #expect(Set(counts.indices.filter { counts[$0] > 0 }) == keep)
    }

    // MARK: penalties

    @Test func repetitionPenaltyDividesPositiveMultipliesNegative() {
        let st = SamplingState(params: SamplingParams(repetitionPenalty: 2), promptTokenIds: [0, 1], outputTokenIds: [2, 2, 3])
        let out = process([2, -1, 1, 0.5, 3]) { LogitsProcessing.applyPenalties($0, state: st) }
        #expect(out == [1, -2, 0.5, 0.25, 3])
    }

    @Test func frequencyAndPresencePenaltiesUseOutputOnly() {
        let f = SamplingState(params: SamplingParams(frequencyPenalty: 0.5), promptTokenIds: [0, 1], outputTokenIds: [2, 2, 3])
        #expect(process([2, -1, 1, 0.5, 3]) { LogitsProcessing.applyPenalties($0, state: f) } == [2, -1, 0, 0, 3])
        let p = SamplingState(params: SamplingParams(presencePenalty: 0.25), promptTokenIds: [0, 1], outputTokenIds: [2, 2, 3])
        #expect(process([2, -1, 1, 0.5, 3]) { LogitsProcessing.applyPenalties($0, state: p) } == [2, -1, 0.75, 0.25, 3])
        let neg = SamplingState(params: SamplingParams(presencePenalty: -1), promptTokenIds: [], outputTokenIds: [4])
        #expect(process([0, 0, 0, 0, 3]) { LogitsProcessing.applyPenalties($0, state: neg) } == [0, 0, 0, 0, 4])
    }

    @Test func allPenaltiesInVLLMOrder() {
        // repetition 2 → [1, -2, 0.5, 0.25, 3]; frequency 0.5 × count → token 2: 0.5 - 1 = -0.5, token 3: 0.25 - 0.5 = -0.25;
        // presence 0.125 → token 2: -0.625, token 3: -0.375.
        let st = SamplingState(params: SamplingParams(presencePenalty: 0.125, frequencyPenalty: 0.5, repetitionPenalty: 2),
                               promptTokenIds: [0, 1], outputTokenIds: [2, 2, 3])
        #expect(process([2, -1, 1, 0.5, 3]) { LogitsProcessing.applyPenalties($0, state: st) } == [1, -2, -0.625, -0.375, 3])
    }

    @Test func penaltiesSteerGreedyAndIgnoreOutOfRangeIds() throws {
        var st = SamplingState(params: SamplingParams(temperature: 0, frequencyPenalty: 2), promptTokenIds: [-5, 1_000])
        // Token 0 repeats until its count pushes it below token 1.
        let toks = try (0..<4).map { _ in try sampler.sample(logits: [3, 0], state: &st).tokenId }
        // token 0: 3, then 3 - 2 = 1, then 3 - 4 = -1 < 0 → token 1; then token 1 is 0 - 2 = -2 < -1 → token 0.
        #expect(toks == [0, 0, 1, 0])
    }

    @Test func stateTracksCountsIncrementally() {
        var st = SamplingState(params: SamplingParams(repetitionPenalty: 1.2), promptTokenIds: [1, 1, 2], outputTokenIds: [5])
        st.append(5); st.append(6)
        #expect(st.outputTokenIds == [5, 5, 6])
        #expect(st.outputCounts == [5: 2, 6: 1])
        #expect(st.promptTokenSet == [1, 2])
    }

    // MARK: min_tokens

    @Test func minTokensMasksEOSAndStopIds() throws {
        let params = SamplingParams(temperature: 0, minTokens: 2, stopTokenIds: [1])
        var st = SamplingState(params: params, promptTokenIds: [], eosTokenIds: [0])
        let logits: [Float] = [5, 4, 3, 0]
        let toks = try (0..<3).map { _ in try sampler.sample(logits: logits, state: &st).tokenId }
        #expect(toks == [2, 2, 0])
        // Sampling, not only greedy: EOS never drawn while masked.
        var st2 = SamplingState(params: SamplingParams(minTokens: 1000), promptTokenIds: [], eosTokenIds: [0], rng: SamplingRNG(seed: 1))
        var sawEOS = false
        for _ in 0..<1000 where try sampler.sample(logits: [2, 0, 0], state: &st2).tokenId == 0 { sawEOS = true }
        #expect(!sawEOS)
    }

    @Test func minTokensWithIgnoreEOSMasksOnlyStopIds() throws {
        var st = SamplingState(params: SamplingParams(temperature: 0, minTokens: 5, stopTokenIds: [1], ignoreEOS: true),
                               promptTokenIds: [], eosTokenIds: [0])
        #expect(try sampler.sample(logits: [5, 6, 3], state: &st).tokenId == 0)
    }

    // MARK: logprobs

    @Test func logprobsMatchDoubleLogSoftmaxOfRawLogits() throws {
        let logits = randomLogits(1000, seed: 21, scale: 6)
        let ref = logSoftmaxD(logits)
        // Temperature, penalties and top-k must not change the reported (raw) logprobs.
        let params = SamplingParams(temperature: 0.7, topK: 50, seed: 5, presencePenalty: 1, repetitionPenalty: 1.3, logprobs: 5)
        var st = SamplingState(params: params, promptTokenIds: [1, 2, 3], outputTokenIds: [4, 4])
        let out = try sampler.sample(logits: logits, state: &st)
        let lp = try #require(out.logprobs)
        #expect(lp.tokenId == out.tokenId)
        #expect(abs(Double(lp.logprob) - ref[out.tokenId]) < 1e-5)
        #expect(lp.rank == 1 + ref.filter { $0 > ref[out.tokenId] }.count)
        let expectedTop = ref.indices.sorted { ref[$0] > ref[$1] }.prefix(5)
        #expect(lp.top.map(\.tokenId) == Array(expectedTop))
        for e in lp.top { #expect(abs(Double(e.logprob) - ref[e.tokenId]) < 1e-5) }
        #expect(zip(lp.top, lp.top.dropFirst()).allSatisfy { $0.logprob >= $1.logprob })
    }

    @Test func logprobsZeroGivesOnlySampledToken() throws {
        var st = SamplingState(params: SamplingParams(temperature: 0, logprobs: 0), promptTokenIds: [])
        let out = try sampler.sample(logits: [0, 1, 2], state: &st)
        #expect(out.logprobs?.top == [])
        #expect(out.logprobs?.rank == 1)
        var st2 = SamplingState(params: SamplingParams(temperature: 0), promptTokenIds: [])
        #expect(try sampler.sample(logits: [0, 1, 2], state: &st2).logprobs == nil)
    }

    @Test func logprobsTopLargerThan64UsesSelection() {
        let logits = randomLogits(5000, seed: 4)
        let lp = Sampler.logprobs(row: logits, tokenId: 0, topN: 100)
        let ref = logSoftmaxD(logits)
        #expect(lp.top.map(\.tokenId) == Array(ref.indices.sorted { ref[$0] > ref[$1] }.prefix(100)))
    }

    @Test func rankCountsTiesAhead() {
        let lp = Sampler.logprobs(row: [1, 2, 2, 0], tokenId: 2, topN: 2)
        #expect(lp.rank == 2)
        #expect(lp.top.map(\.tokenId) == [1, 2])  // ties by lower id
    }

    @Test func promptLogprobs() throws {
        let v = 6
        let rows = (0..<4).map { randomLogits(v, seed: UInt64(50 + $0)) }
        let prompt = [5, 1, 2, 3]
        let all = try Sampler.promptLogprobs(rows: rows, promptTokenIds: prompt, topN: 2)
        // Row 3 (last prompt position) has no next prompt token.
        #expect(all.map(\.tokenId) == [1, 2, 3])
        for (r, e) in all.enumerated() {
            let ref = logSoftmaxD(rows[r])
            #expect(abs(Double(e.logprob) - ref[prompt[r + 1]]) < 1e-6)
            #expect(e.top.count == 2)
            #expect(e.top.first?.tokenId == ref.indices.max { ref[$0] < ref[$1] })
        }
        // Chunked prefill: second chunk starts at position 2.
        let chunk = try Sampler.promptLogprobs(rows: Array(rows[2...]), promptTokenIds: prompt, firstPosition: 2, topN: 2)
        #expect(chunk == Array(all[2...]))
        #expect(throws: EbbError.self) {
            try Sampler.promptLogprobs(rows: rows, promptTokenIds: [0, 9, 1, 1], topN: 1)
        }
    }

    // MARK: numerical safety

    @Test func nanAndInfinityAreSafe() throws {
        let nan = Float.nan
        // NaN treated as -inf: never chosen.
        var g = SamplingState(params: SamplingParams(temperature: 0), promptTokenIds: [])
        #expect(try sampler.sample(logits: [nan, 1, nan, 0.5], state: &g).tokenId == 1)
        let counts = try drawCounts([nan, 0, nan, 0], SamplingParams(), count: 2000)
        #expect(counts[0] == 0 && counts[2] == 0 && counts[1] > 0 && counts[3] > 0)
        // +inf wins outright.
        let inf = try drawCounts([0, .infinity, 5], SamplingParams(temperature: 0.3), count: 200)
        #expect(inf[1] == 200)
        // All -inf / all NaN: token 0, no crash, RNG still advances.
        var s = SamplingState(params: SamplingParams(seed: 3, logprobs: 2), promptTokenIds: [])
        let o1 = try sampler.sample(logits: [-.infinity, -.infinity], state: &s)
        #expect(o1.tokenId == 0)
        #expect(o1.logprobs?.logprob == -.infinity)
        #expect(try sampler.sample(logits: [nan, nan, nan], state: &s).tokenId == 0)
        var ref = SamplingRNG(seed: 3); _ = ref.next(); _ = ref.next()
        #expect(s.rng == ref)
        // Masking everything (min_tokens on a one-token vocab) falls back to the raw argmax.
        var one = SamplingState(params: SamplingParams(minTokens: 3), promptTokenIds: [], eosTokenIds: [0])
        #expect(try sampler.sample(logits: [1], state: &one).tokenId == 0)
        // Huge logits with tiny temperature do not overflow to NaN.
        let big = try drawCounts([3e38, -3e38, 1e38], SamplingParams(temperature: 1e-4 * 2), count: 100)
        #expect(big[0] == 100)
        // Empty row throws.
        #expect(throws: EbbError.self) { try sampler.sample(logits: [], state: &one) }
        // Logprobs with +inf: the inf tokens share the mass.
        let lp = Sampler.logprobs(row: [.infinity, 0, .infinity, nan], tokenId: 0, topN: 3)
        #expect(abs(Double(lp.logprob) - log(0.5)) < 1e-6)
        #expect(lp.top.map(\.tokenId) == [0, 2, 1])
        #expect(lp.top[2].logprob == -.infinity)
    }

    @Test func vocabOfOne() throws {
        var st = SamplingState(params: SamplingParams(topP: 0.5, topK: 1, minP: 0.5, logprobs: 3), promptTokenIds: [0])
        let out = try sampler.sample(logits: [-2], state: &st)
        #expect(out.tokenId == 0)
        #expect(out.logprobs?.logprob == 0)
        #expect(out.logprobs?.top == [TopLogprob(tokenId: 0, logprob: 0)])
    }
}
