@testable import EbbCluster
import EbbControl
import EbbCore
import EbbEPLB
import Testing

/// The pure parts of a resize: the reconfiguration message's checks, the union-space
/// transfer plan, and the fault specification.
struct ReconfigurationTests {
    func message(members: [String], union: [String], old: Int, generation: UInt64 = 2) -> Ebb_Control_V1_Reconfigure {
        .with {
            $0.generation = generation
            $0.members = members
            $0.union = union
            $0.oldWorldSize = UInt32(old)
            $0.timeoutSeconds = 10
        }
    }

    @Test func malformedReconfigurationsAreRefused() {
        #expect(throws: EbbError.self) { try ReconfigurationSpec(message(members: [], union: ["a"], old: 1)) }
        #expect(throws: EbbError.self) { try ReconfigurationSpec(message(members: ["a", "a"], union: ["a"], old: 1)) }
        #expect(throws: EbbError.self) { try ReconfigurationSpec(message(members: ["x"], union: ["a"], old: 1)) }
        #expect(throws: EbbError.self) { try ReconfigurationSpec(message(members: ["a"], union: ["a", "b"], old: 1)) }  // joiner not a member
        #expect(throws: EbbError.self) { try ReconfigurationSpec(message(members: ["a"], union: ["a"], old: 3)) }
        var noTimeout = message(members: ["a"], union: ["a"], old: 1)
        noTimeout.timeoutSeconds = 0
        #expect(throws: EbbError.self) { try ReconfigurationSpec(noTimeout) }
    }

    @Test func scaleUpPlanOnlyFillsNewSlots() throws {
        let spec = try ReconfigurationSpec(message(members: ["a", "b", "c"], union: ["a", "b", "c"], old: 2))
        #expect(spec.joiningCount == 1 && spec.denseServer(forJoiner: 2) == 0)
        // 4 experts, 2 slots per rank: 2 ranks hold each expert once; 3 ranks replicate two.
        let old = try EPLBPlacement(physicalToLogical: [[0, 1, 2, 3]], numLogicalExperts: 4, numRanks: 2)
        let target = try EPLBPlacement(physicalToLogical: [[0, 1, 2, 3, 0, 2]], numLogicalExperts: 4, numRanks: 3)
        let plan = try spec.unionPlan(old: old, target: target)
        #expect(plan.layers[0].keepCount == 4)
        #expect(plan.layers[0].receiveCount == 2)
        let sends = plan.layers[0].sends.flatMap { $0 }
        #expect(Set(sends.map(\.toRank)) == [2], "only the joiner receives")
    }

    @Test func removingAMiddleRankRenumbersAndMovesItsExperts() throws {
        // Remove "b" (rank 1) of a, b, c: survivors a, c become ranks 0, 1.
        let spec = try ReconfigurationSpec(message(members: ["a", "c"], union: ["a", "b", "c"], old: 3))
        #expect(spec.newRank(of: "c") == 1 && spec.newRank(of: "b") == nil && spec.unionIndex(of: "c") == 2)
        // 4 experts, 2 slots per rank: b holds the only copies of 2 and 3.
        let old = try EPLBPlacement(physicalToLogical: [[0, 1, 2, 3, 0, 1]], numLogicalExperts: 4, numRanks: 3)
        let target = try EPLBPlacement(physicalToLogical: [[0, 1, 2, 3]], numLogicalExperts: 4, numRanks: 2)
        let plan = try spec.unionPlan(old: old, target: target)
        #expect(plan.layers[0].receiveCount == 2)
        // In union space: a keeps 0, 1; c (union rank 2) gets 2, 3 from b (union rank 1).
        let receives = plan.layers[0].slots.compactMap { s -> (Int, Int)? in
            if case .receive(let from, _) = s.source { return (s.slot / 2, from) }
            return nil
        }
        #expect(receives.allSatisfy { $0.1 == 1 }, "every received expert comes from the leaving rank: \(receives)")
        #expect(plan.layers[0].slots.filter { $0.slot / 2 == 1 }.allSatisfy { $0.source == .empty },
                "the leaving rank keeps nothing")
    }

    @Test func faultSpecifications() {
        #expect(FaultInjection.parse("scale.transfer@2") == FaultInjection(phase: "transfer", generation: 2, action: .fail))
        #expect(FaultInjection.parse("scale.launch") == FaultInjection(phase: "launch", generation: nil, action: .fail))
        #expect(FaultInjection.parse("pause.warmup=1.5@3") == FaultInjection(phase: "warmup", generation: 3, action: .pause(.milliseconds(1500))))
        for bad in ["other", "scale.", "scale.transfer@x", "pause.warmup", "pause.warmup=-1", "pause.=2", ""] {
            #expect(FaultInjection.parse(bad) == nil, "\(bad)")
        }
        let f = FaultInjection.parse("scale.commit@3")!
        #expect(f.action(at: "commit", generation: 3) == .fail)
        #expect(f.action(at: "commit", generation: 2) == nil && f.action(at: "warmup", generation: 3) == nil)
        #expect(throws: EbbError.self) { try f.inject("commit", generation: 3) }
        #expect(FaultInjection.parse("scale.warmup")!.action(at: "warmup", generation: 9) == .fail)
    }
}
