import EbbControl
import EbbCore
import EbbEngine
import Foundation

/// What a resize asks for (vLLM's `new_data_parallel_size`, or Ebb's `remove_ranks`).
public enum ResizeTarget: Sendable, Equatable {
    case size(Int)
    case remove([Int])
}

/// Why a resize was refused or failed; the server maps each case to an HTTP status.
public enum ResizeError: Error, Sendable, Equatable {
    /// The request cannot be carried out as asked (bad size, elastic EP off, too few slots).
    case invalid(String)
    /// Not now: another resize or a recovery runs, or nothing serves.
    case busy(String)
    /// It started, failed, and the old generation serves again.
    case rolledBack(String)
    /// The deployment has failed.
    case deploymentFailed(String)

    public var message: String {
        switch self {
        case .invalid(let m), .busy(let m), .rolledBack(let m), .deploymentFailed(let m): return m
        }
    }
}

/// One resize as it happened.
public struct ResizeEvent: Sendable {
    public var generation: UInt64
    public var fromRanks: Int
    public var toRanks: Int
    /// "committed", "rolled_back" or "noop".
    public var outcome: String
    public var error: String?
    /// Phase name → seconds (coordinator phases, then the slowest rank's engine phases).
    public var phases: [(String, Double)]
    public var totalSeconds: Double
    public var bytesMoved: Int
    public var migratedRequests: Int
    /// Expert slots checked against the checkpoint's checksums after the switch, the
    /// mismatches, and logical experts left without a routable slot.
    public var expertsChecked: Int = 0
    public var expertMismatches: Int = 0
    public var unroutableExperts: Int = 0
}

/// How the coordinator starts and stops engine cores for resizes (the launcher's side).
public struct ElasticHooks: Sendable {
    public var maxRanks: Int
    /// Bound on each resize phase before it rolls back.
    public var phaseTimeout: Duration
    /// Starts engine `engineId` joining generation `generation` as rank `rank` of `worldSize`,
    /// with a KV cache of `kvCacheBytes`.
    public var launch: @Sendable (_ engineId: String, _ rank: Int, _ worldSize: Int, _ generation: UInt64,
                                  _ kvCacheBytes: UInt64) throws -> Void
    /// Stops engine `engineId`'s process (after it left, or when its resize rolled back).
    public var stop: @Sendable (_ engineId: String) -> Void
    /// A fault a test injects (`EBB_FAULT`); the coordinator acts on its `launch` phase,
    /// the engine cores on the others.
    public var fault: FaultInjection?

    public init(maxRanks: Int, phaseTimeout: Duration,
                launch: @escaping @Sendable (String, Int, Int, UInt64, UInt64) throws -> Void,
                stop: @escaping @Sendable (String) -> Void, fault: FaultInjection?) {
        self.maxRanks = maxRanks
        self.phaseTimeout = phaseTimeout
        self.launch = launch
        self.stop = stop
        self.fault = fault
    }
}

/// Work a resize's actions leave for outside the coordinator's lock.
enum ResizeWork {
    case launch(ResizeMachine.Plan, [ResizeMachine.Launch], kvCacheBytes: UInt64)
    case stop([String])
    /// The resize ended: answer the caller, forget rolled-back joiners' slots.
    case complete(ResizeTicket?, Result<ResizeEvent, ResizeError>, forget: [String])
}

extension Coordinator {
    /// Resizing is possible once `hooks` are set (serve with --enable-elastic-ep).
    public func enableElastic(_ hooks: ElasticHooks) {
        lock.withLock { elasticHooks = hooks }
    }

    public var isResizing: Bool { lock.withLock { resize != nil } }

    public var resizeEvents: [ResizeEvent] { lock.withLock { resizeHistory } }

    public var resizeOutcomeCounts: [String: Int] { lock.withLock { resizeCounts } }

    /// Resizes the deployment; returns when the new generation serves (or nothing changed),
    /// throws `ResizeError` otherwise (after rolling back to the old generation). The steps
    /// are `ResizeMachine`'s; this runs its actions and feeds it what happens.
    public func resize(_ target: ResizeTarget, drainTimeout: Double? = nil) async throws -> ResizeEvent {
        try await beginResize(target, drainTimeout: drainTimeout, operationId: nil).value()
    }

