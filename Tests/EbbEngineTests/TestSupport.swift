import EbbCore
import Testing

@testable import EbbEngine

/// SplitMix64: a small seeded generator so randomized tests are reproducible.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Prompt `[start, start+1, …]` of `count` tokens.
func prompt(_ count: Int, from start: Int = 1) -> [TokenID] {
    (0..<count).map { TokenID(start + $0) }
}

/// The token the fake model "samples" for a request that has `numTokens` tokens.
func fakeSample(_ numTokens: Int) -> TokenID { TokenID(10_000 + numTokens) }

/// Runs one fake step: every request that samples gets `fakeSample`; `finish` ids finish.
@discardableResult
func runStep(
    _ s: inout Scheduler, finish: [String: FinishReason] = [:]
) -> (SchedulerOutput, SchedulerUpdate) {
    let out = s.schedule()
    var sampled: [String: [TokenID]] = [:]
    for r in out.scheduled where r.samplesNextToken { sampled[r.requestId] = [fakeSample(r.numTotalTokens)] }
    let upd = s.update(afterStep: out, sampled: sampled, finished: finish)
    return (out, upd)
}

func expectConsistent(_ s: Scheduler, sourceLocation: SourceLocation = #_sourceLocation) {
    let problems = s.invariantViolations()
    #expect(problems.isEmpty, "\(problems)", sourceLocation: sourceLocation)
}

func makeScheduler(
    numBlocks: Int = 64, blockSize: Int = 16, budget: Int = 2048, maxNumSeqs: Int = 256, maxModelLen: Int = 1024,
    prefixCaching: Bool = true, chunked: Bool = true, threshold: Int = 0
) throws -> Scheduler {
    try Scheduler(
        config: SchedulerConfig(
            numBlocks: numBlocks, blockSize: blockSize, maxNumBatchedTokens: budget, maxNumSeqs: maxNumSeqs,
            maxModelLen: maxModelLen, enablePrefixCaching: prefixCaching, enableChunkedPrefill: chunked,
            longPrefillTokenThreshold: threshold))
}
