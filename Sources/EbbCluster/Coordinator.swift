import EbbControl
import EbbCore
import EbbEngine
import Foundation

/// The coordinator inside `ebb serve`: for the HTTP front end, the engine (`EngineClient`)
/// that spreads requests over the ranks; for the engine cores, the other end of their
/// control streams (served by `ControlPlaneService`).
///
/// Its parts, each a plain value under one lock: `Membership` (who serves, at which
/// generation, and what each engine said), `RequestRouter` (which rank runs each request and
/// what its client has), `CoordinatorWaves`, and two state machines that decide changes of
/// membership — `ResizeMachine` for a resize (see `Coordinator+Resize.swift`) and
/// `RankRecovery` for lost ranks (see `Coordinator+Recovery.swift`). This class feeds them
/// what happens and runs their actions. A message that is malformed or out of order is
/// logged and dropped; it never takes the coordinator down.
public final class Coordinator: EngineClient, @unchecked Sendable {
    /// A rank that sends nothing (no outputs, no heartbeat) for this long is lost.
    public let heartbeatTimeout: Duration
    /// The ranks step in lockstep over a data plane (expert parallelism).
    public let expertParallel: Bool

    let lock = NSLock()
    var membership: Membership
    var router = RequestRouter()
    var waves = CoordinatorWaves()
    var failure: EbbError?
    var shuttingDown = false
    /// The running resize, its caller, when it began, its old ranks' results, and the work
    /// its actions left for outside the lock.
    var resize: ResizeMachine?
    var resizeTicket: ResizeTicket?
    /// Resize operations by id (the last 100), for orchestrators that poll them.
    var operations: [String: ResizeOperation] = [:]
    var tickets: [String: ResizeTicket] = [:]
    var operationOrder: [String] = []
    var resizeStarted = ContinuousClock.now
    var resizeReports: [String: Ebb_Control_V1_ReconfigureResult] = [:]
    var resizeWork: [ResizeWork] = []
    var resizeHistory: [ResizeEvent] = []
    var resizeCounts: [String: Int] = [:]
    var elasticHooks: ElasticHooks?
    /// Surviving lost ranks (built once the ranks are ready; see `RankRecovery`).
    var recovery: RankRecovery?
    var recoveryTimeout: Duration = .seconds(60)
    var resubmittedCount = 0
    /// A generation starting from the checkpoint after every rank was lost, and why it failed.
    var restarting: (ids: Set<String>, problem: String?)?
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
    /// Where the engines' groups meet (served by `ControlPlaneService`).
    let rendezvous = RendezvousTable()
    let log: @Sendable (String) -> Void
    private let onFailure: @Sendable (EbbError) -> Void

    /// `engineIds[r]` is the id the engine core of rank r says hello with. `onFailure` is
    /// called once, when the deployment cannot go on.
    public init(generation: UInt64, engineIds: [String], heartbeatTimeout: Duration = .seconds(10), expertParallel: Bool = false,
                log: @escaping @Sendable (String) -> Void, onFailure: @escaping @Sendable (EbbError) -> Void) {
        self.expertParallel = expertParallel
        self.membership = Membership(generation: generation, engineIds: engineIds)
        self.heartbeatTimeout = heartbeatTimeout
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

    public var generation: UInt64 { lock.withLock { membership.generation } }
    public var engineIds: [String] { lock.withLock { membership.members } }
    public var worldSize: Int { lock.withLock { membership.members.count } }

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
        if let limits = membership.limits { lastLimits = limits }
    }

    public var rankStats: [EngineStats] {
        lock.withLock {
            membership.members.map { id in
                var s = membership.engines[id]?.load ?? EngineStats()
                s.requestsAssigned = router.assignedCount(to: id)
                return s
            }
        }
    }

    public var stats: EngineStats { EngineStats.total(rankStats) }

    /// What each rank of the current generation said when it became ready (nil until then).
    public var readyReports: [Ebb_Control_V1_Ready?] { lock.withLock { membership.readyReports } }

