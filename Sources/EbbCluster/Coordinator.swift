import EbbControl
import EbbCore
import EbbEngine
import Foundation
import GRPCCore

/// The coordinator inside `ebb serve`: the engine cores' control-plane server and, for the
/// HTTP front end, the engine (`EngineClient`) that spreads requests over the ranks.
///
/// It registers engine cores (hello → welcome … ready), sends each request to the rank
/// with the lowest load, streams the rank's outputs back to the request, keeps the waves
/// (see `CoordinatorWaves`), serves the rendezvous store, notices ranks that stop
/// answering, and drives resizes (see `Coordinator+Resize.swift`). Engines are known by
/// their id; a generation's `members` list gives their ranks. A message that is malformed
/// or out of order is logged and dropped (or, for a bad hello, answered with `rejected`);
/// it never takes the coordinator down.
public final class Coordinator: EngineClient, ControlCoordinatorService.SimpleServiceProtocol, @unchecked Sendable {
    /// A rank that sends nothing (no outputs, no heartbeat) for this long is dead.
    public let heartbeatTimeout: Duration

    let lock = NSLock()
    var generationValue: UInt64
    /// Engine ids of the current generation, in rank order.
    var members: [String]
    var engines: [String: EngineSlot] = [:]
    var requests: [String: Tracked] = [:]
    var waves = CoordinatorWaves()
    var failure: EbbError?
    var shuttingDown = false
    /// The running resize, its caller, when it began, its old ranks' results, and the work
    /// its actions left for outside the lock.
    var resize: ResizeMachine?
    var resizeWaiter: CheckedContinuation<ResizeEvent, any Error>?
    var resizeStarted = ContinuousClock.now
    var resizeReports: [String: Ebb_Control_V1_ReconfigureResult] = [:]
    var resizeWork: [ResizeWork] = []
    var resizeHistory: [ResizeEvent] = []
    var resizeCounts: [String: Int] = [:]
    var elasticHooks: ElasticHooks?
    /// The generation before the current one, and the highest one a resize attempted (a
    /// rolled-back attempt's number is never reused: its rendezvous keys are stale).
    var previousGeneration: UInt64 = 0
    var lastAttemptedGeneration: UInt64 = 0
    var nextEngineNumber: Int
    /// The ranks step in lockstep over a data plane (expert parallelism).
    public let expertParallel: Bool
    /// Surviving lost ranks (built once the ranks are ready; see `RankRecovery`).
    var recovery: RankRecovery?
    var recoveryTimeout: Duration = .seconds(60)
    var resubmittedCount = 0
    var lastLimits = (maxModelLen: 0, vocabSize: 0)
    /// Per lost engine: when it was noticed (Unix seconds) and how many requests moved.
    var lossRecords: [String: (unixTime: Double, resubmitted: Int)] = [:]
    /// Per recovery generation: the slowest survivor's seconds in each phase, and the expert
    /// slots the survivors checked against the checkpoint with the mismatches.
    var recoveryReports: [UInt64: (phases: [(String, Double)], checked: Int, mismatches: Int)] = [:]
    /// Kills a lost engine's process (so a hung one cannot come back).
    var fence: (@Sendable (String) -> Void)?
    /// Runs after the survivors serve (e.g. launches replacements).
    var afterRecovery: (@Sendable () -> Void)?
    let balancer = LoadBalancer()
    let store = RendezvousTable()
    let log: @Sendable (String) -> Void
    private let onFailure: @Sendable (EbbError) -> Void

    struct EngineSlot {
        var connected = false
        var ready: Ebb_Control_V1_Ready?
        var outbound: AsyncStream<ControlCoordinatorMessage>.Continuation?
        var load = EngineStats()
        var live: Set<String> = []
        var assigned = 0
        var lastSeen: ContinuousClock.Instant?
        /// New requests may go here (false while leaving, or before joining completes).
        var accepting = true
        /// Expected to disconnect (it left, or the resize that launched it rolled back).
        var released = false
        var pid: UInt32?
    }

    struct Tracked {
        var engine: String
        var continuation: AsyncStream<EngineEvent>.Continuation
        var request: EngineRequest
        /// Tokens streamed to the client so far (a request re-submitted after its rank was
        /// lost continues after them).
        var generated: [Int] = []
    }

