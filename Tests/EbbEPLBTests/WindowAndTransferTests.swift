import EbbCore
import Testing

@testable import EbbEPLB

@Suite struct ExpertLoadWindowTests {
    @Test func slidingSumsAndDummySteps() throws {
        var w = try ExpertLoadWindow(numLayers: 1, numSlots: 2, capacity: 3)
        #expect(w.slotLoad == [[0, 0]])
        try w.record([[1, 2]])
        try w.record([[3, 4]])
        #expect(w.slotLoad == [[4, 6]])
        w.recordDummyStep()
        #expect(w.stepCount == 3)
        #expect(w.slotLoad == [[4, 6]])
        try w.record([[5, 6]])  // evicts [1, 2]
        #expect(w.slotLoad == [[8, 10]])
        #expect(w.stepCount == 3)
        #expect(w.totalSteps == 4)
        try w.record([[0, 0]])  // an all-zero step is a dummy step; evicts [3, 4]
        #expect(w.slotLoad == [[5, 6]])
        w.recordDummyStep()     // evicts the dummy
        #expect(w.slotLoad == [[5, 6]])
        w.recordDummyStep()     // evicts [5, 6]
        #expect(w.slotLoad == [[0, 0]])
        try w.record([[7, 1]])
        #expect(w.slotLoad == [[7, 1]])
        // Summed over replicas: slots 0 and 1 both hold expert 0.
        #expect(try w.logicalLoad(physicalToLogical: [[0, 0]]) == [[8]])
        #expect(try w.logicalLoad(physicalToLogical: [[1, -1]], numLogicalExperts: 3) == [[0, 7, 0]])
        w.reset()
        #expect(w.slotLoad == [[0, 0]])
        #expect(w.stepCount == 0)
    }

    @Test func defaultCapacityIs1000() throws {
        let w = try ExpertLoadWindow(numLayers: 2, numSlots: 4)
        #expect(w.capacity == 1000)
    }

    @Test func matchesBruteForceOverRandomSteps() throws {
        var rng = SeededRNG(seed: 99)
        for _ in 0..<20 {
            let layers = Int.random(in: 1...3, using: &rng)
            let slots = Int.random(in: 1...6, using: &rng)
            let cap = Int.random(in: 1...7, using: &rng)
            var w = try ExpertLoadWindow(numLayers: layers, numSlots: slots, capacity: cap)
            var history: [[[Int]]] = []
            for _ in 0..<40 {
                let step: [[Int]]
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    step = Array(repeating: Array(repeating: 0, count: slots), count: layers)
                    w.recordDummyStep()
                } else {
                    step = (0..<layers).map { _ in (0..<slots).map { _ in Int.random(in: 0...20, using: &rng) } }
                    try w.record(step)
                }
                history.append(step)
                var expected = Array(repeating: Array(repeating: 0, count: slots), count: layers)
                for s in history.suffix(cap) {
                    for l in 0..<layers { for k in 0..<slots { expected[l][k] += s[l][k] } }
                }
                #expect(w.slotLoad == expected)
                #expect(w.stepCount == min(cap, history.count))
                let map = (0..<layers).map { _ in (0..<slots).map { $0 % 2 } }
                let logical = try w.logicalLoad(physicalToLogical: map, numLogicalExperts: 2)
                for l in 0..<layers {
                    let e0 = stride(from: 0, to: slots, by: 2).reduce(0) { $0 + expected[l][$1] }
                    #expect(logical[l][0] == Double(e0))
                }
            }
        }
    }

    @Test func validation() throws {
        expectInvalid { _ = try ExpertLoadWindow(numLayers: 1, numSlots: 2, capacity: 0) }
        expectInvalid { _ = try ExpertLoadWindow(numLayers: 0, numSlots: 2) }
        expectInvalid { _ = try ExpertLoadWindow(numLayers: Int.max / 2, numSlots: 4) }
        expectInvalid { _ = try ExpertLoadWindow(numLayers: 1 << 20, numSlots: 1 << 20) }
        var w = try ExpertLoadWindow(numLayers: 1, numSlots: 2, capacity: 2)
        expectInvalid { try w.record([[1]]) }
        expectInvalid { try w.record([[1, 2], [3, 4]]) }
        expectInvalid { try w.record([[1, -2]]) }
        #expect(w.totalSteps == 0)
        expectInvalid { _ = try w.logicalLoad(physicalToLogical: [[0]]) }
        expectInvalid { _ = try w.logicalLoad(physicalToLogical: [[0, 3]], numLogicalExperts: 2) }
        expectInvalid { _ = try w.logicalLoad(physicalToLogical: [[0, -2]]) }
    }
}

