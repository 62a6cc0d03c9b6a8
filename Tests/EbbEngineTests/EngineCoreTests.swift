import EbbCore
import EbbEngine
import EbbModel
import EbbTensor
import EbbTestSupport
import Foundation
import Testing

/// The engine core end to end on a fixture: many concurrent greedy requests must produce
/// exactly the tokens transformers produced for each prompt alone — with prefix caching
/// on and off, and with a KV cache so small that requests get preempted and recomputed.
@Suite(.serialized)
struct EngineCoreTests {
    struct Reference {
        let prompts: [[Int]]
        let greedy: [[Int]]
    }

    static func reference(_ name: String) throws -> Reference {
        let data = try Data(contentsOf: Fixtures.url("\(name)/reference.json"))
        let object = try JSONValue.parse(data)
        func lists(_ key: String) -> [[Int]] {
            (object[key]?.arrayValue ?? []).map { ($0.arrayValue ?? []).compactMap(\.intValue) }
        }
        return Reference(prompts: lists("prompts"), greedy: lists("greedy_new_tokens"))
    }

    /// Runs 16 requests (each prompt 4 times, interleaved) to completion; returns the
    /// tokens per request id and the engine's final stats.
    static func runBatch(_ name: String, config: EngineConfig, backend: any Backend = CPUBackend(),
                         prepare: (EngineCore) -> Void = { _ in },
                         inspect: (EngineCore) -> Void = { _ in }) throws -> (outputs: [String: [Int]], reference: Reference, stats: EngineStats) {
        let reference = try reference(name)
        let model = try CausalLM.load(directory: Fixtures.url(name), backend: backend)
        let core = try EngineCore(model: model, config: config)
        prepare(core)
        defer { inspect(core) }
        var params = SamplingParams(temperature: 0, maxTokens: 24, ignoreEOS: true)
        params.n = 1
        for i in 0..<16 {
            let p = i % reference.prompts.count
            try core.add(EngineRequest(id: "r\(i)-p\(p)", promptTokenIds: reference.prompts[p], params: params, eosTokenIds: [2]))
        }
        var outputs = [String: [Int]]()
        var finished = Set<String>()
        var steps = 0
        while core.hasWork && steps < 10_000 {
            for out in try core.step() {
                outputs[out.requestId, default: []] += out.newTokenIds
                if out.isFinished { finished.insert(out.requestId) }
            }
            steps += 1
        }
        #expect(finished.count == 16, "all requests finish")
        return (outputs, reference, core.stats)
    }

    static func check(_ result: (outputs: [String: [Int]], reference: Reference, stats: EngineStats)) {
        for (id, tokens) in result.outputs {
            guard let p = Int(id.split(separator: "-p").last ?? "") else { continue }
            #expect(tokens == result.reference.greedy[p], "\(id)")
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: ["qwen3-moe-tiny-f32", "mixtral-tiny-f32", "deepseek-v3-tiny-f32"])
    func concurrentGreedyMatchesReference(name: String) throws {
        let result = try Self.runBatch(name, config: EngineConfig(kvCacheBytes: 32 << 20, maxNumBatchedTokens: 64))
        Self.check(result)
        #expect(result.stats.prefixCacheHits > 0, "repeated prompts hit the prefix cache")
    }

    /// Decode steps from graphs (a CPU double with CUDA graphs' rules: fixed tensors, padded
    /// batch buckets) give exactly the eager tokens; the batch shrinks as requests finish,
    /// so several buckets are captured and replayed.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: ["qwen3-moe-tiny-f32", "mixtral-tiny-f32", "deepseek-v3-tiny-f32"])
    func decodeGraphsMatchReference(name: String) throws {
        let backend = GraphReplayBackend()
        var graphs: (count: Int, replays: Int, disabled: String?)?
        var transfers = EngineCore.DecodeTransfers()
        let result = try Self.runBatch(name, config: EngineConfig(kvCacheBytes: 32 << 20, maxNumBatchedTokens: 64),
                                       backend: backend, inspect: { core in
            graphs = core.graphs.map { ($0.count, $0.replays, $0.disabledReason) }
            transfers = core.decodeTransfers
        })
        Self.check(result)
        // Greedy decode steps copy one arg-max per sequence to the host, nothing else.
        #expect(transfers.steps > 10)
        #expect(transfers.total.downloads == transfers.steps, Comment(rawValue: transfers.summary))
        #expect(transfers.mostDownloadBytes <= 4 * result.outputs.count, Comment(rawValue: transfers.summary))
        #expect(graphs?.disabled == nil, "\(graphs?.disabled ?? "")")
        #expect((graphs?.count ?? 0) >= 2, "several buckets captured")
        #expect((graphs?.replays ?? 0) > 10, "most decode steps replay a graph")
        #expect(backend.launches == graphs?.replays)

        let eager = try Self.runBatch(name, config: EngineConfig(kvCacheBytes: 32 << 20, maxNumBatchedTokens: 64, enforceEager: true),
                                      backend: GraphReplayBackend(), inspect: { core in #expect(core.graphs == nil) })
        #expect(eager.outputs == result.outputs)

        // With room for one graph, every new bucket evicts the last: still exact.
        var evictions = 0
        let tight = try Self.runBatch(name, config: EngineConfig(kvCacheBytes: 32 << 20, maxNumBatchedTokens: 64),
                                      backend: GraphReplayBackend(), prepare: { $0.graphs?.maxGraphs = 1 }, inspect: { core in
            evictions = core.graphs?.evictions ?? 0
            #expect(core.graphs?.count == 1)
        })
        #expect(evictions >= 1)
        #expect(tight.outputs == result.outputs)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func withoutPrefixCaching() throws {
        let result = try Self.runBatch("qwen3-moe-tiny-f32",
                                       config: EngineConfig(kvCacheBytes: 32 << 20, maxNumBatchedTokens: 64, enablePrefixCaching: false))
        Self.check(result)
        #expect(result.stats.prefixCacheHits == 0)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func preemptionKeepsResultsExact() throws {
        // 12 blocks of 16 tokens: the longest request needs 5, so 16 requests cannot all
        // run at once and the scheduler must preempt and recompute.
        let model = try CausalLM.load(directory: Fixtures.url("qwen3-moe-tiny-f32"), backend: CPUBackend())
        let bytes = model.kvCacheBytesPerBlock(blockSize: 16) * 12
        let result = try Self.runBatch("qwen3-moe-tiny-f32", config: EngineConfig(kvCacheBytes: bytes, maxNumBatchedTokens: 128))
        Self.check(result)
        #expect(result.stats.preemptions > 0, "the small cache forces preemption")
    }
}
