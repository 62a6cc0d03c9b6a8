import EbbComm
import EbbControl
import EbbCore
import EbbEPLB
import EbbEngine
import EbbTensor
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
    /// Joining a running deployment (weights from peers) rather than starting one.
    public var joining: Bool

    public init(engineId: String, rank: Int, worldSize: Int, generation: UInt64, expertParallel: Bool, device: String,
                eplb: EPLBConfig? = nil, joining: Bool = false) {
        self.joining = joining
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
    /// A placement decided elsewhere (a joining rank's), instead of the initial one.
    public let placement: EPLBPlacement?

    public init(rank: Int, worldSize: Int, group: ExpertParallelGroup, eplb: EPLBConfig?, placement: EPLBPlacement? = nil) {
        self.rank = rank
        self.worldSize = worldSize
        self.group = group
        self.eplb = eplb
        self.placement = placement
    }

    /// The initial placement over every MoE layer with EPLB: `E + redundant` slots (the
    /// redundant ones replicate experts 0, 1, …). Without EPLB each layer uses a contiguous
    /// split padded with empty slots (see `placements(config:)`).
    public func initialPlacement(config: ModelConfig) throws -> EPLBPlacement {
        let layers = config.moeLayers.filter { $0 }.count
        let e = config.moe.numExperts
        if let placement { return placement }
        guard let eplb else {
            throw EbbError(.invalidArgument, "expert placements over all layers need EPLB (--enable-eplb)")
        }
        return try eplb.initialPlacement(numLayers: layers, numExperts: e, ranks: worldSize)
    }

    /// Per model layer, this rank's placement (for `CausalLM`'s `placement` argument).
    public func placements(config: ModelConfig) throws -> @Sendable (Int) -> ExpertPlacement {
        let fallback = try ExpertPlacement.contiguous(numExperts: config.moe.numExperts, numRanks: worldSize, rank: rank)
        guard eplb != nil || placement != nil else { return { _ in fallback } }
        let initial = try initialPlacement(config: config)
        var byLayer: [Int: ExpertPlacement] = [:]
        var ordinal = 0
        for (layer, isMoE) in config.moeLayers.enumerated() where isMoE {
            byLayer[layer] = try ExpertBalancer.rankPlacement(initial, layerOrdinal: ordinal, rank: rank)
            ordinal += 1
        }
        let table = byLayer
        return { layer in table[layer] ?? fallback }
    }
}

/// The engine-core process: connects to the coordinator, says hello, forms the data-plane
/// communicator through the coordinator's rendezvous store, loads its share of the model,
/// reports ready, then runs its engine loop — in lockstep with the other ranks under expert
/// parallelism — until told to shut down or until the coordinator goes away.
public final class EngineCoreShell: @unchecked Sendable {
    /// Builds the engine for a placement; `wrapWeights` wraps (or replaces) the weight source.
    public typealias EngineFactory = @Sendable (_ expertParallel: ExpertParallelSetup?,
                                                _ wrapWeights: @escaping @Sendable (any WeightSource) -> any WeightSource) throws -> EngineCore

    public let identity: EngineCoreIdentity
    public let coordinator: ControlAddress
    public let dataPlaneTimeout: Duration
    /// The device the engine is built on (`makeEngine` uses it too).
    public let backend: any Backend
    private let makeEngine: EngineFactory
    /// Opens the checkpoint again: experts whose every copy was on a lost rank are restored
    /// from it (nil: such a recovery fails with a clear error).
    private let restoreSource: (@Sendable () throws -> any WeightSource)?
    /// A fault a test injects into resizes (`EBB_FAULT`).
    private let faults: FaultInjection?
    /// Forms the host groups from the rendezvous store (Gloo; in-process groups in tests).
    private let makeGroups: @Sendable (any KeyValueStore) -> any CommunicatorFactory
    /// The deployment's secret, sent with every control-plane call (nil: none is asked for).
    private let secret: ClusterSecret?
    private let log: @Sendable (String) -> Void
    private let inbox = Inbox()
    private let latestStats = Mutex(EngineStats())
    private let heartbeatIdentity: Mutex<(rank: Int, generation: UInt64)>
    /// A recovery in progress on the engine thread, which a newer one breaks.
    private let recoveryGroups = RecoveryGroups()
    /// When the engine thread's current round began (nil between rounds), and the running
    /// preparation, for the stall report.
    private let roundInProgress = Mutex<(since: ContinuousClock.Instant, job: PreparedGeneration?)?>(nil)
    /// The serving generation's groups (host, and NCCL on GPU ranks), for the control thread
    /// to abort when a recovery comes: a step blocked in a collective with a lost or stuck
    /// peer (NCCL kernels wait for it; a Gloo peer that is alive but elsewhere holds its
    /// connection open) is released that way, then the engine thread runs the recovery.
    private let servingGroups = Mutex<(host: (any Communicator)?, nccl: NCCLCommunicator?)>((nil, nil))

