import EbbCluster
import Testing

/// The resize state machine driven without processes: scale-up, removal of a middle rank,
/// a failure and a death in every phase, two deaths at once, a commit that races the
/// rollback, and a resize that ends into a recovery (with `RankRecovery`).
struct ResizeMachineTests {
    let t0 = ContinuousClock.now
    let three = ["engine-0", "engine-1", "engine-2"]
    let timeouts = ResizeMachine.Timeouts(phase: .seconds(10))

    func up() -> ResizeMachine.Plan {
        .init(generation: 2, oldMembers: three, members: three + ["engine-3"])
    }

    func removeMiddle() -> ResizeMachine.Plan {
        .init(generation: 2, oldMembers: three, members: ["engine-0", "engine-2"])
    }

    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64(seconds * 1000)) }

    /// A scale-up machine taken to `phase` (launch, register or prepare).
    func scaleUp(to phase: ResizeMachine.Phase) -> ResizeMachine {
        var (m, _) = ResizeMachine.start(up(), timeouts: timeouts, now: t0)
        if phase == .launch { return m }
        _ = m.handle(.launched, now: at(0.1))
        if phase == .register { return m }
        _ = m.handle(.connected("engine-3"), now: at(0.2))
        return m
    }

    func commitAll(_ m: inout ResizeMachine, _ engines: [String], at time: Double) -> [ResizeMachine.Action] {
        engines.flatMap { m.handle(.result(engine: $0, committed: true, error: ""), now: at(time)) }
    }

    @Test func scaleUpLaunchesRegistersPreparesAndCommits() {
        let (start, actions) = ResizeMachine.start(up(), timeouts: timeouts, now: t0)
        var m = start
        #expect(m.phase == .launch)
        #expect(actions == [.launch([.init(engine: "engine-3", rank: 3)])])
        #expect(m.isJoining("engine-3"))
        #expect(m.handle(.launched, now: at(0.1)) == [])
        #expect(m.phase == .register)
        #expect(m.handle(.connected("engine-3"), now: at(0.3)) == [.sendReconfigure])
        #expect(m.phase == .prepare && m.reconfigureSent)
        // The first committed answer switches the coordinator; the rest finish the resize.
        #expect(m.handle(.result(engine: "engine-1", committed: true, error: ""), now: at(0.5)) == [.switchGeneration])
        #expect(m.committed && !m.isJoining("engine-3"))
        #expect(m.handle(.result(engine: "engine-0", committed: true, error: ""), now: at(0.5)) == [])
        #expect(m.handle(.result(engine: "engine-2", committed: true, error: ""), now: at(0.6)) == [.finished(.committed)])
        #expect(m.phase == .committed && m.isFinished)
        #expect(m.phases.map(\.0) == ["launch", "register", "prepare+commit"])
        #expect(abs(m.phases.map(\.1).reduce(0, +) - 0.6) < 1e-6)
        // A finished machine ignores everything.
        #expect(m.handle(.lost("engine-0"), now: at(1)) == [])
    }

    @Test func aJoinerThatConnectsBeforeItsLaunchIsReportedGoesStraightToPrepare() {
        var (m, _) = ResizeMachine.start(up(), timeouts: timeouts, now: t0)
        #expect(m.handle(.connected("engine-3"), now: at(0.1)) == [])
        #expect(m.handle(.launched, now: at(0.2)) == [.sendReconfigure])
        #expect(m.phase == .prepare)
    }

    @Test func removingAMiddleRankLaunchesNothingAndStopsItAfterTheCommit() {
        let (start, actions) = ResizeMachine.start(removeMiddle(), timeouts: timeouts, now: t0)
        var m = start
        #expect(m.leaving == ["engine-1"] && m.joining.isEmpty)
        #expect(actions == [.launch([])])
        #expect(m.handle(.launched, now: at(0.01)) == [.sendReconfigure])
        #expect(commitAll(&m, three, at: 0.2) == [.switchGeneration])
        // The leaving rank hands its requests back after switching; then it is stopped.
        #expect(m.handle(.handedBack("engine-1"), now: at(0.3)) == [.stop(["engine-1"]), .finished(.committed)])
        #expect(m.handle(.tick, now: at(100)) == [])
    }

    @Test func drainWaitsForTheLeavingRanksOrItsTimeout() {
        let drain = ResizeMachine.Timeouts(drain: .seconds(2), phase: .seconds(10))
        var (m, actions) = ResizeMachine.start(removeMiddle(), timeouts: drain, now: t0)
        #expect(m.phase == .drain && actions.isEmpty)
        #expect(m.handle(.tick, now: at(1)) == [])
        #expect(m.handle(.leavingIdle, now: at(1.5)) == [.launch([])])
        #expect(m.phases.first?.0 == "drain")
        // A drain that never empties ends at its timeout.
        (m, _) = ResizeMachine.start(removeMiddle(), timeouts: drain, now: t0)
        #expect(m.handle(.tick, now: at(2.1)) == [.launch([])])
        // Without leaving ranks there is nothing to drain.
        (m, actions) = ResizeMachine.start(up(), timeouts: drain, now: t0)
        #expect(m.phase == .launch)
    }

    // MARK: Failures in every phase

    @Test func aFailureBeforeTheRanksWereToldRollsBackAtOnce() {
        let rolledBack: (ResizeMachine.Action) -> Bool = {
            if case .finished(.rolledBack) = $0 { return true }
            return false
        }
        // launch: starting the process failed, or it never reported started.
        var m = scaleUp(to: .launch)
        var actions = m.handle(.launchFailed("no free GPU"), now: at(0.1))
        #expect(actions.first == .restoreOldGeneration)
        #expect(actions.dropFirst().first == .stop(["engine-3"]))
        #expect(actions.last == .finished(.rolledBack(reason: "no free GPU")))
        #expect(!actions.contains { if case .abort = $0 { return true } else { return false } })
        m = scaleUp(to: .launch)
        actions = m.handle(.tick, now: at(10.5))
        #expect(actions.contains(where: rolledBack) && m.phase == .rolledBack)
        // register: the joiner died before connecting, or never connected.
        m = scaleUp(to: .register)
        actions = m.handle(.joinerFailed("joining engine core engine-3 exited with status 1"), now: at(1))
        #expect(actions.last == .finished(.rolledBack(reason: "joining engine core engine-3 exited with status 1")))
        m = scaleUp(to: .register)
        #expect(m.handle(.tick, now: at(5)) == [])
        actions = m.handle(.tick, now: at(10.2))
        guard case .finished(.rolledBack(let reason))? = actions.last else {
            Issue.record("no rollback: \(actions)")
            return
        }
        #expect(reason.contains("joining engine cores to connect"))
        #expect(m.phases.map(\.0) == ["launch", "register"])
    }

    @Test func aFailureAfterTheRanksWereToldAbortsAndWaitsForTheirAnswers() {
        var m = scaleUp(to: .prepare)
        // One rank refuses: the vote fails on every rank, each answers not committed.
        #expect(m.handle(.result(engine: "engine-1", committed: false, error: "weights: peer closed"), now: at(1)) == [])
        #expect(m.handle(.result(engine: "engine-0", committed: false, error: "weights: peer closed"), now: at(1)) == [])
        let actions = m.handle(.result(engine: "engine-2", committed: false, error: "weights: peer closed"), now: at(1))
        // Every old rank answered already: abort and finish at once.
        #expect(actions == [.abort(reason: "weights: peer closed"), .restoreOldGeneration, .stop(["engine-3"]),
                            .finished(.rolledBack(reason: "weights: peer closed"))])
        #expect(m.phases.map(\.0) == ["launch", "register", "prepare+commit", "rolling_back"])
    }

    @Test func aPrepareTimeoutAbortsThenFinishesWhenTheRanksAcknowledge() {
        var m = scaleUp(to: .prepare)
        let abort = m.handle(.tick, now: at(31))
        guard case .abort(let reason)? = abort.first, abort.count == 1 else {
            Issue.record("expected an abort, got \(abort)")
            return
        }
        #expect(reason.contains("prepare and switch"))
        #expect(m.phase == .rollingBack)
        // The joiner's failure now is part of the rollback, not a new failure.
        #expect(m.handle(.joinerFailed("joining engine core engine-3 disconnected"), now: at(31.1)) == [])
        for id in ["engine-0", "engine-1"] {
            #expect(m.handle(.result(engine: id, committed: false, error: ResizeMachine.abortedByCoordinator), now: at(31.2)) == [])
        }
        let end = m.handle(.result(engine: "engine-2", committed: false, error: "exchange: timed out"), now: at(31.3))
        // The coordinator's own abort is not news; a rank's own error is added to the reason.
        #expect(end.last == .finished(.rolledBack(reason: reason + "; the ranks reported: exchange: timed out")))
    }

    @Test func aRollbackWhoseAnswersNeverComeEndsAtItsTimeout() {
        var m = scaleUp(to: .prepare)
        _ = m.handle(.joinerFailed("engine core engine-3 failed: out of memory"), now: at(1))
        #expect(m.phase == .rollingBack)
        #expect(m.handle(.tick, now: at(5)) == [])
        #expect(m.handle(.tick, now: at(11.1)).last == .finished(.rolledBack(reason: "engine core engine-3 failed: out of memory")))
    }

    @Test func aRankThatCommitsDuringTheRollbackWins() {
        var m = scaleUp(to: .prepare)
        _ = m.handle(.joinerFailed("joining engine core engine-3 disconnected"), now: at(1))
        // The vote had already passed on the ranks: they switched.
        #expect(m.handle(.result(engine: "engine-0", committed: true, error: ""), now: at(1.1)) == [.switchGeneration])
        _ = m.handle(.result(engine: "engine-1", committed: true, error: ""), now: at(1.1))
        #expect(m.handle(.result(engine: "engine-2", committed: true, error: ""), now: at(1.2)) == [.finished(.committed)])
        #expect(m.phase == .committed)
    }

    // MARK: Deaths

    @Test func aMemberLostInEveryPhaseRollsTheResizeBack() {
        for phase in [ResizeMachine.Phase.drain, .launch, .register, .prepare] {
            var m: ResizeMachine
            if phase == .drain {
                (m, _) = ResizeMachine.start(removeMiddle(), timeouts: .init(drain: .seconds(5), phase: .seconds(10)), now: t0)
            } else {
                m = scaleUp(to: phase)
            }
            #expect(m.phase == phase)
            var actions = m.handle(.lost("engine-1"), now: at(1))
            if phase == .prepare {
                // The survivors are told to abort; the lost rank never answers, the others do.
                #expect(actions == [.abort(reason: "engine core engine-1 was lost during the resize")])
                _ = m.handle(.result(engine: "engine-0", committed: false, error: ResizeMachine.abortedByCoordinator), now: at(1.1))
                actions = m.handle(.result(engine: "engine-2", committed: false, error: ResizeMachine.abortedByCoordinator), now: at(1.1))
            }
            #expect(actions.last == .finished(.rolledBack(reason: "engine core engine-1 was lost during the resize")), "phase \(phase)")
            #expect(m.phase == .rolledBack)
        }
    }

    @Test func aLossWhileTheSurvivorsAreBlockedShortensTheRollbackWait() {
        var m = scaleUp(to: .prepare)
        _ = m.handle(.lost("engine-2"), now: at(1))
        // The survivors may never answer before their recovery: at most 5 s, not the phase timeout.
        #expect(m.handle(.tick, now: at(5.9)) == [])
        #expect(m.handle(.tick, now: at(6.1)).last == .finished(.rolledBack(reason: "engine core engine-2 was lost during the resize")))
    }

    @Test func twoDeathsAtOnceDuringPrepareRollBackOnce() {
        var m = scaleUp(to: .prepare)
        let first = m.handle(.lost("engine-0"), now: at(1))
        #expect(first.count == 1)
        // The second loss during the rollback counts as that rank's answer.
        #expect(m.handle(.lost("engine-2"), now: at(1)) == [])
        let end = m.handle(.result(engine: "engine-1", committed: false, error: ResizeMachine.abortedByCoordinator), now: at(1.2))
        #expect(end == [.restoreOldGeneration, .stop(["engine-3"]),
                        .finished(.rolledBack(reason: "engine core engine-0 was lost during the resize"))])
    }

    @Test func aCommittedResizeWhoseLeaverNeverHandsBackEndsAtTheTimeout() {
        var (m, _) = ResizeMachine.start(removeMiddle(), timeouts: timeouts, now: t0)
        _ = m.handle(.launched, now: at(0.1))
        #expect(commitAll(&m, three, at: 0.2) == [.switchGeneration])
        #expect(m.handle(.tick, now: at(20)) == [])
        #expect(m.handle(.tick, now: at(30.2)) == [.stop(["engine-1"]), .finished(.committed)])
    }

    @Test func aMemberLostAfterTheCommitDoesNotUndoIt() {
        var m = scaleUp(to: .prepare)
        #expect(m.handle(.result(engine: "engine-0", committed: true, error: ""), now: at(1)) == [.switchGeneration])
        _ = m.handle(.result(engine: "engine-1", committed: true, error: ""), now: at(1))
        // Rank 2 dies before answering: the resize is done, recovery takes it from here.
        #expect(m.handle(.lost("engine-2"), now: at(1.5)) == [.finished(.committed)])
    }

    @Test func aJoinerLostAfterItConnectedRollsBack() {
        var m = scaleUp(to: .prepare)
        let actions = m.handle(.lost("engine-3"), now: at(1))
        #expect(actions == [.abort(reason: "engine core engine-3 was lost during the resize")])
        #expect(m.handle(.lost("engine-9"), now: at(1)) == [], "an engine outside the resize is none of its business")
    }

    @Test func aDeathDuringAResizeIsRecoveredOnceTheResizeEnds() {
        // The coordinator's composition: the recovery waits while the resize rolls back.
        var resize = scaleUp(to: .prepare)
        var recovery = RankRecovery(config: .init(lockstep: true, canRecover: true, slotsPerRank: 8, numExperts: 16), generation: 2)
        let view = RankRecovery.View(members: three, resizing: true)
        #expect(recovery.handle(.lost("engine-1", .processExited), now: at(1), view: view) == [.fence("engine-1"), .resubmit(from: "engine-1")])
        _ = resize.handle(.lost("engine-1"), now: at(1))
        _ = resize.handle(.result(engine: "engine-0", committed: false, error: ResizeMachine.abortedByCoordinator), now: at(1.1))
        let end = resize.handle(.result(engine: "engine-2", committed: false, error: ResizeMachine.abortedByCoordinator), now: at(1.1))
        #expect(end.contains(.restoreOldGeneration))
        let next = recovery.handle(.resizeEnded, now: at(1.2), view: .init(members: three, resizing: false))
        #expect(next == [.startRecovery(generation: 3, survivors: ["engine-0", "engine-2"], from: three)])
    }

    @Test func theDeploymentFailingRollsBack() {
        var m = scaleUp(to: .register)
        #expect(m.handle(.deploymentFailed("engine core rank 0 failed"), now: at(1)).last
            == .finished(.rolledBack(reason: "engine core rank 0 failed")))
    }

    @Test func answersFromOutsideTheOldGenerationAreIgnored() {
        var m = scaleUp(to: .register)
        #expect(m.handle(.result(engine: "engine-0", committed: true, error: ""), now: at(1)) == [], "before the ranks were told")
        m = scaleUp(to: .prepare)
        #expect(m.handle(.result(engine: "engine-3", committed: true, error: ""), now: at(1)) == [], "a joiner is not voting")
        #expect(m.handle(.connected("engine-0"), now: at(1)) == [])
        #expect(!m.committed)
    }
}
