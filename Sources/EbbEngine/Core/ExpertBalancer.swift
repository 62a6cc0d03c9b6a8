import EbbComm
import EbbCore
import EbbEPLB
import EbbModel
import EbbTensor
import Foundation
import Synchronization

/// EPLB settings of a deployment.
public struct EPLBConfig: Sendable, Equatable {
    /// Redundant physical slots on top of the logical experts (over all ranks), at least:
    /// every rank holds the same number of slots, so the total rounds up to a multiple of
    /// the ranks (the extra slots hold replicas too), as it does after a resize.
    public var numRedundantExperts: Int
    /// Steps of load statistics kept.
    public var windowSize: Int
    /// Steps between rebalance decisions.
    public var stepInterval: Int
    /// A new placement must raise balancedness (mean/max rank load) by more than this.
    public var minGain: Double
    /// Expert groups of the router (group-limited routing) and nodes, for the hierarchical policy.
    public var numGroups: Int
    public var numNodes: Int

    public init(numRedundantExperts: Int = 0, windowSize: Int = 1000, stepInterval: Int = 3000, minGain: Double = 0.01,
                numGroups: Int = 1, numNodes: Int = 1) {
        self.numRedundantExperts = numRedundantExperts
        self.windowSize = windowSize
        self.stepInterval = stepInterval
        self.minGain = minGain
        self.numGroups = numGroups
        self.numNodes = numNodes
    }

    /// The initial placement for `numExperts` experts over `ranks` ranks, checked.
    public func initialPlacement(numLayers: Int, numExperts: Int, ranks: Int) throws -> EPLBPlacement {
        guard numRedundantExperts >= 0, windowSize >= 1, stepInterval >= 1, minGain.isFinite,
              numGroups >= 1, numNodes >= 1 else {
            throw EbbError(.invalidArgument, "EPLB: redundant experts must be ≥ 0, window and interval ≥ 1, groups and nodes ≥ 1")
        }
        guard ranks >= 1, numExperts >= 1 else {
            throw EbbError(.invalidArgument, "EPLB: \(numExperts) experts over \(ranks) ranks")
        }
        let perRank = (numExperts + numRedundantExperts + ranks - 1) / ranks
        guard perRank * ranks <= eplbMaxPhysicalSlots else {
            throw EbbError(.invalidArgument, "EPLB: \(numExperts) experts + \(numRedundantExperts) redundant over \(ranks) ranks need \(perRank * ranks) slots, above the limit of \(eplbMaxPhysicalSlots)")
        }
        return try EPLBPlacement.contiguous(numLayers: numLayers, numLogicalExperts: numExperts,
                                            numPhysicalSlots: perRank * ranks, numRanks: ranks)
    }
}

/// What EPLB has done on this rank.
public struct EPLBStats: Sendable, Equatable {
    public var rearrangements: Int = 0
    public var skipped: Int = 0
    /// Seconds the last weight transfer took (in the background, while serving).
    public var lastTransferSeconds: Double = 0
    /// Seconds the last switch-over took at its step boundary (the serving pause).
    public var lastCommitSeconds: Double = 0
    /// Bytes of expert weights this rank sent to other ranks, in all.
    public var bytesSent: Int = 0
    /// Balancedness (mean / max tokens per rank) of each MoE layer at the last decision.
    public var layerBalancedness: [Double] = []
    /// The load at the last decision per MoE layer and physical slot: the window's tokens of
    /// the slot's expert, shared evenly among its replicas (what a heat map shows).
    public var slotLoad: [[Double]] = []
    /// The logical expert each physical slot held at the last decision, per MoE layer.
    public var slotExperts: [[Int]] = []
    public init() {}
}

/// Expert load balancing on one rank of an expert-parallel deployment: records the tokens
/// each expert got per step, decides every `stepInterval` steps (on load summed over
/// ranks, so every rank decides the same), moves expert weights to their new slots in the
/// background over a transfer communicator while serving continues, and switches to the new
/// placement at a step boundary all ranks agree on (see `LockstepStepper`).
///
/// Driven by the engine thread; the transfer runs on a thread of its own.
public final class ExpertBalancer: @unchecked Sendable {
    public let config: EPLBConfig
    let model: CausalLM
    let communicator: any Communicator
    /// The channel rearrangements move experts over (closed by whoever replaces this balancer).
    public let transfer: any WeightChannel
    private let moeLayers: [Int]
    public private(set) var placement: EPLBPlacement
    private var window: ExpertLoadWindow
    private var stepsSinceDecision = 0
    private var pending: PendingTransfer?
    private let counters = Mutex(EPLBStats())

