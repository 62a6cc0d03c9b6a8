import EbbComm
import EbbControl
import EbbCore
import EbbEPLB
import EbbEngine
import EbbTensor
import EbbModel
import Foundation
import Synchronization

/// A checked `Reconfigure` message: who serves in the next generation and who exchanges
/// weights before the switch.
public struct ReconfigurationSpec: Sendable, Equatable {
    public let generation: UInt64
    /// Engine ids in the new rank order.
    public let members: [String]
    /// Old members in old rank order, then the joining ones: the transfer group's ranks.
    public let union: [String]
    public let oldWorldSize: Int
    public let timeout: Duration
    /// A recovery: the old generation's members in old rank order (the ones missing from
    /// `members` are lost); empty for a resize.
    public let recoveringFrom: [String]

    public init(_ m: Ebb_Control_V1_Reconfigure) throws {
        guard !m.members.isEmpty, Set(m.members).count == m.members.count, Set(m.union).count == m.union.count,
              Set(m.members).isSubset(of: Set(m.union)), m.oldWorldSize >= 1, Int(m.oldWorldSize) <= m.union.count,
              m.timeoutSeconds > 0, m.timeoutSeconds.isFinite else {
            throw EbbError(.invalidArgument, "malformed reconfiguration to generation \(m.generation)")
        }
        // Joining engines (after the old ones in the union) must all be members.
        guard m.union[Int(m.oldWorldSize)...].allSatisfy({ m.members.contains($0) }) else {
            throw EbbError(.invalidArgument, "reconfiguration: a joining engine is not a member")
        }
        if !m.recoveringFrom.isEmpty {
            guard m.union == m.members, Int(m.oldWorldSize) == m.members.count,
                  Set(m.recoveringFrom).count == m.recoveringFrom.count,
                  m.members.allSatisfy({ m.recoveringFrom.contains($0) }),
                  m.members.count < m.recoveringFrom.count || m.members == m.recoveringFrom else {
                throw EbbError(.invalidArgument, "malformed recovery to generation \(m.generation)")
            }
        }
        recoveringFrom = m.recoveringFrom
        generation = m.generation
        members = m.members
        union = m.union
        oldWorldSize = Int(m.oldWorldSize)
        timeout = .milliseconds(Int64(m.timeoutSeconds * 1000))
    }

    public var isRecovery: Bool { !recoveringFrom.isEmpty }
    /// Engines of the old generation that a recovery leaves out.
    public var lost: [String] { recoveringFrom.filter { !members.contains($0) } }

    public func unionIndex(of engine: String) -> Int? { union.firstIndex(of: engine) }
    public func newRank(of engine: String) -> Int? { members.firstIndex(of: engine) }
    public var joiningCount: Int { union.count - oldWorldSize }

    /// The old rank that hands dense weights to the joiner at union index `u`.
    public func denseServer(forJoiner u: Int) -> Int { (u - oldWorldSize) % oldWorldSize }

    /// Old and new placements written over the union's ranks, and the plan between them.
    func unionPlan(old: EPLBPlacement, target: EPLBPlacement) throws -> TransferPlan {
        let s = old.slotsPerRank
        guard target.slotsPerRank == s, old.numRanks == oldWorldSize, target.numRanks == members.count else {
            throw EbbError(.invalidArgument, "reconfiguration: placements of \(old.numRanks)×\(old.slotsPerRank) and \(target.numRanks)×\(target.slotsPerRank) slots do not fit \(oldWorldSize) → \(members.count) ranks")
        }
        let empty = [Int](repeating: -1, count: s)
        var oldU: [[Int]] = [], newU: [[Int]] = []
        for layer in 0..<old.numLayers {
            oldU.append(old.physicalToLogical[layer] + Array(repeating: -1, count: (union.count - oldWorldSize) * s))
            var row: [Int] = []
            for engine in union {
                if let r = newRank(of: engine) {
                    row += target.physicalToLogical[layer][(r * s)..<((r + 1) * s)]
                } else {
                    row += empty
                }
            }
            newU.append(row)
        }
        return try TransferPlan(old: oldU, new: newU, slotsPerRank: s)
    }
}

/// The next generation as one rank prepared it: its communicators, the staged experts and
/// how long each phase took.
final class PreparedGeneration: @unchecked Sendable {
    let spec: ReconfigurationSpec
    let done = Atomic<Bool>(false)
    let abandoned = Atomic<Bool>(false)
    var error: (any Error)?
    var serving: (any Communicator)?
    var eplbTransfer: (any WeightChannel)?
    /// The new generation's expert exchange (NCCL on GPU ranks), formed after the weights.
    var exchange: DataPlane.Exchange?
    var staged: [Int: ExpertSlots] = [:]
    var target: EPLBPlacement?
    var phases: [(String, Double)] = []
    var bytesSent = 0

    init(spec: ReconfigurationSpec) { self.spec = spec }