    /// `engineIds[r]` is the id the engine core of rank r says hello with. `onFailure` is
    /// called once, when a rank dies or reports a failure.
    public init(generation: UInt64, engineIds: [String], heartbeatTimeout: Duration = .seconds(10), expertParallel: Bool = false,
                log: @escaping @Sendable (String) -> Void, onFailure: @escaping @Sendable (EbbError) -> Void) {
        self.expertParallel = expertParallel
        self.generationValue = generation
        self.members = engineIds
        self.nextEngineNumber = engineIds.count
        self.heartbeatTimeout = heartbeatTimeout
        for id in engineIds { engines[id] = EngineSlot() }
        self.log = log
        self.onFailure = onFailure
    }

    /// How lost ranks are fenced and what runs once the survivors serve.
    public func setRecoveryHooks(fence: @escaping @Sendable (String) -> Void, afterRecovery: (@Sendable () -> Void)? = nil,
                                 timeout: Duration = .seconds(60)) {
        lock.withLock {
            self.fence = fence
            self.afterRecovery = afterRecovery
            self.recoveryTimeout = timeout
        }
    }

    public var generation: UInt64 { lock.withLock { generationValue } }
    public var engineIds: [String] { lock.withLock { members } }
    public var worldSize: Int { lock.withLock { members.count } }

    // MARK: EngineClient

    /// The model's limits as the ranks report them (the last known ones while every rank
    /// is lost, so requests get 503, not a length error).
    public var maxModelLen: Int {
        lock.withLock {
            updateLimitsLocked()
            return lastLimits.maxModelLen
        }
    }

    public var vocabSize: Int {
        lock.withLock {
            updateLimitsLocked()
            return lastLimits.vocabSize
        }
    }

    func updateLimitsLocked() {
        let ready = members.compactMap { engines[$0]?.ready }
        if let n = ready.map({ Int($0.maxModelLen) }).min() { lastLimits.maxModelLen = n }
        if let n = ready.map({ Int($0.vocabSize) }).min() { lastLimits.vocabSize = n }
    }

    public var rankStats: [EngineStats] {
        lock.withLock {
            members.map { id in
                var s = engines[id]?.load ?? EngineStats()
                s.requestsAssigned = engines[id]?.assigned ?? 0
                return s
            }
        }
    }

    public var stats: EngineStats { EngineStats.total(rankStats) }

    /// What each rank of the current generation said when it became ready (nil until then).
    public var readyReports: [Ebb_Control_V1_Ready?] { lock.withLock { members.map { engines[$0]?.ready } } }

