import EbbComm
import EbbControl
import EbbCore
import EbbEPLB
import EbbEngine
import EbbModel
import Foundation

/// A rank's side of surviving a lost peer.
///
/// When a collective of its generation fails (a peer died, or stopped answering until the
/// data-plane timeout), the step that was running is taken back (`EngineCore.step` leaves
/// its requests to be scheduled again), the rank closes every group of the generation so
/// that peers blocked in them fail at once too, reports `failure` with `data_plane`, and
/// waits. Its requests and KV cache stay. The coordinator then sends a recovery (a
/// `Reconfigure` with `recovering_from`): the survivors form the new generation at once —
/// there is no step vote to wait for, the old group is broken — place the experts over
/// themselves, take the experts they lack from the survivors that hold them or, when every
/// copy was on a lost rank, from the checkpoint, and go on serving.
extension EngineLoopState {
    /// Whether this rank steps in lockstep with peers (a failure of a step is then a
    /// failure of the data plane, which the deployment recovers from).
    var isLockstep: Bool { communicator != nil }

    /// The data plane failed under a step: give its groups up and wait for the recovery.
    mutating func loseDataPlane(_ error: any Error) {
        guard !dataPlaneLost else { return }
        let message = describe(error)
        log("rank \(identity.rank): the data plane of generation \(identity.generation) failed: \(message); waiting for the coordinator's recovery")
        let started = ContinuousClock.now
        releaseDataPlane()
        log("rank \(identity.rank): released the groups of generation \(identity.generation) in \(started.duration(to: .now))")
        out.yield(.with {
            $0.failure = .with { f in
                f.rank = UInt32(identity.rank)
                f.message = message
                f.dataPlane = true
            }
        })
    }

    /// Closes this generation's groups (peers blocked in them see the failure at once) and
    /// drops a resize in preparation. A group a background transfer still blocks in is
    /// closed when that transfer ends.
    private mutating func releaseDataPlane() {
        dataPlaneLost = true
        if let r = reconfiguration {
            reconfiguration = nil
            if let job = r.job {
                if job.done.load(ordering: .acquiring) { job.discard() } else { job.abandoned.store(true, ordering: .releasing) }
            }
            report(generation: r.spec.generation, committed: false,
                   error: "the data plane of generation \(identity.generation) failed (a peer was lost)", phases: [], bytes: 0)
        }
        // Abort first: a kernel waiting for the lost peer is released, nothing is waited for.
        nccl?.abort(reason: "the data plane of generation \(identity.generation) failed")
        nccl?.close()
        nccl = nil
        core.graphs?.releaseAll()
        balancer?.abandon()
        communicator?.close()
    }

    /// Runs a recovery message; a recovery that fails is reported (the coordinator tries
    /// again over whoever is left) and leaves this rank waiting.
    mutating func recoverReporting(_ message: Ebb_Control_V1_Reconfigure) {
        do {
            let spec = try ReconfigurationSpec(message)
            try recover(spec)
        } catch {
            log("rank \(identity.rank): recovery to generation \(message.generation) failed: \(describe(error))")
            report(generation: message.generation, committed: false, error: describe(error), phases: [], bytes: 0)
        }
    }

