import EbbCore

/// Where every logical expert of every MoE layer lives: `P` physical slots split evenly
/// over `numRanks` ranks (slot `p` is on rank `p / slotsPerRank`), each slot holding one
/// logical expert, every expert in at least one slot.
public struct EPLBPlacement: Sendable, Equatable {
    /// `[layers][P]`: the logical expert held by each physical slot.
    public let physicalToLogical: [[Int]]
    /// `[layers][P]`: which replica of its expert each slot is (0 ..< replicaCount).
    public let replicaRank: [[Int]]
    /// `[layers][E][maxReplicas]`: the slot of each replica of each expert, in replica
    /// rank order, padded with −1.
    public let logicalToPhysical: [[[Int]]]
    /// `[layers][E]`: the number of slots holding each expert.
    public let replicaCount: [[Int]]
    public let numLogicalExperts: Int
    public let numRanks: Int
    /// The widest `logicalToPhysical` row over all layers.
    public let maxReplicas: Int

    public var numLayers: Int { physicalToLogical.count }
    public var numPhysicalSlots: Int { physicalToLogical.first?.count ?? 0 }
    public var slotsPerRank: Int { numRanks > 0 ? numPhysicalSlots / numRanks : 0 }

    /// A placement from slot assignments and replica ranks.
    ///
    /// - Throws: `EbbError(.invalidArgument)` when there are no layers, rows differ in
    ///   length, `P` is not a positive multiple of `numRanks`, an entry is outside
    ///   `0..<numLogicalExperts`, an expert has no slot, or an expert's replica ranks are
    ///   not exactly `0..<replicaCount`.
    public init(physicalToLogical: [[Int]], replicaRank: [[Int]], numLogicalExperts: Int, numRanks: Int) throws {
        guard let first = physicalToLogical.first else {
            throw EbbError(.invalidArgument, "EPLBPlacement: no layers")
        }
        let P = first.count
        guard numLogicalExperts >= 1 else {
            throw EbbError(.invalidArgument, "EPLBPlacement: numLogicalExperts must be at least 1, got \(numLogicalExperts)")
        }
        guard numRanks >= 1, P >= 1, P % numRanks == 0 else {
            throw EbbError(.invalidArgument, "EPLBPlacement: \(P) slots do not divide among \(numRanks) ranks")
        }
        guard replicaRank.count == physicalToLogical.count else {
            throw EbbError(.invalidArgument, "EPLBPlacement: \(replicaRank.count) replica-rank rows for \(physicalToLogical.count) layers")
        }
        var counts: [[Int]] = []
        var maxReplicas = 1
        for (layer, row) in physicalToLogical.enumerated() {
            guard row.count == P, replicaRank[layer].count == P else {
                throw EbbError(.invalidArgument, "EPLBPlacement: layer \(layer) does not have \(P) slots")
            }
            var count = Array(repeating: 0, count: numLogicalExperts)
            for (slot, e) in row.enumerated() {
                guard e >= 0, e < numLogicalExperts else {
                    throw EbbError(.invalidArgument, "EPLBPlacement: layer \(layer) slot \(slot) holds expert \(e), outside 0..<\(numLogicalExperts)")
                }
                count[e] += 1
            }
            if let missing = count.firstIndex(of: 0) {
                throw EbbError(.invalidArgument, "EPLBPlacement: layer \(layer) has no slot for expert \(missing)")
            }
            maxReplicas = max(maxReplicas, count.max() ?? 1)
            counts.append(count)
        }
        var l2p: [[[Int]]] = []
        for (layer, row) in physicalToLogical.enumerated() {
            var table = Array(repeating: Array(repeating: -1, count: maxReplicas), count: numLogicalExperts)
            for (slot, e) in row.enumerated() {
                let r = replicaRank[layer][slot]
                guard r >= 0, r < counts[layer][e], table[e][r] == -1 else {
                    throw EbbError(.invalidArgument, "EPLBPlacement: layer \(layer) slot \(slot) has replica rank \(r) for expert \(e), which has \(counts[layer][e]) replicas (ranks must be distinct, 0..<count)")
                }
                table[e][r] = slot
            }
            l2p.append(table)
        }
        self.physicalToLogical = physicalToLogical
        self.replicaRank = replicaRank
        self.logicalToPhysical = l2p
        self.replicaCount = counts
        self.numLogicalExperts = numLogicalExperts
        self.numRanks = numRanks
        self.maxReplicas = maxReplicas
    }

    /// A placement from slot assignments alone; each expert's replicas are ranked in slot
    /// order.
    public init(physicalToLogical: [[Int]], numLogicalExperts: Int, numRanks: Int) throws {
        var ranks: [[Int]] = []
        for row in physicalToLogical {
            var seen: [Int: Int] = [:]
            ranks.append(row.map { e in
                let r = seen[e, default: 0]
                seen[e] = r + 1
                return r
            })
        }
        try self.init(physicalToLogical: physicalToLogical, replicaRank: ranks,
                      numLogicalExperts: numLogicalExperts, numRanks: numRanks)
    }

    /// The initial placement before any load is known: slot `p` holds expert `p % E` in
    /// every layer (experts in order, then the redundant slots replicate experts 0, 1, …).
    public static func contiguous(numLayers: Int, numLogicalExperts: Int, numPhysicalSlots: Int, numRanks: Int) throws -> EPLBPlacement {
        guard numLayers >= 1 else { throw EbbError(.invalidArgument, "EPLBPlacement.contiguous: numLayers must be at least 1") }
        guard numLogicalExperts >= 1, numPhysicalSlots >= numLogicalExperts else {
            throw EbbError(.invalidArgument, "EPLBPlacement.contiguous: \(numPhysicalSlots) slots cannot hold \(numLogicalExperts) experts")
        }
        let row = (0..<numPhysicalSlots).map { $0 % numLogicalExperts }
        return try EPLBPlacement(physicalToLogical: Array(repeating: row, count: numLayers),
                                 numLogicalExperts: numLogicalExperts, numRanks: numRanks)
    }

    /// The rank holding slot `slot`.
    public func rank(ofSlot slot: Int) -> Int { slot / max(1, slotsPerRank) }
}
