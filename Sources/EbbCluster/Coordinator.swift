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
/// (see `CoordinatorWaves`), serves the rendezvous store, and notices ranks that stop
/// answering. A message that is malformed or out of order is logged and dropped (or, for a
/// bad hello, answered with `rejected`); it never takes the coordinator down.
public final class Coordinator: EngineClient, ControlCoordinatorService.SimpleServiceProtocol, @unchecked Sendable {
    public let generation: UInt64
    public let engineIds: [String]
    public var worldSize: Int { engineIds.count }
    /// A rank that sends nothing (no outputs, no heartbeat) for this long is dead.
    public let heartbeatTimeout: Duration

    private let lock = NSLock()
    private var ranks: [RankSlot]
    private var requests: [String: Tracked] = [:]
    private var waves = CoordinatorWaves()
    private var failure: EbbError?
    private var shuttingDown = false
    private let balancer = LoadBalancer()
    let store = RendezvousTable()
    private let log: @Sendable (String) -> Void
    private let onFailure: @Sendable (EbbError) -> Void

    struct RankSlot {
        var connected = false
        var ready: Ebb_Control_V1_Ready?
        var outbound: AsyncStream<ControlCoordinatorMessage>.Continuation?
        var load = EngineStats()
        var live: Set<String> = []
        var assigned = 0
        var lastSeen: ContinuousClock.Instant?
    }

    struct Tracked {
        var rank: Int
        var continuation: AsyncStream<EngineEvent>.Continuation
    }

    /// `engineIds[r]` is the id the engine core of rank r says hello with. `onFailure` is
    /// called once, when a rank dies or reports a failure.
    public init(generation: UInt64, engineIds: [String], heartbeatTimeout: Duration = .seconds(10),
                log: @escaping @Sendable (String) -> Void, onFailure: @escaping @Sendable (EbbError) -> Void) {
        self.generation = generation
        self.engineIds = engineIds
        self.heartbeatTimeout = heartbeatTimeout
        self.ranks = Array(repeating: RankSlot(), count: engineIds.count)
        self.log = log
        self.onFailure = onFailure
    }

    // MARK: EngineClient

    public var maxModelLen: Int {
        lock.withLock { ranks.compactMap { $0.ready.map { Int($0.maxModelLen) } }.min() ?? 0 }
    }

    public var vocabSize: Int {
        lock.withLock { ranks.compactMap { $0.ready.map { Int($0.vocabSize) } }.min() ?? 0 }
    }

    public var rankStats: [EngineStats] {
        lock.withLock {
            ranks.map { r in
                var s = r.load
                s.requestsAssigned = r.assigned
                return s
            }
        }
    }

    public var stats: EngineStats { EngineStats.total(rankStats) }

    /// What each rank said when it became ready (nil until then).
    public var readyReports: [Ebb_Control_V1_Ready?] { lock.withLock { ranks.map(\.ready) } }

