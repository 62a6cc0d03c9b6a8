import EbbComm
import EbbControl
import EbbCore
import EbbEPLB
import EbbEngine
import EbbModel
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// Where an engine core stands in its deployment.
public struct EngineCoreIdentity: Sendable {
    public var engineId: String
    public var rank: Int
    public var worldSize: Int
    public var generation: UInt64
    /// Experts split over the ranks (all-to-all per MoE layer, lockstep steps); without it
    /// each rank holds every expert and steps on its own.
    public var expertParallel: Bool
    public var device: String
    /// Expert load balancing (needs expert parallelism).
    public var eplb: EPLBConfig?

    public init(engineId: String, rank: Int, worldSize: Int, generation: UInt64, expertParallel: Bool, device: String,
                eplb: EPLBConfig? = nil) {
        self.engineId = engineId
        self.rank = rank
        self.worldSize = worldSize
        self.generation = generation
        self.expertParallel = expertParallel
        self.device = device
        self.eplb = eplb
    }
}

/// What the model factory gets: this rank's expert-parallel group and how experts are
/// placed (`placements(config:)`).
public struct ExpertParallelSetup: Sendable {
    public let rank: Int
    public let worldSize: Int
    public let group: ExpertParallelGroup
    public let eplb: EPLBConfig?

    public init(rank: Int, worldSize: Int, group: ExpertParallelGroup, eplb: EPLBConfig?) {
        self.rank = rank
        self.worldSize = worldSize
        self.group = group
        self.eplb = eplb
    }

    /// The initial placement over every MoE layer: with EPLB, `E + redundant` slots (the
    /// redundant ones replicate experts 0, 1, …); without, a contiguous split padded with
    /// empty slots.
    public func initialPlacement(config: ModelConfig) throws -> EPLBPlacement {
        let layers = config.moeLayers.filter { $0 }.count
        let e = config.moe.numExperts
        if let eplb { return try eplb.initialPlacement(numLayers: layers, numExperts: e, ranks: worldSize) }
        let row = try ExpertPlacement.contiguous(numExperts: e, numRanks: worldSize, rank: rank).physicalToLogical
        return try EPLBPlacement(physicalToLogical: Array(repeating: row, count: max(layers, 1)), numLogicalExperts: e,
                                 numRanks: worldSize)
    }

    /// Per model layer, this rank's placement (for `CausalLM`'s `placement` argument).
    public func placements(config: ModelConfig) throws -> @Sendable (Int) -> ExpertPlacement {
        let initial = try initialPlacement(config: config)
        var byLayer: [Int: ExpertPlacement] = [:]
        var ordinal = 0
        for (layer, isMoE) in config.moeLayers.enumerated() where isMoE {
            byLayer[layer] = try ExpertBalancer.rankPlacement(initial, layerOrdinal: ordinal, rank: rank)
            ordinal += 1
        }
        let fallback = try ExpertPlacement.contiguous(numExperts: config.moe.numExperts, numRanks: worldSize, rank: rank)
        let table = byLayer
        return { layer in table[layer] ?? fallback }
    }
}

/// The engine-core process: connects to the coordinator, says hello, forms the data-plane
/// communicator through the coordinator's rendezvous store, loads its share of the model,
/// reports ready, then runs its engine loop — in lockstep with the other ranks under expert
/// parallelism — until told to shut down or until the coordinator goes away.
public final class EngineCoreShell: @unchecked Sendable {
    public typealias EngineFactory = @Sendable (_ expertParallel: ExpertParallelSetup?) throws -> EngineCore

    public let identity: EngineCoreIdentity
    public let coordinator: ControlAddress
    public let dataPlaneTimeout: Duration
    private let makeEngine: EngineFactory
    private let log: @Sendable (String) -> Void
    private let inbox = Inbox()
    private let latestStats = Mutex(EngineStats())

    public init(identity: EngineCoreIdentity, coordinator: ControlAddress, dataPlaneTimeout: Duration = .seconds(120),
                log: @escaping @Sendable (String) -> Void, makeEngine: @escaping EngineFactory) {
        self.identity = identity
        self.coordinator = coordinator
        self.dataPlaneTimeout = dataPlaneTimeout
        self.log = log
        self.makeEngine = makeEngine
    }

