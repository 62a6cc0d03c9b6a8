import EbbCore
import EbbEngine
@testable import EbbServer
import EbbTokenizer
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// The HTTP routes in process (Hummingbird's test client) over a fake engine and a fake
/// resizable deployment: access keys, the resize and autoscale routes' validation, and that
/// a refused request reaches neither.
struct RouteTests {
    /// Answers every request with two tokens.
    struct FakeEngine: EngineClient {
        var maxModelLen: Int { 256 }
        var vocabSize: Int { 256 }
        var stats: EngineStats { EngineStats() }
        func submit(_ request: EngineRequest) -> AsyncStream<EngineEvent> {
            AsyncStream { c in
                c.yield(.output(RequestOutput(requestId: request.id, newTokenIds: [104, 105], finishReason: .length)))
                c.finish()
            }
        }
        func abort(_ id: String) {}
    }

    /// Records what the routes asked for.
    final class FakeScaling: ElasticScaling {
        let calls = Mutex<[String]>([])
        func note(_ s: String) { calls.withLock { $0.append(s) } }
        func scale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?, operationId: String?) async -> ScaleAnswer {
            note("scale \(newSize.map(String.init) ?? "-") \(removeRanks ?? []) \(operationId ?? "-")")
            return ScaleAnswer(status: 200, body: .object(["message": .string("ok")]))
        }
        func startScale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?, operationId: String?) -> ScaleAnswer {
            note("start \(newSize.map(String.init) ?? "-") \(operationId ?? "-")")
            return ScaleAnswer(status: 202, body: .object(["operation_id": .string(operationId ?? "op-1")]))
        }
        func operation(_ id: String) -> JSONValue? { id == "op-1" ? .object(["state": .string("committed")]) : nil }
        func plan(newSize: Int?, removeRanks: [Int]?) -> ScaleAnswer {
            note("plan \(newSize.map(String.init) ?? "-") \(removeRanks ?? [])")
            return ScaleAnswer(status: 200, body: .object([:]))
        }
        func autoscale(enabled: Bool?, minRanks: Int?, maxRanks: Int?, cooldown: Double?) -> ScaleAnswer {
            note("autoscale \(enabled.map { "\($0)" } ?? "-") \(minRanks ?? 0) \(maxRanks ?? 0)")
            return ScaleAnswer(status: 200, body: .object([:]))
        }
        var isScaling: Bool { false }
        func statusJSON() -> JSONValue { .object(["generation": .number(1)]) }
        func timelineJSON() -> JSONValue { .object(["samples": .array([.object(["ranks": .number(1)])]), "events": .array([])]) }
        func metricsSnapshot() -> ElasticMetricsSnapshot { ElasticMetricsSnapshot(generation: 1, ranks: 1, resizes: [:], lastPhases: []) }
    }

    func withServer(keys: AccessKeys = AccessKeys(), _ body: @Sendable (any TestClientProtocol, FakeScaling) async throws -> Void) async throws {
        let scaling = FakeScaling()
        let server = OpenAIServer(engine: FakeEngine(), tokenizer: Tokenizer.byteLevel(), chatTemplate: nil, modelName: "fake",
                                  eosTokenIds: [], scaling: scaling, keys: keys)
        let app = Application(router: server.makeRouter())
        try await app.test(.router) { client in try await body(client, scaling) }
    }

    static func json(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    @Test func keysGuardTheModelAndTheDeployment() async throws {
        try await withServer(keys: AccessKeys(apiKey: "u", adminKey: "a")) { client, scaling in
            let completion = Self.json(#"{"model": "fake", "prompt": "hi", "max_tokens": 2}"#)
            try await client.execute(uri: "/v1/completions", method: .post, body: completion) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate] == "Bearer")
                let error = try JSONValue.parse(Data(buffer: r.body))["error"]
                #expect(error?["type"]?.stringValue == "AuthenticationError")
            }
            try await client.execute(uri: "/v1/completions", method: .post, headers: [.authorization: "Bearer u"], body: completion) { r in
                #expect(r.status == .ok)
                let usage = try JSONValue.parse(Data(buffer: r.body))["usage"]
                #expect(usage?["completion_tokens"]?.intValue == 2)
            }
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
            let scale = Self.json(#"{"new_data_parallel_size": 2}"#)
            try await client.execute(uri: "/scale_elastic_ep", method: .post, headers: [.authorization: "Bearer u"], body: scale) { r in
                #expect(r.status == .forbidden)
            }
            #expect(scaling.calls.withLock { $0 }.isEmpty, "a refused resize reaches nothing")
            try await client.execute(uri: "/scale_elastic_ep", method: .post, headers: [.authorization: "Bearer a"], body: scale) { r in
                #expect(r.status == .ok)
            }
            #expect(scaling.calls.withLock { $0 } == ["scale 2 [] -"])
        }
    }

    @Test func dashboardPageIsOpenItsDataNeedsTheKey() async throws {
        try await withServer(keys: AccessKeys(apiKey: "u", adminKey: "a")) { client, _ in
            try await client.execute(uri: "/dashboard", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(r.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                let page = String(buffer: r.body)
                for id in ["heatmap", "throughput", "latency", "ranks", "resizes", "events", "decisions"] {
                    #expect(page.contains("id=\"\(id)\""), "the page has no #\(id)")
                }
                #expect(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere")
            }
            try await client.execute(uri: "/dashboard/data", method: .get) { r in #expect(r.status == .unauthorized) }
            try await client.execute(uri: "/dashboard/data", method: .get, headers: [.authorization: "Bearer u"]) { r in
                #expect(r.status == .ok)
                let data = try JSONValue.parse(Data(buffer: r.body))
                #expect(data["model"]?.stringValue == "fake")
                #expect(data["status"]?["generation"]?.intValue == 1)
                #expect(data["timeline"]?["samples"]?.arrayValue?.count == 1)
                #expect(data["engine"]?["running"] != nil)
            }
        }
    }

    @Test func resizeRoutesValidateBeforeCalling() async throws {
        try await withServer { client, scaling in
            for bad in [#"{"new_data_parallel_size": 2, "remove_ranks": [1]}"#, #"{"new_data_parallel_size": "two"}"#,
                        #"{"new_data_parallel_size": 2, "wait": 1}"#, #"{"new_data_parallel_size": 2, "operation_id": "a b"}"#,
                        #"{"remove_ranks": 1}"#, #"{"new_data_parallel_size": 2, "extra": true}"#, "[]", "{"] {
                try await client.execute(uri: "/scale_elastic_ep", method: .post, body: Self.json(bad)) { r in
                    #expect(r.status == .badRequest, "\(bad)")
                }
            }
            #expect(scaling.calls.withLock { $0 }.isEmpty)
            try await client.execute(uri: "/scale_elastic_ep", method: .post,
                                     body: Self.json(#"{"new_data_parallel_size": 3, "wait": false, "operation_id": "grow.1"}"#)) { r in
                #expect(r.status == .accepted)
            }
            try await client.execute(uri: "/elastic_ep/operations/op-1", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/elastic_ep/operations/nope", method: .get) { r in #expect(r.status == .notFound) }
            try await client.execute(uri: "/elastic_ep/plan?remove_ranks=1,2", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/elastic_ep/plan?new_data_parallel_size=x", method: .get) { r in #expect(r.status == .badRequest) }
            for bad in [#"{"enabled": "yes"}"#, #"{"min_data_parallel_size": 0}"#, #"{"cooldown": "5"}"#, #"{"what": 1}"#] {
                try await client.execute(uri: "/elastic_ep/autoscale", method: .post, body: Self.json(bad)) { r in
                    #expect(r.status == .badRequest, "\(bad)")
                }
            }
            try await client.execute(uri: "/elastic_ep/autoscale", method: .post,
                                     body: Self.json(#"{"enabled": false, "max_data_parallel_size": 4}"#)) { r in #expect(r.status == .ok) }
            #expect(scaling.calls.withLock { $0 } == ["start 3 grow.1", "plan - [1, 2]", "autoscale false 0 4"])
        }
    }
}