    /// Starts a resize and returns its operation at once (for orchestrators: poll it with
    /// `operation(_:)`). An `operationId` already known returns that operation, and a size a
    /// running resize already targets returns the running one: neither resizes twice.
    /// Throws `ResizeError` when the resize cannot start.
    public func startResize(_ target: ResizeTarget, drainTimeout: Double? = nil, operationId: String? = nil) throws -> ResizeOperation {
        let ticket = try beginResize(target, drainTimeout: drainTimeout, operationId: operationId)
        guard let op = operation(ticket.operationId) else { throw ResizeError.invalid("operation \(ticket.operationId) was forgotten") }
        return op
    }

    /// Waits for operation `id` to end: its event, or its `ResizeError`.
    public func result(of id: String) async throws -> ResizeEvent {
        guard let ticket = lock.withLock({ tickets[id] }) else { throw ResizeError.invalid("no operation '\(id)'") }
        return try await ticket.value()
    }

    /// An operation by id, with its phases so far (nil if unknown).
    public func operation(_ id: String) -> ResizeOperation? {
        lock.withLock {
            guard var op = operations[id] else { return nil }
            if !op.isFinished, let machine = resize, resizeTicket?.operationId == id {
                op.phases = machine.phasesSoFar(now: .now)
            }
            return op
        }
    }

    /// What resizing to `target` would do (which ranks retire), without doing it.
    public func plan(_ target: ResizeTarget) throws -> ResizePlan {
        try lock.withLock {
            let members = membership.members
            guard let (keep, joining) = try validateLocked(target) else {
                return ResizePlan(fromRanks: members.count, toRanks: members.count, retiringRanks: [], retiringEngines: [], joining: 0)
            }
            let retiring = members.indices.filter { !keep.contains(members[$0]) }
            return ResizePlan(fromRanks: members.count, toRanks: keep.count + joining, retiringRanks: retiring,
                              retiringEngines: retiring.map { members[$0] }, joining: joining)
        }
    }

    /// Claims and starts a resize (or finds the one the request repeats).
    private func beginResize(_ target: ResizeTarget, drainTimeout: Double?, operationId: String?) throws -> ResizeTicket {
        let (ticket, started): (ResizeTicket, Bool) = try lock.withLock {
            if let id = operationId, let known = tickets[id] { return (known, false) }
            if case .size(let m) = target, let running = resize, running.plan.members.count == m, let t = resizeTicket {
                return (t, false)
            }
            let id = operationId ?? "resize-\(UUID().uuidString.lowercased().prefix(12))"
            let n = membership.members.count
            guard let (plan, timeouts) = try claimResizeLocked(target, drainTimeout: drainTimeout) else {
                let event = ResizeEvent(generation: membership.generation, fromRanks: n, toRanks: n, outcome: "noop", error: nil,
                                        phases: [], totalSeconds: 0, bytesMoved: 0, migratedRequests: 0)
                recordLocked(event)
                let ticket = ResizeTicket(operationId: id)
                let now = Date().timeIntervalSince1970
                rememberLocked(ResizeOperation(id: id, target: target, fromRanks: n, toRanks: n, generation: membership.generation,
                                               state: "committed", createdUnix: now, finishedUnix: now), ticket)
                ticket.complete(.success(event))
                return (ticket, false)
            }
            let ticket = ResizeTicket(operationId: id)
            resizeTicket = ticket
            resizeStarted = .now
            resizeReports = [:]
            rememberLocked(ResizeOperation(id: id, target: target, fromRanks: n, toRanks: plan.members.count, generation: plan.generation,
                                           state: "preparing", createdUnix: Date().timeIntervalSince1970), ticket)
            log("resize to generation \(plan.generation): \(plan.oldMembers.count) → \(plan.members.count) ranks (joining \(plan.joining), leaving \(plan.leaving))")
            let (machine, actions) = ResizeMachine.start(plan, timeouts: timeouts, now: .now)
            resize = machine
            runResizeLocked(actions)
            return (ticket, true)
        }
        if started {
            // The clock the machine's timeouts run on while this resize is open.
            Task { [weak self] in
                while let self, self.isResizing {
                    try? await Task.sleep(for: .milliseconds(50))
                    self.resizeEvent(.tick)
                }
            }
            flushResizeWork()
        }
        return ticket
    }

