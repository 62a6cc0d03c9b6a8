import EbbCore
import Foundation
import Hummingbird

/// What a resize answered: an HTTP status and a JSON body.
public struct ScaleAnswer: Sendable {
    public var status: Int
    public var body: JSONValue
    public init(status: Int, body: JSONValue) {
        self.status = status
        self.body = body
    }
}

/// Elastic EP as the HTTP front end sees it (the coordinator provides it).
public protocol ElasticScaling: Sendable {
    /// Resizes to `newSize` ranks, or removes `removeRanks`; returns when the new size
    /// serves or the resize rolled back.
    func scale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?) async -> ScaleAnswer
    var isScaling: Bool { get }
    /// `GET /elastic_ep/status`.
    func statusJSON() -> JSONValue
    /// Gauges for `/metrics`: generation, ranks, resizes by outcome, last resize's phases.
    func metricsSnapshot() -> ElasticMetricsSnapshot
}

public struct ElasticMetricsSnapshot: Sendable {
    public var generation: UInt64
    public var ranks: Int
    public var resizes: [String: Int]
    public var lastPhases: [(String, Double)]
    /// Lost ranks by outcome ("recovered", "recovering", "failed", "no_survivors").
    public var rankFailures: [String: Int]
    /// Requests continued on another rank after theirs was lost.
    public var resubmittedRequests: Int
    public init(generation: UInt64, ranks: Int, resizes: [String: Int], lastPhases: [(String, Double)],
                rankFailures: [String: Int] = [:], resubmittedRequests: Int = 0) {
        self.rankFailures = rankFailures
        self.resubmittedRequests = resubmittedRequests
        self.generation = generation
        self.ranks = ranks
        self.resizes = resizes
        self.lastPhases = lastPhases
    }
}

extension OpenAIServer {
    /// vLLM's `POST /scale_elastic_ep` and `POST /is_scaling_elastic_ep`, and Ebb's
    /// `GET /elastic_ep/status`.
    func addScaleRoutes(_ router: Router<EbbRequestContext>) {
        router.post("/scale_elastic_ep") { [self] request, _ in
            await handle(request) { body in try await scaleRoute(body) }
        }
        router.post("/is_scaling_elastic_ep") { [self] _, _ in
            Self.json(.object(["is_scaling_elastic_ep": .bool(scaling?.isScaling ?? false)]))
        }
        router.get("/elastic_ep/status") { [self] _, _ in
            guard let scaling else {
                return Self.errorResponse(APIError(.notFound, "elastic EP is off: start `ebb serve` with --enable-elastic-ep"))
            }
            return Self.json(scaling.statusJSON())
        }
    }

    func scaleRoute(_ body: JSONValue) async throws -> Response {
        guard let scaling else {
            throw APIError.badRequest("elastic EP is off: start `ebb serve` with --data-parallel-size ≥ 2 and --enable-elastic-ep")
        }
        guard let fields = body.objectValue else { throw APIError.badRequest("the body must be a JSON object") }
        let known: Set<String> = ["new_data_parallel_size", "remove_ranks", "drain_timeout"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError.badRequest("unknown field '\(unknown)'", param: unknown)
        }
        func integer(_ v: JSONValue, _ name: String) throws -> Int {
            guard let d = v.doubleValue, d == d.rounded(), abs(d) < 1e9 else {
                throw APIError.badRequest("\(name) must be an integer", param: name)
            }
            return Int(d)
        }
        var newSize: Int?
        var remove: [Int]?
        if let v = fields["new_data_parallel_size"] { newSize = try integer(v, "new_data_parallel_size") }
        if let v = fields["remove_ranks"] {
            guard let list = v.arrayValue else { throw APIError.badRequest("remove_ranks must be a list of ranks", param: "remove_ranks") }
            remove = try list.map { try integer($0, "remove_ranks") }
        }
        guard (newSize == nil) != (remove == nil) else {
            throw APIError.badRequest("give exactly one of new_data_parallel_size and remove_ranks")
        }
        var drain: Double?
        if let v = fields["drain_timeout"] {
            guard let d = v.doubleValue, d.isFinite, d >= 0, d <= 3600 else {
                throw APIError.badRequest("drain_timeout must be seconds in 0...3600", param: "drain_timeout")
            }
            drain = d
        }
        let answer = await scaling.scale(newSize: newSize, removeRanks: remove, drainTimeout: drain)
        return Self.json(answer.body, status: HTTPResponse.Status(code: answer.status))
    }
}
