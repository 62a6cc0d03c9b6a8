import EbbComm
import EbbControl
import EbbCore
import EbbEPLB
import EbbEngine
import EbbModel
import EbbSampling
import Foundation

/// The engine thread's state between steps: the core, its generation's communicator, the
/// waves, a reconfiguration in preparation, and how coordinator messages apply.
struct EngineLoopState {
    let core: EngineCore
    var communicator: (any Communicator)?
    var balancer: ExpertBalancer? = nil
    /// The serving generation's NCCL group under the expert exchange (GPU ranks).
    var nccl: NCCLCommunicator? = nil
    var identity: EngineCoreIdentity
    let out: AsyncStream<ControlEngineMessage>.Continuation
    let log: @Sendable (String) -> Void
    var waves = EngineWaves()
    /// For reconfigurations: where rendezvous happens, what this rank loaded (to hand dense
    /// weights to joiners), and the serving communicator's timeout.
    var store: (any KeyValueStore)? = nil
    /// Forms host groups (Gloo between processes; in-process in tests).
    var groups: (any CommunicatorFactory)? = nil
    var recorded: RecordingWeights? = nil
    var dataPlaneTimeout: Duration = .seconds(120)
    var reconfiguration: PendingReconfiguration? = nil
    /// The checkpoint's expert checksums (expert parallelism only).
    var checksums: ExpertChecksums? = nil
    /// A joiner's check of its experts (reported in its ready message).
    var joinCheck: (checked: Int, mismatches: Int)? = nil
    /// Generations below this are over; requests for them are refused.
    var oldestAcceptedGeneration: UInt64 = 0
    /// The data plane failed under this rank (a peer died or stopped answering): no steps
    /// until the coordinator's recovery forms a generation over the survivors.
    var dataPlaneLost = false
    /// Opens the checkpoint, to restore experts whose every copy was on a lost rank.
    var restoreSource: (@Sendable () throws -> any WeightSource)? = nil
    /// A fault a test injects into resizes (`EBB_FAULT`).
    var faults: FaultInjection? = nil
    /// The groups of a recovery in progress, which the control thread breaks when a newer
    /// recovery supersedes it.
    var recoveryGroups = RecoveryGroups()

    /// A reconfiguration this rank was told about.
    struct PendingReconfiguration {
        let spec: ReconfigurationSpec
        var job: PreparedGeneration?
        var abortRequested = false
        var started = ContinuousClock.now
    }

    enum RoundResult {
        /// Nothing ran (paused, or a boundary without a step).
        case none
        case stepped([RequestOutput])
        /// This rank left the deployment; its loop ends.
        case left
    }

    // MARK: Messages

