import EbbCore
import Testing

@testable import EbbEPLB

/// Deterministic generator for the property tests (SplitMix64).
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Skewed loads: a heavy-tailed mix so that some experts are much hotter than others.
func skewedLoad(layers: Int, experts: Int, rng: inout SeededRNG) -> [[Double]] {
    (0..<layers).map { _ in
        (0..<experts).map { _ in
            let u = Double.random(in: 0.01...1, using: &rng)
            return (1000 * u * u * u).rounded()
        }
    }
}

func expectInvalid(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected EbbError(.invalidArgument), got success", sourceLocation: sourceLocation)
    } catch let e as EbbError {
        #expect(e.code == .invalidArgument, "\(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct EPLBAlgorithmTests {
    @Test func publishedExample() throws {
        let load: [[Double]] = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                                [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]
        let p = try rebalanceExperts(load: load, numPhysicalSlots: 16, numGroups: 4, numNodes: 2, numRanks: 8)
        #expect(p.physicalToLogical == [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                                        [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]])
        #expect(p.replicaCount == [[1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1],
                                   [1, 2, 1, 1, 1, 2, 2, 1, 2, 1, 1, 1]])
        #expect(p.maxReplicas == 2)
        #expect(p.slotsPerRank == 2)
        // logicalToPhysical is the inverse, −1 padded.
        for l in 0..<2 {
            for e in 0..<12 {
                let slots = p.logicalToPhysical[l][e]
                #expect(slots.count == 2)
                #expect(slots.filter { $0 >= 0 }.count == p.replicaCount[l][e])
                for s in slots where s >= 0 { #expect(p.physicalToLogical[l][s] == e) }
            }
        }
        // Better balanced than the initial placement.
        let initial = try EPLBPlacement.contiguous(numLayers: 2, numLogicalExperts: 12, numPhysicalSlots: 16, numRanks: 8)
        #expect(try balancedness(load: load, placement: p) > balancedness(load: load, placement: initial))
    }

    @Test func balancedPackingGreedyAndTies() throws {
        let a = try balancedPacking(weights: [[4, 3, 2, 1]], numPacks: 2)
        #expect(a.packIndex == [[0, 1, 1, 0]])
        #expect(a.rankInPack == [[0, 0, 1, 1]])
        // Equal weights: lower index first, lowest pack on equal pack weight.
        let b = try balancedPacking(weights: [[1, 1, 1, 1]], numPacks: 2)
        #expect(b.packIndex == [[0, 1, 0, 1]])
        #expect(b.rankInPack == [[0, 0, 1, 1]])
        // One item per pack: item i is pack i.
        let c = try balancedPacking(weights: [[1, 9, 5]], numPacks: 3)
        #expect(c.packIndex == [[0, 1, 2]])
        #expect(c.rankInPack == [[0, 0, 0]])
        // Every pack gets exactly n/numPacks items.
        var rng = SeededRNG(seed: 7)
        for _ in 0..<50 {
            let packs = Int.random(in: 1...6, using: &rng)
            let per = Int.random(in: 1...6, using: &rng)
            let w = skewedLoad(layers: 2, experts: packs * per, rng: &rng)
            let r = try balancedPacking(weights: w, numPacks: packs)
            for l in 0..<2 {
                var seen = Set<[Int]>()
                for i in 0..<(packs * per) {
                    #expect((0..<packs).contains(r.packIndex[l][i]))
                    #expect((0..<per).contains(r.rankInPack[l][i]))
                    seen.insert([r.packIndex[l][i], r.rankInPack[l][i]])
                }
                #expect(seen.count == packs * per)
            }
        }
        expectInvalid { _ = try balancedPacking(weights: [[1, 2, 3]], numPacks: 2) }
        expectInvalid { _ = try balancedPacking(weights: [[1, 2]], numPacks: 0) }
        expectInvalid { _ = try balancedPacking(weights: [[1, 2], [1]], numPacks: 1) }
    }

    @Test func replicateExpertsLargestLoadPerReplica() throws {
        let r = try replicateExperts(weights: [[10, 5, 1]], numPhysical: 5)
        // Extra 1: 10/1 is largest → expert 0. Extra 2: 5/1 == 10/2 → tie → expert 0.
        #expect(r.physicalToLogical == [[0, 1, 2, 0, 0]])
        #expect(r.rank == [[0, 0, 0, 1, 2]])
        #expect(r.logicalCount == [[3, 1, 1]])
        let same = try replicateExperts(weights: [[1, 2]], numPhysical: 2)
        #expect(same.physicalToLogical == [[0, 1]])
        expectInvalid { _ = try replicateExperts(weights: [[1, 2, 3]], numPhysical: 2) }
        expectInvalid { _ = try replicateExperts(weights: [[1, -2]], numPhysical: 3) }
    }

    @Test func globalPolicyWhenGroupsDoNotDivideNodes() throws {
        let load: [[Double]] = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86]]
        // 3 groups on 2 nodes: global policy, same as one group on one node.
        let g = try rebalanceExperts(load: load, numPhysicalSlots: 16, numGroups: 3, numNodes: 2, numRanks: 8)
        let h = try rebalanceExpertsHierarchical(weights: load, numPhysicalExperts: 16, numGroups: 1, numNodes: 1, numGPUs: 8)
        #expect(g.physicalToLogical == h.physicalToLogical)
        #expect(g.replicaCount == h.logicalCount)
        expectInvalid {
            _ = try rebalanceExpertsHierarchical(weights: load, numPhysicalExperts: 16, numGroups: 3, numNodes: 2, numGPUs: 8)
        }
    }

    @Test func propertiesOverRandomCases() throws {
        var rng = SeededRNG(seed: 0xEB_B0_EB_B0)
        var sumProposed = 0.0
        var sumInitial = 0.0
        var cases = 0
        for _ in 0..<300 {
            let nodes = [1, 2, 4].randomElement(using: &rng) ?? 1
            let ranksPerNode = [1, 2, 4].randomElement(using: &rng) ?? 1
            let ranks = nodes * ranksPerNode
            let groups = [1, 2, 3, 4, 8].randomElement(using: &rng) ?? 1
            let groupSize = Int.random(in: 1...6, using: &rng)
            let E = groups * groupSize
            let slotsPerRank = (E + ranks - 1) / ranks + Int.random(in: 0...2, using: &rng)
            let P = slotsPerRank * ranks
            let layers = Int.random(in: 1...3, using: &rng)
            let load = skewedLoad(layers: layers, experts: E, rng: &rng)
            let p = try rebalanceExperts(load: load, numPhysicalSlots: P, numGroups: groups, numNodes: nodes, numRanks: ranks)
            #expect(p.numLayers == layers)
            #expect(p.numPhysicalSlots == P)
            #expect(p.slotsPerRank * ranks == P)
            let hierarchical = groups % nodes == 0
            for l in 0..<layers {
                let counts = p.replicaCount[l]
                #expect(counts.allSatisfy { $0 >= 1 })
                #expect(counts.reduce(0, +) == P)
                #expect(p.physicalToLogical[l].count == P)
                // Each rank holds exactly P/ranks slots, all filled.
                var perRank = Array(repeating: 0, count: ranks)
                for s in 0..<P where p.physicalToLogical[l][s] >= 0 { perRank[p.rank(ofSlot: s)] += 1 }
                #expect(perRank.allSatisfy { $0 == slotsPerRank })
                // The hierarchical policy keeps each group (and its replicas) on one node.
                if hierarchical {
                    let slotsPerNode = P / nodes
                    var nodeOfGroup: [Int: Int] = [:]
                    for s in 0..<P {
                        let g = p.physicalToLogical[l][s] / groupSize
                        let node = s / slotsPerNode
                        if let n = nodeOfGroup[g] { #expect(n == node) } else { nodeOfGroup[g] = node }
                    }
                    #expect(nodeOfGroup.count == groups)
                    var groupsOnNode = Array(repeating: 0, count: nodes)
                    for (_, n) in nodeOfGroup { groupsOnNode[n] += 1 }
                    #expect(groupsOnNode.allSatisfy { $0 == groups / nodes })
                }
            }
            let initial = try EPLBPlacement.contiguous(numLayers: layers, numLogicalExperts: E, numPhysicalSlots: P, numRanks: ranks)
            sumProposed += try balancedness(load: load, placement: p)
            sumInitial += try balancedness(load: load, placement: initial)
            cases += 1
        }
        #expect(cases == 300)
        #expect(sumProposed / Double(cases) > sumInitial / Double(cases))
    }

    @Test func globalPolicyNeverWorseOnSkewedLoads() throws {
        // Global policy with redundancy on skewed loads: better than contiguous on average
        // and in the large majority of cases.
        var rng = SeededRNG(seed: 42)
        var better = 0
        var sumP = 0.0, sumI = 0.0
        for _ in 0..<100 {
            let ranks = [2, 4, 8].randomElement(using: &rng) ?? 4
            let E = ranks * Int.random(in: 2...8, using: &rng)
            let P = E + ranks * Int.random(in: 0...2, using: &rng)
            let load = skewedLoad(layers: 1, experts: E, rng: &rng)
            let p = try rebalanceExperts(load: load, numPhysicalSlots: P, numGroups: 1, numNodes: 1, numRanks: ranks)
            let i = try EPLBPlacement.contiguous(numLayers: 1, numLogicalExperts: E, numPhysicalSlots: P, numRanks: ranks)
            let bp = try balancedness(load: load, placement: p)
            let bi = try balancedness(load: load, placement: i)
            sumP += bp; sumI += bi
            if bp >= bi - 1e-12 { better += 1 }
        }
        #expect(sumP > sumI)
        #expect(better >= 90)
    }

    @Test func inputValidation() {
        let ok: [[Double]] = [[1, 2, 3, 4]]
        expectInvalid { _ = try rebalanceExperts(load: [], numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: [[]], numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: [[1, -1, 3, 4]], numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: [[1, .nan, 3, 4]], numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: [[1, .infinity, 3, 4]], numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: [[1, 2, 3, 4], [1, 2]], numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: 3, numGroups: 1, numNodes: 1, numRanks: 1) }  // P < E
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: 6, numGroups: 1, numNodes: 1, numRanks: 4) }  // P % ranks
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: 6, numGroups: 1, numNodes: 2, numRanks: 3) }  // ranks % nodes
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: 4, numGroups: 3, numNodes: 1, numRanks: 1) }  // E % groups
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: 4, numGroups: 0, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: 4, numGroups: 1, numNodes: 0, numRanks: 1) }
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 0) }
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: Int.max - 7, numGroups: 1, numNodes: 1, numRanks: 8) }
        expectInvalid { _ = try rebalanceExperts(load: ok, numPhysicalSlots: -4, numGroups: 1, numNodes: 1, numRanks: 1) }
        expectInvalid { _ = try EPLBPlacement(physicalToLogical: [[0, 1, 1]], numLogicalExperts: 3, numRanks: 1) }  // expert 2 missing
        expectInvalid { _ = try EPLBPlacement(physicalToLogical: [[0, 1, 5]], numLogicalExperts: 3, numRanks: 1) }
        expectInvalid { _ = try EPLBPlacement(physicalToLogical: [[0, 1, 2]], numLogicalExperts: 3, numRanks: 2) }
        expectInvalid { _ = try EPLBPlacement(physicalToLogical: [[0, 1, 0]], replicaRank: [[0, 0, 0]], numLogicalExperts: 2, numRanks: 1) }
        // All-zero load is valid.
        #expect((try? rebalanceExperts(load: [[0, 0, 0, 0]], numPhysicalSlots: 6, numGroups: 2, numNodes: 1, numRanks: 2)) != nil)
    }

    @Test func shouldRebalanceSkipsNegligibleGains() throws {
        #expect(shouldRebalance(current: 0.5, proposed: 0.9, minGain: 0.05))
        #expect(!shouldRebalance(current: 0.9, proposed: 0.92, minGain: 0.05))
        #expect(!shouldRebalance(current: 0.9, proposed: 0.8, minGain: 0))
        #expect(!shouldRebalance(current: .nan, proposed: 0.8, minGain: 0))
        let load: [[Double]] = [[100, 1, 1, 1]]
        let initial = try EPLBPlacement.contiguous(numLayers: 1, numLogicalExperts: 4, numPhysicalSlots: 4, numRanks: 2)
        let proposed = try rebalanceExperts(load: load, numPhysicalSlots: 4, numGroups: 1, numNodes: 1, numRanks: 2)
        // Ranks {100,1} vs {1,1} → balancedness (101+2)/2/101; rebalanced {100,1},{1,1} too
        // (no redundancy: the hot expert's rank can't get lighter) → no gain.
        #expect(try !shouldRebalance(load: load, current: initial, proposed: proposed, minGain: 0.01))
        #expect(try balancedness(load: [[0, 0, 0, 0]], placement: initial) == 1)
        expectInvalid { _ = try balancedness(load: [[1, 2, 3]], placement: initial) }
    }
}