    /// Keeps an operation (the last 100) and its ticket.
    private func rememberLocked(_ op: ResizeOperation, _ ticket: ResizeTicket) {
        operations[op.id] = op
        tickets[op.id] = ticket
        operationOrder.append(op.id)
        while operationOrder.count > 100 {
            let old = operationOrder.removeFirst()
            operations.removeValue(forKey: old)
            tickets.removeValue(forKey: old)
        }
    }

    /// Feeds the running resize one event and runs what it asks for.
    func resizeEvent(_ event: ResizeMachine.Event) {
        lock.withLock { resizeLocked(event) }
        flushResizeWork()
    }

    /// Feeds the running resize one event (under the lock); work for outside the lock waits in
    /// `resizeWork` until the caller flushes it.
    func resizeLocked(_ event: ResizeMachine.Event) {
        guard var machine = resize else { return }
        var actions = machine.handle(event, now: .now)
        if event == .tick, machine.phase == .drain,
           machine.leaving.allSatisfy({ router.liveCount(on: $0) == 0 }) {
            actions += machine.handle(.leavingIdle, now: .now)
        }
        resize = machine
        runResizeLocked(actions)
    }

    /// Runs the actions that change the coordinator's state here, under the lock; queues the
    /// rest (processes, the caller's answer) in `resizeWork`.
    private func runResizeLocked(_ actions: [ResizeMachine.Action]) {
        guard let machine = resize else { return }
        let plan = machine.plan
        for action in actions {
            switch action {
            case .launch(let launches):
                let kv = plan.oldMembers.compactMap { membership.engines[$0]?.ready?.kvCacheBytes }.first ?? 0
                resizeWork.append(.launch(plan, launches, kvCacheBytes: kv))
            case .sendReconfigure:
                var m = Ebb_Control_V1_Reconfigure()
                m.generation = plan.generation
                m.members = plan.members
                m.union = plan.union
                m.oldWorldSize = UInt32(plan.oldMembers.count)
                m.timeoutSeconds = machine.timeouts.phase.seconds
                // The ranks vote on it in their step sync: wake them if they sleep.
                if let start = waves.dispatch() { membership.broadcast(.startWave(.with { $0.wave = start })) }
                for id in plan.union { membership.send(.reconfigure(m), to: id) }
            case .switchGeneration:
                if let id = resizeTicket?.operationId { operations[id]?.state = "committing" }
                // Under the lock, before any request a leaving rank hands back is seen.
                membership.switchTo(plan.generation, members: plan.members)
                for id in plan.joining { membership.engines[id]?.accepting = true }
                for id in plan.leaving { membership.engines[id]?.released = true }
            case .abort(let reason):
                for id in plan.oldMembers {
                    membership.send(.abortReconfigure(.with { a in
                        a.generation = plan.generation
                        a.reason = reason
                    }), to: id)
                }
            case .restoreOldGeneration:
                rendezvous.abandon(generation: plan.generation)
                for id in plan.joining { membership.engines[id]?.released = true }
                for id in plan.leaving { membership.engines[id]?.accepting = true }
            case .stop(let ids):
                resizeWork.append(.stop(ids))
            case .finished(let outcome):
                resize = nil
                let ticket = resizeTicket
                resizeTicket = nil
                if let id = ticket?.operationId {
                    operations[id]?.phases = machine.phases
                    operations[id]?.finishedUnix = Date().timeIntervalSince1970
                    switch outcome {
                    case .committed: operations[id]?.state = "committed"
                    case .rolledBack(let reason):
                        operations[id]?.state = failure == nil ? "rolled_back" : "failed"
                        operations[id]?.error = reason
                    }
                }
                switch outcome {
                case .committed:
                    let event = committedEventLocked(machine)
                    resizeWork.append(.complete(ticket, .success(event), forget: []))
                case .rolledBack(let reason):
                    let event = ResizeEvent(generation: plan.generation, fromRanks: plan.oldMembers.count, toRanks: plan.members.count,
                                            outcome: "rolled_back", error: reason, phases: machine.phases,
                                            totalSeconds: (ContinuousClock.now - resizeStarted).seconds, bytesMoved: 0, migratedRequests: 0)
                    recordLocked(event)
                    log("resize to generation \(plan.generation) rolled back: \(reason)")
                    let error = ResizeError.rolledBack("resize to \(plan.members.count) ranks failed and was rolled back: \(reason)")
                    resizeWork.append(.complete(ticket, .failure(error), forget: plan.joining))
                }
            }
        }
    }