    /// Applies coordinator messages; returns true when told to shut down.
    mutating func apply(_ messages: [ControlCoordinatorMessage]) throws -> Bool {
        for m in messages {
            switch m.kind {
            case .addRequest(let a):
                guard a.generation <= identity.generation, a.generation >= oldestAcceptedGeneration else {
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
                wakeIfLate(a.wave)
            case .resumeRequest(let r):
                let id = r.request.requestID
                do {
                    let request = try ProtoMapping.decode(r.request)
                    let rng = try JSONDecoder().decode(SamplingRNGBox.self, from: r.rngState).rng
                    try core.addResumed(ExportedRequest(request: request, outputTokenIds: r.outputTokenIds.map { Int($0) }, rng: rng))
                } catch {
                    let e = error as? EbbError ?? EbbError(.invalidArgument, "cannot resume request '\(id)': \(error)")
                    reply(ProtoMapping.encodeError(id, e))
                    continue
                }
                wakeIfLate(r.request.wave)
            case .abort(let a):
                if core.abort(a.requestID) {
                    reply(ProtoMapping.encode(RequestOutput(requestId: a.requestID, finishReason: .abort)))
                } else {
                    log("rank \(identity.rank): abort of unknown request '\(a.requestID)' ignored")
                }
            case .startWave(let s):
                waves.startWave(s.wave)
            case .reconfigure(let r) where !r.recoveringFrom.isEmpty:
                recoverReporting(r)
            case .reconfigure(let r):
                do {
                    let spec = try ReconfigurationSpec(r)
                    guard spec.generation > identity.generation, reconfiguration == nil, communicator != nil else {
                        throw EbbError(.invalidArgument, "reconfiguration to generation \(spec.generation) while at \(identity.generation)\(reconfiguration != nil ? " with another one pending" : "")")
                    }
                    reconfiguration = PendingReconfiguration(spec: spec)
                    log("rank \(identity.rank): reconfiguration to generation \(spec.generation) (\(spec.oldWorldSize) → \(spec.members.count) ranks) received")
                } catch {
                    log("rank \(identity.rank): \(describe(error)); ignored")
                    report(generation: r.generation, committed: false, error: describe(error), phases: [], bytes: 0)
                }
            case .abortReconfigure(let a):
                if reconfiguration?.spec.generation == a.generation {
                    reconfiguration?.abortRequested = true
                } else if a.generation > identity.generation {
                    // Never received, or dropped when the data plane failed: nothing to undo.
                    report(generation: a.generation, committed: false, error: ResizeMachine.abortedByCoordinator, phases: [], bytes: 0)
                } else {
                    log("rank \(identity.rank): abort of unknown reconfiguration \(a.generation) ignored")
                }
            case .shutdown(let s):
                log("rank \(identity.rank): shutting down (\(s.reason))")
                return true
            case .welcome, .rejected, nil:
                log("rank \(identity.rank): unexpected control message ignored")
            }
        }
        return false
    }

    private mutating func wakeIfLate(_ wave: UInt64) {
        if communicator != nil, !dataPlaneLost, case .requestWake(let w) = waves.requestArrived(sentInWave: wave) {
            out.yield(.with { $0.wakeRequest = .with { r in r.rank = UInt32(identity.rank); r.wave = w } })
        }
    }

    /// Whether the loop should sleep until a message comes.
    var idle: Bool {
        if dataPlaneLost { return true }
        if communicator == nil { return !core.hasWork }
        return waves.paused && reconfiguration == nil
    }

    // MARK: Steps

    /// One round: step-sync with the other ranks (votes included), act on agreed
    /// boundaries (EPLB switch, reconfiguration begin / commit / rollback), then step.
    mutating func runRound() throws -> RoundResult {
        guard !dataPlaneLost else { return .none }
        guard let communicator else {
            return core.hasWork ? .stepped(try core.step()) : .none
        }
        guard !waves.paused || reconfiguration != nil else { return .none }
        let stats = core.stats
        let r = reconfiguration
        let done = r?.job?.done.load(ordering: .acquiring) ?? false
        var vote = StepVote()
        vote.hasWork = core.hasWork
        vote.queued = stats.running + stats.waiting
        vote.eplbReady = balancer?.readyToCommit ?? false
        vote.reconfigurationReceived = r != nil && r?.job == nil && !(balancer?.isTransferring ?? false)
        vote.prepared = done && r?.job?.error == nil
        vote.failed = (r?.abortRequested ?? false) || (done && r?.job?.error != nil)
        vote.reconfiguring = r != nil
        let tally = try vote.tally(over: communicator)
        if let balancer, tally.allEPLBReady {
            try balancer.commit()
            if r == nil { exchangeOnHost(false) }
        }
        if r != nil {
            if tally.anyFailed {
                rollBack()
            } else if tally.allPrepared {
                return try commit()
            } else if tally.allReceived {
                try begin()
            }
        }
        if reconfiguration != nil && !tally.anyWork {
            // Keep the ranks in step (dummy rounds) until the resize commits or rolls back.
            Thread.sleep(forTimeInterval: 0.002)
            return .none
        }
        guard tally.anyWork else {
            if case .reportIdle(let w) = waves.synced(anyWork: false) {
                out.yield(.with { $0.idle = .with { i in i.rank = UInt32(identity.rank); i.wave = w } })
            }
            return .none
        }
        let outputs = try core.step(lockstep: true)
        // No new EPLB rearrangement while any rank holds a reconfiguration: the resize
        // plans from the current placement.
        try balancer?.afterStep(mayRearrange: !tally.anyReconfiguring)
        // A rearrangement started at this step on every rank (the decision is collective).
        if balancer?.isTransferring == true { exchangeOnHost(true) }
        return .stepped(outputs)
    }

    // MARK: Reconfiguration

    /// At the boundary where every rank has the reconfiguration: agree on the new placement
    /// (EPLB over the new ranks, from the load summed over the old ones) and start preparing
    /// in the background.
    private mutating func begin() throws {
        guard var r = reconfiguration, let communicator, let store, let groups else { return }
        let spec = r.spec
        let job = PreparedGeneration(spec: spec)
        r.job = job
        r.started = .now
        reconfiguration = r
        guard let balancer else {
            job.error = EbbError(.unsupported, "resizing needs expert load balancing (--enable-elastic-ep)")
            job.done.store(true, ordering: .releasing)
            return
        }
        let old = balancer.placement
        let target: EPLBPlacement
        do {
            let load = try balancer.globalLoad()
            target = try rebalanceExperts(load: load, numPhysicalSlots: spec.members.count * old.slotsPerRank,
                                          numGroups: balancer.config.numGroups, numNodes: balancer.config.numNodes,
                                          numRanks: spec.members.count)
        } catch {
            job.error = error
            job.done.store(true, ordering: .releasing)
            return
        }
        job.target = target
        exchangeOnHost(true)
        let engine = identity.engineId
        let model = core.model
        let recorded = self.recorded
        let eplb = identity.eplb != nil
        let servingTimeout = dataPlaneTimeout
        let myOldRank = communicator.rank
        let checksums = self.checksums
        let log = self.log
        let faults = self.faults
        let thread = Thread {
            do {
                try faults.inject("communicator", generation: spec.generation)
                let comms = try job.timed("communicator") {
                    try GenerationCommunicators.form(spec: spec, engine: engine, groups: groups, store: store, eplb: eplb,
                                                     backend: model.backend, servingTimeout: servingTimeout)
                }
                job.serving = comms.serving
                job.eplbTransfer = comms.eplbTransfer
                defer { comms.closeTransfer() }
                try faults.inject("transfer", generation: spec.generation)
                let plan = try job.timed("weights") { () throws -> TransferPlan in
                    _ = try sharePlacements(comms.transfer, old: old, target: target, spec: spec)
                    _ = try ExpertChecksums.share(checksums, over: comms.transfer, layers: old.numLayers,
                                                  experts: old.numLogicalExperts)
                    // Dense weights to the joiners this rank serves.
                    if let recorded {
                        let server = DenseWeightServer(communicator: comms.transfer, channel: comms.weights, weights: recorded)
                        for u in spec.oldWorldSize..<spec.union.count where spec.denseServer(forJoiner: u) == myOldRank {
                            job.bytesSent += try server.serve(peer: u)
                        }
                    }
                    let plan = try spec.unionPlan(old: old, target: target)
                    let (staged, bytes) = try TransferExecutor(model: model, channel: comms.weights, plan: plan,
                                                               target: target, newRank: spec.newRank(of: engine)).run()
                    job.staged = staged
                    job.bytesSent += bytes
                    return plan
                }
                _ = plan
                if let serving = comms.serving {
                    job.exchange = try job.timed("exchange") {
                        try DataPlane.expertExchange(host: serving, backend: model.backend, store: store, timeout: servingTimeout)
                    }
                }
                try faults.inject("warmup", generation: spec.generation)
                if let serving = comms.serving {
                    try job.timed("warmup") { try serving.barrier() }
                }
            } catch {
                job.error = error
                log("rank \(myOldRank): preparing generation \(spec.generation) failed: \(describe(error))")
            }
            if job.abandoned.load(ordering: .acquiring) { job.discard() }
            job.done.store(true, ordering: .releasing)
        }
        thread.name = "ebb-reconfigure"
        thread.start()
    }

    /// Every rank voted the preparation done: switch to the new generation (members), or
    /// hand the requests back and leave.
    private mutating func commit() throws -> RoundResult {
        guard let r = reconfiguration, let job = r.job, let old = communicator else { return .none }
        let start = ContinuousClock.now
        reconfiguration = nil
        let spec = r.spec
        var phases = job.phases
        guard let newRank = spec.newRank(of: identity.engineId), let serving = job.serving, let target = job.target else {
            // Leaving: hand every unfinished request back, then go.
            let exported = core.exportAllForMigration()
            phases.append(("commit", (ContinuousClock.now - start).seconds))
            report(generation: spec.generation, committed: true, error: "", phases: phases, bytes: job.bytesSent,
                   unroutable: job.target.map(ExpertChecksums.unroutable) ?? 0)
            out.yield(.with {
                $0.migrated = .with { m in
                    m.generation = spec.generation
                    m.requests = exported.map { e in
                        .with { x in
                            x.requestID = e.request.id
                            x.outputTokenIds = e.outputTokenIds.map { Int32(clamping: $0) }
                            x.rngState = (try? JSONEncoder().encode(SamplingRNGBox(rng: e.rng))) ?? Data()
                        }
                    }
                }
            })
            log("rank \(identity.rank): left at generation \(spec.generation), handing back \(exported.count) requests")
            core.graphs?.releaseAll()
            nccl?.close()
            nccl = nil
            old.close()
            communicator = nil
            return .left
        }
        try adopt(spec, newRank: newRank, serving: serving, exchange: job.exchange, eplbTransfer: job.eplbTransfer,
                  target: target, staged: job.staged)
        old.close()
        phases.append(("commit", (ContinuousClock.now - start).seconds))
        finishSwitch(spec, phases: phases, bytes: job.bytesSent, target: target)
        return .none
    }

    /// Switches this rank to generation `spec` as rank `newRank`: the staged experts, the
    /// new groups, the balancer moved over; the old groups are the caller's to close.
    mutating func adopt(_ spec: ReconfigurationSpec, newRank: Int, serving: any Communicator, exchange: DataPlane.Exchange?,
                        eplbTransfer: (any WeightChannel)?, target: EPLBPlacement, staged: [Int: ExpertSlots]) throws {
        try core.model.install(staged)
        // Graphs captured the old generation's collectives: release them before its group closes.
        core.graphs?.releaseAll()
        core.model.expertParallel?.exchange = exchange?.exchange ?? CommunicatorExchange(serving)
        core.stepAgreement = { try $0.agreed(over: serving) }
        nccl?.close()
        nccl = exchange?.nccl
        if let balancer, let eplbTransfer {
            self.balancer = try balancer.moved(communicator: serving, transfer: eplbTransfer, placement: target)
            if !dataPlaneLost { balancer.transfer.close() }  // else abandoned when the data plane failed
        }
        communicator = serving
        dataPlaneLost = false
        oldestAcceptedGeneration = identity.generation
        identity.rank = newRank
        identity.worldSize = spec.members.count
        identity.generation = spec.generation
        try adoptWave()
    }

    /// After a switch: checks the experts against the checkpoint's checksums and reports.
    func finishSwitch(_ spec: ReconfigurationSpec, phases: [(String, Double)], bytes: Int, target: EPLBPlacement) {
        let rank = identity.rank
        let check = checksums?.verify(core.model) ?? (checked: 0, mismatches: 0)
        if check.mismatches > 0 { log("rank \(rank): \(check.mismatches) of \(check.checked) expert slots differ from the checkpoint") }
        report(generation: spec.generation, committed: true, error: "", phases: phases, bytes: bytes,
               checked: check.checked, mismatches: check.mismatches, unroutable: ExpertChecksums.unroutable(target))
        log("rank \(rank): serving generation \(spec.generation) with \(spec.members.count) ranks")
    }

    /// The first collective of a generation: every member takes the highest wave number.
    mutating func adoptWave() throws {
        guard let communicator else { return }
        let w = try communicator.allReduced([Int64(waves.wave)], op: .max)
        waves.adopt(wave: UInt64(w[0]))
    }

    private mutating func rollBack() {
        guard let r = reconfiguration else { return }
        reconfiguration = nil
        var message = ResizeMachine.abortedByCoordinator
        if let job = r.job {
            // The job's fields are its thread's until it is done.
            if job.done.load(ordering: .acquiring) {
                if let e = job.error { message = describe(e) }
                job.discard()
            } else {
                job.abandoned.store(true, ordering: .releasing)
            }
        }
        if !(balancer?.isTransferring ?? false) { exchangeOnHost(false) }
        log("rank \(identity.rank): generation \(r.spec.generation) rolled back: \(message)")
        report(generation: r.spec.generation, committed: false, error: message, phases: r.job?.phases ?? [], bytes: 0)
    }

    /// Puts the MoE exchange on the host group (`true`) or back on this generation's NCCL
    /// group. NCCL's rule for communicators used at once is that their operations must be
    /// ordered the same on every rank, and a resize's or a rearrangement's weight moves (NCCL
    /// on the transfer lane) and groups forming in the background are not ordered with the
    /// steps' collectives: an NCCL kernel waiting for a peer can hold back the other stream's
    /// kernels, and the ranks wait on each other. So while weights move, decode steps
    /// exchange over the host (slower, no graphs), and the device exchange comes back at the
    /// commit or rollback. Called at voted boundaries only, so every rank switches together.
    mutating func exchangeOnHost(_ onHost: Bool) {
        guard let nccl, let communicator, let group = core.model.expertParallel else { return }
        let isHost = !group.isFixedSize
        guard isHost != onHost else { return }
        group.exchange = onHost ? CommunicatorExchange(communicator) : NCCLExpertExchange(nccl)
    }

    func report(generation: UInt64, committed: Bool, error: String, phases: [(String, Double)], bytes: Int,
                checked: Int = 0, mismatches: Int = 0, unroutable: Int = 0) {
        let rank = identity.rank
        out.yield(.with {
            $0.reconfigureResult = .with { x in
                x.rank = UInt32(rank)
                x.generation = generation
                x.committed = committed
                x.error = error
                x.phases = phases.map { p in .with { $0.phase = p.0; $0.seconds = p.1 } }
                x.bytesSent = UInt64(bytes)
                x.expertsChecked = UInt32(checked)
                x.expertMismatches = UInt32(mismatches)
                x.unroutableExperts = UInt32(unroutable)
            }
        })
    }

    // MARK: Output

    /// The core's statistics with EPLB's.
    var stats: EngineStats {
        var s = core.stats
        if let balancer { s.eplb = balancer.stats }
        return s
    }

    func send(_ outputs: [RequestOutput]) {
        let stats = self.stats
        out.yield(.with {
            $0.outputs = .with { o in
                o.rank = UInt32(identity.rank)
                o.generation = identity.generation
                o.outputs = outputs.map(ProtoMapping.encode)
                o.load = ProtoMapping.encode(stats)
            }
        })
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

/// `SamplingRNG` as a JSON object for the control plane.
struct SamplingRNGBox: Codable {
    var rng: SamplingRNG
}

