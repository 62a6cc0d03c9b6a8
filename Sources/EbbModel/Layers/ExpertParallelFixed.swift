import EbbCore
import EbbTensor
import Foundation

/// An expert exchange over device memory whose sizes are fixed before the step: every rank
/// exchanges the same number of rows (`ExpertParallelGroup.stepTokens`), so an MoE layer
/// needs no host copy of activations, routing or counts, and a decode step can be captured
/// and replayed as a graph. NCCL provides it on GPUs; `HostMemoryDeviceExchange` (EbbEngine)
/// provides it over any communicator for CPU tensors (tests).
///
/// Both calls enqueue on the backend's stream (or run synchronously on the CPU) and are
/// collectives: every rank of the group calls them in the same order with the same sizes.
public protocol DeviceExpertExchange: ExpertExchange {
    /// Rank r's `input` (`[n, …]`) lands at rows `r·n ..< (r+1)·n` of `output`.
    func allGather(_ input: Tensor, into output: Tensor) throws
    /// `input` and `output` hold `size` equal chunks of rows: input chunk r goes to rank r,
    /// output chunk r came from rank r.
    func allToAll(_ input: Tensor, into output: Tensor) throws
    /// Called before a step enqueues its collectives: from here the exchange watches for a
    /// peer that never joins them (a dead or hung rank) and breaks the group if one does.
    func expectProgress()
    /// Throws when the group broke while the last step's collectives ran (their results
    /// are then meaningless). Called after each step's results are read; ends the watch.
    func checkHealth() throws
}

extension DeviceExpertExchange {
    public func expectProgress() {}
    public func checkHealth() throws {}
}

extension MoEBlock {
    /// Expert parallelism with fixed sizes. Every rank contributes `padded` rows (its own
    /// tokens first, the rest padding whose pairs are −1):
    ///
    /// 1. route locally and map each pair to a global physical slot (padding and rows masked
    ///    by `rowMask` get −1);
    /// 2. all-gather the rows and their slots from every rank;
    /// 3. run this rank's experts on the gathered pairs whose slot is local (grouped GEMMs),
    ///    writing each output at its pair's row of a `[ranks · padded · k, H]` buffer;
    /// 4. all-to-all that buffer, so each rank gets back, from every rank, the outputs for
    ///    its own pairs;
    /// 5. combine per token in ascending logical expert order, as the single-rank path does.
    ///
    /// `x` nil is a rank without tokens this step: it still enters both collectives.
    func expertParallelFixed(_ x: Tensor?, padded: Int, rowMask: Tensor?, layer: Int, group: ExpertParallelGroup,
                             exchange: any DeviceExpertExchange, _ backend: any Backend) throws -> Tensor? {
        let slotsNow = experts.current
        let placement = slotsNow.placement
        let ranks = exchange.size, me = exchange.rank
        guard placement.numRanks == ranks, placement.rank == me else {
            throw EbbError(.internal, "expert placement is for rank \(placement.rank) of \(placement.numRanks), the exchange is rank \(me) of \(ranks)")
        }
        let tokens = x?.rows ?? 0
        guard padded >= tokens, padded > 0 else {
            throw EbbError(.internal, "expert exchange of \(padded) rows per rank cannot carry this rank's \(tokens) tokens")
        }
        let h = hidden, k = config.topK, perRank = placement.slotsPerRank
        let dtype = backend.computeDType

        // 1. Local routing into padded buffers.
        let rows = try backend.empty([padded, h], dtype: dtype)
        let slots = try backend.empty([padded, k], dtype: .i32)
        backend.fill(slots, value: -1)
        var logical: Tensor?, weights: Tensor?
        if let x, tokens > 0 {
            let (ids, w) = try route(x, backend)
            let mine = slots.rowSlice(0..<tokens)
            backend.mapExperts(ids, table: slotsNow.routingTable, replicaCount: slotsNow.replicaCounts,
                               slotBase: 0, slotCount: placement.numPhysicalSlots, out: mine)
            if let rowMask { backend.maskPairs(mine, rowMask: rowMask) }
            backend.copy(x, into: rows.rowSlice(0..<tokens))
            backend.countSlots(mine, counts: try group.loadCounter(layer: layer, numSlots: placement.numPhysicalSlots, backend))
            logical = ids
            weights = w
        }

        // 2. Gather every rank's rows and slots.
        let allRows = try backend.empty([ranks * padded, h], dtype: dtype)
        let allSlots = try backend.empty([ranks * padded, k], dtype: .i32)
        try exchange.allGather(rows, into: allRows)
        try exchange.allGather(slots, into: allSlots)

        // 3. This rank's experts over the gathered pairs that are local.
        let pairs = ranks * padded * k
        let local = try backend.empty([pairs], dtype: .i32)
        backend.rebaseSlots(allSlots, base: me * perRank, count: perRank, out: local)
        let ones = try backend.empty([pairs], dtype: .f32)
        backend.fill(ones, value: 1)
        let tokenIndex = try backend.empty([pairs], dtype: .i32)
        let pairIndex = try backend.empty([pairs], dtype: .i32)
        let sortedWeights = try backend.empty([pairs], dtype: .f32)
        let offsets = try backend.empty([perRank + 1], dtype: .i32)
        backend.groupBySlot(local, weights: ones, pairsPerToken: k, numSlots: perRank,
                            tokenIndex: tokenIndex, sortedWeights: sortedWeights, offsets: offsets)
        backend.groupBySlot(local, weights: ones, pairsPerToken: 1, numSlots: perRank,
                            tokenIndex: pairIndex, sortedWeights: sortedWeights, offsets: offsets)
        let y = try expertMLP(allRows, rowIndex: tokenIndex, offsets: offsets, slots: slotsNow, backend)
        let computed = try backend.empty([pairs, h], dtype: dtype)
        backend.scatterRows(y, rowIndex: pairIndex, out: computed)

        // 4. Each rank's pairs go back to it.
        let returned = try backend.empty([pairs, h], dtype: dtype)
        try exchange.allToAll(computed, into: returned)
        group.record(bytesSent: (ranks - 1) * padded * (h * dtype.byteSize + k * 4 + k * h * dtype.byteSize), seconds: 0)

        // 5. Combine.
        guard let x, tokens > 0, let logical, let weights else { return nil }
        let out = try backend.empty([tokens, h], dtype: dtype)
        backend.combinePairs(returned, slots: slots.rowSlice(0..<tokens), logical: logical, weights: weights,
                             slotsPerRank: perRank, pairsPerRank: padded * k, out: out)
        if let shared {
            backend.add(out, try shared(x, backend), out: out)
        }
        return out
    }
}
