import EbbBench
import Testing

/// What the chaos benchmark reports around a kill, from hand-made stream timelines.
struct ChaosAnalysisTests {
    // Stream a: tokens every 0.1 s, a 0.8 s hole across the kill at t = 1.05.
    let a = StreamTimeline(start: 0, tokens: [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.8, 1.9], end: 2.0, error: nil)
    // Stream b: open across the kill, next token 0.3 s after it.
    let b = StreamTimeline(start: 0.5, tokens: [0.6, 0.7, 0.8, 0.9, 1.0, 1.35], end: 1.4, error: nil)
    // Stream c: ended before the kill; stream d: failed after it.
    let c = StreamTimeline(start: 0, tokens: [0.1, 0.2], end: 0.3, error: nil)
    let d = StreamTimeline(start: 0.9, tokens: [1.0], end: 1.5, error: "HTTP 500")

    @Test func killToNextTokenIsTheSlowestOpenStream() {
        let v = ChaosAnalysis.killToNextToken([a, b, c], kill: 1.05)
        #expect(abs(v - 0.75) < 1e-9)
        // A stream that ended without another token waited until its end.
        #expect(abs(ChaosAnalysis.killToNextToken([d], kill: 1.05) - 0.45) < 1e-9)
        #expect(ChaosAnalysis.killToNextToken([c], kill: 1.05) == 0)
    }

    @Test func longestGapAcrossTheKill() {
        #expect(abs(ChaosAnalysis.longestGapAcross([a, b, c], kill: 1.05) - 0.8) < 1e-9)
    }

    @Test func gapsBeforeAndFailuresAfter() {
        let p99 = ChaosAnalysis.gapPercentile([a, b, c], in: 0..<1.05, 99)
        #expect(abs(p99 - 0.1) < 1e-9)
        #expect(ChaosAnalysis.failures([a, b, c, d], in: 1.05..<3).count == 1)
        #expect(ChaosAnalysis.failures([a, b, c, d], in: 0..<1.05).isEmpty)
    }

    @Test func timelineFromAResult() {
        let r = RequestResult(success: true, promptTokens: 4, outputTokens: 3, ttft: 0.5, itl: [0.1, 0.2], latency: 0.9, error: nil)
        let t = StreamTimeline(start: 10, result: r)
        #expect(t.tokens.count == 3)
        #expect(abs(t.tokens[2] - 10.8) < 1e-9)
        #expect(t.end == 10.9 && t.error == nil)
        let failed = StreamTimeline(start: 1, result: .failure(promptTokens: 4, latency: 0.2, error: "boom"))
        #expect(failed.tokens.isEmpty && failed.error == "boom")
    }
}
