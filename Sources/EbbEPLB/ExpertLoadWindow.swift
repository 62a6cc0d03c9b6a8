import EbbCore

/// A sliding window over the last `capacity` engine steps of tokens routed to each
/// physical expert slot of each MoE layer.
///
/// `record` costs O(layers × slots) — the size of its input — independent of the window
/// size: a running sum per slot is updated with the new step and the evicted one. Dummy
/// steps (no tokens, e.g. a rank idling in a collective) count as steps but store nothing.
///
/// Slots are physical: after a rebalance changes `physicalToLogical`, the old steps'
/// counts belong to the old placement, so call `reset()` (or accept a mixed window).
public struct ExpertLoadWindow: Sendable {
    public let capacity: Int
    public let numLayers: Int
    public let numSlots: Int

    /// Ring buffer of steps, `numLayers * numSlots` counts each; grows up to `capacity`.
    private var storage: [UInt32] = []
    /// Per ring position: whether that step was all zeros (nothing to subtract).
    private var zeroStep: [Bool] = []
    /// Next ring position to write.
    private var head = 0
    /// Running sums over the window, `numLayers * numSlots`.
    private var sums: [Int]
    /// Steps in the window now (≤ capacity).
    public private(set) var stepCount = 0
    /// Steps recorded since creation or the last reset.
    public private(set) var totalSteps = 0

    /// - Throws: `EbbError(.invalidArgument)` unless `capacity >= 1`, `numLayers >= 1`,
    ///   `numSlots >= 1`.
    public init(numLayers: Int, numSlots: Int, capacity: Int = 1000) throws {
        guard capacity >= 1 else { throw EbbError(.invalidArgument, "ExpertLoadWindow: capacity must be at least 1, got \(capacity)") }
        guard numLayers >= 1, numSlots >= 1 else {
            throw EbbError(.invalidArgument, "ExpertLoadWindow: need at least one layer and one slot, got \(numLayers)×\(numSlots)")
        }
        let (size, overflow) = numLayers.multipliedReportingOverflow(by: numSlots)
        guard !overflow, size <= 1 << 26 else { throw EbbError(.invalidArgument, "ExpertLoadWindow: \(numLayers)×\(numSlots) is too large") }
        self.capacity = capacity
        self.numLayers = numLayers
        self.numSlots = numSlots
        self.sums = Array(repeating: 0, count: size)
    }

    private var stepSize: Int { numLayers * numSlots }

    /// Records one step: `counts[layer][slot]` tokens routed to each slot.
    /// - Throws: `EbbError(.invalidArgument)` when the shape is not `[numLayers][numSlots]`
    ///   or a count is negative or above `UInt32.max`; the window is then unchanged.
    public mutating func record(_ counts: [[Int]]) throws {
        guard counts.count == numLayers else {
            throw EbbError(.invalidArgument, "ExpertLoadWindow.record: \(counts.count) layers, expected \(numLayers)")
        }
        var allZero = true
        for (layer, row) in counts.enumerated() {
            guard row.count == numSlots else {
                throw EbbError(.invalidArgument, "ExpertLoadWindow.record: layer \(layer) has \(row.count) slots, expected \(numSlots)")
            }
            for c in row {
                guard c >= 0, c <= Int(UInt32.max) else {
                    throw EbbError(.invalidArgument, "ExpertLoadWindow.record: count \(c) in layer \(layer) is out of range")
                }
                if c != 0 { allZero = false }
            }
        }
        if allZero { recordDummyStep(); return }
        let base = advance(zero: false)
        var i = 0
        for row in counts {
            for c in row {
                storage[base + i] = UInt32(c)
                sums[i] += c
                i += 1
            }
        }
    }

    /// Records a step in which no tokens were routed; it still counts as a step and
    /// pushes the oldest one out of a full window.
    public mutating func recordDummyStep() {
        _ = advance(zero: true)
    }

    /// Evicts the oldest step when the window is full, claims the head position and
    /// returns its offset in `storage` (contents stale when `zero`).
    private mutating func advance(zero: Bool) -> Int {
        let n = stepSize
        if stepCount == capacity {
            // Evict the step at head (the oldest).
            if !zeroStep[head] {
                let base = head * n
                for i in 0..<n { sums[i] -= Int(storage[base + i]) }
            }
        } else {
            stepCount += 1
            if zeroStep.count < capacity && head == zeroStep.count {
                zeroStep.append(true)
                if !zero { storage.append(contentsOf: repeatElement(0, count: n)) }
            }
        }
        if !zero && storage.count < (head + 1) * n {
            // A dummy step grew the ring without storage; fill up to this position.
            storage.append(contentsOf: repeatElement(0, count: (head + 1) * n - storage.count))
        }
        zeroStep[head] = zero
        let base = head * n
        head = (head + 1) % capacity
        totalSteps += 1
        return base
    }

    /// Clears the window (e.g. after a rebalance moved experts between slots).
    public mutating func reset() {
        storage = []
        zeroStep = []
        head = 0
        stepCount = 0
        totalSteps = 0
        for i in sums.indices { sums[i] = 0 }
    }

    /// Tokens per slot summed over the window, `[numLayers][numSlots]`.
    public var slotLoad: [[Int]] {
        (0..<numLayers).map { l in Array(sums[(l * numSlots)..<((l + 1) * numSlots)]) }
    }

    /// Tokens per logical expert summed over the window and over the expert's replicas,
    /// `[numLayers][E]`. Slots holding −1 (empty) are skipped. `E` defaults to one more
    /// than the largest expert id in `physicalToLogical`.
    /// - Throws: `EbbError(.invalidArgument)` when the map is not `[numLayers][numSlots]`
    ///   or an id is below −1 or not below `numLogicalExperts`.
    public func logicalLoad(physicalToLogical: [[Int]], numLogicalExperts: Int? = nil) throws -> [[Double]] {
        guard physicalToLogical.count == numLayers else {
            throw EbbError(.invalidArgument, "ExpertLoadWindow.logicalLoad: map has \(physicalToLogical.count) layers, expected \(numLayers)")
        }
        let E = numLogicalExperts ?? ((physicalToLogical.lazy.compactMap { $0.max() }.max() ?? -1) + 1)
        guard E >= 0 else { throw EbbError(.invalidArgument, "ExpertLoadWindow.logicalLoad: numLogicalExperts is negative") }
        var out: [[Double]] = []
        out.reserveCapacity(numLayers)
        for (layer, row) in physicalToLogical.enumerated() {
            guard row.count == numSlots else {
                throw EbbError(.invalidArgument, "ExpertLoadWindow.logicalLoad: layer \(layer) map has \(row.count) slots, expected \(numSlots)")
            }
            var load = Array(repeating: 0.0, count: E)
            for (slot, e) in row.enumerated() {
                if e == -1 { continue }
                guard e >= 0, e < E else {
                    throw EbbError(.invalidArgument, "ExpertLoadWindow.logicalLoad: layer \(layer) slot \(slot) maps to expert \(e), outside 0..<\(E)")
                }
                load[e] += Double(sums[layer * numSlots + slot])
            }
            out.append(load)
        }
        return out
    }

    /// `logicalLoad` under a placement.
    public func logicalLoad(placement: EPLBPlacement) throws -> [[Double]] {
        try logicalLoad(physicalToLogical: placement.physicalToLogical, numLogicalExperts: placement.numLogicalExperts)
    }
}