@Suite struct TransferPlanTests {
    @Test func appliedPlanYieldsNewPlacement() throws {
        var rng = SeededRNG(seed: 2024)
        for _ in 0..<100 {
            let ranks = [1, 2, 4, 8].randomElement(using: &rng) ?? 2
            let E = ranks * Int.random(in: 1...4, using: &rng)
            let P = E + ranks * Int.random(in: 0...2, using: &rng)
            let layers = Int.random(in: 1...3, using: &rng)
            let a = try rebalanceExperts(load: skewedLoad(layers: layers, experts: E, rng: &rng),
                                         numPhysicalSlots: P, numGroups: 1, numNodes: 1, numRanks: ranks)
            let b = try rebalanceExperts(load: skewedLoad(layers: layers, experts: E, rng: &rng),
                                         numPhysicalSlots: P, numGroups: 1, numNodes: 1, numRanks: ranks)
            let plan = try TransferPlan(old: a, new: b)
            let spr = P / ranks
            let after = try plan.apply(to: TransferPlan.stores(of: a.physicalToLogical, slotsPerRank: spr))
            #expect(after == TransferPlan.stores(of: b.physicalToLogical, slotsPerRank: spr))
            for (l, lp) in plan.layers.enumerated() {
                #expect(lp.slots.count == P)
                #expect(lp.checkpointLoadCount == 0)  // every expert is somewhere in the old placement
                let sent = Set(lp.sends.flatMap { $0.map(\.toSlot) })
                for t in lp.slots {
                    let unchanged = a.physicalToLogical[l][t.slot] == b.physicalToLogical[l][t.slot]
                    // Kept slots move nothing; changed slots are never "kept".
                    #expect((t.source == .keep) == unchanged)
                    if unchanged { #expect(!sent.contains(t.slot)) }
                    if case .receive(let from, _) = t.source { #expect(from != t.slot / spr) }
                }
                #expect(lp.sends.flatMap { $0 }.count == lp.receiveCount)
            }
            // The identity plan moves nothing.
            let same = try TransferPlan(old: a, new: a)
            #expect(same.layers.allSatisfy { $0.keepCount == P && $0.sends.allSatisfy { $0.isEmpty } })
        }
    }

    @Test func localCopyEmptyAndCheckpoint() throws {
        // 2 ranks × 2 slots. Rank 0: [0, 1] → [1, 1] (slot 0 copies from slot 1 locally).
        // Rank 1: [2, 3] → [-1, 4] (slot 2 emptied, expert 4 held by nobody).
        let plan = try TransferPlan(old: [[0, 1, 2, 3]], new: [[1, 1, -1, 4]], slotsPerRank: 2)
        let s = plan.layers[0].slots.map(\.source)
        #expect(s == [.localCopy(fromSlot: 1), .keep, .empty, .loadFromCheckpoint])
        #expect(plan.layers[0].sends.allSatisfy { $0.isEmpty })
        #expect(try plan.apply(to: [[[0, 1], [2, 3]]]) == [[[1, 1], [-1, 4]]])
        // Swap across ranks: each rank receives from the other.
        let swap = try TransferPlan(old: [[0, 1]], new: [[1, 0]], slotsPerRank: 1)
        #expect(swap.layers[0].slots.map(\.source) == [.receive(fromRank: 1, fromSlot: 1), .receive(fromRank: 0, fromSlot: 0)])
        #expect(try swap.apply(to: [[[0], [1]]]) == [[[1], [0]]])
    }

    @Test func sendersSpreadOverHolders() throws {
        // Expert 7 is on all 4 old ranks; a resize to 8 ranks puts it on the 4 new ranks
        // too: each old holder sends exactly once.
        let old = [[7, 0, 7, 1, 7, 2, 7, 3]]
        let new = [[7, 0, 7, 1, 7, 2, 7, 3, 7, 4, 7, 5, 7, 6, 7, 0]]
        let plan = try TransferPlan(old: old, new: new, slotsPerRank: 2)
        let sends = plan.layers[0].sends
        #expect(sends.count == 4)
        #expect(sends.map { $0.filter { $0.expert == 7 }.count } == [1, 1, 1, 1])
        // Experts 4, 5, 6 exist nowhere before: checkpoint loads.
        #expect(plan.layers[0].checkpointLoadCount == 3)
        let after = try plan.apply(to: TransferPlan.stores(of: old, slotsPerRank: 2))
        #expect(after == TransferPlan.stores(of: new, slotsPerRank: 2))
        // Many copies of one expert from 2 holders alternate between them.
        let fan = try TransferPlan(old: [[9, 9, 0, 1, 2, 3]], new: [[9, 9, 9, 9, 9, 9]], slotsPerRank: 1)
        #expect(fan.layers[0].sends.map(\.count) == [2, 2, 0, 0, 0, 0])
        // Determinism.
        #expect(try TransferPlan(old: old, new: new, slotsPerRank: 2) == plan)
    }

    @Test func shrinkDropsRanks() throws {
        // 4 ranks → 2 ranks of 1 slot: ranks 2 and 3 only send.
        let plan = try TransferPlan(old: [[0, 1, 2, 3]], new: [[2, 3]], slotsPerRank: 1)
        #expect(plan.newNumRanks == 2)
        #expect(try plan.apply(to: [[[0], [1], [2], [3]]]) == [[[2], [3]]])
    }

    @Test func validation() {
        expectInvalid { _ = try TransferPlan(old: [[0, 1]], new: [[0, 1]], slotsPerRank: 0) }
        expectInvalid { _ = try TransferPlan(old: [[0, 1]], new: [[0, 1], [0, 1]], slotsPerRank: 1) }
        expectInvalid { _ = try TransferPlan(old: [[0, 1, 2]], new: [[0, 1]], slotsPerRank: 2) }
        expectInvalid { _ = try TransferPlan(old: [[0, 1], [0]], new: [[0, 1], [0, 1]], slotsPerRank: 1) }
        expectInvalid { _ = try TransferPlan(old: [[0, -3]], new: [[0, 1]], slotsPerRank: 1) }
        expectInvalid {
            let plan = try TransferPlan(old: [[0, 1]], new: [[1, 0]], slotsPerRank: 1)
            _ = try plan.apply(to: [[[0]]])
        }
    }
}