    /// A rebalance forced by the next decision even without a gain (tests, resizes).
    public var forceNext = false

    final class PendingTransfer: @unchecked Sendable {
        let target: EPLBPlacement
        let started = ContinuousClock.now
        let done = Atomic<Bool>(false)
        var staged: [Int: ExpertSlots] = [:]
        var error: (any Error)?
        var bytesSent = 0
        var seconds = 0.0
        /// Whether the thread has ended and whether the balancer gave the transfer up: the
        /// side that comes second closes the channel.
        let handOff = Mutex((finished: false, abandoned: false))
        init(target: EPLBPlacement) { self.target = target }
    }

    /// Stops using this generation's transfer channel (its data plane failed): closes it
    /// now, or, while a transfer thread still blocks in it, when that thread ends.
    public func abandon() {
        guard let p = pending else {
            transfer.close()
            return
        }
        pending = nil
        let closeNow = p.handOff.withLock { s -> Bool in
            s.abandoned = true
            return s.finished
        }
        if closeNow { transfer.close() }
    }

    /// The balancer for the next generation: new communicators and placement, the same
    /// load window and statistics.
    public func moved(communicator: any Communicator, transfer: any WeightChannel, placement: EPLBPlacement) throws -> ExpertBalancer {
        let next = try ExpertBalancer(model: model, communicator: communicator, transfer: transfer, placement: placement, config: config)
        next.window = window
        let s = stats
        next.counters.withLock { $0 = s }
        return next
    }

    /// Whether a rearrangement is staging (a resize waits for it).
    public var isTransferring: Bool { pending != nil }

    public init(model: CausalLM, communicator: any Communicator, transfer: any WeightChannel,
                placement: EPLBPlacement, config: EPLBConfig) throws {
        guard communicator.size == placement.numRanks, transfer.size == communicator.size,
              transfer.rank == communicator.rank else {
            throw EbbError(.invalidArgument, "EPLB: communicators of \(communicator.size)/\(transfer.size) ranks for a placement over \(placement.numRanks)")
        }
        let layers = model.moeLayerIndices
        guard placement.numLayers == layers.count, placement.numLogicalExperts == model.config.moe.numExperts else {
            throw EbbError(.invalidArgument, "EPLB: placement of \(placement.numLayers) layers × \(placement.numLogicalExperts) experts for a model with \(layers.count) MoE layers × \(model.config.moe.numExperts) experts")
        }
        self.model = model
        self.communicator = communicator
        self.transfer = transfer
        self.placement = placement
        self.config = config
        self.moeLayers = layers
        self.window = try ExpertLoadWindow(numLayers: layers.count, numSlots: placement.numLogicalExperts,
                                           capacity: config.windowSize)
    }

    public var stats: EPLBStats { counters.withLock { $0 } }

    /// This rank's placement of layer ordinal `i`, as the model takes it.
    public static func rankPlacement(_ p: EPLBPlacement, layerOrdinal i: Int, rank: Int) throws -> ExpertPlacement {
        try ExpertPlacement(numLogicalExperts: p.numLogicalExperts, numRanks: p.numRanks, rank: rank,
                            physicalToLogical: p.physicalToLogical[i])
    }

    /// Whether a finished transfer waits to be switched in (the step-sync vote).
    public var readyToCommit: Bool { pending?.done.load(ordering: .acquiring) ?? false }

    /// Switches every MoE layer to the staged slots. Call only at the step boundary where
    /// every rank voted ready.
    public func commit() throws {
        guard let p = pending, p.done.load(ordering: .acquiring) else { return }
        pending = nil
        if let error = p.error { throw error }
        let start = ContinuousClock.now
        try model.install(p.staged)
        placement = p.target
        let pause = (ContinuousClock.now - start).seconds
        counters.withLock {
            $0.rearrangements += 1
            $0.lastCommitSeconds = pause
            $0.lastTransferSeconds = p.seconds
            $0.bytesSent += p.bytesSent
        }
    }

