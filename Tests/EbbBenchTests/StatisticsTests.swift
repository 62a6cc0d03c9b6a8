import Testing
@testable import EbbBench

@Suite struct StatisticsTests {
    @Test func percentilesMatchNumPyLinear() {
        let v: [Double] = [15, 20, 35, 40, 50]
        // numpy.percentile([15, 20, 35, 40, 50], p): rank = p/100 * 4, linear between neighbours.
        #expect(Stats.percentile(v, 0) == 15)
        #expect(Stats.percentile(v, 50) == 35)
        #expect(Stats.percentile(v, 100) == 50)
        #expect(Stats.percentile(v, 25) == 20)
        #expect(abs(Stats.percentile(v, 40) - 29) < 1e-12)  // rank 1.6: 20 + 0.6 * 15
        #expect(abs(Stats.percentile(v, 99) - 49.6) < 1e-12)  // rank 3.96: 40 + 0.96 * 10
        #expect(Stats.percentile([4, 1, 3, 2], 50) == 2.5)  // unsorted input, even count
        #expect(Stats.percentile([7], 99) == 7)
        #expect(Stats.percentile([], 99) == 0)
    }

    @Test func meanAndPopulationStd() {
        #expect(Stats.mean([2, 4, 4, 4, 5, 5, 7, 9]) == 5)
        #expect(Stats.std([2, 4, 4, 4, 5, 5, 7, 9]) == 2)
        #expect(Stats.mean([]) == 0 && Stats.std([]) == 0)
    }

    @Test func summaryOfRequests() {
        let ok1 = RequestResult(success: true, promptTokens: 10, outputTokens: 3, ttft: 0.1, itl: [0.2, 0.3], latency: 0.6, error: nil)
        let ok2 = RequestResult(success: true, promptTokens: 10, outputTokens: 1, ttft: 0.3, itl: [], latency: 0.3, error: nil)
        let bad = RequestResult.failure(promptTokens: 10, latency: 0.05, error: "HTTP 500: boom")
        let s = BenchmarkSummary(results: [ok1, ok2, bad], duration: 2)
        #expect(s.completed == 2 && s.failed == 1)
        #expect(s.totalInputTokens == 20 && s.totalOutputTokens == 4)
        #expect(s.requestThroughput == 1 && s.outputThroughput == 2 && s.totalTokenThroughput == 12)
        #expect(abs(s.ttftMs.mean - 200) < 1e-9 && abs(s.ttftMs.median - 200) < 1e-9)
        #expect(s.tpotMs.count == 1 && abs(s.tpotMs.mean - 250) < 1e-9)  // (0.6 - 0.1) / 2; ok2 has one token
        #expect(s.itlMs.count == 2 && abs(s.itlMs.mean - 250) < 1e-9)
        #expect(abs(s.e2elMs.percentiles[0].value - 597) < 1e-9)  // p99 of [300, 600]
    }

    @Test func emptyRunIsAllZeros() {
        let s = BenchmarkSummary(results: [], duration: 0)
        #expect(s.completed == 0 && s.requestThroughput == 0 && s.ttftMs.mean == 0 && s.itlMs.percentiles[0].value == 0)
    }
}
