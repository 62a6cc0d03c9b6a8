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

/// A resize in progress.
struct ResizeState {
    var generation: UInt64
    var oldMembers: [String]
    var members: [String]
    var union: [String]
    var joining: Set<String>
    var leaving: Set<String>
    var results: [String: Ebb_Control_V1_ReconfigureResult] = [:]
    var committed = false
    var joinerFailure: String?
    var migrated = 0
    /// Whether the ranks were told (only then do they have anything to roll back).
    var reconfigureSent = false
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
    /// throws `ResizeError` otherwise (after rolling back to the old generation).
    public func resize(_ target: ResizeTarget, drainTimeout: Double? = nil) async throws -> ResizeEvent {
        let start = ContinuousClock.now
        var phases: [(String, Double)] = []
        func phase<T>(_ name: String, _ body: () async throws -> T) async rethrows -> T {
            let t0 = ContinuousClock.now
            defer { phases.append((name, (ContinuousClock.now - t0).seconds)) }
            return try await body()
        }
        let claim = try claimResize(target)
        guard let state = claim else {
            let n = worldSize
            let event = ResizeEvent(generation: generation, fromRanks: n, toRanks: n, outcome: "noop", error: nil, phases: [],
                                    totalSeconds: 0, bytesMoved: 0, migratedRequests: 0)
            record(event)
            return event
        }
        guard let hooks = lock.withLock({ elasticHooks }) else { throw ResizeError.invalid("elastic EP is off") }
        log("resize to generation \(state.generation): \(state.oldMembers.count) → \(state.members.count) ranks (joining \(state.joining.sorted()), leaving \(state.leaving.sorted()))")
        do {
            if let drainTimeout, drainTimeout > 0, !state.leaving.isEmpty {
                await phase("drain") { await drain(state.leaving, timeout: drainTimeout) }
            }
            let kv = lock.withLock { state.oldMembers.compactMap { engines[$0]?.ready?.kvCacheBytes }.first ?? 0 }
            try await phase("launch") {
                switch hooks.fault?.action(at: "launch", generation: state.generation) {
                case .fail?: throw EbbError(.internal, "injected fault at scale.launch")
                case .pause(let d)?: try await Task.sleep(for: d)
                case nil: break
                }
                for id in state.union.suffix(state.joining.count) {
                    guard let rank = state.members.firstIndex(of: id) else { continue }
                    try hooks.launch(id, rank, state.members.count, state.generation, kv)
                }
            }
            try await phase("register") {
                try await waitFor("joining engine cores to connect", timeout: hooks.phaseTimeout) { s in
                    state.joining.allSatisfy { s.engines[$0]?.connected == true }
                }
            }
            try await phase("prepare+commit") {
                sendReconfigure(state, timeout: hooks.phaseTimeout)
                try await waitFor("every rank to prepare and switch", timeout: hooks.phaseTimeout * 3) { s in
                    s.resize.map { r in r.oldMembers.allSatisfy { r.results[$0] != nil || s.recovery?.isFenced($0) == true } } ?? true
                }
            }
            let (committed, failureText) = lock.withLock { () -> (Bool, String?) in
                guard let r = resize else { return (generationValue == state.generation, nil) }
                let text = r.oldMembers.compactMap { r.results[$0].flatMap { $0.committed ? nil : $0.error } }.first
                return (r.committed, text ?? r.joinerFailure ?? "a rank did not commit")
            }
            guard committed else { throw EbbError(.internal, failureText ?? "the resize did not commit") }
        } catch {
            var reason = (error as? EbbError)?.message ?? "\(error)"
            let (rolledBack, rankError) = await rollBack(state, reason: reason, hooks: hooks)
            if let rankError, !reason.contains(rankError) { reason += "; the ranks reported: \(rankError)" }
            if !rolledBack {
                // A rank committed after all: the new generation serves.
                return finishCommitted(state, phases: phases, start: start, hooks: hooks)
            }
            let event = ResizeEvent(generation: state.generation, fromRanks: state.oldMembers.count, toRanks: state.members.count,
                                    outcome: "rolled_back", error: reason, phases: phases,
                                    totalSeconds: (ContinuousClock.now - start).seconds, bytesMoved: 0, migratedRequests: 0)
            record(event)
            log("resize to generation \(state.generation) rolled back: \(reason)")
            throw ResizeError.rolledBack("resize to \(state.members.count) ranks failed and was rolled back: \(reason)")
        }
        return finishCommitted(state, phases: phases, start: start, hooks: hooks)
    }

    // MARK: Steps