    /// Runs until the engine stops; returns the process exit status.
    public func run() async -> Int32 {
        let exitCode = Mutex<Int32>(0)
        do {
            try await withGRPCClient(transport: try controlClientTransport(coordinator)) { client in
                let service = ControlCoordinatorService.Client(wrapping: client)
                let (outbound, out) = AsyncStream<ControlEngineMessage>.makeStream()
                out.yield(.with {
                    $0.hello = .with { h in
                        h.engineID = identity.engineId
                        h.rank = UInt32(identity.rank)
                        h.generation = identity.generation
                        h.pid = UInt32(ProcessInfo.processInfo.processIdentifier)
                        h.device = identity.device
                    }
                })
                try await service.connect(requestProducer: { writer in
                    for await m in outbound { try await writer.write(m) }
                }, onResponse: { [self] response in
                    var messages = response.messages.makeAsyncIterator()
                    guard let first = try await messages.next() else {
                        throw EbbError(.io, "the coordinator closed the control stream before welcoming this engine core")
                    }
                    switch first.kind {
                    case .welcome(let w) where Int(w.rank) == identity.rank && w.generation == identity.generation:
                        break
                    case .rejected(let r):
                        throw EbbError(.invalidArgument, "the coordinator rejected this engine core: \(r.reason)")
                    default:
                        throw EbbError(.io, "the coordinator's first message is not a welcome for rank \(identity.rank)")
                    }
                    let engineDone = Mutex<Bool>(false)
                    let thread = Thread { [self] in
                        let code = engineMain(service: service, out: out)
                        exitCode.withLock { $0 = code }
                        engineDone.withLock { $0 = true }
                        out.finish()
                        inbox.close()
                    }
                    thread.name = "ebb-engine-core"
                    thread.stackSize = 8 << 20
                    thread.start()
                    let heartbeat = Task { [self] in
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(1))
                            let load = latestStats.withLock { $0 }
                            out.yield(.with {
                                $0.heartbeat = .with { h in
                                    h.rank = UInt32(identity.rank)
                                    h.generation = identity.generation
                                    h.load = ProtoMapping.encode(load)
                                }
                            })
                        }
                    }
                    defer { heartbeat.cancel() }
                    do {
                        while let m = try await messages.next() { inbox.push(m) }
                    } catch {
                        if !engineDone.withLock({ $0 }) { log("control stream failed: \(error)") }
                    }
                    inbox.close()
                    // The coordinator is gone (or asked us to stop): the engine thread sees the
                    // closed inbox and ends.
                    while !engineDone.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(10)) }
                })
            }
        } catch {
            log("engine core rank \(identity.rank): \(describe(error))")
            return 1
        }
        return exitCode.withLock { $0 }
    }

    // MARK: Engine thread

    private func engineMain(service: ControlCoordinatorService.Client<HTTP2ClientTransport.Posix>,
                            out: AsyncStream<ControlEngineMessage>.Continuation) -> Int32 {
        let core: EngineCore
        var communicator: (any Communicator)?
        var balancer: ExpertBalancer?
        do {
            var setup: ExpertParallelSetup?
            var transfer: (any Communicator)?
            if identity.expertParallel && identity.worldSize > 1 {
                let started = ContinuousClock.now
                let store = ControlPlaneStore(client: service)
                let comm = try GlooCommunicator(rank: identity.rank, size: identity.worldSize, generation: identity.generation,
                                                store: store, timeout: dataPlaneTimeout)
                communicator = comm
                if identity.eplb != nil {
                    transfer = try GlooCommunicator(rank: identity.rank, size: identity.worldSize, generation: identity.generation,
                                                    store: store, storePrefix: "ebb/gen\(identity.generation)/eplb",
                                                    timeout: dataPlaneTimeout)
                }
                log("rank \(identity.rank): data plane (gloo, generation \(identity.generation), \(identity.worldSize) ranks) formed in \(started.duration(to: .now))")
                setup = ExpertParallelSetup(rank: identity.rank, worldSize: identity.worldSize,
                                            group: ExpertParallelGroup(CommunicatorExchange(comm)), eplb: identity.eplb)
            }
            core = try makeEngine(setup)
            if let setup, let eplb = identity.eplb, let communicator, let transfer {
                balancer = try ExpertBalancer(model: core.model, communicator: communicator, transfer: transfer,
                                              placement: try setup.initialPlacement(config: core.model.config), config: eplb)
            }
        } catch {
            let message = describe(error)
            log("rank \(identity.rank): start-up failed: \(message)")
            out.yield(.with { $0.failure = .with { f in f.rank = UInt32(identity.rank); f.message = message } })
            return 1
        }
        let stats = core.stats
        latestStats.withLock { $0 = stats }
        out.yield(.with {
            $0.ready = .with { r in
                r.rank = UInt32(identity.rank)
                r.generation = identity.generation
                r.device = identity.device
                r.weightBytes = UInt64(core.model.weightBytes)
                r.kvCacheBytes = UInt64(core.cache.numBlocks * core.model.kvCacheBytesPerBlock(blockSize: core.config.blockSize))
                r.kvNumBlocks = UInt32(core.cache.numBlocks)
                r.kvBlockSize = UInt32(core.config.blockSize)
                r.maxModelLen = UInt32(clamping: core.maxModelLen)
                r.memoryAvailableBytes = UInt64(availableMemoryBytes() ?? 0)
                r.vocabSize = UInt32(core.model.config.vocabSize)
            }
        })
        var loop = EngineLoopState(core: core, communicator: communicator, balancer: balancer, identity: identity,
                                   out: out, log: log)
        defer { communicator?.close() }
        do {
            while true {
                let paused = communicator != nil ? loop.waves.paused : !core.hasWork
                guard let messages = inbox.drain(wait: paused, timeout: 1) else { return 0 }
                if try loop.apply(messages) { return 0 }
                if let stepped = try loop.runStep() {
                    let s = loop.stats
                    latestStats.withLock { $0 = s }
                    if !stepped.isEmpty { send(stepped, stats: s, out) }
                }
            }
        } catch {
            let message = describe(error)
            log("rank \(identity.rank): engine failed: \(message)")
            out.yield(.with { $0.failure = .with { f in f.rank = UInt32(identity.rank); f.message = message } })
            return 1
        }
    }

    private func send(_ outputs: [RequestOutput], stats: EngineStats, _ out: AsyncStream<ControlEngineMessage>.Continuation) {
        out.yield(.with {
            $0.outputs = .with { o in
                o.rank = UInt32(identity.rank)
                o.generation = identity.generation
                o.outputs = outputs.map(ProtoMapping.encode)
                o.load = ProtoMapping.encode(stats)
            }
        })
    }
}

