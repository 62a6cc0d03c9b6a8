@testable import EbbCluster
import EbbCore
import Testing

/// Resizes and lost ranks of a whole deployment in one process (`InProcessDeployment`: the
/// real coordinator, control plane and engine loops; in-process communicators): under
/// greedy load, every request finishes with the tokens one rank alone produces.
@Suite(.serialized)
struct InProcessDeploymentTests {
    static let requests = 8

    func expectReference(_ outputs: [String: [Int]]) throws {
        let reference = try InProcessDeployment.reference(Self.requests)
        #expect(outputs.count == Self.requests)
        for (id, tokens) in reference {
            #expect(outputs[id] == tokens, "request \(id)")
        }
    }

    @Test func scaleUpThenRemoveTheMiddleRankUnderLoad() async throws {
        try await InProcessDeployment.with(ranks: 2) { d in
            let load = d.submit(Self.requests)
            let up = try await d.coordinator.resize(.size(3))
            #expect(up.outcome == "committed" && d.coordinator.worldSize == 3)
            #expect(up.expertMismatches == 0)
            let down = try await d.coordinator.resize(.remove([1]))
            #expect(down.outcome == "committed")
            #expect(d.coordinator.engineIds == ["engine-0", "engine-2"])
            try expectReference(try await load.value)
            #expect(d.coordinator.generation == 3)
        }
    }

    @Test func aRankKilledUnderLoadIsRecoveredOnTheSurvivors() async throws {
        try await InProcessDeployment.with(ranks: 3) { d in
            let load = d.submit(Self.requests)
            try await d.eventually("requests on rank 1") { d.coordinator.rankStats[1].requestsAssigned > 0 }
            d.kill("engine-1")
            try expectReference(try await load.value)
            try await d.eventually("the recovery") { d.coordinator.incidents.last?.outcome == "recovered" }
            #expect(d.coordinator.engineIds == ["engine-0", "engine-2"])
            #expect(d.coordinator.resubmittedRequests > 0)
            // And it still resizes.
            let up = try await d.coordinator.resize(.size(3))
            #expect(up.outcome == "committed")
        }
    }

    @Test func rankZeroKilledUnderLoad() async throws {
        try await InProcessDeployment.with(ranks: 3) { d in
            let load = d.submit(Self.requests)
            d.kill("engine-0")
            try expectReference(try await load.value)
            try await d.eventually("the recovery") { d.coordinator.incidents.last?.outcome == "recovered" }
            #expect(d.coordinator.engineIds == ["engine-1", "engine-2"])
        }
    }

    @Test func twoRanksKilledAtOnce() async throws {
        try await InProcessDeployment.with(ranks: 4) { d in
            let load = d.submit(Self.requests)
            d.kill("engine-1")
            d.kill("engine-3")
            try expectReference(try await load.value)
            try await d.eventually("the recovery") {
                d.coordinator.incidents.count == 2 && d.coordinator.incidents.allSatisfy { $0.outcome == "recovered" }
            }
            #expect(d.coordinator.engineIds == ["engine-0", "engine-2"])
        }
    }

    /// A kill while the ranks prepare a resize (held at `phase` by an injected pause): the
    /// resize rolls back, the survivors recover, nothing is lost, the next resize works.
    @Test(arguments: ["communicator", "transfer", "warmup"])
    func aRankKilledDuringAResizeRollsItBackThenRecovers(phase: String) async throws {
        let pause = FaultInjection(phase: phase, generation: 2, action: .pause(.seconds(1)))
        try await InProcessDeployment.with(ranks: 3, faults: pause) { d in
            let load = d.submit(Self.requests)
            let resize = Task { try await d.coordinator.resize(.size(4)) }
            try await d.eventually("the ranks preparing") { d.resizePhase == .prepare }
            try await Task.sleep(for: .milliseconds(300))
            d.kill("engine-2")
            await #expect(throws: ResizeError.self) { try await resize.value }
            try expectReference(try await load.value)
            try await d.eventually("the recovery") { d.coordinator.incidents.last?.outcome == "recovered" }
            #expect(d.coordinator.engineIds == ["engine-0", "engine-1"])
            let next = try await d.coordinator.resize(.size(3))
            #expect(next.outcome == "committed" && d.coordinator.worldSize == 3)
        }
    }

    @Test func aJoinerKilledWhileJoiningRollsBackAndTheDeploymentServes() async throws {
        let pause = FaultInjection(phase: "transfer", generation: 2, action: .pause(.seconds(1)))
        try await InProcessDeployment.with(ranks: 2, faults: pause) { d in
            let load = d.submit(Self.requests)
            let resize = Task { try await d.coordinator.resize(.size(3)) }
            try await d.eventually("the ranks preparing") { d.resizePhase == .prepare }
            d.kill("engine-2")
            await #expect(throws: ResizeError.self) { try await resize.value }
            try expectReference(try await load.value)
            #expect(d.coordinator.engineIds == ["engine-0", "engine-1"])
            #expect(d.coordinator.generation == 1)
        }
    }
}
