import EbbComm
import EbbCore
import EbbEPLB
import EbbEngine
import EbbModel
import EbbTensor
import Foundation
import Testing

/// The expert rearrangement itself: what moves, how many bytes, and that every slot ends up
/// holding exactly its expert's checkpoint weights.
@Suite(.serialized)
struct ExpertBalancerTests {
    struct Rank {
        let model: CausalLM
        let balancer: ExpertBalancer
    }

    static func makeRanks(_ ranks: Int, redundant: Int) throws -> ([Rank], EPLBPlacement) {
        let hub = try InProcessHub(size: ranks), transfers = try InProcessHub(size: ranks)
        let (config, weights) = try BuiltinModels.resolve("builtin:tiny-moe")
        let layers = config.moeLayers.filter { $0 }.count
        let eplb = EPLBConfig(numRedundantExperts: redundant)
        let initial = try eplb.initialPlacement(numLayers: layers, numExperts: config.moe.numExperts, ranks: ranks)
        let out = try (0..<ranks).map { r -> Rank in
            let comm = try hub.communicator(rank: r)
            let p = try ExpertBalancer.rankPlacement(initial, layerOrdinal: 0, rank: r)
            let model = try CausalLM(config: config, weights: weights, backend: CPUBackend(threads: 1), placement: { _ in p },
                                     expertParallel: ExpertParallelGroup(CommunicatorExchange(comm)))
            return Rank(model: model, balancer: try ExpertBalancer(model: model, communicator: comm,
                                                                   transfer: HostWeightChannel(try transfers.communicator(rank: r), backend: model.backend),
                                                                   placement: initial, config: eplb))
        }
        return (out, initial)
    }

    /// Runs a rearrangement to `target` on every rank and switches; returns bytes sent in all.
    static func rearrange(_ ranks: [Rank], to target: EPLBPlacement) throws -> Int {
        for r in ranks { try r.balancer.start(to: target) }
        for r in ranks { r.balancer.waitForTransfer() }
        for r in ranks {
            #expect(r.balancer.readyToCommit)
            try r.balancer.commit()
        }
        return ranks.reduce(0) { $0 + $1.balancer.stats.bytesSent }
    }