    /// Runs the work resizes queued for outside the lock (launches, stops, answers).
    func flushResizeWork() {
        let (work, hooks) = lock.withLock { () -> ([ResizeWork], ElasticHooks?) in
            let w = resizeWork
            resizeWork = []
            return (w, elasticHooks)
        }
        for item in work {
            switch item {
            case .launch(let plan, let launches, let kv):
                Task { [self] in
                    do {
                        switch hooks?.fault?.action(at: "launch", generation: plan.generation) {
                        case .fail?: throw EbbError(.internal, "injected fault at scale.launch")
                        case .pause(let d)?: try await Task.sleep(for: d)
                        case nil: break
                        }
                        try await onOwnThread("ebb-launch") {
                            for l in launches {
                                try hooks?.launch(l.engine, l.rank, plan.members.count, plan.generation, kv)
                            }
                        }
                        resizeEvent(.launched)
                    } catch {
                        resizeEvent(.launchFailed((error as? EbbError)?.message ?? "\(error)"))
                    }
                }
            case .stop(let ids):
                for id in ids { hooks?.stop(id) }
            case .complete(let ticket, let result, let forget):
                let actions: [RankRecovery.Action] = lock.withLock {
                    for id in forget { membership.engines.removeValue(forKey: id) }
                    // A rank lost during the resize waited for it to end.
                    return recovery?.isRecovering == true ? recoveryLocked(.resizeEnded, now: .now) : []
                }
                ticket?.complete(result)
                performOutside(actions)
            }
        }
    }

    // MARK: Steps

    /// Validates the target and records the resize's plan; nil when there is nothing to do.
    private func claimResizeLocked(_ target: ResizeTarget, drainTimeout: Double?) throws
        -> (ResizeMachine.Plan, ResizeMachine.Timeouts)? {
        guard elasticHooks != nil else { throw ResizeError.invalid("elastic EP is off: start `ebb serve` with --enable-elastic-ep") }
        if let failure { throw ResizeError.deploymentFailed("the deployment has failed: \(failure.message)") }
        guard resize == nil else { throw ResizeError.busy("a resize is already running") }
        guard recovery?.isRecovering != true else {
            throw ResizeError.busy("the deployment is recovering from a lost rank; try again when it serves")
        }
        guard let (keep, joining) = try validateLocked(target), let hooks = elasticHooks else { return nil }
        let members = membership.members
        let generation = membership.claimGeneration()
        recovery?.noteGeneration(generation)
        let plan = ResizeMachine.Plan(generation: generation, oldMembers: members, members: keep + membership.newEngineIds(joining))
        for id in plan.leaving { membership.engines[id]?.accepting = false }
        for id in plan.joining { membership.engines[id] = Membership.Engine(accepting: false) }
        let drain = drainTimeout.flatMap { $0 > 0 ? Duration.milliseconds(Int64($0 * 1000)) : nil }
        return (plan, ResizeMachine.Timeouts(drain: drain, phase: hooks.phaseTimeout))
    }

    /// Checks `target` against the deployment: the members that stay (in rank order) and how
    /// many join; nil when the deployment already has that size.
    private func validateLocked(_ target: ResizeTarget) throws -> (keep: [String], joining: Int)? {
        guard let hooks = elasticHooks else {
            throw ResizeError.invalid("elastic EP is off: start `ebb serve` with --enable-elastic-ep")
        }
        if let failure { throw ResizeError.deploymentFailed("the deployment has failed: \(failure.message)") }
        let members = membership.members
        guard !members.isEmpty else { throw ResizeError.busy("every engine core is lost: nothing to resize") }
        let n = members.count
        let keep: [String]
        var joining = 0
        switch target {
        case .size(let m):
            guard m >= 1 else { throw ResizeError.invalid("new_data_parallel_size must be at least 1, got \(m)") }
            guard m <= hooks.maxRanks else {
                throw ResizeError.invalid("new_data_parallel_size \(m) is above --max-data-parallel-size \(hooks.maxRanks)")
            }
            if m == n { return nil }
            keep = Array(members.prefix(m))
            joining = max(0, m - n)
        case .remove(let ranks):
            guard !ranks.isEmpty, Set(ranks).count == ranks.count, ranks.allSatisfy({ $0 >= 0 && $0 < n }) else {
                throw ResizeError.invalid("remove_ranks must list distinct ranks in 0..<\(n)")
            }
            guard ranks.count < n else { throw ResizeError.invalid("remove_ranks would remove every rank") }
            keep = members.enumerated().filter { !ranks.contains($0.offset) }.map(\.element)
        }
        let (perRank, experts) = membership.expertShape
        guard perRank > 0 else {
            throw ResizeError.invalid("resizing needs expert parallelism with EPLB (--enable-elastic-ep)")
        }
        let size = keep.count + joining
        guard size * perRank >= experts else {
            let minimum = (experts + perRank - 1) / perRank
            throw ResizeError.invalid("\(size) ranks of \(perRank) expert slots cannot hold \(experts) experts; at least \(minimum) ranks are needed")
        }
        return (keep, joining)
    }