    /// Forms generation `spec` over the survivors and switches to it.
    mutating func recover(_ spec: ReconfigurationSpec) throws {
        guard let store, let groups, let balancer, communicator != nil || dataPlaneLost else {
            throw EbbError(.unsupported, "recovering from a lost rank needs expert parallelism with EPLB (--enable-elastic-ep)")
        }
        guard spec.generation > identity.generation, let newRank = spec.newRank(of: identity.engineId),
              spec.recoveringFrom.firstIndex(of: identity.engineId) == identity.rank,
              spec.recoveringFrom.count == balancer.placement.numRanks else {
            throw EbbError(.invalidArgument, "a recovery to generation \(spec.generation) from \(spec.recoveringFrom.count) ranks does not fit rank \(identity.rank) of \(identity.worldSize) at generation \(identity.generation)")
        }
        if !dataPlaneLost {
            log("rank \(identity.rank): recovery to generation \(spec.generation) without \(spec.lost) received; leaving generation \(identity.generation)")
            releaseDataPlane()
        } else {
            log("rank \(identity.rank): recovery to generation \(spec.generation) without \(spec.lost) received; forming it")
        }
        try recoveryGroups.begin(spec.generation)
        defer { recoveryGroups.end() }
        var phases: [(String, Double)] = []
        func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            let t0 = ContinuousClock.now
            defer { phases.append((name, (ContinuousClock.now - t0).seconds)) }
            return try body()
        }
        let model = core.model
        let comms = try timed("communicator") {
            try GenerationCommunicators.form(spec: spec, engine: identity.engineId, groups: groups, store: store, eplb: true,
                                             backend: model.backend, servingTimeout: dataPlaneTimeout, recovery: recoveryGroups)
        }
        defer { comms.closeTransfer() }
        var adopted = false
        defer {
            if !adopted {
                comms.serving?.close()
                comms.eplbTransfer?.close()
            }
        }
        guard let serving = comms.serving, let eplbTransfer = comms.eplbTransfer else {
            throw EbbError(.internal, "a survivor without a serving group")
        }
        let old = balancer.placement
        let perRank = old.slotsPerRank
        var bytes = 0
        let (target, staged) = try timed("weights") { () throws -> (EPLBPlacement, [Int: ExpertSlots]) in
            // New rank 0 places the experts over the survivors from the load they saw
            // (the lost ranks' share of the window is gone); everyone takes its placement.
            let load = try balancer.globalLoad(over: serving)
            let proposed = newRank == 0
                ? try rebalanceExperts(load: load, numPhysicalSlots: spec.members.count * perRank,
                                       numGroups: balancer.config.numGroups, numNodes: balancer.config.numNodes,
                                       numRanks: spec.members.count)
                : nil
            let (_, target) = try sharePlacements(comms.transfer, old: old, target: proposed, spec: spec)
            let plan = try Self.survivorPlan(old: old, target: target, spec: spec)
            let needsCheckpoint = plan.layers.contains { l in
                l.slots.contains { $0.source == .loadFromCheckpoint && $0.slot / perRank == newRank }
            }
            var source: (any WeightSource)?
            if needsCheckpoint {
                guard let restoreSource else {
                    throw EbbError(.unsupported, "experts held only by the lost ranks must come from the checkpoint, and this rank cannot open it")
                }
                source = try restoreSource()
            }
            let (staged, sent) = try TransferExecutor(model: model, channel: comms.weights, plan: plan, target: target,
                                                      newRank: newRank, restore: source).run()
            bytes = sent
            return (target, staged)
        }
        let exchange = try timed("exchange") {
            try DataPlane.expertExchange(host: serving, backend: model.backend, store: store, timeout: dataPlaneTimeout)
        }
        defer { if !adopted { exchange.nccl?.close() } }
        if let nccl = exchange.nccl { try recoveryGroups.track(abort: { nccl.abort(reason: $0) }) }
        try timed("warmup") { try serving.barrier() }
        let start = ContinuousClock.now
        try adopt(spec, newRank: newRank, serving: serving, exchange: exchange, eplbTransfer: eplbTransfer,
                  target: target, staged: staged)
        adopted = true
        phases.append(("commit", (ContinuousClock.now - start).seconds))
        finishSwitch(spec, phases: phases, bytes: bytes, target: target)
    }

    /// The plan from the survivors' old slots (in their new rank order) to `target`.
    static func survivorPlan(old: EPLBPlacement, target: EPLBPlacement, spec: ReconfigurationSpec) throws -> TransferPlan {
        let s = old.slotsPerRank
        let oldRanks = try spec.members.map { id -> Int in
            guard let r = spec.recoveringFrom.firstIndex(of: id), r < old.numRanks else {
                throw EbbError(.invalidArgument, "recovery: engine \(id) has no rank in the old placement")
            }
            return r
        }
        let rows = (0..<old.numLayers).map { l in oldRanks.flatMap { r in old.physicalToLogical[l][(r * s)..<((r + 1) * s)] } }
        return try TransferPlan(old: rows, new: target.physicalToLogical, slotsPerRank: s)
    }
}