    public init(identity: EngineCoreIdentity, coordinator: ControlAddress, backend: any Backend,
                dataPlaneTimeout: Duration = .seconds(120), restoreSource: (@Sendable () throws -> any WeightSource)? = nil,
                faults: FaultInjection? = nil, secret: ClusterSecret? = nil,
                makeGroups: @escaping @Sendable (any KeyValueStore) -> any CommunicatorFactory = { GlooGroups(store: $0) },
                log: @escaping @Sendable (String) -> Void, makeEngine: @escaping EngineFactory) {
        self.secret = secret
        self.restoreSource = restoreSource
        self.makeGroups = makeGroups
        self.faults = faults
        self.identity = identity
        self.backend = backend
        self.coordinator = coordinator
        self.dataPlaneTimeout = dataPlaneTimeout
        self.log = log
        self.makeEngine = makeEngine
        self.heartbeatIdentity = Mutex((identity.rank, identity.generation))
    }

    /// Runs until the engine stops; returns the process exit status.
    public func run() async -> Int32 {
        let exitCode = Mutex<Int32>(0)
        do {
            try await withGRPCClient(transport: try controlClientTransport(coordinator),
                                     interceptors: secret.map { [ClusterSecretHeader($0)] } ?? []) { client in
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
                        var reportedStall: ContinuousClock.Instant?
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(1))
                            reportStall(&reportedStall)
                            let load = latestStats.withLock { $0 }
                            let now = heartbeatIdentity.withLock { $0 }
                            out.yield(.with {
                                $0.heartbeat = .with { h in
                                    h.rank = UInt32(now.rank)
                                    h.generation = now.generation
                                    var l = load
                                    if now.rank != 0 { (l.eplb.slotLoad, l.eplb.slotExperts) = ([], []) }  // rank 0 sends the heat map
                                    h.load = ProtoMapping.encode(l)
                                }
                            })
                        }
                    }
                    defer { heartbeat.cancel() }
                    do {
                        while let m = try await messages.next() {
                            if case .reconfigure(let r)? = m.kind, !r.recoveringFrom.isEmpty {
                                abortServingGroups(recoveringTo: r.generation)
                                recoveryGroups.supersede(by: r.generation)
                            }
                            inbox.push(m)
                        }
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
        var loop: EngineLoopState
        do {
            loop = identity.joining ? try join(service: service, out: out) : try startInitial(service: service, out: out)
        } catch {
            let message = describe(error)
            log("rank \(identity.rank): start-up failed: \(message)")
            out.yield(.with { $0.failure = .with { f in f.rank = UInt32(identity.rank); f.message = message } })
            return 1
        }
        loop.restoreSource = restoreSource
        loop.faults = faults
        loop.recoveryGroups = recoveryGroups
        publish(loop)
        sendReady(loop)
        defer {
            if let g = loop.core.graphs {
                log("rank \(loop.identity.rank): decode graphs: \(g.count) held, \(g.replays) replays\(g.disabledReason.map { " (off: \($0))" } ?? ""); expert exchange: \(loop.nccl != nil ? "nccl" : "host"); EPLB weights: \(loop.balancer?.transfer.transport ?? "none")\(loop.core.model.backend.hostTransfers != nil ? "; \(loop.core.decodeTransfers.summary)" : "")")
            }
            loop.core.graphs?.releaseAll()
            loop.nccl?.close()
            loop.communicator?.close()
        }
        do {
            // A joiner's first collective meets the old members' first one after their switch.
            if identity.joining { try loop.adoptWave() }
            while true {
                guard let messages = inbox.drain(wait: loop.idle, timeout: 1) else { return 0 }
                // A round is the messages (a recovery runs there) and the step after them.
                roundInProgress.withLock { $0 = (.now, loop.reconfiguration?.job) }
                defer { roundInProgress.withLock { $0 = nil } }
                if try loop.apply(messages) { return 0 }
                let job = loop.reconfiguration?.job
                roundInProgress.withLock { $0?.job = job }
                let round: EngineLoopState.RoundResult
                do {
                    round = try loop.runRound()
                } catch where loop.isLockstep {
                    // A collective with a peer failed: wait for the recovery (requests stay).
                    loop.loseDataPlane(error)
                    publish(loop)
                    continue
                }
                switch round {
                case .stepped(let outputs):
                    publish(loop)
                    if !outputs.isEmpty { loop.send(outputs) }
                case .none:
                    publish(loop)
                case .left:
                    return 0
                }
            }
        } catch {
            let message = describe(error)
            log("rank \(loop.identity.rank): engine failed: \(message)")
            out.yield(.with { $0.failure = .with { f in f.rank = UInt32(loop.identity.rank); f.message = message } })
            return 1
        }
    }

