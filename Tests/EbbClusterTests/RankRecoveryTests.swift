import EbbCluster
import Testing

/// The coordinator's lost-rank state machine, driven without processes: which ranks are
/// fenced, whose requests move, when a recovery starts, over whom, and when it gives up.
struct RankRecoveryTests {
    let t0 = ContinuousClock.now
    let three = ["engine-0", "engine-1", "engine-2"]

    func machine(lockstep: Bool = true, canRecover: Bool = true, slots: Int = 8, experts: Int = 16) -> RankRecovery {
        RankRecovery(config: .init(lockstep: lockstep, canRecover: canRecover, slotsPerRank: slots, numExperts: experts,
                                   attemptTimeout: .seconds(10), failureTimeout: .seconds(2), maxAttempts: 3),
                     generation: 1)
    }

    func view(_ members: [String], resizing: Bool = false) -> RankRecovery.View {
        RankRecovery.View(members: members, resizing: resizing)
    }

    @Test func lostMiddleRankIsFencedResubmittedAndRecoveredOnTheSurvivors() {
        var m = machine()
        let actions = m.handle(.lost("engine-1", .processExited), now: t0, view: view(three))
        #expect(actions == [
            .fence("engine-1"), .resubmit(from: "engine-1"),
            .startRecovery(generation: 2, survivors: ["engine-0", "engine-2"], from: three),
        ])
        #expect(m.isRecovering)
        #expect(m.handle(.result(engine: "engine-0", generation: 2, ok: true, error: ""), now: t0, view: view(three)) == [])
        let done = m.handle(.result(engine: "engine-2", generation: 2, ok: true, error: ""), now: t0, view: view(three))
        #expect(done == [.switchMembers(generation: 2, members: ["engine-0", "engine-2"])])
        #expect(!m.isRecovering)
        #expect(m.incidents.map(\.outcome) == ["recovered"])
        #expect(m.incidents.first?.rank == 1 && m.incidents.first?.cause == .processExited)
    }

    @Test func rankZeroAndTheLastRankRecoverTheSameWay() {
        for lostEngine in ["engine-0", "engine-2"] {
            var m = machine()
            let actions = m.handle(.lost(lostEngine, .controlStreamClosed), now: t0, view: view(three))
            #expect(actions.last == .startRecovery(generation: 2, survivors: three.filter { $0 != lostEngine }, from: three))
        }
    }

    @Test func aSecondDetectionOfTheSameRankDoesNothing() {
        var m = machine()
        _ = m.handle(.lost("engine-1", .processExited), now: t0, view: view(three))
        #expect(m.handle(.lost("engine-1", .controlStreamClosed), now: t0, view: view(three)) == [])
        #expect(m.incidents.count == 1)
    }

    @Test func twoDeathsAtOnceRecoverOnceOverTheRest() {
        var m = machine(slots: 16)
        _ = m.handle(.lost("engine-0", .processExited), now: t0, view: view(three))
        // The second death comes while the first attempt runs, before anyone answered: the
        // attempt starts over without it.
        let second = m.handle(.lost("engine-2", .processExited), now: t0, view: view(three))
        #expect(second == [.fence("engine-2"), .resubmit(from: "engine-2"),
                           .startRecovery(generation: 3, survivors: ["engine-1"], from: three)])
        let done = m.handle(.result(engine: "engine-1", generation: 3, ok: true, error: ""), now: t0, view: view(three))
        #expect(done == [.switchMembers(generation: 3, members: ["engine-1"])])
        // A late answer for the abandoned attempt changes nothing.
        #expect(m.handle(.result(engine: "engine-1", generation: 2, ok: true, error: ""), now: t0, view: view(["engine-1"])) == [])
    }

    @Test func aLossDuringAResizeWaitsForTheResizeToEnd() {
        var m = machine()
        let during = m.handle(.lost("engine-1", .heartbeatTimeout), now: t0, view: view(three, resizing: true))
        #expect(during == [.fence("engine-1"), .resubmit(from: "engine-1")])
        // The resize rolled back: the members are the old ones, and the recovery starts.
        let after = m.handle(.resizeEnded, now: t0, view: view(three))
        #expect(after == [.startRecovery(generation: 2, survivors: ["engine-0", "engine-2"], from: three)])
    }

    @Test func aLossDuringACommittedResizeRecoversFromTheNewMembers() {
        var m = machine()
        m.noteGeneration(4)  // the resize took generation 4
        _ = m.handle(.lost("engine-3", .processExited), now: t0, view: view(three + ["engine-3"], resizing: true))
        let after = m.handle(.resizeEnded, now: t0, view: view(three + ["engine-3"]))
        #expect(after == [.startRecovery(generation: 5, survivors: three, from: three + ["engine-3"])])
    }

    @Test func aLostJoinerIsOnlyFenced() {
        var m = machine()
        #expect(m.handle(.lost("engine-7", .processExited), now: t0, view: view(three, resizing: true)) == [.fence("engine-7")])
        #expect(!m.isRecovering)
    }

    @Test func aFailedAttemptIsRetriedThenTheDeploymentFails() {
        var m = machine()
        _ = m.handle(.lost("engine-1", .processExited), now: t0, view: view(three))
        var g: UInt64 = 2
        for attempt in 1...3 {
            let next = m.handle(.result(engine: "engine-0", generation: g, ok: false, error: "boom \(attempt)"), now: t0, view: view(three))
            if attempt < 3 {
                g += 1
                #expect(next == [.startRecovery(generation: g, survivors: ["engine-0", "engine-2"], from: three)])
            } else {
                #expect(next.count == 1)
                if case .fail(let message)? = next.first { #expect(message.contains("boom 3")) } else { Issue.record("expected fail, got \(next)") }
            }
        }
        #expect(m.failed)
        #expect(m.incidents.first?.outcome == "failed")
        #expect(m.handle(.lost("engine-0", .processExited), now: t0, view: view(three)) == [], "a failed machine does nothing more")
    }

    @Test func anAttemptThatHangsTimesOutAndIsRetried() {
        var m = machine()
        _ = m.handle(.lost("engine-1", .processExited), now: t0, view: view(three))
        #expect(m.handle(.tick, now: t0 + .seconds(5), view: view(three)) == [])
        #expect(m.handle(.tick, now: t0 + .seconds(11), view: view(three))
            == [.startRecovery(generation: 3, survivors: ["engine-0", "engine-2"], from: three)])
    }

    @Test func survivorsThatCannotHoldEveryExpertFailClearly() {
        var m = machine(slots: 6, experts: 16)
        let actions = m.handle(.lost("engine-0", .processExited), now: t0, view: view(three))
        guard case .fail(let message)? = actions.last else {
            Issue.record("expected a failure, got \(actions)")
            return
        }
        #expect(message.contains("cannot hold 16 experts"))
        #expect(m.failed)
        // With 8 slots a rank, two survivors hold 16 experts; one does not.
        var n = machine(slots: 8, experts: 16)
        #expect(n.handle(.lost("engine-0", .processExited), now: t0, view: view(three)).last
            == .startRecovery(generation: 2, survivors: ["engine-1", "engine-2"], from: three))
        let second = n.handle(.lost("engine-1", .processExited), now: t0, view: view(three))
        guard case .fail? = second.last else {
            Issue.record("expected a failure, got \(second)")
            return
        }
    }

    @Test func withoutElasticEPALockstepLossFails() {
        var m = machine(canRecover: false)
        let actions = m.handle(.lost("engine-1", .processExited), now: t0, view: view(three))
        #expect(actions.count == 3)
        guard case .fail(let message)? = actions.last else {
            Issue.record("expected a failure, got \(actions)")
            return
        }
        #expect(message.contains("--enable-elastic-ep"))
    }

    @Test func plainDataParallelDropsTheLostRankAtOnce() {
        var m = machine(lockstep: false)
        let actions = m.handle(.lost("engine-2", .processExited), now: t0, view: view(three))
        #expect(actions == [.fence("engine-2"), .resubmit(from: "engine-2"),
                            .switchMembers(generation: nil, members: ["engine-0", "engine-1"])])
        #expect(!m.isRecovering)
        #expect(m.handle(.dataPlaneFailed("engine-0"), now: t0, view: view(["engine-0", "engine-1"])) == [])
    }

    @Test func losingEveryRankLeavesNoMembers() {
        var m = machine(lockstep: false)
        let actions = m.handle(.lost("engine-0", .processExited), now: t0, view: view(["engine-0"]))
        #expect(actions.last == .switchMembers(generation: nil, members: []))
        #expect(m.incidents.first?.outcome == "recovered")
        var n = machine()
        let lockstep = n.handle(.lost("engine-0", .processExited), now: t0, view: view(["engine-0"]))
        #expect(lockstep.last == .switchMembers(generation: nil, members: []))
        #expect(n.incidents.first?.outcome == "no_survivors")
    }

    @Test func aDataPlaneFailureWithNobodyLostReformsAfterTheTimeout() {
        var m = machine()
        #expect(m.handle(.dataPlaneFailed("engine-2"), now: t0, view: view(three)) == [])
        #expect(m.isRecovering)
        #expect(m.handle(.tick, now: t0 + .seconds(1), view: view(three)) == [])
        // The culprit shows up in time: recovery without it.
        var n = m
        #expect(n.handle(.lost("engine-1", .heartbeatTimeout), now: t0 + .seconds(1), view: view(three)).last
            == .startRecovery(generation: 2, survivors: ["engine-0", "engine-2"], from: three))
        // Nobody shows up: the generation is formed again over everyone.
        #expect(m.handle(.tick, now: t0 + .seconds(3), view: view(three))
            == [.startRecovery(generation: 2, survivors: three, from: three)])
    }

    @Test func generationsNeverRepeatAfterResizes() {
        var m = machine()
        m.noteGeneration(7)
        let actions = m.handle(.lost("engine-1", .processExited), now: t0, view: view(three))
        #expect(actions.last == .startRecovery(generation: 8, survivors: ["engine-0", "engine-2"], from: three))
    }
}
