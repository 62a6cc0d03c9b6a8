import Foundation
import Testing
import EbbTensor

/// Indices of the `k` largest values, descending, lower index first on ties.
private func topK(_ values: [Double], _ k: Int) -> [Int] {
    Array(values.indices.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }.prefix(k))
}

private struct RouteResult { var ids: [Int32]; var weights: [Float] }

private func route(_ backend: CPUBackend, logits: [Float], tokens: Int, experts: Int, bias: [Float]?,
                   router: RouterConfig) throws -> RouteResult {
    let (lt, _) = try stridedView(backend, logits, shape: [tokens, experts], lead: 1, trail: 2)
    let biasTensor = try bias.map { try upload(backend, $0, [experts]) }
    let ids = try backend.empty([tokens, router.topK], dtype: .i32)
    let weights = try backend.empty([tokens, router.topK], dtype: .f32)
    backend.routeTopK(logits: lt, correctionBias: biasTensor, router: router, ids: ids, weights: weights)
    return RouteResult(ids: backend.downloadInts(ids), weights: backend.downloadFloats(weights))
}

@Suite struct RoutingTests {
    /// Qwen3-MoE / Mixtral: softmax over all experts, top-k, optionally renormalized.
    @Test(arguments: [(true, 2, 8), (false, 2, 8), (true, 8, 60), (false, 1, 3), (true, 3, 3)])
    func softmaxTopK(_ normalize: Bool, _ k: Int, _ experts: Int) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(k * 100 + experts))
        let tokens = 37
        let logits = rng.floats(tokens * experts, in: -4...4)
        let router = RouterConfig(scoring: .softmax, topK: k, normalize: normalize)
        let got = try route(backend, logits: logits, tokens: tokens, experts: experts, bias: nil, router: router)
        var expectedWeights = [Double]()
        var expectedIds = [Int32]()
        for t in 0..<tokens {
            let row = logits[(t * experts)..<(t * experts + experts)].map(Double.init)
            let m = row.max() ?? 0
            let e = row.map { exp($0 - m) }
            let sum = e.reduce(0, +)
            let p = e.map { $0 / sum }
            let chosen = topK(p, k)
            let total = chosen.reduce(0.0) { $0 + p[$1] }
            expectedIds += chosen.map { Int32($0) }
            expectedWeights += chosen.map { normalize ? p[$0] / total : p[$0] }
        }
        #expect(got.ids == expectedIds)
        expectClose(got.weights, expectedWeights, atol: 1e-6, rtol: 1e-5)
    }

    @Test func softmaxTiesPickLowerIndex() throws {
        let backend = makeBackend()
        let got = try route(backend, logits: [1, 2, 2, 0, 2], tokens: 1, experts: 5, bias: nil,
                            router: RouterConfig(scoring: .softmax, topK: 2, normalize: true))
        #expect(got.ids == [1, 2])
        expectClose(got.weights, [0.5, 0.5], atol: 1e-6)
    }

    /// DeepSeek-V3 `noaux_tc`: sigmoid scores, selection by score + correction bias inside
    /// the best groups (sum of each group's two best biased scores), weights from the
    /// unbiased scores, normalized, times the scaling factor.
    @Test(arguments: [(16, 4, 2, 4, true), (32, 8, 3, 6, true), (12, 6, 2, 3, false), (16, 4, 2, 4, false)])
    func sigmoidGroupedWithBias(_ experts: Int, _ groups: Int, _ keepGroups: Int, _ k: Int, _ normalize: Bool) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(experts * 13 + groups + k))
        let tokens = 29
        let logits = rng.floats(tokens * experts, in: -3...3)
        // A large bias, so that choosing by biased scores and weighting by unbiased ones differ.
        let bias = rng.floats(experts, in: -0.6...0.6)
        let scaling: Float = 2.5
        let router = RouterConfig(scoring: .sigmoid, topK: k, normalize: normalize, numGroups: groups,
                                  topKGroups: keepGroups, groupScoreTopTwo: true, scalingFactor: scaling)
        let got = try route(backend, logits: logits, tokens: tokens, experts: experts, bias: bias, router: router)
        let perGroup = experts / groups
        var biasMattered = false
        for t in 0..<tokens {
            let s = logits[(t * experts)..<(t * experts + experts)].map { 1 / (1 + exp(-Double($0))) }
            let choice = (0..<experts).map { s[$0] + Double(bias[$0]) }
            let groupScores = (0..<groups).map { g in topK(Array(choice[(g * perGroup)..<((g + 1) * perGroup)]), 2).reduce(0.0) { $0 + choice[g * perGroup + $1] } }
            let kept = Set(topK(groupScores, keepGroups))
            let masked = (0..<experts).map { kept.contains($0 / perGroup) ? choice[$0] : -.infinity }
            let chosen = topK(masked, k)
            if Set(chosen) != Set(topK(s, k)) { biasMattered = true }
            let ids = got.ids[(t * k)..<(t * k + k)].map { Int($0) }
            #expect(ids == chosen, "token \(t)")
            #expect(ids.allSatisfy { kept.contains($0 / perGroup) }, "token \(t) picked an expert from a dropped group")
            let total = chosen.reduce(0.0) { $0 + s[$1] }
            let want = chosen.map { (normalize ? s[$0] / total : s[$0]) * Double(scaling) }
            expectClose(Array(got.weights[(t * k)..<(t * k + k)]), want, atol: 1e-6, rtol: 1e-5, "token \(t)")
        }
        #expect(biasMattered, "inputs should make the bias change some choices")
    }

    /// A hand-built token: expert 0 is the single best, but its group's top-two sum loses.
    /// V3 (top-two sums) drops group 0; V2 (`group_limited_greedy`, best one) keeps it.
    @Test func groupScoreTopTwoVersusBest() throws {
        let backend = makeBackend()
        let logits: [Float] = [6, -6, -6, -6,   1, 1, -6, -6,   0.9, 0.9, -6, -6,   -6, -6, -6, -6]
        let v3 = try route(backend, logits: logits, tokens: 1, experts: 16, bias: nil,
                           router: RouterConfig(scoring: .sigmoid, topK: 2, normalize: true, numGroups: 4, topKGroups: 2,
                                                groupScoreTopTwo: true, scalingFactor: 1))
        #expect(Set(v3.ids) == [4, 5], "\(v3.ids)")
        #expect(!v3.ids.contains(0))
        expectClose(v3.weights, [0.5, 0.5], atol: 1e-6)
        let v2 = try route(backend, logits: logits, tokens: 1, experts: 16, bias: nil,
                           router: RouterConfig(scoring: .softmax, topK: 2, normalize: false, numGroups: 4, topKGroups: 1,
                                                groupScoreTopTwo: false, scalingFactor: 1))
        // Only group 0 survives: expert 0, then the best of the rest of group 0 (lowest index on ties).
        #expect(v2.ids == [0, 1], "\(v2.ids)")
        let e = logits.map { exp(Double($0)) }, total = e.reduce(0, +)
        expectClose(v2.weights, [e[0] / total, e[1] / total], atol: 1e-7, rtol: 1e-5)
    }

    /// Biased choice, unbiased weight: a bias lifts a weak expert into the top-k, and its
    /// weight is still its own sigmoid score.
    @Test func biasChoosesButDoesNotWeigh() throws {
        let backend = makeBackend()
        let logits: [Float] = [2, 1, -2, 0]
        let bias: [Float] = [0, 0, 5, 0]
        let got = try route(backend, logits: logits, tokens: 1, experts: 4, bias: bias,
                            router: RouterConfig(scoring: .sigmoid, topK: 2, normalize: false, scalingFactor: 3))
        #expect(got.ids == [2, 0])
        let sig = { (x: Double) in 1 / (1 + exp(-x)) }
        expectClose(got.weights, [3 * sig(-2), 3 * sig(2)], atol: 1e-6, rtol: 1e-6)
    }

    // MARK: Expert placement

    @Test func mapExpertsUsesReplicaByTokenIndex() throws {
        let backend = makeBackend()
        // 5 experts, up to 3 replicas each (−1 padded); this rank holds slots 4..<8.
        let table: [[Int32]] = [
            [0, 4, -1],     // expert 0: replicas on slot 0 (elsewhere) and slot 4 (here)
            [5, -1, -1],    // expert 1: only here
            [1, 2, 9],      // expert 2: never here
            [6, 7, 3],      // expert 3: three replicas, two here
            [-1, -1, -1],   // expert 4: no replica (count 0)
        ]
        let counts: [Int32] = [2, 1, 3, 3, 0]
        let slotBase = 4, slotCount = 4
        let tokens = 7, k = 3
        var rng = SeededRNG(seed: 99)
        var logical = (0..<(tokens * k)).map { _ in Int32.random(in: 0..<5, using: &rng) }
        logical[4] = -1
        logical[10] = 5        // out of range expert id
        let out = try backend.empty([tokens, k], dtype: .i32)
        backend.mapExperts(try uploadInts(backend, logical, [tokens, k]),
                           table: try uploadInts(backend, table.flatMap { $0 }, [5, 3]),
                           replicaCount: try uploadInts(backend, counts, [5]),
                           slotBase: slotBase, slotCount: slotCount, out: out)
        var expected = [Int32]()
        for t in 0..<tokens {
            for j in 0..<k {
                let e = Int(logical[t * k + j])
                guard e >= 0 && e < 5 && counts[e] > 0 else { expected.append(-1); continue }
                let physical = Int(table[e][t % Int(counts[e])])
                let local = physical - slotBase
                expected.append(local >= 0 && local < slotCount ? Int32(local) : -1)
            }
        }
        #expect(backend.downloadInts(out) == expected)
        // The cases above all occur.
        #expect(expected.contains(-1) && expected.contains(0) && expected.contains(1))
        #expect(expected.contains(2) || expected.contains(3))
    }

    @Test(arguments: [(9, 2, 5), (1, 1, 1), (13, 4, 6), (6, 3, 0)])
    func groupBySlotIsStableWithUnplacedAtEnd(_ tokens: Int, _ k: Int, _ numSlots: Int) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(tokens * 10 + k + numSlots))
        let n = tokens * k
        let slots = (0..<n).map { _ in Int32.random(in: -1...Int32(numSlots), using: &rng) }   // −1 and numSlots: not here
        let weights = rng.floats(n, in: 0...1)
        let tokenIndex = try backend.empty([n], dtype: .i32)
        let sortedWeights = try backend.empty([n], dtype: .f32)
        let offsets = try backend.empty([numSlots + 1], dtype: .i32)
        backend.groupBySlot(try uploadInts(backend, slots, [n]), weights: try upload(backend, weights, [n]),
                            pairsPerToken: k, numSlots: numSlots,
                            tokenIndex: tokenIndex, sortedWeights: sortedWeights, offsets: offsets)
        var expectedTokens = [Int32](), expectedWeights = [Float](), expectedOffsets: [Int32] = [0]
        for s in 0..<numSlots {
            for i in 0..<n where slots[i] == Int32(s) {
                expectedTokens.append(Int32(i / k))
                expectedWeights.append(weights[i])
            }
            expectedOffsets.append(Int32(expectedTokens.count))
        }
        let placed = expectedTokens.count
        expectedTokens += [Int32](repeating: -1, count: n - placed)
        #expect(backend.downloadInts(offsets) == expectedOffsets)
        #expect(backend.downloadInts(tokenIndex) == expectedTokens)
        #expect(Array(backend.downloadFloats(sortedWeights)[0..<placed]) == expectedWeights)
    }

    @Test func scatterAddWeightedAccumulates() throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: 21)
        let n = 11, d = 13, outRows = 5
        let xv = rng.floats(n * d)
        let rowIndex: [Int32] = [4, 0, -1, 4, 2, 2, 2, -1, 0, 1, 4]
        let weights = rng.floats(n, in: 0...1)
        let initial = rng.floats(outRows * d)
        let (x, _) = try stridedView(backend, xv + rng.floats(2 * d), shape: [n + 2, d], lead: 1, trail: 1)
        let (out, parent) = try stridedView(backend, initial, shape: [outRows, d], lead: 2, trail: 3)
        backend.scatterAddWeighted(x, rowIndex: try uploadInts(backend, rowIndex, [n]),
                                   weight: try upload(backend, weights, [n]), out: out)
        var expected = initial.map(Double.init)
        for i in 0..<n where rowIndex[i] >= 0 {
            for c in 0..<d { expected[Int(rowIndex[i]) * d + c] += Double(weights[i]) * Double(xv[i * d + c]) }
        }
        expectClose(backend.downloadFloats(out), expected, atol: 1e-6, rtol: 1e-6)
        #expect(gapsUntouched(backend, parent, lead: 2, cols: d))
    }
}
