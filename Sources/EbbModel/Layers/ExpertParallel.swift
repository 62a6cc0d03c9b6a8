import EbbCore
import EbbTensor
import Foundation

/// The one data-plane operation expert parallelism needs: a variable all-to-all over the
/// ranks of one generation. `EbbComm`'s communicators provide it (the engine adapts them),
/// so the model does not depend on a transport.
public protocol ExpertExchange: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// `input` holds, in rank order, `sendCounts[r]` elements of `elementSize` bytes for rank
    /// r; `output` receives `recvCounts[r]` elements from each rank r, in rank order.
    func allToAllV(_ input: UnsafeRawBufferPointer, sendCounts: [Int],
                   into output: UnsafeMutableRawBufferPointer, recvCounts: [Int], elementSize: Int) throws
}

/// Traffic of the expert exchanges, summed since the group was made.
public struct ExpertExchangeStats: Sendable, Equatable {
    /// MoE layer passes (one dispatch + one combine each).
    public var layerCalls: Int = 0
    /// Bytes this rank sent to other ranks (dispatch + combine; its own rows excluded).
    public var bytesSent: Int = 0
    /// Wall time spent inside the all-to-alls.
    public var exchangeSeconds: Double = 0
    public init() {}
}

/// The expert-parallel group a model's MoE layers exchange tokens through. The exchange is
/// replaced when the deployment moves to a new generation; the placement belongs to the
/// model's MoE blocks.
public final class ExpertParallelGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var current: any ExpertExchange
    private var counters = ExpertExchangeStats()

    public init(_ exchange: any ExpertExchange) {
        current = exchange
    }

    public var exchange: any ExpertExchange {
        get { lock.withLock { current } }
        set {
            lock.withLock {
                current = newValue
                exchangeVersion += 1
            }
        }
    }

    /// Counts exchange replacements: captured graphs hold the old exchange's communicator.
    public private(set) var exchangeVersion = 0

    /// Starts a device exchange's watch for peers that never join a step's collectives.
    public func expectProgress() {
        (exchange as? any DeviceExpertExchange)?.expectProgress()
    }

    /// Throws when a device exchange broke during the last step.
    public func checkHealth() throws {
        try (exchange as? any DeviceExpertExchange)?.checkHealth()
    }

    /// Whether the exchange has fixed sizes (a `DeviceExpertExchange`): then every rank
    /// must exchange `stepTokens` rows in every MoE layer of a step.
    public var isFixedSize: Bool { exchange is any DeviceExpertExchange }

    /// Rows each rank exchanges per MoE layer in the coming step (fixed-size exchanges):
    /// the largest token count of any rank this step (or the graph's batch bucket). The
    /// engine sets it before each forward; every rank must set the same value.
    public var stepTokens: Int {
        get { lock.withLock { tokensThisStep } }
        set { lock.withLock { tokensThisStep = newValue } }
    }
    private var tokensThisStep = 0

    /// Per-layer token counts per physical slot kept on the device (fixed-size exchanges,
    /// so that no MoE layer copies routing to the host); read by `takeLoads`.
    private var deviceLoads: [Int: Tensor] = [:]
    private var deviceLoadBackend: (any Backend)?

    func loadCounter(layer: Int, numSlots: Int, _ backend: any Backend) throws -> Tensor {
        try lock.withLock {
            if let t = deviceLoads[layer], t.count == numSlots { return t }
            let t = try backend.empty([numSlots], dtype: .i32)
            backend.fill(t, value: 0)
            deviceLoads[layer] = t
            deviceLoadBackend = backend
            return t
        }
    }

    public var stats: ExpertExchangeStats { lock.withLock { counters } }

    private var loads: [Int: [Int]] = [:]

    /// Counts this rank's tokens per physical slot of `layer` (the EPLB load statistics).
    func recordLoad(layer: Int, slots: [Int32], numSlots: Int) {
        lock.withLock {
            var row = loads[layer] ?? [Int](repeating: 0, count: numSlots)
            if row.count != numSlots { row = [Int](repeating: 0, count: numSlots) }
            for s in slots where s >= 0 && Int(s) < numSlots { row[Int(s)] += 1 }
            loads[layer] = row
        }
    }

    /// The tokens per physical slot recorded since the last call, by layer index; resets.
    /// Device counters are downloaded here (once per step, outside the MoE layers).
    public func takeLoads() -> [Int: [Int]] {
        lock.withLock {
            var taken = loads
            loads = [:]
            if let backend = deviceLoadBackend {
                for (layer, counter) in deviceLoads {
                    let counts = backend.downloadInts(counter)
                    backend.fill(counter, value: 0)
                    var row = taken[layer] ?? [Int](repeating: 0, count: counts.count)
                    if row.count != counts.count { row = [Int](repeating: 0, count: counts.count) }
                    for (i, c) in counts.enumerated() { row[i] += Int(c) }
                    taken[layer] = row
                }
            }
            return taken
        }
    }

    func record(bytesSent: Int, seconds: Double) {
        lock.withLock {
            counters.layerCalls += 1
            counters.bytesSent += bytesSent
            counters.exchangeSeconds += seconds
        }
    }
}