    /// Every slot of every rank holds its expert's weights, compared with a model that holds all.
    static func checkWeights(_ ranks: [Rank], _ placement: EPLBPlacement) throws {
        let (config, weights) = try BuiltinModels.resolve("builtin:tiny-moe")
        let full = try CausalLM(config: config, weights: weights, backend: CPUBackend(threads: 1))
        let backend = full.backend
        for (ordinal, layer) in full.moeLayerIndices.enumerated() {
            guard let all = full.expertSlots(layer: layer) else { continue }
            for (r, rank) in ranks.enumerated() {
                guard let mine = rank.model.expertSlots(layer: layer) else { continue }
                let per = placement.slotsPerRank
                for i in 0..<per {
                    let e = placement.physicalToLogical[ordinal][r * per + i]
                    #expect(mine.placement.physicalToLogical == placement.physicalToLogical[ordinal])
                    guard e >= 0 else { continue }
                    let got = backend.downloadFloats(mine.gateUp.slice(first: i..<(i + 1)))
                    let want = backend.downloadFloats(all.gateUp.slice(first: e..<(e + 1)))
                    #expect(got == want, "layer \(layer) rank \(r) slot \(i) should hold expert \(e) (gate/up)")
                    #expect(backend.downloadFloats(mine.down.slice(first: i..<(i + 1))) ==
                            backend.downloadFloats(all.down.slice(first: e..<(e + 1))), "down of expert \(e)")
                }
            }
        }
    }

    @Test func unchangedPlacementMovesNothing() throws {
        let (ranks, initial) = try Self.makeRanks(2, redundant: 2)
        #expect(try TransferPlan(old: initial, new: initial).layers.allSatisfy { $0.receiveCount == 0 && $0.localCopyCount == 0 })
        #expect(try Self.rearrange(ranks, to: initial) == 0)
        try Self.checkWeights(ranks, initial)
    }

    @Test func onlyChangedSlotsMove() throws {
        let (ranks, initial) = try Self.makeRanks(2, redundant: 2)
        // Swap two experts between the ranks in every layer; everything else stays.
        let per = initial.slotsPerRank
        let rows = initial.physicalToLogical.map { row -> [Int] in
            var r = row
            r.swapAt(1, per + 1)
            return r
        }
        let target = try EPLBPlacement(physicalToLogical: rows, numLogicalExperts: initial.numLogicalExperts,
                                       numRanks: initial.numRanks)
        let plan = try TransferPlan(old: initial, new: target)
        let received = plan.layers.reduce(0) { $0 + $1.receiveCount }
        // Rank 0 receives expert `per + 1`; rank 1 already holds expert 1 in a redundant slot
        // (slot p holds p mod E), so it copies locally: one transfer per layer.
        #expect(received == initial.numLayers)
        #expect(plan.layers.allSatisfy { $0.localCopyCount == 1 })
        let shapes = ranks[0].model.expertSlotShapes
        let bytesPerExpert = (shapes.gateUp.reduce(1, *) + shapes.down.reduce(1, *)) * 4
        #expect(try Self.rearrange(ranks, to: target) == received * bytesPerExpert)
        try Self.checkWeights(ranks, target)
    }

    /// After rank 1 of 3 is lost, the two survivors place every expert over themselves:
    /// experts held only by the lost rank come from the checkpoint, the rest from a survivor.
    @Test func expertsOnlyALostRankHeldComeBackFromTheCheckpoint() throws {
        let (ranks, initial) = try Self.makeRanks(3, redundant: 8)
        let s = initial.slotsPerRank
        let survivors = [0, 2]
        let oldRows = initial.physicalToLogical.map { row in survivors.flatMap { r in row[(r * s)..<((r + 1) * s)] } }
        let load = (0..<initial.numLayers).map { _ in (0..<initial.numLogicalExperts).map { _ in 1.0 } }
        let target = try rebalanceExperts(load: load, numPhysicalSlots: survivors.count * s, numGroups: 1, numNodes: 1,
                                          numRanks: survivors.count)
        let plan = try TransferPlan(old: oldRows, new: target.physicalToLogical, slotsPerRank: s)
        let fromCheckpoint = plan.layers.reduce(0) { n, l in n + l.slots.filter { $0.source == .loadFromCheckpoint }.count }
        let onlyOnLost = Set(initial.physicalToLogical[0][s..<(2 * s)]).subtracting(oldRows[0])
        #expect(!onlyOnLost.isEmpty, "the test needs experts held by rank 1 alone")
        #expect(fromCheckpoint >= onlyOnLost.count * initial.numLayers)
        let hub = try InProcessHub(size: survivors.count)
        let weights = try BuiltinModels.resolve("builtin:tiny-moe").weights
        // Without a checkpoint the plan cannot run: a clear error, nothing installed.
        #expect(throws: EbbError.self) {
            try TransferExecutor(model: ranks[0].model, channel: HostWeightChannel(try InProcessHub(size: 1).communicator(rank: 0),
                                                                                 backend: ranks[0].model.backend),
                                 plan: try TransferPlan(old: [oldRows[0]], new: [target.physicalToLogical[0]], slotsPerRank: s),
                                 target: target, newRank: 0).run()
        }
        // Both survivors run the plan at once (their sends and receives pair up).
        let results = SharedBox<[Int: [Int: ExpertSlots]]>([:])
        let errors = SharedBox<[String]>([])
        let threads = survivors.enumerated().map { newRank, old in
            Thread {
                do {
                    let channel = HostWeightChannel(try hub.communicator(rank: newRank), backend: ranks[old].model.backend)
                    let (slots, _) = try TransferExecutor(model: ranks[old].model, channel: channel, plan: plan, target: target,
                                                          newRank: newRank, restore: weights).run()
                    results.withLock { $0[newRank] = slots }
                } catch {
                    errors.withLock { $0.append("\(error)") }
                }
            }
        }
        threads.forEach { $0.start() }
        let deadline = ContinuousClock.now + .seconds(60)
        while results.withLock({ $0.count }) + errors.withLock({ $0.count }) < survivors.count && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(errors.withLock { $0 }.isEmpty)
        let staged2 = results.withLock { $0 }
        for (newRank, old) in survivors.enumerated() {
            try ranks[old].model.install(try #require(staged2[newRank]))
        }
        try Self.checkWeights(survivors.map { ranks[$0] }, target)
    }

    @Test func policyPlacementHoldsTheRightWeights() throws {
        let (ranks, initial) = try Self.makeRanks(4, redundant: 4)
        // A skewed load: expert e gets 1/(e+1) of the tokens (Zipf), every layer.
        let load = (0..<initial.numLayers).map { _ in (0..<initial.numLogicalExperts).map { 1000.0 / Double($0 + 1) } }
        let target = try rebalanceExperts(load: load, numPhysicalSlots: initial.numPhysicalSlots, numGroups: 1,
                                          numNodes: 1, numRanks: 4)
        #expect(try balancedness(load: load, placement: target) > balancedness(load: load, placement: initial))
        _ = try Self.rearrange(ranks, to: target)
        try Self.checkWeights(ranks, target)
        #expect(ranks.allSatisfy { $0.balancer.placement == target })
    }

    /// One rule for start-up and resizes: every rank holds the same number of slots, the total
    /// rounded up to a multiple of the ranks, the extra slots holding replicas.
    @Test(arguments: [(16, 0, 3, 18), (16, 1, 3, 18), (16, 2, 4, 20), (16, 0, 4, 16), (16, 0, 5, 20), (3, 0, 4, 4)])
    func initialSlotsRoundUpToTheRanks(experts: Int, redundant: Int, ranks: Int, slots: Int) throws {
        let p = try EPLBConfig(numRedundantExperts: redundant).initialPlacement(numLayers: 2, numExperts: experts, ranks: ranks)
        #expect(p.numPhysicalSlots == slots)
        #expect(p.numPhysicalSlots % ranks == 0)
        for row in p.physicalToLogical { #expect(Set(row) == Set(0..<experts)) }
    }

    @Test func tooManySlotsAreRefused() {
        #expect(throws: EbbError.self) {
            _ = try EPLBConfig(numRedundantExperts: 1 << 21).initialPlacement(numLayers: 1, numExperts: 16, ranks: 2)
        }
    }
}

/// A value several threads of a test read and write.
final class SharedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