    /// Validates the target and records the resize; nil when there is nothing to do.
    private func claimResize(_ target: ResizeTarget) throws -> ResizeState? {
        try lock.withLock {
            guard let hooks = elasticHooks else {
                throw ResizeError.invalid("elastic EP is off: start `ebb serve` with --enable-elastic-ep")
            }
            if let failure { throw ResizeError.deploymentFailed("the deployment has failed: \(failure.message)") }
            guard resize == nil else { throw ResizeError.busy("a resize is already running") }
            guard recovery?.isRecovering != true else {
                throw ResizeError.busy("the deployment is recovering from a lost rank; try again when it serves")
            }
            guard !members.isEmpty else { throw ResizeError.busy("every engine core is lost: nothing to resize") }
            let n = members.count
            var next: [String]
            switch target {
            case .size(let m):
                guard m >= 1 else { throw ResizeError.invalid("new_data_parallel_size must be at least 1, got \(m)") }
                guard m <= hooks.maxRanks else {
                    throw ResizeError.invalid("new_data_parallel_size \(m) is above --max-data-parallel-size \(hooks.maxRanks)")
                }
                if m == n { return nil }
                if m > n {
                    next = members
                    for _ in n..<m {
                        next.append("engine-\(nextEngineNumber)")
                        nextEngineNumber += 1
                    }
                } else {
                    next = Array(members.prefix(m))
                }
            case .remove(let ranks):
                guard !ranks.isEmpty, Set(ranks).count == ranks.count, ranks.allSatisfy({ $0 >= 0 && $0 < n }) else {
                    throw ResizeError.invalid("remove_ranks must list distinct ranks in 0..<\(n)")
                }
                guard ranks.count < n else { throw ResizeError.invalid("remove_ranks would remove every rank") }
                next = members.enumerated().filter { !ranks.contains($0.offset) }.map(\.element)
            }
            let ready = members.compactMap { engines[$0]?.ready }
            let perRank = Int(ready.first?.slotsPerRank ?? 0), experts = Int(ready.first?.numExperts ?? 0)
            guard perRank > 0 else {
                throw ResizeError.invalid("resizing needs expert parallelism with EPLB (--enable-elastic-ep)")
            }
            guard next.count * perRank >= experts else {
                let minimum = (experts + perRank - 1) / perRank
                throw ResizeError.invalid("\(next.count) ranks of \(perRank) expert slots cannot hold \(experts) experts; at least \(minimum) ranks are needed")
            }
            let joining = next.filter { !members.contains($0) }
            let leaving = members.filter { !next.contains($0) }
            lastAttemptedGeneration = max(lastAttemptedGeneration, generationValue) + 1
            recovery?.noteGeneration(lastAttemptedGeneration)
            let state = ResizeState(generation: lastAttemptedGeneration, oldMembers: members, members: next,
                                    union: members + joining, joining: Set(joining), leaving: Set(leaving))
            resize = state
            for id in leaving { engines[id]?.accepting = false }
            for id in joining { engines[id] = EngineSlot(accepting: false) }
            return state
        }
    }

