import EbbCore

// The expert-parallelism load balancer (EPLB) policy, after DeepSeek's published
// algorithm (github.com/deepseek-ai/EPLB), written from its description in plain Swift
// arrays, one layer at a time.
//
// Tie rules (DeepSeek's reference leaves them to torch's unstable sort and argmax; ours
// are fixed and documented so results are deterministic on every platform):
//   * balancedPacking: items are visited by descending weight; equal weights are visited
//     lower item index first (a stable sort). Each item goes to the lightest pack that
//     still has room; among equally light packs the lowest pack index wins.
//   * replicateExperts: each extra slot goes to the expert with the largest load per
//     replica (load / replicaCount); among equal values the lowest expert index wins.
// With these rules the example published in DeepSeek's README is reproduced exactly.

/// Packs `n` weighted items of every layer into `numPacks` packs of exactly
/// `n / numPacks` items each, so that the packs' total weights are as even as the greedy
/// heuristic makes them.
///
/// - Parameter weights: `[layers][n]`, the weight of each item; every row has the same
///   `n`, a multiple of `numPacks`.
/// - Returns: `packIndex[l][i]`, the pack of item `i`, and `rankInPack[l][i]`, its position
///   inside that pack (the order in which items entered it).
/// - Throws: `EbbError(.invalidArgument)` when `numPacks < 1`, rows differ in length, a
///   row's length is not a multiple of `numPacks`, or a weight is not finite.
public func balancedPacking(weights: [[Double]], numPacks: Int) throws -> (packIndex: [[Int]], rankInPack: [[Int]]) {
    guard numPacks >= 1 else {
        throw EbbError(.invalidArgument, "balancedPacking: numPacks must be at least 1, got \(numPacks)")
    }
    var packIndex: [[Int]] = []
    var rankInPack: [[Int]] = []
    packIndex.reserveCapacity(weights.count)
    rankInPack.reserveCapacity(weights.count)
    let n = weights.first?.count ?? 0
    for (layer, row) in weights.enumerated() {
        guard row.count == n else {
            throw EbbError(.invalidArgument, "balancedPacking: layer \(layer) has \(row.count) items, layer 0 has \(n)")
        }
        guard row.allSatisfy({ $0.isFinite }) else {
            throw EbbError(.invalidArgument, "balancedPacking: layer \(layer) has a non-finite weight")
        }
        guard n % numPacks == 0 else {
            throw EbbError(.invalidArgument, "balancedPacking: \(n) items do not divide into \(numPacks) packs")
        }
        let (p, r) = packRow(row, numPacks: numPacks)
        packIndex.append(p)
        rankInPack.append(r)
    }
    return (packIndex, rankInPack)
}

/// One row of `balancedPacking`; the caller has checked `row.count % numPacks == 0`.
func packRow(_ row: [Double], numPacks: Int) -> (packIndex: [Int], rankInPack: [Int]) {
    let n = row.count
    let perPack = n / numPacks
    if perPack <= 1 {
        // One item per pack (or none): item i is pack i, first in it.
        return (Array(0..<n), Array(repeating: 0, count: n))
    }
    // Descending weight, ties lower index first.
    let order = (0..<n).sorted { a, b in
        row[a] != row[b] ? row[a] > row[b] : a < b
    }
    var packIndex = Array(repeating: -1, count: n)
    var rankInPack = Array(repeating: -1, count: n)
    var packWeight = Array(repeating: 0.0, count: numPacks)
    var packItems = Array(repeating: 0, count: numPacks)
    for item in order {
        var best = -1
        for pack in 0..<numPacks where packItems[pack] < perPack {
            if best < 0 || packWeight[pack] < packWeight[best] { best = pack }
        }
        // n == numPacks * perPack items and every pack takes perPack, so a pack with
        // room always exists; `best >= 0` holds.
        if best < 0 { break }
        packIndex[item] = best
        rankInPack[item] = packItems[best]
        packWeight[best] += row[item]
        packItems[best] += 1
    }
    return (packIndex, rankInPack)
}