    public func submit(_ request: EngineRequest) -> AsyncStream<EngineEvent> {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream()
        let id = request.id
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.abort(id) }
        }
        let refusal: EbbError? = lock.withLock {
            if let failure { return failure }
            guard requests[id] == nil else { return EbbError(.invalidArgument, "duplicate request id '\(id)'") }
            let loads = ranks.map { LoadBalancer.RankLoad(accepting: $0.ready != nil && $0.outbound != nil,
                                                          live: $0.live.count, reported: $0.load) }
            guard let rank = balancer.choose(loads) else {
                return EbbError(.internal, "no engine core is ready")
            }
            requests[id] = Tracked(rank: rank, continuation: continuation)
            ranks[rank].live.insert(id)
            ranks[rank].assigned += 1
            if let start = waves.dispatch() { broadcastLocked(.startWave(.with { $0.wave = start })) }
            ranks[rank].outbound?.yield(.with {
                $0.addRequest = ProtoMapping.encode(request, wave: waves.wave, generation: generation)
            })
            return nil
        }
        if let refusal {
            continuation.yield(.error(refusal))
            continuation.finish()
        }
        return stream
    }

    public func abort(_ id: String) {
        lock.withLock {
            guard let t = requests[id] else { return }
            ranks[t.rank].outbound?.yield(.with {
                $0.abort = .with { a in
                    a.requestID = id
                    a.generation = generation
                }
            })
        }
    }

    /// The rank a request was sent to (nil once it finished).
    public func rank(of requestId: String) -> Int? { lock.withLock { requests[requestId]?.rank } }

    // MARK: Lifecycle

    /// Waits until every rank is ready; throws the failure that came first, or a timeout.
    public func waitUntilReady(timeout: Duration) async throws {
        let end = ContinuousClock.now + timeout
        while true {
            let (ready, failed) = lock.withLock { (ranks.allSatisfy { $0.ready != nil }, failure) }
            if let failed { throw failed }
            if ready { return }
            if ContinuousClock.now >= end {
                let missing = lock.withLock { ranks.indices.filter { ranks[$0].ready == nil } }
                throw EbbError(.io, "engine cores \(missing) did not become ready within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Asks every engine core to exit; disconnections after this are not failures.
    public func shutdown(reason: String) {
        lock.withLock {
            shuttingDown = true
            broadcastLocked(.shutdown(.with { $0.reason = reason }))
            for i in ranks.indices { ranks[i].outbound?.finish() }
        }
    }

    /// Declares the deployment failed: every open request gets the error, `onFailure` runs once.
    public func fail(_ error: EbbError) {
        let (first, open): (Bool, [Tracked]) = lock.withLock {
            guard failure == nil, !shuttingDown else { return (false, []) }
            failure = error
            let open = Array(requests.values)
            requests = [:]
            for i in ranks.indices { ranks[i].live = [] }
            return (true, open)
        }
        guard first else { return }
        for t in open {
            t.continuation.yield(.error(error))
            t.continuation.finish()
        }
        log(error.message)
        onFailure(error)
    }

    public var failed: EbbError? { lock.withLock { failure } }

    /// Fails the deployment if a ready rank has been silent longer than `heartbeatTimeout`.
    public func checkLiveness(now: ContinuousClock.Instant = .now) {
        let silent: Int? = lock.withLock {
            ranks.indices.first { i in
                guard ranks[i].ready != nil, let seen = ranks[i].lastSeen else { return false }
                return now - seen > heartbeatTimeout
            }
        }
        if let silent {
            fail(EbbError(.io, "engine core rank \(silent) stopped answering (no message for \(heartbeatTimeout))"))
        }
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
        if let reason = register(hello, continuation) {
            log("control plane: rejected hello from '\(hello.engineID)' (rank \(hello.rank), generation \(hello.generation)): \(reason)")
            try? await response.write(.with { $0.rejected = .with { $0.reason = reason } })
            return
        }
        let rank = Int(hello.rank)
        log("engine core rank \(rank) connected (pid \(hello.pid), \(hello.device))")
        continuation.yield(.with {
            $0.welcome = .with { w in
                w.rank = hello.rank
                w.generation = generation
                w.worldSize = UInt32(worldSize)
            }
        })
        var streamError: (any Error)?
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await m in outbound {
                    do { try await response.write(m) } catch { break }
                }
            }
            do {
                while let m = try await inbound.next() { handle(m, from: rank) }
            } catch {
                streamError = error
            }
            continuation.finish()
            await group.waitForAll()
        }
        disconnected(rank, error: streamError)
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

    /// Registers a hello; returns why it is refused, or nil.
    private func register(_ hello: Ebb_Control_V1_Hello, _ outbound: AsyncStream<ControlCoordinatorMessage>.Continuation) -> String? {
        lock.withLock {
            if shuttingDown { return "the deployment is shutting down" }
            guard hello.generation == generation else {
                return "generation \(hello.generation) is not the current generation \(generation)"
            }
            guard Int(hello.rank) < worldSize else { return "rank \(hello.rank) is outside 0..<\(worldSize)" }
            let r = Int(hello.rank)
            guard hello.engineID == engineIds[r] else {
                return "rank \(r) belongs to engine '\(engineIds[r])', not '\(hello.engineID)'"
            }
            guard !ranks[r].connected else { return "rank \(r) is already connected" }
            ranks[r].connected = true
            ranks[r].outbound = outbound
            ranks[r].lastSeen = .now
            return nil
        }
    }

    /// Applies one message of rank `rank`.
    func handle(_ m: ControlEngineMessage, from rank: Int) {
        var events: [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)] = []
        var problems: [String] = []
        var failureMessage: String?
        lock.withLock {
            ranks[rank].lastSeen = .now
            switch m.kind {
            case .hello:
                problems.append("a second hello")
            case .ready(let r):
                guard r.rank == rank, r.generation == generation else {
                    problems.append("ready for rank \(r.rank) generation \(r.generation)")
                    return
                }
                ranks[rank].ready = r
            case .outputs(let o):
                guard o.rank == rank, o.generation == generation else {
                    problems.append("outputs for rank \(o.rank) generation \(o.generation)")
                    return
                }
                if o.hasLoad { ranks[rank].load = ProtoMapping.decode(o.load) }
                for out in o.outputs {
                    guard let t = requests[out.requestID], t.rank == rank else {
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
                    case .output(let x): done = x.isFinished
                    }
                    if done {
                        requests.removeValue(forKey: out.requestID)
                        ranks[rank].live.remove(out.requestID)
                    }
                    events.append((t.continuation, event, done))
                }
            case .heartbeat(let h):
                guard h.rank == rank, h.generation == generation else {
                    problems.append("heartbeat for rank \(h.rank) generation \(h.generation)")
                    return
                }
                if h.hasLoad { ranks[rank].load = ProtoMapping.decode(h.load) }
            case .idle(let i):
                waves.idle(wave: i.wave)
            case .wakeRequest(let w):
                if let start = waves.wakeRequested(wave: w.wave) {
                    broadcastLocked(.startWave(.with { $0.wave = start }))
                }
            case .failure(let f):
                failureMessage = "engine core rank \(rank) failed: \(f.message)"
            case nil:
                problems.append("an empty or unknown message")
            }
        }
        for p in problems { log("control plane: rank \(rank) sent \(p); ignored") }
        for (c, e, done) in events {
            c.yield(e)
            if done { c.finish() }
        }
        if let failureMessage { fail(EbbError(.internal, failureMessage)) }
    }

    private func disconnected(_ rank: Int, error: (any Error)?) {
        let expected = lock.withLock {
            ranks[rank].outbound = nil
            return shuttingDown || failure != nil
        }
        if expected { return }
        let detail = error.map { ": \($0)" } ?? ""
        fail(EbbError(.io, "engine core rank \(rank) disconnected from the control plane\(detail)"))
    }

    private func broadcastLocked(_ kind: ControlCoordinatorMessage.OneOf_Kind) {
        var m = ControlCoordinatorMessage()
        m.kind = kind
        for r in ranks.indices { ranks[r].outbound?.yield(m) }
    }
}
