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
        // Before every rank was ready there is nothing to recover: start-up failed.
        guard canRecoverLocked, recovery != nil || members.allSatisfy({ engines[$0]?.ready != nil }) else { return [.fail(message)] }
        log("\(message); \(members.contains(engine) ? "recovering on the other ranks" : "it was not serving")")
        if lossRecords[engine] == nil { lossRecords[engine] = (Date().timeIntervalSince1970, 0) }
        return recoveryLocked(.lost(engine, cause), now: .now)
    }

    /// Runs one event through the recovery machine and returns the actions to run outside
    /// the lock (the rest run here).
    func recoveryLocked(_ event: RankRecovery.Event, now: ContinuousClock.Instant) -> [RankRecovery.Action] {
        if recovery == nil {
            // Still starting: nothing to recover (`lostLocked` fails a start-up that lost a rank).
            guard members.allSatisfy({ engines[$0]?.ready != nil }), let first = members.first.flatMap({ engines[$0]?.ready }) else {
                return []
            }
            recovery = RankRecovery(
                config: .init(lockstep: expertParallel, canRecover: elasticHooks != nil, slotsPerRank: Int(first.slotsPerRank),
                              numExperts: Int(first.numExperts), attemptTimeout: recoveryTimeout, failureTimeout: heartbeatTimeout),
                generation: max(generationValue, lastAttemptedGeneration))
        }
        recovery?.noteGeneration(max(generationValue, lastAttemptedGeneration))
        let view = RankRecovery.View(members: members, resizing: resize != nil)
        guard let actions = recovery?.handle(event, now: now, view: view) else { return [] }
        var outside: [RankRecovery.Action] = []
        for a in actions {
            switch a {
            case .fence(let id):
                engines[id]?.accepting = false
                engines[id]?.released = true
                // A running resize that needs it rolls back; then the recovery runs.
                resizeLocked(.lost(id))
                outside.append(a)
            case .resubmit(let id):
                resubmitLocked(from: id)
            case .startRecovery(let g, let survivors, let from):
                lastAttemptedGeneration = max(lastAttemptedGeneration, g)
                log("recovery to generation \(g): \(survivors.count) of \(from.count) ranks survive (lost \(from.filter { !survivors.contains($0) }))")
                var m = Ebb_Control_V1_Reconfigure()
                m.generation = g
                m.members = survivors
                m.union = survivors
                m.oldWorldSize = UInt32(survivors.count)
                m.recoveringFrom = from
                m.timeoutSeconds = recoveryTimeout.seconds
                for id in survivors { engines[id]?.outbound?.yield(.with { $0.reconfigure = m }) }
            case .switchMembers(let g, let survivors):
                if let g {
                    previousGeneration = generationValue
                    generationValue = g
                }
                let lost = members.filter { !survivors.contains($0) }
                members = survivors
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
        for (id, t) in requests where t.engine == engine {
            engines[engine]?.live.remove(id)
            guard let target = chooseLocked() else {
                requests.removeValue(forKey: id)
                orphaned.append(t.continuation)
                continue
            }
            requests[id]?.engine = target
            resubmittedCount += 1
            lossRecords[engine]?.resubmitted += 1
            sendLocked(t.request, to: target, resume: (t.generated, Self.resumeRNG(t.request, generated: t.generated.count)))
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

// MARK: Status

extension Coordinator {
    /// The lost-rank incidents for `/elastic_ep/status` (call under the lock).
    func failuresJSONLocked() -> JSONValue {
        func num(_ x: Double) -> JSONValue { .number(x.isFinite ? x : 0) }
        var list: [JSONValue] = []
        for i in (recovery?.incidents ?? []).suffix(20) {
            let record = lossRecords[i.engine]
            let report = i.generation.flatMap { recoveryReports[$0] }
            let phases: [(String, Double)] = report?.phases ?? []
            var phaseValues: [String: JSONValue] = [:]
            for (name, seconds) in phases where phaseValues[name] == nil { phaseValues[name] = num(seconds) }
            let rank: JSONValue = i.rank.map { num(Double($0)) } ?? .null
            let detected: JSONValue = record.map { num($0.unixTime) } ?? .null
            let generation: JSONValue = i.generation.map { num(Double($0)) } ?? .null
            let recovered: JSONValue = i.recoveredAt.map { num(($0 - i.detectedAt).seconds) } ?? .null
            let error: JSONValue = i.error.map { .string($0) } ?? .null
            var values: [String: JSONValue] = [:]
            values["engine_id"] = .string(i.engine)
            values["rank"] = rank
            values["cause"] = .string(i.cause.rawValue)
            values["detected_unix"] = detected
            values["outcome"] = .string(i.outcome)
            values["generation"] = generation
            values["attempts"] = num(Double(i.attempts))
            values["recovery_seconds"] = recovered
            values["requests_resubmitted"] = num(Double(record?.resubmitted ?? 0))
            values["error"] = error
            values["experts_checked"] = num(Double(report?.checked ?? 0))
            values["expert_mismatches"] = num(Double(report?.mismatches ?? 0))
            values["phases"] = .orderedObject(keys: phases.map(\.0), values: phaseValues)
            list.append(.orderedObject(keys: ["engine_id", "rank", "cause", "detected_unix", "outcome", "generation", "attempts",
                                              "recovery_seconds", "requests_resubmitted", "experts_checked", "expert_mismatches", "error",
                                              "phases"], values: values))
        }
        return .array(list)
    }
}