    public func submit(_ request: EngineRequest) -> AsyncStream<EngineEvent> {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream()
        let id = request.id
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.abort(id) }
        }
        let refusal: EbbError? = lock.withLock {
            if let failure { return failure }
            guard requests[id] == nil else { return EbbError(.invalidArgument, "duplicate request id '\(id)'") }
            guard let engine = chooseLocked() else {
                if recovery?.isRecovering == true || members.isEmpty {
                    return EbbError(.unavailable, "no engine core is serving (every rank was lost)")
                }
                return EbbError(.internal, "no engine core is ready")
            }
            requests[id] = Tracked(engine: engine, continuation: continuation, request: request)
            sendLocked(request, to: engine)
            return nil
        }
        if let refusal {
            continuation.yield(.error(refusal))
            continuation.finish()
        }
        return stream
    }

    /// The accepting member with the lowest load.
    func chooseLocked() -> String? {
        let loads = members.map { id -> LoadBalancer.RankLoad in
            let e = engines[id]
            return LoadBalancer.RankLoad(accepting: e?.ready != nil && e?.outbound != nil && e?.accepting == true,
                                         live: e?.live.count ?? 0, reported: e?.load ?? EngineStats())
        }
        return balancer.choose(loads).map { members[$0] }
    }

    /// Sends a request (or a resumed one) to `engine`, starting a wave first if the ranks sleep.
    func sendLocked(_ request: EngineRequest, to engine: String, resume: (outputs: [Int], rng: Data)? = nil) {
        engines[engine]?.live.insert(request.id)
        engines[engine]?.assigned += 1
        if let start = waves.dispatch() { broadcastLocked(.startWave(.with { $0.wave = start })) }
        let add = ProtoMapping.encode(request, wave: waves.wave, generation: generationValue)
        if let resume {
            engines[engine]?.outbound?.yield(.with {
                $0.resumeRequest = .with { r in
                    r.request = add
                    r.outputTokenIds = resume.outputs.map { Int32(clamping: $0) }
                    r.rngState = resume.rng
                }
            })
        } else {
            engines[engine]?.outbound?.yield(.with { $0.addRequest = add })
        }
    }

    public func abort(_ id: String) {
        lock.withLock {
            guard let t = requests[id] else { return }
            engines[t.engine]?.outbound?.yield(.with {
                $0.abort = .with { a in
                    a.requestID = id
                    a.generation = generationValue
                }
            })
        }
    }

    /// The rank a request runs on (nil once it finished).
    public func rank(of requestId: String) -> Int? {
        lock.withLock { requests[requestId].flatMap { members.firstIndex(of: $0.engine) } }
    }

    // MARK: Lifecycle

    /// Waits until every rank is ready; throws the failure that came first, or a timeout.
    public func waitUntilReady(timeout: Duration) async throws {
        let end = ContinuousClock.now + timeout
        while true {
            let (ready, failed) = lock.withLock { (members.allSatisfy { engines[$0]?.ready != nil }, failure) }
            if let failed { throw failed }
            if ready { return }
            if ContinuousClock.now >= end {
                let missing = lock.withLock { members.indices.filter { engines[members[$0]]?.ready == nil } }
                throw EbbError(.io, "engine cores \(missing) did not become ready within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Asks every engine core to exit; disconnections after this are not failures.
    public func shutdown(reason: String) {
        lock.withLock {
            shuttingDown = true
            broadcastAllLocked(.shutdown(.with { $0.reason = reason }))
            for id in engines.keys { engines[id]?.outbound?.finish() }
        }
    }

    /// Declares the deployment failed: every open request gets the error, `onFailure` runs once.
    public func fail(_ error: EbbError) {
        let (first, open): (Bool, [Tracked]) = lock.withLock {
            guard failure == nil, !shuttingDown else { return (false, []) }
            failure = error
            let open = Array(requests.values)
            requests = [:]
            for id in engines.keys { engines[id]?.live = [] }
            return (true, open)
        }
        guard first else { return }
        resizeEvent(.deploymentFailed(error.message))
        for t in open {
            t.continuation.yield(.error(error))
            t.continuation.finish()
        }
        log(error.message)
        onFailure(error)
    }

    public var failed: EbbError? { lock.withLock { failure } }

    /// Engine `id`'s process exited: expected after it left, a failed resize when it was
    /// joining, and the deployment's failure otherwise.
    public func engineExited(_ id: String, description: String) {
        let fatal: String? = lock.withLock {
            if engines[id]?.released ?? true { return nil }
            if resize?.isJoining(id) == true {
                resizeLocked(.joinerFailed("joining engine core \(id) \(description)"))
                return nil
            }
            return "engine core rank \(members.firstIndex(of: id).map(String.init) ?? id) \(description)"
        }
        flushResizeWork()
        if let fatal { rankLost(id, .processExited, message: fatal) }
    }

    /// Fails the deployment if a ready member has been silent longer than `heartbeatTimeout`.
    public func checkLiveness(now: ContinuousClock.Instant = .now) {
        let silent: Int? = lock.withLock {
            members.indices.first { i in
                guard let e = engines[members[i]], e.ready != nil, !e.released, let seen = e.lastSeen,
                      recovery?.isFenced(members[i]) != true else { return false }
                return now - seen > heartbeatTimeout
            }
        }
        if let silent {
            let id = lock.withLock { members[silent] }
            rankLost(id, .heartbeatTimeout, message: "engine core rank \(silent) stopped answering (no message for \(heartbeatTimeout))")
        }
        recoveryEvent(.tick, now: now)
    }

    // MARK: Control-plane service

    public func connect(request: RPCAsyncSequence<ControlEngineMessage, any Error>,
                        response: RPCWriter<ControlCoordinatorMessage>, context: ServerContext) async throws {
        var inbound = request.makeAsyncIterator()
        let first: ControlEngineMessage?
        do {
            first = try await inbound.next()
        } catch {
            log("control plane: a connection failed before its hello: \(error)")
            return
        }
        guard let first, case .hello(let hello)? = first.kind else {
            log("control plane: rejected a connection whose first message is not a hello")
            try? await response.write(.with { $0.rejected = .with { $0.reason = "the first message must be a hello" } })
            return
        }
        let (outbound, continuation) = AsyncStream<ControlCoordinatorMessage>.makeStream()
        let registered = register(hello, continuation)
        guard case .success(let worldSize) = registered else {
            if case .failure(let reason) = registered {
                log("control plane: rejected hello from '\(hello.engineID)' (rank \(hello.rank), generation \(hello.generation)): \(reason.message)")
                try? await response.write(.with { $0.rejected = .with { $0.reason = reason.message } })
            }
            return
        }
        let engine = hello.engineID
        log("engine core \(engine) (rank \(hello.rank), generation \(hello.generation)) connected (pid \(hello.pid), \(hello.device)) in a world of \(worldSize)")
        resizeEvent(.connected(engine))
        var streamError: (any Error)?
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await m in outbound {
                    do { try await response.write(m) } catch { break }
                }
            }
            do {
                while let m = try await inbound.next() { handle(m, from: engine) }
            } catch {
                streamError = error
            }
            continuation.finish()
            await group.waitForAll()
        }
        disconnected(engine, error: streamError)
    }

    public func storeSet(request: Ebb_Control_V1_StoreSetRequest, context: ServerContext) async throws -> Ebb_Control_V1_StoreSetResponse {
        do {
            try store.set(request.key, [UInt8](request.value))
        } catch let e as EbbError {
            throw RPCError(code: .invalidArgument, message: e.message)
        }
        return Ebb_Control_V1_StoreSetResponse()
    }

    public func storeGet(request: Ebb_Control_V1_StoreGetRequest, context: ServerContext) async throws -> Ebb_Control_V1_StoreGetResponse {
        let timeout = Duration.milliseconds(Int64(min(request.timeoutMs, 30_000)))
        var out = Ebb_Control_V1_StoreGetResponse()
        if let v = await store.get(request.key, timeout: timeout) {
            out.found = true
            out.value = Data(v)
        }
        return out
    }

    // MARK: Message handling

    /// Registers a hello; returns the world size of its generation, or why it is refused.
    private func register(_ hello: Ebb_Control_V1_Hello, _ outbound: AsyncStream<ControlCoordinatorMessage>.Continuation)
        -> Result<Int, EbbError> {
        lock.withLock {
            if shuttingDown { return .failure(EbbError(.io, "the deployment is shutting down")) }
            let list: [String]
            if hello.generation == generationValue {
                list = members
            } else if let r = resize, hello.generation == r.plan.generation {
                list = r.plan.members
            } else {
                return .failure(EbbError(.invalidArgument, "generation \(hello.generation) is not the current generation \(generationValue)"))
            }
            guard Int(hello.rank) < list.count else {
                return .failure(EbbError(.invalidArgument, "rank \(hello.rank) is outside 0..<\(list.count)"))
            }
            let r = Int(hello.rank)
            guard hello.engineID == list[r] else {
                return .failure(EbbError(.invalidArgument, "rank \(r) belongs to engine '\(list[r])', not '\(hello.engineID)'"))
            }
            guard let slot = engines[hello.engineID], !slot.connected, !slot.released else {
                return .failure(EbbError(.invalidArgument, "rank \(r) is already connected"))
            }
            // The welcome goes first, under the lock every other message to this engine is
            // sent under (a resize may send its reconfiguration as soon as it sees it connected).
            outbound.yield(.with {
                $0.welcome = .with { w in
                    w.rank = hello.rank
                    w.generation = hello.generation
                    w.worldSize = UInt32(list.count)
                }
            })
            engines[hello.engineID]?.connected = true
            engines[hello.engineID]?.pid = hello.pid
            engines[hello.engineID]?.outbound = outbound
            engines[hello.engineID]?.lastSeen = .now
            return .success(list.count)
        }
    }

    /// Generations a message may carry: the current one, the one being built, the last one.
    private func acceptedLocked(_ g: UInt64) -> Bool {
        g == generationValue || g == previousGeneration || g == resize?.plan.generation
    }

    /// The rank `engine` has in generation `g` (nil if none).
    private func rankLocked(_ engine: String, generation g: UInt64) -> Int? {
        if g == generationValue { return members.firstIndex(of: engine) }
        if let r = resize, g == r.plan.generation { return r.plan.members.firstIndex(of: engine) }
        return nil
    }

    /// Applies one message of engine `engine`.
    func handle(_ m: ControlEngineMessage, from engine: String) {
        var events: [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)] = []
        var problems: [String] = []
        var failureMessage: String?
        var deferred: [RankRecovery.Action] = []
        lock.withLock {
            engines[engine]?.lastSeen = .now
            switch m.kind {
            case .hello:
                problems.append("a second hello")
            case .ready(let r):
                guard rankLocked(engine, generation: r.generation) == Int(r.rank) else {
                    problems.append("ready for rank \(r.rank) generation \(r.generation)")
                    return
                }
                engines[engine]?.ready = r
                updateLimitsLocked()
            case .outputs(let o):
                guard acceptedLocked(o.generation) else {
                    problems.append("outputs for rank \(o.rank) generation \(o.generation)")
                    return
                }
                if o.hasLoad { engines[engine]?.load = ProtoMapping.decode(o.load) }
                for out in o.outputs {
                    guard let t = requests[out.requestID], t.engine == engine else {
                        problems.append("output for unknown request '\(out.requestID)'")
                        continue
                    }
                    let event: EngineEvent
                    do { event = try ProtoMapping.decode(out) } catch {
                        problems.append("bad output for '\(out.requestID)': \(error)")
                        event = .error(EbbError(.internal, "the engine core sent a malformed output"))
                    }
                    let done: Bool
                    switch event {
                    case .error: done = true
                    case .output(let x):
                        done = x.isFinished
                        requests[out.requestID]?.generated += x.newTokenIds
                    }
                    if done {
                        requests.removeValue(forKey: out.requestID)
                        engines[engine]?.live.remove(out.requestID)
                    }
                    events.append((t.continuation, event, done))
                }
            case .heartbeat(let h):
                guard acceptedLocked(h.generation) else {
                    problems.append("heartbeat for rank \(h.rank) generation \(h.generation)")
                    return
                }
                if h.hasLoad { engines[engine]?.load = ProtoMapping.decode(h.load) }
            case .idle(let i):
                waves.idle(wave: i.wave)
            case .wakeRequest(let w):
                if let start = waves.wakeRequested(wave: w.wave) {
                    broadcastLocked(.startWave(.with { $0.wave = start }))
                }
            case .reconfigureResult(let r) where recovery?.isAttempt(r.generation) == true:
                deferred += recoveryLocked(.result(engine: engine, generation: r.generation, ok: r.committed, error: r.error), now: .now)
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
            case .reconfigureResult(let r):
                resultLocked(r, from: engine, problems: &problems)
            case .migrated(let mig):
                migratedLocked(mig, from: engine, problems: &problems, events: &events)
            case .failure(let f) where f.dataPlane && members.contains(engine):
                deferred += recoveryLocked(.dataPlaneFailed(engine), now: .now)
            case .failure(let f):
                if resize?.isJoining(engine) == true {
                    resizeLocked(.joinerFailed("engine core \(engine) failed: \(f.message)"))
                } else if engines[engine]?.released == true {
                    // A rank that left (or a joiner whose resize rolled back) is no concern of
                    // the resize running now.
                    problems.append("a failure after it was released (\(f.message))")
                } else if canRecoverLocked {
                    deferred += lostLocked(engine, .rankFailed, message: "engine core rank \(members.firstIndex(of: engine).map(String.init) ?? engine) failed: \(f.message)")
                } else {
                    failureMessage = "engine core rank \(members.firstIndex(of: engine).map(String.init) ?? engine) failed: \(f.message)"
                }
            case nil:
                problems.append("an empty or unknown message")
            }
        }
        let rank = lock.withLock { members.firstIndex(of: engine).map(String.init) ?? engine }
        for p in problems { log("control plane: rank \(rank) sent \(p); ignored") }
        for (c, e, done) in events {
            c.yield(e)
            if done { c.finish() }
        }
        if let failureMessage { fail(EbbError(.internal, failureMessage)) }
        performOutside(deferred)
    }

    private func disconnected(_ engine: String, error: (any Error)?) {
        let (expected, rank): (Bool, Int?) = lock.withLock {
            engines[engine]?.outbound = nil
            engines[engine]?.connected = false
            if resize?.isJoining(engine) == true {
                // The resize keeps the reason the joiner reported before it went away, if it did.
                resizeLocked(.joinerFailed("joining engine core \(engine) disconnected"))
                return (true, nil)
            }
            return (shuttingDown || failure != nil || engines[engine]?.released != false, members.firstIndex(of: engine))
        }
        flushResizeWork()
        if expected { return }
        let detail = error.map { ": \($0)" } ?? ""
        rankLost(engine, .controlStreamClosed,
                 message: "engine core rank \(rank.map(String.init) ?? engine) disconnected from the control plane\(detail)")
    }

    /// To every member of the current generation.
    func broadcastLocked(_ kind: ControlCoordinatorMessage.OneOf_Kind) {
        var m = ControlCoordinatorMessage()
        m.kind = kind
        for id in members { engines[id]?.outbound?.yield(m) }
    }

    /// To every connected engine (members, joiners, leavers).
    func broadcastAllLocked(_ kind: ControlCoordinatorMessage.OneOf_Kind) {
        var m = ControlCoordinatorMessage()
        m.kind = kind
        for id in engines.keys { engines[id]?.outbound?.yield(m) }
    }
}