    /// Logs (once per stall) an engine-thread round that has run for 10 s: a peer that
    /// stopped answering inside a collective, or a deadlock, named by the preparation phase.
    private func reportStall(_ reported: inout ContinuousClock.Instant?) {
        guard let (since, job) = roundInProgress.withLock({ $0 }) else { return }
        let stuck = ContinuousClock.now - since
        guard stuck >= .seconds(10), reported != since else { return }
        reported = since
        let phase = job.map { "; preparing generation \($0.spec.generation): \($0.currentPhase)" } ?? ""
        log("rank \(heartbeatIdentity.withLock { $0.rank }): the engine thread has been in one step round for \(Int(stuck.seconds)) s\(phase)")
    }

    /// Breaks the serving generation's groups from the control thread when a recovery comes
    /// (the engine thread may be blocked in one of their collectives).
    private func abortServingGroups(recoveringTo generation: UInt64) {
        let (host, nccl) = servingGroups.withLock { g in
            defer { g = (nil, nil) }
            return g
        }
        guard host != nil || nccl != nil else { return }
        let rank = heartbeatIdentity.withLock { $0.rank }
        let reason = "a rank was lost; recovering to generation \(generation)"
        let started = ContinuousClock.now
        log("rank \(rank): aborting the serving groups for the recovery to generation \(generation)")
        host?.abort(reason: reason)
        nccl?.abort(reason: reason)
        log("rank \(rank): aborted the serving groups in \(started.duration(to: .now))")
    }

    /// What heartbeats report.
    private func publish(_ loop: EngineLoopState) {
        let groups = (host: loop.dataPlaneLost ? nil : loop.communicator, nccl: loop.nccl)
        servingGroups.withLock { $0 = groups }
        let s = loop.stats, rank = loop.identity.rank, generation = loop.identity.generation
        latestStats.withLock { $0 = s }
        heartbeatIdentity.withLock { $0 = (rank, generation) }
    }