/// Replicates the `numLogical` experts of every layer into `numPhysical` physical
/// experts: the first `numLogical` physical experts are the experts themselves in order,
/// and each extra one replicates the expert whose load per replica is currently largest
/// (ties: lowest expert index), which minimises the maximum load per replica greedily.
///
/// - Parameter weights: `[layers][numLogical]`, non-negative finite loads.
/// - Returns: `physicalToLogical[l][p]`, the expert of physical expert `p`; `rank[l][p]`,
///   which replica of that expert it is (0 for the original); `logicalCount[l][e]`, the
///   number of replicas of expert `e`.
/// - Throws: `EbbError(.invalidArgument)` when `numPhysical < numLogical`, rows differ in
///   length, or a weight is negative or not finite.
public func replicateExperts(weights: [[Double]], numPhysical: Int) throws
    -> (physicalToLogical: [[Int]], rank: [[Int]], logicalCount: [[Int]])
{
    let numLogical = weights.first?.count ?? 0
    guard numPhysical <= eplbMaxPhysicalSlots else {
        throw EbbError(.invalidArgument, "replicateExperts: \(numPhysical) physical experts exceed the limit of \(eplbMaxPhysicalSlots)")
    }
    guard numPhysical >= numLogical else {
        throw EbbError(.invalidArgument, "replicateExperts: \(numPhysical) physical experts are fewer than \(numLogical) logical experts")
    }
    var phy2log: [[Int]] = []
    var ranks: [[Int]] = []
    var counts: [[Int]] = []
    for (layer, row) in weights.enumerated() {
        guard row.count == numLogical else {
            throw EbbError(.invalidArgument, "replicateExperts: layer \(layer) has \(row.count) experts, layer 0 has \(numLogical)")
        }
        guard row.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw EbbError(.invalidArgument, "replicateExperts: layer \(layer) has a negative or non-finite load")
        }
        let r = replicateRow(row, numPhysical: numPhysical)
        phy2log.append(r.physicalToLogical)
        ranks.append(r.rank)
        counts.append(r.logicalCount)
    }
    return (phy2log, ranks, counts)
}

/// One row of `replicateExperts`; the caller has checked `numPhysical >= row.count`.
func replicateRow(_ row: [Double], numPhysical: Int) -> (physicalToLogical: [Int], rank: [Int], logicalCount: [Int]) {
    let numLogical = row.count
    var phy2log = Array(0..<numLogical)
    var rank = Array(repeating: 0, count: numLogical)
    var count = Array(repeating: 1, count: numLogical)
    guard numLogical > 0 else { return ([], [], []) }
    phy2log.reserveCapacity(numPhysical)
    rank.reserveCapacity(numPhysical)
    for _ in numLogical..<max(numLogical, numPhysical) {
        var best = 0
        var bestValue = row[0] / Double(count[0])
        for e in 1..<numLogical {
            let v = row[e] / Double(count[e])
            if v > bestValue { best = e; bestValue = v }
        }
        phy2log.append(best)
        rank.append(count[best])
        count[best] += 1
    }
    return (phy2log, rank, count)
}

/// The inverse of a permutation of `0..<perm.count`.
func inversePermutation(_ perm: [Int]) -> [Int] {
    var inv = Array(repeating: 0, count: perm.count)
    for (i, p) in perm.enumerated() { inv[p] = i }
    return inv
}