    /// Waits until the leaving ranks hold no request or `timeout` seconds pass (vLLM's drain).
    private func drain(_ leaving: Set<String>, timeout: Double) async {
        let end = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < end {
            if lock.withLock({ leaving.allSatisfy { engines[$0]?.live.isEmpty ?? true } }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Polls `condition` under the lock; throws on timeout, deployment failure or a joiner failure.
    private func waitFor(_ what: String, timeout: Duration, _ condition: (Coordinator) -> Bool) async throws {
        let end = ContinuousClock.now + timeout
        while true {
            let (ok, problem): (Bool, String?) = lock.withLock {
                (condition(self), failure?.message ?? resize?.joinerFailure)
            }
            if ok { return }
            if let problem { throw EbbError(.io, problem) }
            if ContinuousClock.now >= end { throw EbbError(.io, "timed out after \(timeout) waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private func sendReconfigure(_ state: ResizeState, timeout: Duration) {
        lock.withLock {
            var m = Ebb_Control_V1_Reconfigure()
            m.generation = state.generation
            m.members = state.members
            m.union = state.union
            m.oldWorldSize = UInt32(state.oldMembers.count)
            m.timeoutSeconds = timeout.seconds
            // The ranks vote on it in their step sync: wake them if they sleep.
            if let start = waves.dispatch() { broadcastLocked(.startWave(.with { $0.wave = start })) }
            resize?.reconfigureSent = true
            for id in state.union { engines[id]?.outbound?.yield(.with { $0.reconfigure = m }) }
        }
    }

    /// A rank's result. When every old member committed, the new generation takes over here,
    /// under the lock, before any request a leaving rank hands back is seen.
    func resultLocked(_ r: Ebb_Control_V1_ReconfigureResult, from engine: String, problems: inout [String]) {
        guard var state = resize, r.generation == state.generation, state.oldMembers.contains(engine) else {
            if r.generation != generationValue { problems.append("a reconfiguration result for generation \(r.generation)") }
            return
        }
        state.results[engine] = r
        if r.committed && !state.committed {
            // One rank switched: they all did (the vote is collective).
            state.committed = true
            previousGeneration = generationValue
            generationValue = state.generation
            members = state.members
            for id in state.joining { engines[id]?.accepting = true }
            for id in state.leaving { engines[id]?.released = true }
        }
        resize = state
    }

    /// Requests a leaving rank handed back: each continues on a member, same stream.
    func migratedLocked(_ m: Ebb_Control_V1_Migrated, from engine: String, problems: inout [String],
                        events: inout [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)]) {
        guard engines[engine]?.released == true else {
            problems.append("migrated requests while still a member")
            return
        }
        for x in m.requests {
            guard var t = requests[x.requestID], t.engine == engine else { continue }
            engines[engine]?.live.remove(x.requestID)
            guard let target = chooseLocked() else {
                requests.removeValue(forKey: x.requestID)
                events.append((t.continuation, .error(EbbError(.internal, "no rank left to continue the request")), true))
                continue
            }
            t.engine = target
            requests[x.requestID] = t
            sendLocked(t.request, to: target, resume: (x.outputTokenIds.map { Int($0) }, x.rngState))
            resize?.migrated += 1
        }
    }

    /// Undoes a resize that did not commit. Returns false if it turned out to have committed,
    /// and the first error an old rank reported.
    private func rollBack(_ state: ResizeState, reason: String, hooks: ElasticHooks) async -> (Bool, String?) {
        let told = lock.withLock { resize?.reconfigureSent ?? false }
        lock.withLock {
            for id in state.oldMembers where told {
                engines[id]?.outbound?.yield(.with {
                    $0.abortReconfigure = .with { a in
                        a.generation = state.generation
                        a.reason = reason
                    }
                })
            }
        }
        // The old ranks acknowledge at their next step boundary. When a rank was lost the
        // survivors may be blocked in a collective with it until their recovery releases
        // them: wait a little, the recovery settles the rest.
        let lostDuring = lock.withLock { state.union.contains { recovery?.isFenced($0) == true } }
        let end = ContinuousClock.now + (lostDuring ? min(hooks.phaseTimeout, .seconds(5)) : hooks.phaseTimeout)
        while told && ContinuousClock.now < end {
            let (all, committed) = lock.withLock {
                (resize.map { r in r.oldMembers.allSatisfy { r.results[$0] != nil || recovery?.isFenced($0) == true } } ?? true,
                 resize?.committed ?? false)
            }
            if committed { return (false, nil) }
            if all { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        let rankError: String? = lock.withLock {
            resize.flatMap { r in r.oldMembers.compactMap { r.results[$0]?.error }.first { !$0.isEmpty && $0 != "aborted by the coordinator" } }
        }
        let joiners: [String] = lock.withLock {
            if resize?.committed == true { return [] }
            for id in state.joining { engines[id]?.released = true }
            for id in state.leaving { engines[id]?.accepting = true }
            resize = nil
            return Array(state.joining)
        }
        if lock.withLock({ generationValue == state.generation }) { return (false, nil) }
        for id in joiners { hooks.stop(id) }
        lock.withLock {
            for id in joiners { engines.removeValue(forKey: id) }
        }
        return (true, rankError)
    }

    private func finishCommitted(_ state: ResizeState, phases: [(String, Double)], start: ContinuousClock.Instant,
                                 hooks: ElasticHooks) -> ResizeEvent {
        let final: ResizeState = lock.withLock {
            let s = resize ?? state
            resize = nil
            return s
        }
        // The slowest old rank's engine phases.
        var enginePhases: [String: Double] = [:]
        var bytes = 0, checked = 0, mismatches = 0, unroutable = 0
        for r in final.results.values {
            bytes += Int(r.bytesSent)
            checked += Int(r.expertsChecked)
            mismatches += Int(r.expertMismatches)
            unroutable = max(unroutable, Int(r.unroutableExperts))
            for p in r.phases { enginePhases[p.phase] = max(enginePhases[p.phase] ?? 0, p.seconds) }
        }
        let order = ["communicator", "weights", "exchange", "warmup", "commit"]
        let all = phases + order.compactMap { k in enginePhases[k].map { ("rank:" + k, $0) } }
        // Joiners checked their experts before saying ready.
        let joined = lock.withLock { final.joining.compactMap { engines[$0]?.ready } }
        for r in joined {
            checked += Int(r.expertsChecked)
            mismatches += Int(r.expertMismatches)
        }
        for id in final.leaving { hooks.stop(id) }
        let event = ResizeEvent(generation: final.generation, fromRanks: final.oldMembers.count, toRanks: final.members.count,
                                outcome: "committed", error: nil, phases: all,
                                totalSeconds: (ContinuousClock.now - start).seconds, bytesMoved: bytes,
                                migratedRequests: final.migrated, expertsChecked: checked, expertMismatches: mismatches,
                                unroutableExperts: unroutable)
        record(event)
        log("resize to generation \(final.generation) committed in \(String(format: "%.2f", event.totalSeconds)) s: " +
            all.map { "\($0.0) \(String(format: "%.3f", $0.1)) s" }.joined(separator: ", "))
        return event
    }

    private func record(_ event: ResizeEvent) {
        let actions: [RankRecovery.Action] = lock.withLock {
            resizeHistory.append(event)
            if resizeHistory.count > 20 { resizeHistory.removeFirst(resizeHistory.count - 20) }
            resizeCounts[event.outcome, default: 0] += 1
            // A rank lost during the resize waited for it to end.
            return recovery?.isRecovering == true ? recoveryLocked(.resizeEnded, now: .now) : []
        }
        performOutside(actions)
    }
}

// MARK: Status

extension Coordinator {
    /// `GET /elastic_ep/status`: generation, ranks with their state and load, the placement
    /// summary, and the last resizes with their phase timings.
    public func elasticStatusJSON() -> JSONValue {
        lock.withLock {
            func num(_ x: Double) -> JSONValue { .number(x.isFinite ? x : 0) }
            var ranks: [JSONValue] = []
            var ids = members
            if let r = resize { ids += r.joining.sorted().filter { !ids.contains($0) } }
            for id in ids {
                let e = engines[id]
                let state: String
                if recovery?.isFenced(id) == true {
                    state = "lost"
                } else if resize?.leaving.contains(id) == true || e?.released == true {
                    state = "leaving"
                } else if resize?.joining.contains(id) == true && resize?.committed != true {
                    state = "joining"
                } else {
                    state = e?.ready != nil ? "serving" : "starting"
                }
                let load = e?.load ?? EngineStats()
                ranks.append(.orderedObject(keys: ["rank", "engine_id", "state", "pid", "running", "waiting", "kv_cache_usage", "requests_assigned"], values: [
                    "pid": e?.pid.map { .number(Double($0)) } ?? .null,
                    "rank": members.firstIndex(of: id).map { .number(Double($0)) } ?? .null,
                    "engine_id": .string(id), "state": .string(state),
                    "running": num(Double(load.running)), "waiting": num(Double(load.waiting)),
                    "kv_cache_usage": num(load.kvCacheUsage), "requests_assigned": num(Double(e?.assigned ?? 0)),
                ]))
            }
            let first = members.first.flatMap { engines[$0] }
            let eplb = first?.load.eplb ?? EPLBStats()
            let placement: JSONValue = .orderedObject(keys: ["num_experts", "slots_per_rank", "physical_slots", "rearrangements", "layer_balancedness"], values: [
                "num_experts": num(Double(first?.ready?.numExperts ?? 0)),
                "slots_per_rank": num(Double(first?.ready?.slotsPerRank ?? 0)),
                "physical_slots": num(Double(Int(first?.ready?.slotsPerRank ?? 0) * members.count)),
                "rearrangements": num(Double(eplb.rearrangements)),
                "layer_balancedness": .array(eplb.layerBalancedness.map(num)),
            ])
            let events: [JSONValue] = resizeHistory.suffix(10).map { ev in
                .orderedObject(keys: ["generation", "from", "to", "outcome", "error", "total_seconds", "bytes_moved", "migrated_requests",
                                      "experts_checked", "expert_mismatches", "unroutable_experts", "phases"], values: [
                    "experts_checked": num(Double(ev.expertsChecked)), "expert_mismatches": num(Double(ev.expertMismatches)),
                    "unroutable_experts": num(Double(ev.unroutableExperts)),
                    "generation": num(Double(ev.generation)), "from": num(Double(ev.fromRanks)), "to": num(Double(ev.toRanks)),
                    "outcome": .string(ev.outcome), "error": ev.error.map { .string($0) } ?? .null,
                    "total_seconds": num(ev.totalSeconds), "bytes_moved": num(Double(ev.bytesMoved)),
                    "migrated_requests": num(Double(ev.migratedRequests)),
                    "phases": .orderedObject(keys: ev.phases.map(\.0), values: Dictionary(ev.phases.map { ($0.0, num($0.1)) }, uniquingKeysWith: { a, _ in a })),
                ])
            }
            return .orderedObject(keys: ["generation", "is_scaling", "is_recovering", "ranks", "placement", "events", "failures"], values: [
                "generation": num(Double(generationValue)), "is_scaling": .bool(resize != nil),
                "is_recovering": .bool(recovery?.isRecovering ?? false), "failures": failuresJSONLocked(),
                "ranks": .array(ranks), "placement": placement, "events": .array(events),
            ])
        }
    }
}
