import EbbComm
import EbbCore
import EbbEPLB
import EbbEngine
import EbbModel
import EbbTensor
import EbbTestSupport
import Foundation
import Synchronization
import Testing

/// Expert parallelism without processes: N ranks as threads of this process, joined by the
/// in-process communicator, each with its share of the experts and its own requests, stepping
/// in lockstep. Greedy tokens must equal the single-rank (and transformers) tokens exactly,
/// with some ranks idle (dummy batches) while others decode and requests arriving late.
@Suite(.serialized)
struct ExpertParallelEngineTests {
    typealias Load = @Sendable (_ placement: (@Sendable (Int) -> ExpertPlacement)?, _ group: ExpertParallelGroup?) throws -> CausalLM

    static func fixtureLoader(_ name: String) -> Load {
        { placement, group in
            try CausalLM.load(directory: Fixtures.url(name), backend: CPUBackend(threads: 1), placement: placement,
                              expertParallel: group)
        }
    }

    static let builtinLoader: Load = { placement, group in
        let (config, weights) = try BuiltinModels.resolve("builtin:tiny-moe")
        return try CausalLM(config: config, weights: weights, backend: CPUBackend(threads: 1), placement: placement,
                            expertParallel: group)
    }

    struct Job: Sendable {
        let id: String
        let prompt: [Int]
        let rank: Int
        /// The rank's step at which the request is added.
        let atStep: Int
    }

    /// Runs `jobs` on `ranks` lockstep ranks; returns tokens per request id and the ranks'
    /// exchange statistics.
    static func runExpertParallel(ranks: Int, jobs: [Job], load: @escaping Load, eplb: EPLBConfig? = nil,
                                  fixedSize: Bool = false)
        throws -> ([String: [Int]], [ExpertExchangeStats]) {
        try runExpertParallelWithEPLB(ranks: ranks, jobs: jobs, load: load, eplb: eplb, fixedSize: fixedSize)
            .map { ($0.0, $0.1) } ?? ([:], [])
    }

    /// As `runExpertParallel`, also returning each rank's EPLB statistics.
    /// `fixedSize` uses the fixed-size exchange (the NCCL algorithm, over host memory).
    static func runExpertParallelWithEPLB(ranks: Int, jobs: [Job], load: @escaping Load, eplb: EPLBConfig?,
                                          fixedSize: Bool = false)
        throws -> ([String: [Int]], [ExpertExchangeStats], [EPLBStats])? {
        let hub = try InProcessHub(size: ranks, timeout: .seconds(60))
        let comms = try (0..<ranks).map { try hub.communicator(rank: $0) }
        let transferHub = try InProcessHub(size: ranks, timeout: .seconds(60))
        let transfers = try (0..<ranks).map { try transferHub.communicator(rank: $0) }
        let probe = try load(nil, nil).config
        let numExperts = probe.moe.numExperts
        let numMoELayers = probe.moeLayers.filter { $0 }.count
        let eplbStats = Mutex<[Int: EPLBStats]>([:])
        let results = Mutex<[String: [Int]]>([:])
        let errors = Mutex<[String]>([])
        let stats = Mutex<[Int: ExpertExchangeStats]>([:])
        let params = SamplingParams(temperature: 0, maxTokens: 12, ignoreEOS: true)
        let threads = (0..<ranks).map { rank in
            Thread {
                do {
                    let comm = comms[rank]
                    let group = ExpertParallelGroup(fixedSize ? HostMemoryDeviceExchange(comm) : CommunicatorExchange(comm))
                    let initial = try eplb?.initialPlacement(numLayers: numMoELayers, numExperts: numExperts, ranks: ranks)
                    let contiguous = try ExpertPlacement.contiguous(numExperts: numExperts, numRanks: ranks, rank: rank)
                    let perLayer = try initial.map { p in try ExpertBalancer.rankPlacement(p, layerOrdinal: 0, rank: rank) }
                    // The initial EPLB placement is the same for every layer.
                    let model = try load({ _ in perLayer ?? contiguous }, group)
                    let core = try EngineCore(model: model, config: EngineConfig(kvCacheBytes: 16 << 20, maxNumBatchedTokens: 48))
                    var balancer: ExpertBalancer?
                    if let eplb, let initial {
                        balancer = try ExpertBalancer(model: model, communicator: comm,
                                                      transfer: HostWeightChannel(transfers[rank], backend: model.backend),
                                                      placement: initial, config: eplb)
                    }
                    let stepper = LockstepStepper(communicator: comm, balancer: balancer)
                    let mine = jobs.filter { $0.rank == rank }
                    let lastArrival = jobs.map(\.atStep).max() ?? 0
                    var step = 0
                    while true {
                        for job in mine where job.atStep == step {
                            try core.add(EngineRequest(id: job.id, promptTokenIds: job.prompt, params: params, eosTokenIds: []))
                        }
                        // Idle ranks keep stepping until the last arrival, like a coordinator's wave.
                        let outputs: [RequestOutput]
                        if let stepped = try stepper.step(core) {
                            outputs = stepped
                        } else if step < lastArrival {
                            outputs = []
                        } else {
                            break
                        }
                        results.withLock { r in
                            for o in outputs { r[o.requestId, default: []] += o.newTokenIds }
                        }
                        step += 1
                    }
                    balancer?.waitForTransfer()
                    eplbStats.withLock { $0[rank] = balancer?.stats ?? EPLBStats() }
                    let s = model.expertParallel?.stats ?? ExpertExchangeStats()
                    stats.withLock { $0[rank] = s }
                } catch {
                    errors.withLock { $0.append("rank \(rank): \(error)") }
                    comms[rank].close()
                    transfers[rank].close()
                }
            }
        }
        for t in threads { t.start() }
        let deadline = Date().addingTimeInterval(300)
        while stats.withLock({ $0.count }) + errors.withLock({ $0.count }) < ranks && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        let failures = errors.withLock { $0 }
        if !failures.isEmpty { throw EbbError(.internal, failures.joined(separator: "; ")) }
        return (results.withLock { $0 }, (0..<ranks).map { r in stats.withLock { $0[r] ?? ExpertExchangeStats() } },
                (0..<ranks).map { r in eplbStats.withLock { $0[r] ?? EPLBStats() } })
    }