/// DeepSeek's hierarchical policy: (1) pack the expert groups onto nodes evenly, (2)
/// replicate experts within each node, (3) pack each node's physical experts onto the
/// node's GPUs evenly. A group's experts, and all their replicas, stay on one node.
///
/// Physical expert `p` lives on GPU `p / (numPhysicalExperts / numGPUs)`; GPUs
/// `k * numGPUs/numNodes ..< (k+1) * numGPUs/numNodes` form node `k`.
///
/// - Parameter weights: `[layers][E]`, non-negative finite loads.
/// - Returns: `physicalToLogical [layers][P]`, `rank [layers][P]` (replica rank of each
///   physical expert), `logicalCount [layers][E]`.
/// - Throws: `EbbError(.invalidArgument)` unless `E % numGroups == 0`,
///   `numGroups % numNodes == 0`, `numGPUs % numNodes == 0`, `P % numGPUs == 0`, `P >= E`,
///   all counts positive and all loads non-negative and finite.
public func rebalanceExpertsHierarchical(
    weights: [[Double]], numPhysicalExperts: Int, numGroups: Int, numNodes: Int, numGPUs: Int
) throws -> (physicalToLogical: [[Int]], rank: [[Int]], logicalCount: [[Int]]) {
    let numLogical = weights.first?.count ?? 0
    try validate(weights: weights, numPhysical: numPhysicalExperts, numGroups: numGroups,
                 numNodes: numNodes, numRanks: numGPUs, function: "rebalanceExpertsHierarchical")
    guard numGroups % numNodes == 0 else {
        throw EbbError(.invalidArgument, "rebalanceExpertsHierarchical: \(numGroups) groups do not divide among \(numNodes) nodes")
    }
    var phy2log: [[Int]] = []
    var ranks: [[Int]] = []
    var counts: [[Int]] = []
    for row in weights {
        let r = hierarchicalRow(row, numLogical: numLogical, numPhysical: numPhysicalExperts,
                                numGroups: numGroups, numNodes: numNodes, numGPUs: numGPUs)
        phy2log.append(r.physicalToLogical)
        ranks.append(r.rank)
        counts.append(r.logicalCount)
    }
    return (phy2log, ranks, counts)
}

/// One layer of the hierarchical policy; all divisibility conditions hold.
func hierarchicalRow(
    _ w: [Double], numLogical E: Int, numPhysical P: Int, numGroups G: Int, numNodes N: Int, numGPUs: Int
) -> (physicalToLogical: [Int], rank: [Int], logicalCount: [Int]) {
    let groupSize = E / G
    let groupsPerNode = G / N
    let gpusPerNode = numGPUs / N
    let phyPerGPU = P / numGPUs
    let logPerNode = E / N
    let phyPerNode = P / N

    // Step 1: groups onto nodes.
    var groupLoad = Array(repeating: 0.0, count: G)
    for e in 0..<E { groupLoad[e / groupSize] += w[e] }
    let (groupPack, groupRank) = packRow(groupLoad, numPacks: N)
    // "Middle" logical index: experts renumbered so that node k holds mlog
    // k*logPerNode ..< (k+1)*logPerNode, groups in the order they entered the node.
    var log2mlog = Array(repeating: 0, count: E)
    for e in 0..<E {
        let g = e / groupSize
        log2mlog[e] = (groupPack[g] * groupsPerNode + groupRank[g]) * groupSize + e % groupSize
    }
    let mlog2log = inversePermutation(log2mlog)

    var phy2log = Array(repeating: 0, count: P)
    var phyRank = Array(repeating: 0, count: P)
    var mlogCount = Array(repeating: 1, count: E)
    for node in 0..<N {
        // Step 2: replicate within the node.
        let base = node * logPerNode
        let nodeLoad = (0..<logPerNode).map { w[mlog2log[base + $0]] }
        let rep = replicateRow(nodeLoad, numPhysical: phyPerNode)
        for j in 0..<logPerNode { mlogCount[base + j] = rep.logicalCount[j] }

        // Step 3: the node's physical experts onto its GPUs.
        let phyLoad = rep.physicalToLogical.map { nodeLoad[$0] / Double(rep.logicalCount[$0]) }
        let (packIndex, rankInPack) = packRow(phyLoad, numPacks: gpusPerNode)
        for k in 0..<phyPerNode {
            let slot = node * phyPerNode + packIndex[k] * phyPerGPU + rankInPack[k]
            phy2log[slot] = mlog2log[base + rep.physicalToLogical[k]]
            phyRank[slot] = rep.rank[k]
        }
    }
    let logCount = (0..<E).map { mlogCount[log2mlog[$0]] }
    return (phy2log, phyRank, logCount)
}

