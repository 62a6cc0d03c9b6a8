import EbbCore
import EbbTensor
import Foundation

/// Checkpoint names of one MoE layer's tensors, per architecture.
struct MoENames: Sendable {
    var router: String
    var correctionBias: String?
    /// Names of expert e's gate, up and down projections.
    var expert: @Sendable (Int) -> (gate: String, up: String, down: String)
    /// Shared expert MLP (DeepSeek), if any.
    var shared: (gate: String, up: String, down: String)?
}

/// An MoE layer: router → top-k → physical slots → grouped expert GEMMs → weighted sum.
///
/// Routing produces (token, logical expert, weight) triples; `placement` maps them to
/// physical slots. This block computes the slots local to its rank, which is every slot
/// when there is one rank. Expert parallelism replaces the local step with dispatch →
/// local experts → combine over the same triples.
struct MoEBlock: Sendable {
    let config: MoEConfig
    let hidden: Int
    let router: Tensor
    let correctionBias: Tensor?
    /// This rank's expert slots; replaced whole when experts are rearranged.
    let experts: ExpertSlotsHolder
    let shared: DenseMLP?

    var placement: ExpertPlacement { experts.current.placement }
    /// Checkpoint tensors of the experts other ranks hold (this rank does not load them).
    let otherRanksTensorNames: Set<String>
    /// Checkpoint names of this layer's tensors (to reload an expert after a rank is lost).
    let names: MoENames

    init(_ loader: WeightLoader, names: MoENames, config: MoEConfig, hidden: Int, placement: ExpertPlacement) throws {
        self.config = config
        self.hidden = hidden
        self.names = names
        let e = config.numExperts, inter = config.intermediateSize
        router = try loader.tensor(names.router, shape: [e, hidden])
        if let biasName = names.correctionBias {
            correctionBias = try loader.tensor(biasName, shape: [e])
        } else {
            correctionBias = nil
        }
        let local = placement.localExperts
        let localSet = Set(local)
        var others = Set<String>()
        for expert in 0..<e where !localSet.contains(expert) {
            let n = names.expert(expert)
            others.formUnion([n.gate, n.up, n.down])
        }
        otherRanksTensorNames = others
        for expert in local where expert >= 0 {
            let n = names.expert(expert)
            try loader.source.check(n.gate, shape: [inter, hidden])
            try loader.source.check(n.up, shape: [inter, hidden])
            try loader.source.check(n.down, shape: [hidden, inter])
        }
        let gateUp = try loader.stacked(count: local.count, shape: [2 * inter, hidden]) { i, slice in
            let expert = local[i]
            guard expert >= 0 else { return }
            let n = names.expert(expert)
            try loader.load(n.gate, shape: [inter, hidden], into: slice.slice(first: 0..<inter))
            try loader.load(n.up, shape: [inter, hidden], into: slice.slice(first: inter..<(2 * inter)))
        }
        let down = try loader.stacked(count: local.count, shape: [hidden, inter]) { i, slice in
            let expert = local[i]
            guard expert >= 0 else { return }
            try loader.load(names.expert(expert).down, shape: [hidden, inter], into: slice)
        }
        experts = ExpertSlotsHolder(try ExpertSlots(placement: placement, gateUp: gateUp, down: down, backend: loader.backend))
        if let s = names.shared, config.numSharedExperts > 0 {
            shared = try DenseMLP(loader, gate: s.gate, up: s.up, down: s.down, hidden: hidden,
                                  intermediate: inter * config.numSharedExperts)
        } else {
            shared = nil
        }
    }

    /// Loads expert `expert` from `source` into one slot: `gateUp` `[2I, H]` (gate rows
    /// first) and `down` `[H, I]`.
    func loadExpert(_ expert: Int, from source: any WeightSource, gateUp: Tensor, down: Tensor, _ backend: any Backend) throws {
        guard expert >= 0, expert < config.numExperts else {
            throw EbbError(.invalidArgument, "expert \(expert) is outside 0..<\(config.numExperts)")
        }
        let inter = config.intermediateSize, n = names.expert(expert)
        try source.load(n.gate, shape: [inter, hidden], into: gateUp.slice(first: 0..<inter), backend: backend)
        try source.load(n.up, shape: [inter, hidden], into: gateUp.slice(first: inter..<(2 * inter)), backend: backend)
        try source.load(n.down, shape: [hidden, inter], into: down, backend: backend)
    }