    /// The same prompts on one rank holding every expert.
    static func runSingle(jobs: [Job], load: Load) throws -> [String: [Int]] {
        let core = try EngineCore(model: try load(nil, nil), config: EngineConfig(kvCacheBytes: 16 << 20, maxNumBatchedTokens: 48))
        let params = SamplingParams(temperature: 0, maxTokens: 12, ignoreEOS: true)
        for job in jobs {
            try core.add(EngineRequest(id: job.id, promptTokenIds: job.prompt, params: params, eosTokenIds: []))
        }
        var out = [String: [Int]]()
        while core.hasWork {
            for o in try core.step() { out[o.requestId, default: []] += o.newTokenIds }
        }
        return out
    }

    /// Requests on every rank but the last (which only runs dummy batches until late
    /// arrivals reach rank 0 at step 6).
    static func jobs(prompts: [[Int]], ranks: Int) -> [Job] {
        var jobs = [Job]()
        for i in 0..<(2 * prompts.count) {
            let rank = ranks > 1 ? i % (ranks - 1) : 0
            jobs.append(Job(id: "r\(i)", prompt: prompts[i % prompts.count], rank: rank, atStep: i < prompts.count ? 0 : 6))
        }
        return jobs
    }

    @Test(arguments: [2, 3, 4])
    func builtinModelMatchesSingleRank(ranks: Int) throws {
        let prompts = [[1, 2, 3, 4, 5], [100, 7, 42], Array(10..<40), [255]]
        let jobs = Self.jobs(prompts: prompts, ranks: ranks)
        let single = try Self.runSingle(jobs: jobs, load: Self.builtinLoader)
        let (parallel, stats) = try Self.runExpertParallel(ranks: ranks, jobs: jobs, load: Self.builtinLoader)
        #expect(parallel.count == jobs.count)
        for job in jobs {
            #expect(parallel[job.id] == single[job.id], "\(job.id) on rank \(job.rank)")
            #expect(parallel[job.id]?.count == 12)
        }
        // Every rank exchanged tokens in every MoE layer pass, the idle one included.
        #expect(stats.allSatisfy { $0.layerCalls > 0 && $0.bytesSent > 0 })
        #expect(Set(stats.map(\.layerCalls)).count == 1, "all ranks entered the same number of exchanges")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: ["qwen3-moe-tiny-f32", "mixtral-tiny-f32", "deepseek-v3-tiny-f32"])
    func fixtureMatchesReference(name: String) throws {
        let reference = try EngineCoreTests.reference(name)
        for ranks in [2, 4] {
            let jobs = Self.jobs(prompts: reference.prompts, ranks: ranks)
            let (parallel, _) = try Self.runExpertParallel(ranks: ranks, jobs: jobs, load: Self.fixtureLoader(name))
            for (i, job) in jobs.enumerated() {
                let expected = Array(reference.greedy[i % reference.prompts.count].prefix(12))
                #expect(parallel[job.id] == expected, "\(name) with \(ranks) ranks: \(job.id)")
            }
        }
    }

    /// The fixed-size exchange (all-gather, local experts, all-to-all of pair outputs,
    /// combine in logical order), the one NCCL runs on GPUs, gives the same tokens.
    @Test(arguments: [2, 3])
    func fixedSizeExchangeMatchesSingleRank(ranks: Int) throws {
        let prompts = [[1, 2, 3, 4, 5], [100, 7, 42], Array(10..<40), [255]]
        let jobs = Self.jobs(prompts: prompts, ranks: ranks)
        let single = try Self.runSingle(jobs: jobs, load: Self.builtinLoader)
        let (parallel, stats) = try Self.runExpertParallel(ranks: ranks, jobs: jobs, load: Self.builtinLoader, fixedSize: true)
        for job in jobs {
            #expect(parallel[job.id] == single[job.id], "\(job.id) on rank \(job.rank)")
            #expect(parallel[job.id]?.count == 12)
        }
        #expect(Set(stats.map(\.layerCalls)).count == 1, "all ranks entered the same number of exchanges")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: ["qwen3-moe-tiny-f32", "mixtral-tiny-f32", "deepseek-v3-tiny-f32"])
    func fixtureWithFixedSizeExchangeMatchesReference(name: String) throws {
        let reference = try EngineCoreTests.reference(name)
        for ranks in [2, 4] {
            let jobs = Self.jobs(prompts: reference.prompts, ranks: ranks)
            let (parallel, _) = try Self.runExpertParallel(ranks: ranks, jobs: jobs, load: Self.fixtureLoader(name), fixedSize: true)
            for (i, job) in jobs.enumerated() {
                let expected = Array(reference.greedy[i % reference.prompts.count].prefix(12))
                #expect(parallel[job.id] == expected, "\(name) with \(ranks) ranks: \(job.id)")
            }
        }
    }

    /// EPLB load statistics and rearrangements work with the fixed-size exchange too
    /// (its loads are counted on the device).
    @Test func fixedSizeExchangeRebalances() throws {
        let ranks = 2
        let prompts = [[1, 2, 3, 4, 5], [100, 7, 42], Array(10..<40), [255], [9, 9, 9, 9], Array(200..<230)]
        let jobs = Self.jobs(prompts: prompts, ranks: ranks)
        let single = try Self.runSingle(jobs: jobs, load: Self.builtinLoader)
        let eplb = EPLBConfig(numRedundantExperts: ranks, windowSize: 8, stepInterval: 3, minGain: -1)
        let result = try Self.runExpertParallelWithEPLB(ranks: ranks, jobs: jobs, load: Self.builtinLoader, eplb: eplb, fixedSize: true)
        for job in jobs {
            #expect(result?.0[job.id] == single[job.id], "\(job.id) on rank \(job.rank)")
        }
        #expect(result?.2.allSatisfy { $0.rearrangements > 0 } == true)
    }

    /// Forced rebalances every 3 steps with redundant experts: weights move between ranks
    /// while requests decode, and the tokens stay exactly the single-rank ones.
    @Test(arguments: [2, 4])
    func rebalancingKeepsOutputsExact(ranks: Int) throws {
        let prompts = [[1, 2, 3, 4, 5], [100, 7, 42], Array(10..<40), [255], [9, 9, 9, 9], Array(200..<230)]
        let jobs = Self.jobs(prompts: prompts, ranks: ranks)
        let single = try Self.runSingle(jobs: jobs, load: Self.builtinLoader)
        let eplb = EPLBConfig(numRedundantExperts: ranks, windowSize: 8, stepInterval: 3, minGain: -1)
        guard let (parallel, _, eplbStats) = try Self.runExpertParallelWithEPLB(ranks: ranks, jobs: jobs, load: Self.builtinLoader, eplb: eplb) else {
            Issue.record("no result")
            return
        }
        for job in jobs {
            #expect(parallel[job.id] == single[job.id], "\(job.id) on rank \(job.rank)")
        }
        #expect(eplbStats.allSatisfy { $0.rearrangements > 0 }, "every rank switched placements: \(eplbStats.map(\.rearrangements))")
        #expect(Set(eplbStats.map(\.rearrangements)).count == 1, "all ranks switched the same number of times")
        #expect(eplbStats.contains { $0.bytesSent > 0 })
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: ["qwen3-moe-tiny-f32", "mixtral-tiny-f32", "deepseek-v3-tiny-f32"])
    func fixtureWithRebalancingMatchesReference(name: String) throws {
        let reference = try EngineCoreTests.reference(name)
        let ranks = 4
        let jobs = Self.jobs(prompts: reference.prompts, ranks: ranks)
        let eplb = EPLBConfig(numRedundantExperts: 4, windowSize: 8, stepInterval: 2, minGain: -1)
        let result = try Self.runExpertParallelWithEPLB(ranks: ranks, jobs: jobs, load: Self.fixtureLoader(name), eplb: eplb)
        for (i, job) in jobs.enumerated() {
            let expected = Array(reference.greedy[i % reference.prompts.count].prefix(12))
            #expect(result?.0[job.id] == expected, "\(name): \(job.id)")
        }
        #expect(result?.2.allSatisfy { $0.rearrangements > 0 } == true)
    }

    @Test func placementMismatchIsAnError() throws {
        let hub = try InProcessHub(size: 1)
        let group = ExpertParallelGroup(CommunicatorExchange(try hub.communicator(rank: 0)))
        let (config, weights) = try BuiltinModels.resolve("builtin:tiny-moe")
        // A two-rank placement with a one-rank exchange must not run.
        let placement = try ExpertPlacement.contiguous(numExperts: config.moe.numExperts, numRanks: 2, rank: 0)
        let model = try CausalLM(config: config, weights: weights, backend: CPUBackend(threads: 1),
                                 placement: { _ in placement }, expertParallel: group)
        #expect(throws: EbbError.self) { try model.dummyForward() }
    }
}