/// The engine thread's state between steps: the core, the waves, and how messages apply.
struct EngineLoopState {
    let core: EngineCore
    let communicator: (any Communicator)?
    var balancer: ExpertBalancer? = nil
    let identity: EngineCoreIdentity
    let out: AsyncStream<ControlEngineMessage>.Continuation
    let log: @Sendable (String) -> Void
    var waves = EngineWaves()

    /// Applies coordinator messages; returns true when told to shut down.
    mutating func apply(_ messages: [ControlCoordinatorMessage]) throws -> Bool {
        for m in messages {
            switch m.kind {
            case .addRequest(let a):
                guard a.generation == identity.generation else {
                    log("rank \(identity.rank): request '\(a.requestID)' is for generation \(a.generation), not \(identity.generation); rejected")
                    reply(ProtoMapping.encodeError(a.requestID, EbbError(.invalidArgument, "request sent to the wrong generation")))
                    continue
                }
                do {
                    try core.add(try ProtoMapping.decode(a))
                } catch {
                    let e = error as? EbbError ?? EbbError(.invalidArgument, "\(error)")
                    reply(ProtoMapping.encodeError(a.requestID, e))
                    continue
                }
                if communicator != nil, case .requestWake(let w) = waves.requestArrived(sentInWave: a.wave) {
                    out.yield(.with { $0.wakeRequest = .with { r in r.rank = UInt32(identity.rank); r.wave = w } })
                }
            case .abort(let a):
                if core.abort(a.requestID) {
                    reply(ProtoMapping.encode(RequestOutput(requestId: a.requestID, finishReason: .abort)))
                } else {
                    log("rank \(identity.rank): abort of unknown request '\(a.requestID)' ignored")
                }
            case .startWave(let s):
                waves.startWave(s.wave)
            case .shutdown(let s):
                log("rank \(identity.rank): shutting down (\(s.reason))")
                return true
            case .welcome, .rejected, nil:
                log("rank \(identity.rank): unexpected control message ignored")
            }
        }
        return false
    }

    /// One step when there is something to do: nil when nothing ran.
    mutating func runStep() throws -> [RequestOutput]? {
        guard let communicator else {
            return core.hasWork ? try core.step() : nil
        }
        guard !waves.paused else { return nil }
        guard let outputs = try LockstepStepper(communicator: communicator, balancer: balancer).step(core) else {
            if case .reportIdle(let w) = waves.synced(anyWork: false) {
                out.yield(.with { $0.idle = .with { i in i.rank = UInt32(identity.rank); i.wave = w } })
            }
            return nil
        }
        return outputs
    }

    /// The core's statistics with EPLB's.
    var stats: EngineStats {
        var s = core.stats
        if let balancer { s.eplb = balancer.stats }
        return s
    }

    private func reply(_ output: Ebb_Control_V1_RequestOutput) {
        let stats = self.stats
        out.yield(.with {
            $0.outputs = .with { o in
                o.rank = UInt32(identity.rank)
                o.generation = identity.generation
                o.outputs = [output]
                o.load = ProtoMapping.encode(stats)
            }
        })
    }
}

/// Messages from the coordinator waiting for the engine thread.
final class Inbox: @unchecked Sendable {
    private let cond = NSCondition()
    private var queue: [ControlCoordinatorMessage] = []
    private var closed = false

    func push(_ m: ControlCoordinatorMessage) {
        cond.lock()
        queue.append(m)
        cond.signal()
        cond.unlock()
    }

    func close() {
        cond.lock()
        closed = true
        cond.signal()
        cond.unlock()
    }

    /// Takes every queued message; when `wait` and none are queued, sleeps until one comes
    /// (at most `timeout` seconds). Returns nil once closed and empty.
    func drain(wait: Bool, timeout: Double) -> [ControlCoordinatorMessage]? {
        cond.lock()
        defer { cond.unlock() }
        if wait && queue.isEmpty && !closed {
            _ = cond.wait(until: Date(timeIntervalSinceNow: timeout))
        }
        if closed && queue.isEmpty { return nil }
        let taken = queue
        queue = []
        return taken
    }
}

func describe(_ error: any Error) -> String {
    if let e = error as? EbbError { return e.message }
    return "\(error)"
}
