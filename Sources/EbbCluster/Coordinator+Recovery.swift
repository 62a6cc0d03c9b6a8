import EbbControl
import EbbCore
import EbbEngine
import EbbSampling
import Foundation

/// The coordinator's side of lost ranks: it feeds `RankRecovery` (the state machine) with
/// what it notices and runs the machine's actions — fencing, re-submitting the lost rank's
/// requests to the survivors, sending the recovery, switching members.
extension Coordinator {
    /// Whether a lost member can be survived: ranks without a shared data plane always can;
    /// expert-parallel ones when elastic EP is on.
    var canRecoverLocked: Bool { !expertParallel || elasticHooks != nil }

    /// A member (or joiner) is gone: recover, or fail the deployment when that is impossible.
    func rankLost(_ engine: String, _ cause: LossCause, message: String) {
        let actions = lock.withLock { lostLocked(engine, cause, message: message) }
        performOutside(actions)
    }

    func lostLocked(_ engine: String, _ cause: LossCause, message: String) -> [RankRecovery.Action] {
        guard !shuttingDown, failure == nil else { return [] }
        if let restartLoss = restartLostLocked(engine, message: message) { return restartLoss }
        // Before every rank was ready there is nothing to recover: start-up failed.
        guard canRecoverLocked, recovery != nil || membership.allReady else { return [.fail(message)] }
        log("\(message); \(membership.members.contains(engine) ? "recovering on the other ranks" : "it was not serving")")
        if lossRecords[engine] == nil { lossRecords[engine] = (Date().timeIntervalSince1970, 0) }
        return recoveryLocked(.lost(engine, cause), now: .now)
    }

    /// Runs one event through the recovery machine and returns the actions to run outside
    /// the lock (the rest run here).
    func recoveryLocked(_ event: RankRecovery.Event, now: ContinuousClock.Instant) -> [RankRecovery.Action] {
        if recovery == nil {
            // Still starting: nothing to recover (`lostLocked` fails a start-up that lost a rank).
            guard membership.allReady, !membership.members.isEmpty else { return [] }
            let shape = membership.expertShape
            recovery = RankRecovery(
                config: .init(lockstep: expertParallel, canRecover: elasticHooks != nil, slotsPerRank: shape.slotsPerRank,
                              numExperts: shape.numExperts, attemptTimeout: recoveryTimeout, failureTimeout: heartbeatTimeout),
                generation: membership.newestGeneration)
        }
        recovery?.noteGeneration(membership.newestGeneration)
        let view = RankRecovery.View(members: membership.members, resizing: resize != nil)
        guard let actions = recovery?.handle(event, now: now, view: view) else { return [] }
        var outside: [RankRecovery.Action] = []
        for a in actions {
            switch a {
            case .fence(let id):
                membership.engines[id]?.accepting = false
                membership.engines[id]?.released = true
                // A running resize that needs it rolls back; then the recovery runs.
                resizeLocked(.lost(id))
                outside.append(a)
            case .resubmit(let id):
                resubmitLocked(from: id)
            case .startRecovery(let g, let survivors, let from):
                // Earlier attempts that never served will not form: release whoever waits in them.
                for abandoned in (membership.generation + 1)..<max(g, membership.generation + 1) {
                    rendezvous.abandon(generation: abandoned)
                }
                membership.noteAttempted(g)
                log("recovery to generation \(g): \(survivors.count) of \(from.count) ranks survive (lost \(from.filter { !survivors.contains($0) }))")
                var m = Ebb_Control_V1_Reconfigure()
                m.generation = g
                m.members = survivors
                m.union = survivors
                m.oldWorldSize = UInt32(survivors.count)
                m.recoveringFrom = from
                m.timeoutSeconds = recoveryTimeout.seconds
                for id in survivors { membership.send(.reconfigure(m), to: id) }
            case .switchMembers(let g, let survivors):
                let lost = membership.members.filter { !survivors.contains($0) }
                membership.switchTo(g, members: survivors)
                log(survivors.isEmpty
                    ? "every engine core is lost: requests are refused (503) until one is back"
                    : "serving on \(survivors.count) ranks\(g.map { " at generation \($0)" } ?? "") without \(lost)")
                outside.append(a)
            case .fail:
                outside.append(a)
            }
        }
        return outside
    }

    /// A survivor's answer to the running recovery, with its phases and expert checks.
    func recoveryResultLocked(_ r: Ebb_Control_V1_ReconfigureResult, from engine: String) -> [RankRecovery.Action] {
        if r.committed {
            var report = recoveryReports[r.generation] ?? ([], 0, 0)
            for p in r.phases {
                if let i = report.phases.firstIndex(where: { $0.0 == p.phase }) {
                    report.phases[i].1 = max(report.phases[i].1, p.seconds)
                } else {
                    report.phases.append((p.phase, p.seconds))
                }
            }
            report.checked += Int(r.expertsChecked)
            report.mismatches += Int(r.expertMismatches)
            recoveryReports[r.generation] = report
            if recoveryReports.count > 20, let oldest = recoveryReports.keys.min() { recoveryReports.removeValue(forKey: oldest) }
        }
        return recoveryLocked(.result(engine: engine, generation: r.generation, ok: r.committed, error: r.error), now: .now)
    }

    func recoveryEvent(_ event: RankRecovery.Event, now: ContinuousClock.Instant = .now) {
        let actions = lock.withLock { recoveryLocked(event, now: now) }
        performOutside(actions)
    }

    /// The actions that must not run under the lock.
    func performOutside(_ actions: [RankRecovery.Action]) {
        flushResizeWork()
        for a in actions {
            switch a {
            case .fence(let id):
                fence?(id)
            case .fail(let message):
                fail(EbbError(.io, message))
            case .switchMembers:
                afterRecovery?()
            default:
                break
            }
        }
    }

    /// The lost engine's requests continue on the survivors, each after the tokens its
    /// client already has; with nobody left they end with 503.
    func resubmitLocked(from engine: String) {
        var orphaned: [AsyncStream<EngineEvent>.Continuation] = []
        for (id, t) in router.requests(on: engine) {
            guard continueLocked(id, rng: { Self.resumeRNG($0.request, generated: $0.generated.count) }) else {
                router.remove(id)
                orphaned.append(t.continuation)
                continue
            }
            resubmittedCount += 1
            lossRecords[engine]?.resubmitted += 1
        }
        for c in orphaned {
            c.yield(.error(EbbError(.unavailable, "the engine core serving this request was lost and no other rank is left")))
            c.finish()
        }
    }

    /// The sampler's state after `generated` tokens: seeded requests draw one value per
    /// token, so the continuation draws what the lost rank would have; unseeded ones get
    /// a fresh generator.
    static func resumeRNG(_ request: EngineRequest, generated: Int) -> Data {
        var rng = SamplingRNG.forRequest(seed: request.params.seed, choiceIndex: request.choiceIndex)
        if request.params.seed != nil {
            for _ in 0..<generated { _ = rng.next() }
        }
        return (try? JSONEncoder().encode(SamplingRNGBox(rng: rng))) ?? Data()
    }

    /// Lost-rank incidents, newest last.
    public var incidents: [RankRecovery.Incident] { lock.withLock { recovery?.incidents ?? [] } }

    /// Requests continued on another rank after theirs was lost.
    public var resubmittedRequests: Int { lock.withLock { resubmittedCount } }
}