    private func sendReady(_ loop: EngineLoopState) {
        let core = loop.core, id = loop.identity
        let slots = core.model.moeLayerIndices.first.flatMap { core.model.expertSlots(layer: $0) }
        loop.out.yield(.with {
            $0.ready = .with { r in
                r.rank = UInt32(id.rank)
                r.generation = id.generation
                r.device = id.device
                r.weightBytes = UInt64(core.model.weightBytes)
                r.kvCacheBytes = UInt64(core.cache.numBlocks * core.model.kvCacheBytesPerBlock(blockSize: core.config.blockSize))
                r.kvNumBlocks = UInt32(core.cache.numBlocks)
                r.kvBlockSize = UInt32(core.config.blockSize)
                r.maxModelLen = UInt32(clamping: core.maxModelLen)
                r.memoryAvailableBytes = UInt64(availableMemoryBytes() ?? 0)
                r.vocabSize = UInt32(core.model.config.vocabSize)
                r.slotsPerRank = UInt32(slots?.placement.slotsPerRank ?? 0)
                r.numExperts = UInt32(core.model.config.moe.numExperts)
                r.expertsChecked = UInt32(loop.joinCheck?.checked ?? 0)
                r.expertMismatches = UInt32(loop.joinCheck?.mismatches ?? 0)
            }
        })
    }

    /// A rank of the first generation: loads weights from the checkpoint.
    private func startInitial(service: ControlCoordinatorService.Client<HTTP2ClientTransport.Posix>,
                              out: AsyncStream<ControlEngineMessage>.Continuation) throws -> EngineLoopState {
        var communicator: (any Communicator)?
        var balancer: ExpertBalancer?
        var setup: ExpertParallelSetup?
        var transfer: (any Communicator)?
        let store = ControlPlaneStore(client: service)
        let groups = makeGroups(store)
        // Expert parallelism over one rank too when it may grow (EPLB on): the exchange and
        // the lockstep are in place for the first resize.
        if identity.expertParallel && (identity.worldSize > 1 || identity.eplb != nil) {
            let started = ContinuousClock.now
            let labels = (0..<identity.worldSize).map { "rank\($0)" }
            let comm = try groups.form("", rank: identity.rank, members: labels, generation: identity.generation,
                                       timeout: dataPlaneTimeout)
            communicator = comm
            if identity.eplb != nil {
                transfer = try groups.form("eplb", rank: identity.rank, members: labels, generation: identity.generation,
                                           timeout: dataPlaneTimeout)
            }
            log("rank \(identity.rank): host group (generation \(identity.generation), \(identity.worldSize) ranks) formed in \(started.duration(to: .now))")
            setup = ExpertParallelSetup(rank: identity.rank, worldSize: identity.worldSize,
                                        group: ExpertParallelGroup(CommunicatorExchange(comm)), eplb: identity.eplb)
        }
        let recorder = Mutex<RecordingWeights?>(nil)
        let core = try makeEngine(setup) { base in
            let r = RecordingWeights(base)
            recorder.withLock { $0 = r }
            return r
        }
        if let setup, let eplb = identity.eplb, let communicator, let transfer {
            let channel = try DataPlane.weightChannel("eplb", host: transfer, owning: true, backend: core.model.backend,
                                                      store: store, timeout: dataPlaneTimeout)
            balancer = try ExpertBalancer(model: core.model, communicator: communicator, transfer: channel,
                                          placement: try setup.initialPlacement(config: core.model.config), config: eplb)
        }
        var loop = EngineLoopState(core: core, communicator: communicator, balancer: balancer, identity: identity,
                                   out: out, log: log, store: store, groups: groups, recorded: recorder.withLock { $0 },
                                   dataPlaneTimeout: dataPlaneTimeout)
        if let communicator, let group = core.model.expertParallel {
            let formed = try DataPlane.expertExchange(host: communicator, backend: core.model.backend, store: store,
                                                      timeout: dataPlaneTimeout)
            group.exchange = formed.exchange
            loop.nccl = formed.nccl
            core.stepAgreement = { try $0.agreed(over: communicator) }
            if let nccl = formed.nccl {
                log("rank \(identity.rank): expert exchange over NCCL \(NCCLCommunicator.version ?? 0) formed in \(String(format: "%.2f", nccl.initSeconds)) s")
            }
        }
        if let communicator, identity.eplb != nil {
            // The checkpoint's expert checksums, from every rank, for checks after resizes.
            loop.checksums = try ExpertChecksums.gather(core.model, communicator: communicator)
        }
        return loop
    }

