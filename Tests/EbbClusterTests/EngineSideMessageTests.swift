@testable import EbbCluster
import EbbControl
import EbbCore
import EbbEngine
import EbbModel
import EbbTensor
import Synchronization
import Testing

/// The engine core's side of the control plane: messages for another generation, unknown
/// requests, invalid requests and unexpected kinds are answered or logged, never fatal.
struct EngineSideMessageTests {
    final class Sink: Sendable {
        let logs = Mutex<[String]>([])
        let sent = Mutex<[ControlEngineMessage]>([])
    }

    func makeLoop(_ sink: Sink) throws -> (EngineLoopState, AsyncStream<ControlEngineMessage>) {
        let (config, weights) = try BuiltinModels.resolve("builtin:tiny-moe")
        let model = try CausalLM(config: config, weights: weights, backend: CPUBackend(threads: 1))
        let core = try EngineCore(model: model, config: EngineConfig(kvCacheBytes: 4 << 20))
        let (stream, out) = AsyncStream<ControlEngineMessage>.makeStream()
        let identity = EngineCoreIdentity(engineId: "engine-0", rank: 0, worldSize: 1, generation: 3,
                                          expertParallel: false, device: "cpu")
        let loop = EngineLoopState(core: core, communicator: nil, identity: identity, out: out,
                                   log: { m in sink.logs.withLock { $0.append(m) } })
        return (loop, stream)
    }

    func add(_ id: String, generation: UInt64, prompt: [Int32] = [1, 2, 3], maxTokens: Int64 = 2) -> ControlCoordinatorMessage {
        .with {
            $0.addRequest = .with { a in
                a.requestID = id
                a.generation = generation
                a.promptTokenIds = prompt
                a.params = .with { p in p.temperature = 0; p.topP = 1; p.maxTokens = maxTokens; p.logprobs = -1; p.promptLogprobs = -1; p.repetitionPenalty = 1; p.n = 1 }
            }
        }
    }

    @Test func badMessagesAreAnsweredOrLogged() async throws {
        let sink = Sink()
        var (loop, stream) = try makeLoop(sink)
        let stop = try loop.apply([
            add("old", generation: 4),                       // a generation this rank is not in → error output
            add("bad-token", generation: 3, prompt: [999_999]),  // invalid → error output
            .with { $0.addRequest = .with { a in a.requestID = "no-params"; a.generation = 3 } },
            .with { $0.abort = .with { a in a.requestID = "never-seen"; a.generation = 3 } },
            ControlCoordinatorMessage(),                     // empty kind
            .with { $0.welcome = .with { w in w.rank = 0 } },   // out of order
            add("good", generation: 3),
        ])
        #expect(!stop)
        var steps = 0
        while loop.core.hasWork, steps < 100 {
            _ = try loop.runRound()
            steps += 1
        }
        #expect(loop.core.hasWork == false, "the valid request ran to the end")
        let logs = sink.logs.withLock { $0 }
        #expect(logs.contains { $0.contains("generation 4, not 3") })
        #expect(logs.contains { $0.contains("abort of unknown request 'never-seen'") })
        #expect(logs.filter { $0.contains("unexpected control message") }.count == 2)
        loop.out.finish()
        var errors = [String: String]()
        for await m in stream {
            if case .outputs(let o)? = m.kind {
                for r in o.outputs where !r.error.isEmpty { errors[r.requestID] = r.error }
            }
        }
        #expect(Set(errors.keys) == ["old", "bad-token", "no-params"])
        #expect(errors["bad-token"]?.contains("outside the vocabulary") == true)
    }

    @Test func shutdownStopsTheLoop() throws {
        let sink = Sink()
        var (loop, _) = try makeLoop(sink)
        #expect(try loop.apply([.with { $0.shutdown = .with { s in s.reason = "test" } }]))
    }
}
