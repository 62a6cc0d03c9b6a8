import EbbCore

/// Which physical expert slots exist, which rank holds them, and which logical expert each
/// holds — for one MoE layer. This is the seam where expert parallelism plugs in: the MoE
/// block computes the experts of this rank's slots; routing maps every (token, logical
/// expert) choice to a physical slot that may live on another rank.
///
/// Slots `rank · slotsPerRank ..< (rank + 1) · slotsPerRank` belong to `rank`. A slot whose
/// logical expert is −1 holds no weights and is never routed to.
public struct ExpertPlacement: Sendable, Equatable {
    public let numLogicalExperts: Int
    public let numRanks: Int
    public let slotsPerRank: Int
    /// The rank this process is.
    public let rank: Int
    /// `[numRanks · slotsPerRank]`: logical expert of each physical slot, −1 when empty.
    public let physicalToLogical: [Int]

    public init(numLogicalExperts: Int, numRanks: Int, rank: Int, physicalToLogical: [Int]) throws {
        guard numRanks > 0, rank >= 0, rank < numRanks, physicalToLogical.count % numRanks == 0 else {
            throw EbbError(.invalidArgument, "placement: \(physicalToLogical.count) slots over \(numRanks) ranks (rank \(rank)) is not a whole number per rank")
        }
        guard physicalToLogical.allSatisfy({ $0 >= -1 && $0 < numLogicalExperts }) else {
            throw EbbError(.invalidArgument, "placement: a slot names an expert outside 0..<\(numLogicalExperts)")
        }
        let covered = Set(physicalToLogical.filter { $0 >= 0 })
        guard covered.count == numLogicalExperts else {
            throw EbbError(.invalidArgument, "placement: \(numLogicalExperts - covered.count) logical experts have no slot")
        }
        self.numLogicalExperts = numLogicalExperts
        self.numRanks = numRanks
        self.rank = rank
        self.slotsPerRank = physicalToLogical.count / numRanks
        self.physicalToLogical = physicalToLogical
    }

    /// Experts split into contiguous equal runs, one run per rank (padding slots are −1).
    public static func contiguous(numExperts: Int, numRanks: Int, rank: Int) throws -> ExpertPlacement {
        guard numRanks > 0 else { throw EbbError(.invalidArgument, "placement needs at least one rank") }
        let per = (numExperts + numRanks - 1) / numRanks
        let map = (0..<(per * numRanks)).map { $0 < numExperts ? $0 : -1 }
        return try ExpertPlacement(numLogicalExperts: numExperts, numRanks: numRanks, rank: rank, physicalToLogical: map)
    }

    /// One rank holding every expert in order.
    public static func single(numExperts: Int) -> ExpertPlacement {
        // Cannot fail: identity map over one rank.
        (try? contiguous(numExperts: numExperts, numRanks: 1, rank: 0))
            ?? ExpertPlacement(unchecked: numExperts)
    }

    private init(unchecked numExperts: Int) {
        numLogicalExperts = numExperts
        numRanks = 1
        rank = 0
        slotsPerRank = numExperts
        physicalToLogical = Array(0..<numExperts)
    }

    public var numPhysicalSlots: Int { physicalToLogical.count }
    public var localSlots: Range<Int> { (rank * slotsPerRank)..<((rank + 1) * slotsPerRank) }
    /// Logical expert held by each local slot (−1 = empty).
    public var localExperts: [Int] { Array(physicalToLogical[localSlots]) }

    /// Physical slots of each logical expert, in slot order.
    public var replicas: [[Int]] {
        var result = [[Int]](repeating: [], count: numLogicalExperts)
        for (slot, expert) in physicalToLogical.enumerated() where expert >= 0 {
            result[expert].append(slot)
        }
        return result
    }

    /// `logicalToPhysical` padded with −1 to the largest replica count, and the counts.
    public func routingTable() -> (table: [Int32], width: Int, counts: [Int32]) {
        let r = replicas
        let width = max(1, r.map(\.count).max() ?? 1)
        var table = [Int32](repeating: -1, count: numLogicalExperts * width)
        for (e, slots) in r.enumerated() {
            for (i, s) in slots.enumerated() { table[e * width + i] = Int32(s) }
        }
        return (table, width, r.map { Int32($0.count) })
    }
}