    /// A rank joining a running deployment: waits for its reconfiguration, forms the new
    /// generation's communicators, takes dense weights from a running rank and its experts
    /// from their holders (nothing from disk), then waits for the switch.
    private func join(service: ControlCoordinatorService.Client<HTTP2ClientTransport.Posix>,
                      out: AsyncStream<ControlEngineMessage>.Continuation) throws -> EngineLoopState {
        var spec: ReconfigurationSpec?
        while spec == nil {
            guard let messages = inbox.drain(wait: true, timeout: 1) else {
                throw EbbError(.io, "the coordinator went away before the reconfiguration")
            }
            for m in messages {
                if case .reconfigure(let r)? = m.kind { spec = try ReconfigurationSpec(r) } else {
                    log("rank \(identity.rank): message before the reconfiguration ignored")
                }
            }
        }
        guard let spec, let newRank = spec.newRank(of: identity.engineId), let u = spec.unionIndex(of: identity.engineId),
              spec.generation == identity.generation else {
            throw EbbError(.invalidArgument, "the reconfiguration does not include this engine at generation \(identity.generation)")
        }
        let store = ControlPlaneStore(client: service)
        let groups = makeGroups(store)
        let comms = try GenerationCommunicators.form(spec: spec, engine: identity.engineId, groups: groups, store: store,
                                                     eplb: identity.eplb != nil, backend: backend,
                                                     servingTimeout: dataPlaneTimeout)
        defer { comms.closeTransfer() }
        guard let serving = comms.serving else { throw EbbError(.internal, "a joining engine without a serving group") }
        let (old, target) = try sharePlacements(comms.transfer, old: nil, target: nil, spec: spec)
        let checksums = try ExpertChecksums.share(nil, over: comms.transfer, layers: old.numLayers, experts: old.numLogicalExperts)
        let peer = PeerWeights(communicator: comms.transfer, channel: comms.weights, server: spec.denseServer(forJoiner: u))
        let recorded = RecordingWeights(peer)
        let setup = ExpertParallelSetup(rank: newRank, worldSize: spec.members.count,
                                        group: ExpertParallelGroup(CommunicatorExchange(serving)), eplb: identity.eplb,
                                        placement: target)
        let core = try makeEngine(setup) { _ in recorded }
        try peer.finish()
        let plan = try spec.unionPlan(old: old, target: target)
        let (staged, _) = try TransferExecutor(model: core.model, channel: comms.weights, plan: plan, target: target,
                                               newRank: newRank).run()
        try core.model.install(staged)
        let formed = try DataPlane.expertExchange(host: serving, backend: core.model.backend, store: store,
                                                  timeout: dataPlaneTimeout)
        core.model.expertParallel?.exchange = formed.exchange
        core.stepAgreement = { try $0.agreed(over: serving) }
        try serving.barrier()
        var balancer: ExpertBalancer?
        if let eplb = identity.eplb, let eplbTransfer = comms.eplbTransfer {
            balancer = try ExpertBalancer(model: core.model, communicator: serving, transfer: eplbTransfer,
                                          placement: target, config: eplb)
        }
        var id = identity
        id.rank = newRank
        id.worldSize = spec.members.count
        log("rank \(newRank): joined generation \(spec.generation); \(peer.bytesReceived) bytes of dense weights from rank \(spec.denseServer(forJoiner: u))")
        var loop = EngineLoopState(core: core, communicator: serving, balancer: balancer, identity: id, out: out, log: log,
                                   store: store, groups: groups, recorded: recorded, dataPlaneTimeout: dataPlaneTimeout)
        loop.nccl = formed.nccl
        loop.oldestAcceptedGeneration = spec.generation - 1
        loop.checksums = checksums
        let check = checksums.verify(core.model)
        loop.joinCheck = check
        if check.mismatches > 0 { log("rank \(newRank): \(check.mismatches) of \(check.checked) expert slots differ from the checkpoint") }
        return loop
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