/// Upper bound on physical slots per layer, so absurd sizes are rejected instead of
/// exhausting memory.
public let eplbMaxPhysicalSlots = 1 << 20

/// Shared input checks of the policies.
func validate(
    weights: [[Double]], numPhysical: Int, numGroups: Int, numNodes: Int, numRanks: Int, function: String
) throws {
    guard let first = weights.first else {
        throw EbbError(.invalidArgument, "\(function): load has no layers")
    }
    let E = first.count
    guard E >= 1 else { throw EbbError(.invalidArgument, "\(function): load has no experts") }
    for (layer, row) in weights.enumerated() {
        guard row.count == E else {
            throw EbbError(.invalidArgument, "\(function): layer \(layer) has \(row.count) experts, layer 0 has \(E)")
        }
        for (e, v) in row.enumerated() where !(v.isFinite && v >= 0) {
            throw EbbError(.invalidArgument, "\(function): load of layer \(layer) expert \(e) is \(v); loads must be finite and non-negative")
        }
    }
    guard numGroups >= 1 else { throw EbbError(.invalidArgument, "\(function): numGroups must be at least 1, got \(numGroups)") }
    guard numNodes >= 1 else { throw EbbError(.invalidArgument, "\(function): numNodes must be at least 1, got \(numNodes)") }
    guard numRanks >= 1 else { throw EbbError(.invalidArgument, "\(function): number of ranks must be at least 1, got \(numRanks)") }
    guard numPhysical <= eplbMaxPhysicalSlots else {
        throw EbbError(.invalidArgument, "\(function): \(numPhysical) physical slots exceed the limit of \(eplbMaxPhysicalSlots)")
    }
    guard numPhysical >= E else {
        throw EbbError(.invalidArgument, "\(function): \(numPhysical) physical slots are fewer than \(E) logical experts")
    }
    guard numPhysical % numRanks == 0 else {
        throw EbbError(.invalidArgument, "\(function): \(numPhysical) physical slots do not divide among \(numRanks) ranks")
    }
    guard numRanks % numNodes == 0 else {
        throw EbbError(.invalidArgument, "\(function): \(numRanks) ranks do not divide among \(numNodes) nodes")
    }
    guard E % numGroups == 0 else {
        throw EbbError(.invalidArgument, "\(function): \(E) experts do not divide into \(numGroups) groups")
    }
}

/// The EPLB entry point: the hierarchical policy when `numGroups % numNodes == 0`,
/// otherwise the global policy (the hierarchical one with one group on one node, so that
/// experts and replicas go to any rank).
///
/// - Parameters:
///   - load: `[layers][E]` tokens (or any non-negative load) per logical expert.
///   - numPhysicalSlots: `P`, total expert slots over all ranks (`E` + redundant).
///   - numGroups: expert groups of the router (group-limited routing); 1 when none.
///   - numNodes: nodes; ranks of one node are contiguous.
///   - numRanks: expert-parallel ranks (GPUs); each holds `P / numRanks` slots.
/// - Throws: `EbbError(.invalidArgument)` on any invalid input; never traps.
public func rebalanceExperts(
    load: [[Double]], numPhysicalSlots: Int, numGroups: Int, numNodes: Int, numRanks: Int
) throws -> EPLBPlacement {
    try validate(weights: load, numPhysical: numPhysicalSlots, numGroups: numGroups,
                 numNodes: numNodes, numRanks: numRanks, function: "rebalanceExperts")
    let hierarchical = numGroups % numNodes == 0
    let r = try rebalanceExpertsHierarchical(
        weights: load, numPhysicalExperts: numPhysicalSlots,
        numGroups: hierarchical ? numGroups : 1, numNodes: hierarchical ? numNodes : 1, numGPUs: numRanks)
    return try EPLBPlacement(physicalToLogical: r.physicalToLogical, replicaRank: r.rank,
                             numLogicalExperts: load[0].count, numRanks: numRanks)
}
