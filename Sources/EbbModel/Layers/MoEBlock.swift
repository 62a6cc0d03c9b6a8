import EbbCore
import EbbTensor

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
    let placement: ExpertPlacement
    /// `[localSlots, 2I, H]` gate rows then up rows, and `[localSlots, H, I]`.
    let gateUp: Tensor
    let down: Tensor
    /// `[E, width]` replica slots and `[E]` counts on the device.
    let routingTable: Tensor
    let replicaCounts: Tensor
    let shared: DenseMLP?
    /// Checkpoint tensors of the experts other ranks hold (this rank does not load them).
    let otherRanksTensorNames: Set<String>

    init(_ loader: WeightLoader, names: MoENames, config: MoEConfig, hidden: Int, placement: ExpertPlacement) throws {
        self.config = config
        self.hidden = hidden
        self.placement = placement
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
        gateUp = try loader.stacked(count: local.count, shape: [2 * inter, hidden]) { i, slice in
            let expert = local[i]
            guard expert >= 0 else { return }
            let n = names.expert(expert)
            try loader.load(n.gate, shape: [inter, hidden], into: slice.slice(first: 0..<inter))
            try loader.load(n.up, shape: [inter, hidden], into: slice.slice(first: inter..<(2 * inter)))
        }
        down = try loader.stacked(count: local.count, shape: [hidden, inter]) { i, slice in
            let expert = local[i]
            guard expert >= 0 else { return }
            try loader.load(names.expert(expert).down, shape: [hidden, inter], into: slice)
        }
        let table = placement.routingTable()
        let backend = loader.backend
        routingTable = try table.table.withUnsafeBytes {
            try backend.upload($0, sourceDType: .i32, shape: [e, table.width], dtype: .i32)
        }
        replicaCounts = try table.counts.withUnsafeBytes {
            try backend.upload($0, sourceDType: .i32, shape: [e], dtype: .i32)
        }
        if let s = names.shared, config.numSharedExperts > 0 {
            shared = try DenseMLP(loader, gate: s.gate, up: s.up, down: s.down, hidden: hidden,
                                  intermediate: inter * config.numSharedExperts)
        } else {
            shared = nil
        }
    }

    /// Routes `x: [T, H]` and returns the logical choices and their weights (`[T, k]`).
    func route(_ x: Tensor, _ backend: any Backend) throws -> (ids: Tensor, weights: Tensor) {
        let logits = try backend.linear(x, router)
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
        let pairs = ids.count, k = config.topK
        let slotCount = placement.slotsPerRank
        let inter = config.intermediateSize
        let slots = try backend.empty([pairs], dtype: .i32)
        backend.mapExperts(ids, table: routingTable, replicaCount: replicaCounts,
                           slotBase: placement.localSlots.lowerBound, slotCount: slotCount, out: slots)
        let tokenIndex = try backend.empty([pairs], dtype: .i32)
        let sortedWeights = try backend.empty([pairs], dtype: .f32)
        let offsets = try backend.empty([slotCount + 1], dtype: .i32)
        backend.groupBySlot(slots, weights: weights.reshaped([pairs]), pairsPerToken: k, numSlots: slotCount,
                            tokenIndex: tokenIndex, sortedWeights: sortedWeights, offsets: offsets)
        let gathered = try backend.empty([pairs, hidden], dtype: backend.computeDType)
        backend.gatherRows(x, indices: tokenIndex, out: gathered)
        let h = try backend.empty([pairs, 2 * inter], dtype: backend.computeDType)
        backend.groupedLinear(gathered, weights: gateUp, offsets: offsets, out: h)
        let a = try backend.empty([pairs, inter], dtype: backend.computeDType)
        backend.siluAndMul(h, out: a)
        let y = try backend.empty([pairs, hidden], dtype: backend.computeDType)
        backend.groupedLinear(a, weights: down, offsets: offsets, out: y)
        backend.scatterAddWeighted(y, rowIndex: tokenIndex, weight: sortedWeights, out: out)
    }
}