extension MoEBlock {
    /// Expert-parallel MoE: route locally, send each (token, expert) pair's hidden state to
    /// the rank that holds the expert's slot (dispatch), run the local experts as grouped
    /// GEMMs on what arrived, send the results back (combine), and add them up weighted.
    ///
    /// `x` is nil for a rank that has no tokens this step (a dummy batch): it still enters
    /// both all-to-alls and computes the rows other ranks send it. The per-token sum runs
    /// in ascending logical expert order, as the single-rank path does, so results are
    /// bit-identical to one rank holding every expert, replicas or not.
    func expertParallel(_ x: Tensor?, layer: Int, group: ExpertParallelGroup, rowMask: Tensor? = nil,
                        _ backend: any Backend) throws -> Tensor? {
        let exchange = group.exchange
        if let fixed = exchange as? any DeviceExpertExchange {
            return try expertParallelFixed(x, padded: group.stepTokens, rowMask: rowMask, layer: layer, group: group,
                                           exchange: fixed, backend)
        }
        let slotsNow = experts.current
        let placement = slotsNow.placement
        let ranks = exchange.size, me = exchange.rank
        guard placement.numRanks == ranks, placement.rank == me else {
            throw EbbError(.internal, "expert placement is for rank \(placement.rank) of \(placement.numRanks), the exchange is rank \(me) of \(ranks)")
        }
        let h = hidden, k = config.topK, perRank = placement.slotsPerRank
        let tokens = x?.rows ?? 0
        let pairs = tokens * k

        // Route and map each pair to a global physical slot.
        var slots = [Int32](), logical = [Int32](), weights = [Float](), xs = [Float]()
        if let x, tokens > 0 {
            let (ids, w) = try route(x, backend)
            let slotTensor = try backend.empty([tokens, k], dtype: .i32)
            backend.mapExperts(ids, table: slotsNow.routingTable, replicaCount: slotsNow.replicaCounts,
                               slotBase: 0, slotCount: placement.numPhysicalSlots, out: slotTensor)
            slots = backend.downloadInts(slotTensor)
            logical = backend.downloadInts(ids)
            weights = backend.downloadFloats(w)
            xs = backend.downloadFloats(x)
        }
        group.recordLoad(layer: layer, slots: slots, numSlots: placement.numPhysicalSlots)

        // Dispatch buffer: rows of h floats + the slot on the destination rank, by destination.
        var sendCounts = [Int](repeating: 0, count: ranks)
        for s in slots where s >= 0 { sendCounts[Int(s) / perRank] += 1 }
        var sendOrder = [Int]()  // pair index of each sent row
        sendOrder.reserveCapacity(pairs)
        var cursor = [Int](repeating: 0, count: ranks + 1)
        for r in 0..<ranks { cursor[r + 1] = cursor[r] + sendCounts[r] }
        sendOrder = [Int](repeating: 0, count: cursor[ranks])
        var fill = cursor
        for p in 0..<pairs where slots[p] >= 0 {
            let dest = Int(slots[p]) / perRank
            sendOrder[fill[dest]] = p
            fill[dest] += 1
        }
        let width = h + 1
        var sendRows = [Float](repeating: 0, count: sendOrder.count * width)
        for (i, p) in sendOrder.enumerated() {
            let token = p / k
            let base = i * width
            for c in 0..<h { sendRows[base + c] = xs[token * h + c] }
            sendRows[base + h] = Float(Int(slots[p]) % perRank)
        }

        var seconds = 0.0
        func timed<T>(_ body: () throws -> T) rethrows -> T {
            let t0 = ContinuousClock.now
            defer {
                let d = (ContinuousClock.now - t0).components
                seconds += Double(d.seconds) + Double(d.attoseconds) * 1e-18
            }
            return try body()
        }

        // Counts, then rows.
        let ones = [Int](repeating: 1, count: ranks)
        var recvCounts32 = [Int32](repeating: 0, count: ranks)
        let sendCounts32 = sendCounts.map { Int32($0) }
        try timed {
            try sendCounts32.withUnsafeBytes { src in
                try recvCounts32.withUnsafeMutableBytes { dst in
                    try exchange.allToAllV(src, sendCounts: ones, into: dst, recvCounts: ones, elementSize: 4)
                }
            }
        }
        let recvCounts = try recvCounts32.map { c -> Int in
            guard c >= 0, c <= 1 << 24 else { throw EbbError(.io, "expert dispatch: a peer announced \(c) rows") }
            return Int(c)
        }
        let received = recvCounts.reduce(0, +)
        var recvRows = [Float](repeating: 0, count: received * width)
        try timed {
            try sendRows.withUnsafeBytes { src in
                try recvRows.withUnsafeMutableBytes { dst in
                    try exchange.allToAllV(src, sendCounts: sendCounts, into: dst, recvCounts: recvCounts,
                                           elementSize: width * 4)
                }
            }
        }

        // Local experts over the received rows.
        var results = [Float](repeating: 0, count: received * h)
        if received > 0 {
            results = try computeReceived(recvRows, count: received, slots: slotsNow, backend)
        }

        // Combine: results go back in the order they came; we receive ours in send order.
        var returned = [Float](repeating: 0, count: sendOrder.count * h)
        try timed {
            try results.withUnsafeBytes { src in
                try returned.withUnsafeMutableBytes { dst in
                    try exchange.allToAllV(src, sendCounts: recvCounts, into: dst, recvCounts: sendCounts,
                                           elementSize: h * 4)
                }
            }
        }
        let sentElsewhere = (0..<ranks).filter { $0 != me }.reduce(0) { $0 + sendCounts[$1] * width * 4 + recvCounts[$1] * h * 4 }
        group.record(bytesSent: sentElsewhere, seconds: seconds)

        guard let x, tokens > 0 else { return nil }
        // Weighted sum per token in ascending logical expert order (stable in pair order):
        // the order one rank holding every expert in its own slot uses, whichever replica
        // computed each pair.
        let byRow = sendOrder.indices.sorted { a, b in
            let ea = logical[sendOrder[a]], eb = logical[sendOrder[b]]
            return ea != eb ? ea < eb : sendOrder[a] < sendOrder[b]
        }
        var sortedRows = [Float](repeating: 0, count: byRow.count * h)
        var rowIndex = [Int32](repeating: 0, count: byRow.count)
        var rowWeight = [Float](repeating: 0, count: byRow.count)
        for (j, i) in byRow.enumerated() {
            let p = sendOrder[i]
            rowIndex[j] = Int32(p / k)
            rowWeight[j] = weights[p]
            for c in 0..<h { sortedRows[j * h + c] = returned[i * h + c] }
        }
        let out = try backend.empty([tokens, h], dtype: backend.computeDType)
        backend.fill(out, value: 0)
        if !byRow.isEmpty {
            let y = try sortedRows.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [byRow.count, h], dtype: backend.computeDType) }
            let ri = try rowIndex.withUnsafeBytes { try backend.upload($0, sourceDType: .i32, shape: [byRow.count], dtype: .i32) }
            let rw = try rowWeight.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [byRow.count], dtype: .f32) }
            backend.scatterAddWeighted(y, rowIndex: ri, weight: rw, out: out)
        }
        if let shared {
            backend.add(out, try shared(x, backend), out: out)
        }
        return out
    }

    /// Runs this rank's experts on received rows (`h` floats + local slot each); returns the
    /// outputs in the order the rows arrived.
    private func computeReceived(_ rows: [Float], count n: Int, slots: ExpertSlots, _ backend: any Backend) throws -> [Float] {
        let h = hidden, width = h + 1, perRank = slots.placement.slotsPerRank
        var xs = [Float](repeating: 0, count: n * h)
        var local = [Int32](repeating: -1, count: n)
        for i in 0..<n {
            for c in 0..<h { xs[i * h + c] = rows[i * width + c] }
            let s = rows[i * width + h]
            guard s >= 0, s < Float(perRank), s == s.rounded() else {
                throw EbbError(.io, "expert dispatch: a peer sent slot \(s), this rank has \(perRank)")
            }
            local[i] = Int32(s)
        }
        let xt = try xs.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [n, h], dtype: backend.computeDType) }
        let st = try local.withUnsafeBytes { try backend.upload($0, sourceDType: .i32, shape: [n], dtype: .i32) }
        let ones = try backend.empty([n], dtype: .f32)
        backend.fill(ones, value: 1)
        let rowOf = try backend.empty([n], dtype: .i32)
        let sortedWeights = try backend.empty([n], dtype: .f32)
        let offsets = try backend.empty([perRank + 1], dtype: .i32)
        backend.groupBySlot(st, weights: ones, pairsPerToken: 1, numSlots: perRank,
                            tokenIndex: rowOf, sortedWeights: sortedWeights, offsets: offsets)
        let y = try expertMLP(xt, rowIndex: rowOf, offsets: offsets, slots: slots, backend)
        let sorted = backend.downloadFloats(y)
        let order = backend.downloadInts(rowOf)
        var out = [Float](repeating: 0, count: n * h)
        for (j, r) in order.enumerated() where r >= 0 && Int(r) < n {
            let dst = Int(r) * h
            for c in 0..<h { out[dst + c] = sorted[j * h + c] }
        }
        return out
    }
}