    public func submit(_ request: EngineRequest) -> AsyncStream<EngineEvent> {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream()
        let id = request.id
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.abort(id) }
        }
        let refusal: EbbError? = lock.withLock {
            if let failure { return failure }
            guard router.tracked(id) == nil else { return EbbError(.invalidArgument, "duplicate request id '\(id)'") }
            guard let engine = chooseLocked() else {
                if recovery?.isRecovering == true || membership.members.isEmpty {
                    return EbbError(.unavailable, "no engine core is serving (every rank was lost)")
                }
                if restarting != nil {
                    return EbbError(.unavailable, "no engine core is serving yet (new ranks are loading the checkpoint)")
                }
                return EbbError(.internal, "no engine core is ready")
            }
            _ = router.track(request, continuation: continuation, on: engine)
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
        let members = membership.members
        let loads = members.map { id in
            LoadBalancer.RankLoad(accepting: membership.accepting(id), live: router.liveCount(on: id),
                                  reported: membership.engines[id]?.load ?? EngineStats())
        }
        return balancer.choose(loads).map { members[$0] }
    }

    /// Sends a tracked request (or a resumed one) to `engine`, starting a wave first if the
    /// ranks sleep.
    func sendLocked(_ request: EngineRequest, to engine: String, resume: (outputs: [Int], rng: Data)? = nil) {
        if let start = waves.dispatch() { membership.broadcast(.startWave(.with { $0.wave = start })) }
        let add = ProtoMapping.encode(request, wave: waves.wave, generation: membership.generation)
        if let resume {
            membership.send(.resumeRequest(.with { r in
                r.request = add
                r.outputTokenIds = resume.outputs.map { Int32(clamping: $0) }
                r.rngState = resume.rng
            }), to: engine)
        } else {
            membership.send(.addRequest(add), to: engine)
        }
    }

    /// Request `id` continues on another member after the tokens its client has (its rank
    /// left or was lost); false when no member is left to take it.
    func continueLocked(_ id: String, rng: (RequestRouter.Tracked) -> Data, outputs: [Int]? = nil) -> Bool {
        guard let t = router.tracked(id), let target = chooseLocked() else { return false }
        router.move(id, to: target)
        sendLocked(t.request, to: target, resume: (outputs ?? t.generated, rng(t)))
        return true
    }

    public func abort(_ id: String) {
        lock.withLock {
            guard let t = router.tracked(id) else { return }
            membership.send(.abort(.with { a in
                a.requestID = id
                a.generation = membership.generation
            }), to: t.engine)
        }
    }

    /// The rank a request runs on (nil once it finished).
    public func rank(of requestId: String) -> Int? {
        lock.withLock { router.tracked(requestId).flatMap { membership.members.firstIndex(of: $0.engine) } }
    }

    // MARK: Lifecycle

    /// Waits until every rank is ready; throws the failure that came first, or a timeout.
    public func waitUntilReady(timeout: Duration) async throws {
        let end = ContinuousClock.now + timeout
        while true {
            let (ready, failed) = lock.withLock { (membership.allReady, failure) }
            if let failed { throw failed }
            if ready { return }
            if ContinuousClock.now >= end {
                let missing = lock.withLock { membership.readyReports.indices.filter { membership.readyReports[$0] == nil } }
                throw EbbError(.io, "engine cores \(missing) did not become ready within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Asks every engine core to exit; disconnections after this are not failures.
    public func shutdown(reason: String) {
        lock.withLock {
            shuttingDown = true
            membership.broadcastAll(.shutdown(.with { $0.reason = reason }))
            for e in membership.engines.values { e.outbound?.finish() }
        }
    }

    /// Declares the deployment failed: every open request gets the error, `onFailure` runs once.
    public func fail(_ error: EbbError) {
        let (first, open): (Bool, [RequestRouter.Tracked]) = lock.withLock {
            guard failure == nil, !shuttingDown else { return (false, []) }
            failure = error
            return (true, router.removeAll())
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
    /// joining, a lost rank otherwise.
    public func engineExited(_ id: String, description: String) {
        let lost: String? = lock.withLock {
            if membership.engines[id]?.released ?? true { return nil }
            if resize?.isJoining(id) == true {
                resizeLocked(.joinerFailed("joining engine core \(id) \(description)"))
                return nil
            }
            return "engine core rank \(membership.label(id)) \(description)"
        }
        flushResizeWork()
        if let lost { rankLost(id, .processExited, message: lost) }
    }

    /// Declares lost a ready member that has been silent longer than `heartbeatTimeout`, and
    /// gives the recovery its clock tick.
    public func checkLiveness(now: ContinuousClock.Instant = .now) {
        let silent: (String, String)? = lock.withLock {
            membership.silentMember(now: now, timeout: heartbeatTimeout) { recovery?.isFenced($0) == true }
                .map { ($0, membership.label($0)) }
        }
        if let (id, rank) = silent {
            rankLost(id, .heartbeatTimeout, message: "engine core rank \(rank) stopped answering (no message for \(heartbeatTimeout))")
        }
        recoveryEvent(.tick, now: now)
    }

    // MARK: Engines' messages (from `ControlPlaneService`)

    /// Registers a hello; returns the world size of its generation, or why it is refused.
    func register(_ hello: Ebb_Control_V1_Hello, _ outbound: AsyncStream<ControlCoordinatorMessage>.Continuation)
        -> Result<Int, EbbError> {
        lock.withLock {
            if shuttingDown { return .failure(EbbError(.io, "the deployment is shutting down")) }
            let admitted = membership.admit(hello, building: resize?.plan, outbound: outbound, now: .now)
            if case .success(let size) = admitted {
                // The welcome goes first, under the lock every other message to this engine is
                // sent under (a resize may send its reconfiguration as soon as it sees it connected).
                outbound.yield(.with {
                    $0.welcome = .with { w in
                        w.rank = hello.rank
                        w.generation = hello.generation
                        w.worldSize = UInt32(size)
                    }
                })
            }
            return admitted
        }
    }

    /// Applies one message of engine `engine`.
    func handle(_ m: ControlEngineMessage, from engine: String) {
        var events: [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)] = []
        var problems: [String] = []
        var failureMessage: String?
        var deferred: [RankRecovery.Action] = []
        lock.withLock {
            membership.engines[engine]?.lastSeen = .now
            switch m.kind {
            case .hello:
                problems.append("a second hello")
            case .ready(let r):
                guard membership.rank(of: engine, generation: r.generation, building: resize?.plan) == Int(r.rank) else {
                    problems.append("ready for rank \(r.rank) generation \(r.generation)")
                    return
                }
                membership.engines[engine]?.ready = r
                updateLimitsLocked()
            case .outputs(let o):
                guard membership.accepts(o.generation, building: resize?.plan) else {
                    problems.append("outputs for rank \(o.rank) generation \(o.generation)")
                    return
                }
                if o.hasLoad { membership.engines[engine]?.load = ProtoMapping.decode(o.load) }
                for out in o.outputs {
                    let event: EngineEvent
                    do { event = try ProtoMapping.decode(out) } catch {
                        problems.append("bad output for '\(out.requestID)': \(error)")
                        event = .error(EbbError(.internal, "the engine core sent a malformed output"))
                    }
                    guard let (continuation, done) = router.deliver(event, for: out.requestID, from: engine) else {
                        problems.append("output for unknown request '\(out.requestID)'")
                        continue
                    }
                    events.append((continuation, event, done))
                }
            case .heartbeat(let h):
                guard membership.accepts(h.generation, building: resize?.plan) else {
                    problems.append("heartbeat for rank \(h.rank) generation \(h.generation)")
                    return
                }
                if h.hasLoad { membership.engines[engine]?.load = ProtoMapping.decode(h.load) }
            case .idle(let i):
                waves.idle(wave: i.wave)
            case .wakeRequest(let w):
                if let start = waves.wakeRequested(wave: w.wave) {
                    membership.broadcast(.startWave(.with { $0.wave = start }))
                }
            case .reconfigureResult(let r) where recovery?.isAttempt(r.generation) == true:
                deferred += recoveryResultLocked(r, from: engine)
            case .reconfigureResult(let r):
                resultLocked(r, from: engine, problems: &problems)
            case .migrated(let mig):
                migratedLocked(mig, from: engine, problems: &problems, events: &events)
            case .failure(let f) where f.dataPlane && membership.members.contains(engine):
                deferred += recoveryLocked(.dataPlaneFailed(engine), now: .now)
            case .failure(let f):
                let message = "engine core rank \(membership.label(engine)) failed: \(f.message)"
                if resize?.isJoining(engine) == true {
                    resizeLocked(.joinerFailed("engine core \(engine) failed: \(f.message)"))
                } else if membership.engines[engine]?.released == true {
                    // A rank that left (or a joiner whose resize rolled back) is no concern of
                    // the resize running now.
                    problems.append("a failure after it was released (\(f.message))")
                } else if canRecoverLocked {
                    deferred += lostLocked(engine, .rankFailed, message: message)
                } else {
                    failureMessage = message
                }
            case nil:
                problems.append("an empty or unknown message")
            }
        }
        let rank = lock.withLock { membership.label(engine) }
        for p in problems { log("control plane: rank \(rank) sent \(p); ignored") }
        for (c, e, done) in events {
            c.yield(e)
            if done { c.finish() }
        }
        if let failureMessage { fail(EbbError(.internal, failureMessage)) }
        performOutside(deferred)
    }

    /// Engine `engine`'s control stream ended.
    func disconnected(_ engine: String, error: (any Error)?) {
        let (expected, rank): (Bool, String) = lock.withLock {
            membership.engines[engine]?.outbound = nil
            membership.engines[engine]?.connected = false
            if resize?.isJoining(engine) == true {
                // The resize keeps the reason the joiner reported before it went away, if it did.
                resizeLocked(.joinerFailed("joining engine core \(engine) disconnected"))
                return (true, engine)
            }
            return (shuttingDown || failure != nil || membership.engines[engine]?.released != false, membership.label(engine))
        }
        flushResizeWork()
        if expected { return }
        let detail = error.map { ": \($0)" } ?? ""
        rankLost(engine, .controlStreamClosed, message: "engine core rank \(rank) disconnected from the control plane\(detail)")
    }
}