    /// A rank's result for the running resize.
    func resultLocked(_ r: Ebb_Control_V1_ReconfigureResult, from engine: String, problems: inout [String]) {
        guard let machine = resize, r.generation == machine.plan.generation, machine.plan.oldMembers.contains(engine) else {
            if r.generation != membership.generation { problems.append("a reconfiguration result for generation \(r.generation)") }
            return
        }
        resizeReports[engine] = r
        resizeLocked(.result(engine: engine, committed: r.committed, error: r.error))
    }

    /// Requests a leaving rank handed back: each continues on a member, same stream.
    func migratedLocked(_ m: Ebb_Control_V1_Migrated, from engine: String, problems: inout [String],
                        events: inout [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)]) {
        guard membership.engines[engine]?.released == true else {
            problems.append("migrated requests while still a member")
            return
        }
        for x in m.requests {
            guard let t = router.tracked(x.requestID), t.engine == engine else { continue }
            guard continueLocked(x.requestID, rng: { _ in x.rngState }, outputs: x.outputTokenIds.map { Int($0) }) else {
                router.remove(x.requestID)
                events.append((t.continuation, .error(EbbError(.internal, "no rank left to continue the request")), true))
                continue
            }
            resize?.migrated += 1
        }
        if m.generation == resize?.plan.generation { resizeLocked(.handedBack(engine)) }
    }

    /// The committed resize's event: coordinator phases, then the slowest old rank's engine phases.
    private func committedEventLocked(_ machine: ResizeMachine) -> ResizeEvent {
        let plan = machine.plan
        var enginePhases: [String: Double] = [:]
        var bytes = 0, checked = 0, mismatches = 0, unroutable = 0
        for r in resizeReports.values {
            bytes += Int(r.bytesSent)
            checked += Int(r.expertsChecked)
            mismatches += Int(r.expertMismatches)
            unroutable = max(unroutable, Int(r.unroutableExperts))
            for p in r.phases { enginePhases[p.phase] = max(enginePhases[p.phase] ?? 0, p.seconds) }
        }
        let order = ["communicator", "weights", "exchange", "warmup", "commit"]
        let all = machine.phases + order.compactMap { k in enginePhases[k].map { ("rank:" + k, $0) } }
        // Joiners checked their experts before saying ready.
        for r in plan.joining.compactMap({ membership.engines[$0]?.ready }) {
            checked += Int(r.expertsChecked)
            mismatches += Int(r.expertMismatches)
        }
        let event = ResizeEvent(generation: plan.generation, fromRanks: plan.oldMembers.count, toRanks: plan.members.count,
                                outcome: "committed", error: nil, phases: all,
                                totalSeconds: (ContinuousClock.now - resizeStarted).seconds, bytesMoved: bytes,
                                migratedRequests: machine.migrated, expertsChecked: checked, expertMismatches: mismatches,
                                unroutableExperts: unroutable)
        recordLocked(event)
        log("resize to generation \(plan.generation) committed in \(String(format: "%.2f", event.totalSeconds)) s: " +
            all.map { "\($0.0) \(String(format: "%.3f", $0.1)) s" }.joined(separator: ", "))
        return event
    }

    private func recordLocked(_ event: ResizeEvent) {
        resizeHistory.append(event)
        if resizeHistory.count > 20 { resizeHistory.removeFirst(resizeHistory.count - 20) }
        resizeCounts[event.outcome, default: 0] += 1
    }
}