    private let phaseNow = Mutex("starting")

    /// The phase running now (or the last one started).
    var currentPhase: String { phaseNow.withLock { $0 } }

    func timed<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        phaseNow.withLock { $0 = phase }
        let start = ContinuousClock.now
        defer {
            let d = (ContinuousClock.now - start).components
            phases.append((phase, Double(d.seconds) + Double(d.attoseconds) * 1e-18))
        }
        return try body()
    }

    /// Releases what a rolled-back preparation built.
    func discard() {
        exchange?.nccl?.close()
        exchange = nil
        serving?.close()
        eplbTransfer?.close()
        serving = nil
        eplbTransfer = nil
        staged = [:]
    }
}

/// Builds a generation's communicators on one rank: the serving group over the members (if
/// this rank is one), its EPLB transfer group, and the transfer group over the union.
struct GenerationCommunicators {
    /// The union's host group (placements, checksums, weight requests).
    let transfer: any Communicator
    /// The union's weight channel (the tensors themselves: NCCL between GPUs).
    let weights: any WeightChannel
    let serving: (any Communicator)?
    /// The new members' channel for EPLB rearrangements.
    let eplbTransfer: (any WeightChannel)?

    /// Closes the union's groups (the serving and EPLB ones live on with the generation).
    func closeTransfer() {
        weights.close()
        transfer.close()
    }

    /// `groups` forms the host groups; `store` is where device groups (NCCL) meet. Joining
    /// any group is bounded by the attempt's timeout; the serving groups' operations by
    /// `servingTimeout`. A recovery passes `recovery`, which learns every group formed (a newer
    /// recovery breaks them).
    static func form(spec: ReconfigurationSpec, engine: String, groups: any CommunicatorFactory, store: any KeyValueStore,
                     eplb: Bool, backend: any Backend, servingTimeout: Duration,
                     recovery: RecoveryGroups? = nil) throws -> GenerationCommunicators {
        guard let u = spec.unionIndex(of: engine) else {
            throw EbbError(.invalidArgument, "engine \(engine) is not part of generation \(spec.generation)")
        }
        let g = spec.generation
        let transfer = try groups.form("transfer", rank: u, members: spec.union, generation: g, timeout: spec.timeout)
        try recovery?.track(transfer)
        let weights = try DataPlane.weightChannel("weights", host: transfer, backend: backend, store: store, timeout: spec.timeout)
        try recovery?.track(weights)
        var serving: (any Communicator)?
        var eplbTransfer: (any WeightChannel)?
        if let r = spec.newRank(of: engine) {
            let s = try groups.form("", rank: r, members: spec.members, generation: g, timeout: servingTimeout,
                                    connectTimeout: spec.timeout)
            serving = s
            try recovery?.track(s)
            if eplb {
                let host = try groups.form("eplb", rank: r, members: spec.members, generation: g, timeout: servingTimeout,
                                           connectTimeout: spec.timeout)
                try recovery?.track(host)
                let channel = try DataPlane.weightChannel("eplb", host: host, owning: true, backend: backend, store: store,
                                                          timeout: servingTimeout)
                eplbTransfer = channel
                try recovery?.track(channel)
            }
        }
        return GenerationCommunicators(transfer: transfer, weights: weights, serving: serving, eplbTransfer: eplbTransfer)
    }
}

/// Sends or receives both placements over the transfer group (union rank 0 is old rank 0,
/// which knows them); returns (old, target).
func sharePlacements(_ transfer: any Communicator, old: EPLBPlacement?, target: EPLBPlacement?, spec: ReconfigurationSpec)
    throws -> (EPLBPlacement, EPLBPlacement) {
    func share(_ p: EPLBPlacement?) throws -> [Int64] {
        var header: [Int64] = p.map { [Int64($0.numLayers), Int64($0.numPhysicalSlots), Int64($0.numLogicalExperts), Int64($0.numRanks)] }
            ?? [0, 0, 0, 0]
        try transfer.broadcast(&header, root: 0)
        let flat = p.map { $0.physicalToLogical.flatMap { $0.map { Int64($0) } } } ?? []
        return header + (try transfer.broadcastArray(flat, root: 0))
    }
    func build(_ v: [Int64]) throws -> EPLBPlacement {
        guard v.count >= 4, let layers = Int(exactly: v[0]), let slots = Int(exactly: v[1]), let experts = Int(exactly: v[2]),
              let ranks = Int(exactly: v[3]), layers > 0, slots > 0, v.count == 4 + layers * slots else {
            throw EbbError(.io, "reconfiguration: malformed placement from rank 0")
        }
        let rows = (0..<layers).map { l in (0..<slots).map { Int(v[4 + l * slots + $0]) } }
        return try EPLBPlacement(physicalToLogical: rows, numLogicalExperts: experts, numRanks: ranks)
    }
    let o = try build(try share(old))
    let t = try build(try share(target))
    return (o, t)
}
