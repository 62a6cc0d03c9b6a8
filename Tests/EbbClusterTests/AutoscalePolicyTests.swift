import EbbCluster
import Testing

/// The autoscaler's policy driven by hand-made samples and a hand-moved clock.
struct AutoscalePolicyTests {
    let t0 = ContinuousClock.now
    func at(_ s: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64(s * 1000)) }

    func policy(min: Int = 1, max: Int = 4, cooldown: Double = 3) -> AutoscalePolicy {
        var c = AutoscalePolicy.Config(minRanks: min, maxRanks: max, cooldown: .milliseconds(Int64(cooldown * 1000)), ttftTarget: 2)
        c.downAfter = .seconds(10)
        c.settle = .seconds(5)
        return AutoscalePolicy(config: c)
    }

    func busy(ranks: Int, waiting: Int = 8, tps: Double = 100) -> AutoscalePolicy.Sample {
        .init(ranks: ranks, live: ranks * 2 + waiting, waiting: waiting, kvUsage: 0.3, tokensPerSecond: tps)
    }

    func idle(ranks: Int) -> AutoscalePolicy.Sample {
        .init(ranks: ranks, live: 0, waiting: 0, kvUsage: 0, tokensPerSecond: 0)
    }

    @Test func persistentQueueScalesUpOneRankAtATimeAfterTheCooldown() {
        var p = policy()
        let first = p.decide(busy(ranks: 1), now: at(0))
        #expect(first.action == .hold && first.reason.contains("waiting for it to persist"))
        let up = p.decide(busy(ranks: 1), now: at(1))
        #expect(up.action == .scale(to: 2))
        #expect(up.reason.contains("8.0 waiting requests per rank > 2.0"))
        // Still pressed, but within the cooldown of the last resize.
        _ = p.decide(busy(ranks: 2, tps: 250), now: at(2))
        let cooling = p.decide(busy(ranks: 2, tps: 250), now: at(3))
        #expect(cooling.action == .hold && cooling.reason.contains("cooldown"))
        #expect(p.decide(busy(ranks: 2, tps: 250), now: at(4.5)).action == .scale(to: 3))
    }

    @Test func neverWhileAResizeOrRecoveryRunsOrWhenPaused() {
        var p = policy()
        var s = busy(ranks: 1)
        s.busy = true
        for t in 0..<5 { #expect(p.decide(s, now: at(Double(t))).action == .hold) }
        p.paused = true
        for t in 5..<10 { #expect(p.decide(busy(ranks: 1), now: at(Double(t))) == .init(action: .hold, reason: "paused")) }
    }

    @Test func idleShrinksAfterItLastedAndNotBelowTheMinimum() {
        var p = policy(min: 1)
        for t in 0..<10 {
            let d = p.decide(idle(ranks: 2), now: at(Double(t)))
            #expect(d.action == .hold && d.reason.contains("low load"))
        }
        #expect(p.decide(idle(ranks: 2), now: at(10)).action == .scale(to: 1))
        for t in 11..<40 { #expect(p.decide(idle(ranks: 1), now: at(Double(t))).action == .hold) }
    }

    @Test func loadBetweenTheThresholdsHolds() {
        var p = policy()
        // Two ranks, 10 live requests, none waiting: too much to drop a rank, too little to add one.
        let s = AutoscalePolicy.Sample(ranks: 2, live: 10, waiting: 0, kvUsage: 0.5, tokensPerSecond: 80)
        for t in 0..<30 {
            let d = p.decide(s, now: at(Double(t)))
            #expect(d.action == .hold && d.reason.hasPrefix("within targets"))
        }
    }

    @Test func latencyTargetsAndKVUsageArePressureToo() {
        var p = policy()
        var s = AutoscalePolicy.Sample(ranks: 1, live: 2, waiting: 0, kvUsage: 0.95, ttftP90: 3.5, tokensPerSecond: 50)
        _ = p.decide(s, now: at(0))
        let d = p.decide(s, now: at(1))
        #expect(d.action == .scale(to: 2))
        #expect(d.reason.contains("KV cache 95% > 90%") && d.reason.contains("TTFT p90 3500 ms > 2000 ms"))
        s.ranks = 4
        _ = p.decide(s, now: at(10))
        let atMax = p.decide(s, now: at(11))
        #expect(atMax.action == .hold && atMax.reason.contains("--max-data-parallel-size"))
    }

    @Test func aScaleUpThatDidNotRaiseThroughputStopsFurtherOnes() {
        var p = policy(cooldown: 0)
        _ = p.decide(busy(ranks: 1, tps: 100), now: at(0))
        #expect(p.decide(busy(ranks: 1, tps: 100), now: at(1)).action == .scale(to: 2))
        // Five seconds later the rate is the same (two ranks on the same two cores).
        _ = p.decide(busy(ranks: 2, tps: 101), now: at(3))
        let checked = p.decide(busy(ranks: 2, tps: 102), now: at(6.5))
        #expect(checked.action == .hold)
        #expect(checked.reason.contains("did not raise throughput (100 → 102 tokens/s)"))
        #expect(p.ceiling == 1)
        #expect(checked.finding == "scaling 1 → 2 ranks did not raise throughput (100 → 102 tokens/s)")
        for t in 7..<12 { #expect(p.decide(busy(ranks: 2, tps: 100), now: at(Double(t))).action == .hold) }
        // Once the load is gone and the deployment shrank, growing is allowed again.
        for t in 12..<22 { _ = p.decide(idle(ranks: 2), now: at(Double(t))) }
        #expect(p.decide(idle(ranks: 2), now: at(22)).action == .scale(to: 1))
        #expect(p.ceiling == nil)
        _ = p.decide(busy(ranks: 1), now: at(23))
        #expect(p.decide(busy(ranks: 1), now: at(24)).action == .scale(to: 2))
    }

    @Test func aScaleUpThatHelpedLeavesNoCeiling() {
        var p = policy(cooldown: 0)
        _ = p.decide(busy(ranks: 1, tps: 100), now: at(0))
        _ = p.decide(busy(ranks: 1, tps: 100), now: at(1))
        _ = p.decide(busy(ranks: 2, tps: 190), now: at(6.5))
        #expect(p.ceiling == nil)
        #expect(p.decide(busy(ranks: 2, tps: 190), now: at(7)).action == .scale(to: 3))
    }
}