    /// Routes `x: [T, H]` and returns the logical choices and their weights (`[T, k]`).
    func route(_ x: Tensor, _ backend: any Backend) throws -> (ids: Tensor, weights: Tensor) {
        // Router logits in f32 (as DeepSeek's reference computes them): in bf16, near-tied
        // experts would swap on rounding alone.
        let logits = try backend.empty([x.rows, router.rows], dtype: .f32)
        backend.linear(x, router, out: logits)
        let k = config.topK
        let ids = try backend.empty([x.rows, k], dtype: .i32)
        let weights = try backend.empty([x.rows, k], dtype: .f32)
        backend.routeTopK(logits: logits, correctionBias: correctionBias, router: config.router, ids: ids, weights: weights)
        return (ids, weights)
    }

    func callAsFunction(_ x: Tensor, _ backend: any Backend) throws -> Tensor {
        let t = x.rows
        let (ids, weights) = try route(x, backend)
        let out = try backend.empty([t, hidden], dtype: backend.computeDType)
        backend.fill(out, value: 0)
        try computeLocalExperts(x, ids: ids, weights: weights, into: out, backend)
        if let shared {
            backend.add(out, try shared(x, backend), out: out)
        }
        return out
    }

    /// Adds the weighted outputs of this rank's slots for the routed pairs to `out`.
    func computeLocalExperts(_ x: Tensor, ids: Tensor, weights: Tensor, into out: Tensor, _ backend: any Backend) throws {
        let slots = experts.current
        let placement = slots.placement
        let pairs = ids.count, k = config.topK
        let slotCount = placement.slotsPerRank
        let slotOf = try backend.empty([pairs], dtype: .i32)
        backend.mapExperts(ids, table: slots.routingTable, replicaCount: slots.replicaCounts,
                           slotBase: placement.localSlots.lowerBound, slotCount: slotCount, out: slotOf)
        let tokenIndex = try backend.empty([pairs], dtype: .i32)
        let sortedWeights = try backend.empty([pairs], dtype: .f32)
        let offsets = try backend.empty([slotCount + 1], dtype: .i32)
        backend.groupBySlot(slotOf, weights: weights.reshaped([pairs]), pairsPerToken: k, numSlots: slotCount,
                            tokenIndex: tokenIndex, sortedWeights: sortedWeights, offsets: offsets)
        let y = try expertMLP(x, rowIndex: tokenIndex, offsets: offsets, slots: slots, backend)
        backend.scatterAddWeighted(y, rowIndex: tokenIndex, weight: sortedWeights, out: out)
    }

    /// The experts' MLP over the rows `x[rowIndex[r]]` grouped by slot (`offsets`): gate/up
    /// grouped GEMM (reading x through the index) → SiLU·mul with the down grouped GEMM.
    /// Returns `[rowIndex.count, hidden]` in the index's order.
    func expertMLP(_ x: Tensor, rowIndex: Tensor, offsets: Tensor, slots: ExpertSlots, _ backend: any Backend) throws -> Tensor {
        let rows = rowIndex.count, inter = config.intermediateSize
        let h = try backend.empty([rows, 2 * inter], dtype: backend.computeDType)
        backend.groupedLinear(x, rowIndex: rowIndex, weights: slots.gateUp, offsets: offsets, out: h)
        let y = try backend.empty([rows, hidden], dtype: backend.computeDType)
        backend.groupedSwiGLULinear(h, weights: slots.down, offsets: offsets, out: y)
        return y
    }
}

/// One MoE layer's expert weights on this rank for one placement: `gateUp`
/// `[slotsPerRank, 2I, H]` (gate rows then up rows), `down` `[slotsPerRank, H, I]`, and the
/// routing tables (`[E, width]` replica slots, `[E]` counts) on the device.
public final class ExpertSlots: Sendable {
    public let placement: ExpertPlacement
    public let gateUp: Tensor
    public let down: Tensor
    let routingTable: Tensor
    let replicaCounts: Tensor

    public init(placement: ExpertPlacement, gateUp: Tensor, down: Tensor, backend: any Backend) throws {
        guard gateUp.shape.first == placement.slotsPerRank, down.shape.first == placement.slotsPerRank else {
            throw EbbError(.invalidArgument, "expert slots: \(gateUp.shape) / \(down.shape) do not hold \(placement.slotsPerRank) slots")
        }
        self.placement = placement
        self.gateUp = gateUp
        self.down = down
        let table = placement.routingTable()
        routingTable = try table.table.withUnsafeBytes {
            try backend.upload($0, sourceDType: .i32, shape: [placement.numLogicalExperts, table.width], dtype: .i32)
        }
        replicaCounts = try table.counts.withUnsafeBytes {
            try backend.upload($0, sourceDType: .i32, shape: [placement.numLogicalExperts], dtype: .i32)
        }
    }
}

/// The current `ExpertSlots` of a layer. Swapped only between steps, on the engine thread.
final class ExpertSlotsHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: ExpertSlots

    init(_ slots: ExpertSlots) { self.slots = slots }

    var current: ExpertSlots {
        get { lock.withLock { slots } }
        set { lock.withLock { slots = newValue } }
    }
}
