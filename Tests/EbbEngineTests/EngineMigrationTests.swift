import EbbCore
import EbbEngine
import EbbModel
import EbbSampling
import EbbTensor
import Testing

/// A request moved between engine cores mid-generation continues exactly as if it had
/// stayed: the same greedy tokens, and for a seeded sampled request the same random draws.
struct EngineMigrationTests {
    static func core() throws -> EngineCore {
        let (config, weights) = try BuiltinModels.resolve("builtin:tiny-moe")
        let model = try CausalLM(config: config, weights: weights, backend: CPUBackend(threads: 1))
        return try EngineCore(model: model, config: EngineConfig(kvCacheBytes: 8 << 20))
    }

    static func run(_ core: EngineCore, until: (Int) -> Bool = { _ in false }) throws -> [String: [Int]] {
        var out = [String: [Int]]()
        var steps = 0
        while core.hasWork && !until(steps) {
            for o in try core.step() { out[o.requestId, default: []] += o.newTokenIds }
            steps += 1
        }
        return out
    }

    @Test func migratedRequestsContinueIdentically() throws {
        let greedy = SamplingParams(temperature: 0, maxTokens: 20, ignoreEOS: true)
        var sampled = SamplingParams(temperature: 0.9, topP: 0.95, maxTokens: 20, ignoreEOS: true)
        sampled.seed = 1234
        let requests = [EngineRequest(id: "g", promptTokenIds: [5, 6, 7, 8], params: greedy, eosTokenIds: []),
                        EngineRequest(id: "s", promptTokenIds: [9, 10, 11], params: sampled, eosTokenIds: [])]
        let alone = try Self.core()
        for r in requests { try alone.add(r) }
        let expected = try Self.run(alone)

        let first = try Self.core(), second = try Self.core()
        for r in requests { try first.add(r) }
        let before = try Self.run(first, until: { $0 >= 7 })
        let exported = first.exportAllForMigration()
        #expect(exported.count == 2 && !first.hasWork, "everything left the first core")
        for e in exported { try second.addResumed(e) }
        let after = try Self.run(second)
        for r in requests {
            #expect((before[r.id] ?? []) + (after[r.id] ?? []) == expected[r.id], "\(r.id)")
        }
    }

    @Test func resumingTwiceOrOutOfRangeIsRefused() throws {
        let core = try Self.core()
        let params = SamplingParams(temperature: 0, maxTokens: 5)
        let e = ExportedRequest(request: EngineRequest(id: "x", promptTokenIds: [1, 2], params: params, eosTokenIds: []),
                                outputTokenIds: [3], rng: SamplingRNG(seed: 1))
        try core.addResumed(e)
        #expect(throws: EbbError.self) { try core.addResumed(e) }
        var bad = e
        bad.request.id = "y"
        bad.outputTokenIds = [1_000_000]
        #expect(throws: EbbError.self) { try core.addResumed(bad) }
    }
}