    /// After each lockstep step: records this rank's expert load and, every `stepInterval`
    /// steps, decides (collectively: every rank passes the same `mayRearrange`) whether to
    /// rebalance; the decision waits while `mayRearrange` is false.
    public func afterStep(mayRearrange: Bool = true) throws {
        let taken = model.expertParallel?.takeLoads() ?? [:]
        if taken.isEmpty {
            window.recordDummyStep()
        } else {
            var rows = [[Int]]()
            for (i, layer) in moeLayers.enumerated() {
                var row = [Int](repeating: 0, count: placement.numLogicalExperts)
                if let counts = taken[layer] {
                    for (slot, c) in counts.enumerated() where c > 0 && slot < placement.numPhysicalSlots {
                        let e = placement.physicalToLogical[i][slot]
                        if e >= 0 { row[e] += c }
                    }
                }
                rows.append(row)
            }
            try window.record(rows)
        }
        stepsSinceDecision += 1
        if stepsSinceDecision >= config.stepInterval && pending == nil && mayRearrange {
            stepsSinceDecision = 0
            try decide()
        }
    }

    /// The load of the window summed over ranks (a collective: every rank calls it at the
    /// same step), `[layers][E]`.
    /// `group` replaces the balancer's own communicator (a recovery sums over the survivors).
    public func globalLoad(over group: (any Communicator)? = nil) throws -> [[Double]] {
        let local = window.slotLoad.flatMap { $0.map { Int64($0) } }
        let summed = try (group ?? communicator).allReduced(local, op: .sum)
        let e = placement.numLogicalExperts
        return (0..<moeLayers.count).map { l in (0..<e).map { Double(summed[l * e + $0]) } }
    }

    private func decide() throws {
        let load = try globalLoad()
        let current = try layerBalancedness(load: load, placement: placement)
        let perSlot = placement.slotLoad(load), experts = placement.physicalToLogical
        counters.withLock {
            $0.layerBalancedness = current
            $0.slotLoad = perSlot
            $0.slotExperts = experts
        }
        let proposed = try rebalanceExperts(load: load, numPhysicalSlots: placement.numPhysicalSlots,
                                            numGroups: config.numGroups, numNodes: config.numNodes, numRanks: placement.numRanks)
        let worth = try shouldRebalance(load: load, current: placement, proposed: proposed, minGain: config.minGain)
        guard worth || forceNext, proposed != placement || forceNext else {
            counters.withLock { $0.skipped += 1 }
            return
        }
        forceNext = false
        try start(to: proposed)
    }

    /// Starts moving weights to `target` in the background (the internal call resizing
    /// uses too); `commit` switches once every rank is ready.
    public func start(to target: EPLBPlacement) throws {
        guard pending == nil else { throw EbbError(.invalidArgument, "EPLB: a rearrangement is already running") }
        let plan = try TransferPlan(old: placement, new: target)
        let job = PendingTransfer(target: target)
        pending = job
        let executor = TransferExecutor(model: model, channel: transfer, plan: plan, target: target, newRank: transfer.rank)
        let transfer = self.transfer
        let thread = Thread {
            do {
                let (staged, bytes) = try executor.run()
                job.staged = staged
                job.bytesSent = bytes
            } catch {
                job.error = error
            }
            job.seconds = (ContinuousClock.now - job.started).seconds
            job.done.store(true, ordering: .releasing)
            let close = job.handOff.withLock { s -> Bool in
                s.finished = true
                return s.abandoned
            }
            if close { transfer.close() }
        }
        thread.name = "ebb-eplb-transfer"
        thread.start()
    }

    /// Waits for a running transfer (tests and shutdown).
    public func waitForTransfer(timeout: Duration = .seconds(60)) {
        let end = ContinuousClock.now + timeout
        while let p = pending, !p.done.load(ordering: .acquiring), ContinuousClock.now < end {
            Thread.sleep(forTimeInterval: 0.001)
        }
    }
}

/// Fills one rank's slots of a new placement: keeps and local copies from its own old
/// slots, sends and receives the rest peer to peer. Sends and receives of a layer run in
/// ascending destination-slot order on every rank, which pairs each blocking send with
/// its receive without deadlock.
public struct TransferExecutor: @unchecked Sendable {
    let model: CausalLM
    let channel: any WeightChannel
    let moeLayers: [Int]
    let plan: TransferPlan
    let target: EPLBPlacement
    /// This rank's rank in `target` (nil: it leaves and only sends). The plan's ranks are
    /// the channel's ranks.
    let newRank: Int?
    /// Where experts that no rank holds come from (the checkpoint, after a rank was lost).
    let restore: (any WeightSource)?

    /// - Parameters:
    ///   - plan: over the channel's ranks (old and new placements written in its rank space).
    ///   - target: the new placement in the new rank numbering.
    ///   - restore: the checkpoint, for slots whose expert no rank holds (else such a slot is an error).
    public init(model: CausalLM, channel: any WeightChannel, plan: TransferPlan, target: EPLBPlacement, newRank: Int?,
                restore: (any WeightSource)? = nil) {
        self.restore = restore
        self.model = model
        self.channel = channel
        self.moeLayers = model.moeLayerIndices
        self.plan = plan
        self.target = target
        self.newRank = newRank
    }

    /// Runs the plan on the channel's backend (the transfer lane: serving goes on meanwhile);
    /// returns the staged slots per layer (empty when leaving), all moved, and bytes sent.
    public func run() throws -> ([Int: ExpertSlots], Int) {
        let backend = channel.backend
        let me = channel.rank
        let shapes = model.expertSlotShapes
        let perRank = plan.slotsPerRank
        var staged: [Int: ExpertSlots] = [:]
        var moved: [(Int, Int, Tensor, Tensor)] = []
        var bytes = 0, restored = 0
        for (i, layer) in moeLayers.enumerated() {
            guard let old = model.expertSlots(layer: layer) else { continue }
            let gateUp = try backend.empty([perRank] + shapes.gateUp, dtype: backend.computeDType)
            let down = try backend.empty([perRank] + shapes.down, dtype: backend.computeDType)
            func slot(_ t: Tensor, _ index: Int, _ shape: [Int]) -> Tensor { t.slice(first: index..<(index + 1)).reshaped(shape) }
            let layerPlan = plan.layers[i]
            for s in layerPlan.slots where s.slot / perRank == me && newRank != nil {
                let to = s.slot % perRank
                switch s.source {
                case .keep:
                    backend.copy(slot(old.gateUp, to, shapes.gateUp), into: slot(gateUp, to, shapes.gateUp))
                    backend.copy(slot(old.down, to, shapes.down), into: slot(down, to, shapes.down))
                case .localCopy(let from):
                    backend.copy(slot(old.gateUp, from % perRank, shapes.gateUp), into: slot(gateUp, to, shapes.gateUp))
                    backend.copy(slot(old.down, from % perRank, shapes.down), into: slot(down, to, shapes.down))
                case .empty:
                    backend.fill(slot(gateUp, to, shapes.gateUp), value: 0)
                    backend.fill(slot(down, to, shapes.down), value: 0)
                case .receive:
                    break  // below, in global order
                case .loadFromCheckpoint:
                    guard let restore else {
                        throw EbbError(.unsupported, "EPLB: expert \(s.expert) of layer \(layer) is on no rank and no checkpoint was given to load it from")
                    }
                    try model.loadExpert(layer: layer, expert: s.expert, from: restore,
                                         gateUp: slot(gateUp, to, shapes.gateUp), down: slot(down, to, shapes.down))
                    restored += 1
                }
            }
            // Every send of the layer, by destination slot.
            let sends = layerPlan.sends.flatMap { $0 }.sorted { $0.toSlot < $1.toSlot }
            for send in sends {
                if send.fromRank == me && send.toRank == me { continue }
                if send.fromRank == me {
                    let from = send.fromSlot % perRank
                    for (t, shape) in [(old.gateUp, shapes.gateUp), (old.down, shapes.down)] {
                        let source = slot(t, from, shape)
                        try channel.send(source, to: send.toRank)
                        bytes += source.count * source.dtype.byteSize
                    }
                } else if send.toRank == me {
                    let to = send.toSlot % perRank
                    for (t, shape) in [(gateUp, shapes.gateUp), (down, shapes.down)] {
                        try channel.recv(into: slot(t, to, shape), from: send.fromRank,
                                         what: "expert \(send.expert) of layer \(layer)")
                    }
                }
            }
            if newRank != nil { moved.append((i, layer, gateUp, down)) }
        }
        // Checkpoint loads ran on the serving stream (the model's backend).
        if restored > 0 {
            model.backend.synchronize()
            try model.backend.checkErrors()
        }
        // Everything has moved before the routing tables are uploaded: no host copy while
        // the channel's transfers wait for peers.
        try channel.finish()
        for (i, layer, gateUp, down) in moved {
            guard let newRank else { break }
            staged[layer] = try ExpertSlots(placement: try ExpertBalancer.rankPlacement(target, layerOrdinal: i, rank: newRank),
                                            gateUp: gateUp, down: down, backend: backend)
        }
        backend.synchronize()
        try backend.checkErrors()
        return (staged, bytes)
    }
}

