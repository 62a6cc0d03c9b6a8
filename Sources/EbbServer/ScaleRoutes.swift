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
    /// serves or the resize rolled back. `operationId` names it (a known one is not run twice).
    func scale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?, operationId: String?) async -> ScaleAnswer
    /// Starts the resize and answers at once (202 with its operation).
    func startScale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?, operationId: String?) -> ScaleAnswer
    /// `GET /elastic_ep/operations/{id}` (nil: unknown).
    func operation(_ id: String) -> JSONValue?
    /// `GET /elastic_ep/plan`: which ranks a resize would retire.
    func plan(newSize: Int?, removeRanks: [Int]?) -> ScaleAnswer
    /// `POST /elastic_ep/autoscale`: pause or resume the autoscaler, change its bounds.
    func autoscale(enabled: Bool?, minRanks: Int?, maxRanks: Int?, cooldown: Double?) -> ScaleAnswer
    var isScaling: Bool { get }
    /// `GET /elastic_ep/status`.
    func statusJSON() -> JSONValue
    /// The dashboard's history: `{"samples": [...], "events": [...]}` (see `Timeline`).
    func timelineJSON() -> JSONValue
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
    /// Autoscaler decisions by action (nil: no autoscaler).
    public var autoscaleDecisions: [String: Int]?
    public init(generation: UInt64, ranks: Int, resizes: [String: Int], lastPhases: [(String, Double)],
                rankFailures: [String: Int] = [:], resubmittedRequests: Int = 0, autoscaleDecisions: [String: Int]? = nil) {
        self.autoscaleDecisions = autoscaleDecisions
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
            guard let scaling else { return Self.errorResponse(Self.elasticOff) }
            return Self.json(scaling.statusJSON())
        }
        router.get("/elastic_ep/operations/:id") { [self] _, context in
            guard let scaling else { return Self.errorResponse(Self.elasticOff) }
            let id = context.parameters.get("id") ?? ""
            guard let op = scaling.operation(id) else {
                return Self.errorResponse(APIError(.notFound, "no resize operation '\(id)'"))
            }
            return Self.json(op)
        }
        router.post("/elastic_ep/autoscale") { [self] request, _ in
            await handle(request) { body in try autoscaleRoute(body) }
        }
        router.get("/elastic_ep/plan") { [self] request, _ in
            guard let scaling else { return Self.errorResponse(Self.elasticOff) }
            let query = request.uri.queryParameters
            do {
                let (newSize, remove) = try Self.scaleTarget(newSize: query["new_data_parallel_size"].map { .string(String($0)) },
                                                             removeRanks: query["remove_ranks"].map { .string(String($0)) })
                let answer = scaling.plan(newSize: newSize, removeRanks: remove)
                return Self.json(answer.body, status: HTTPResponse.Status(code: answer.status))
            } catch {
                return Self.errorResponse(APIError.from(error))
            }
        }
    }

    func autoscaleRoute(_ body: JSONValue) throws -> Response {
        guard let scaling else { throw Self.elasticOff }
        guard let fields = body.objectValue else { throw APIError.badRequest("the body must be a JSON object") }
        let known: Set<String> = ["enabled", "min_data_parallel_size", "max_data_parallel_size", "cooldown"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError.badRequest("unknown field '\(unknown)'", param: unknown)
        }
        func integer(_ name: String) throws -> Int? {
            guard let v = fields[name] else { return nil }
            guard let d = v.doubleValue, d == d.rounded(), d >= 1, d <= 1024 else {
                throw APIError.badRequest("\(name) must be an integer in 1...1024", param: name)
            }
            return Int(d)
        }
        var enabled: Bool?
        if let v = fields["enabled"] {
            guard let b = v.boolValue else { throw APIError.badRequest("enabled must be true or false", param: "enabled") }
            enabled = b
        }
        var cooldown: Double?
        if let v = fields["cooldown"] {
            guard let d = v.doubleValue else { throw APIError.badRequest("cooldown must be seconds", param: "cooldown") }
            cooldown = d
        }
        let answer = scaling.autoscale(enabled: enabled, minRanks: try integer("min_data_parallel_size"),
                                       maxRanks: try integer("max_data_parallel_size"), cooldown: cooldown)
        return Self.json(answer.body, status: HTTPResponse.Status(code: answer.status))
    }

    static let elasticOff = APIError(.notFound, "elastic EP is off: start `ebb serve` with --enable-elastic-ep")

    /// The target of a resize from `new_data_parallel_size` or `remove_ranks` (a JSON list, or
    /// a comma-separated string in a query): exactly one of them.
    static func scaleTarget(newSize: JSONValue?, removeRanks: JSONValue?) throws -> (Int?, [Int]?) {
        func integer(_ v: JSONValue, _ name: String) throws -> Int {
            let d: Double? = v.doubleValue ?? v.stringValue.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard let d, d == d.rounded(), abs(d) < 1e9 else {
                throw APIError.badRequest("\(name) must be an integer", param: name)
            }
            return Int(d)
        }
        var size: Int?
        var remove: [Int]?
        if let v = newSize { size = try integer(v, "new_data_parallel_size") }
        if let v = removeRanks {
            let list: [JSONValue]
            if let array = v.arrayValue {
                list = array
            } else if let text = v.stringValue {
                list = text.split(separator: ",").map { .string(String($0)) }
            } else {
                throw APIError.badRequest("remove_ranks must be a list of ranks", param: "remove_ranks")
            }
            remove = try list.map { try integer($0, "remove_ranks") }
        }
        guard (size == nil) != (remove == nil) else {
            throw APIError.badRequest("give exactly one of new_data_parallel_size and remove_ranks")
        }
        return (size, remove)
    }

    func scaleRoute(_ body: JSONValue) async throws -> Response {
        guard let scaling else {
            throw APIError.badRequest("elastic EP is off: start `ebb serve` with --data-parallel-size ≥ 2 and --enable-elastic-ep")
        }
        guard let fields = body.objectValue else { throw APIError.badRequest("the body must be a JSON object") }
        let known: Set<String> = ["new_data_parallel_size", "remove_ranks", "drain_timeout", "wait", "operation_id"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError.badRequest("unknown field '\(unknown)'", param: unknown)
        }
        if let v = fields["new_data_parallel_size"], v.doubleValue == nil {
            throw APIError.badRequest("new_data_parallel_size must be an integer", param: "new_data_parallel_size")
        }
        if let v = fields["remove_ranks"], v.arrayValue == nil {
            throw APIError.badRequest("remove_ranks must be a list of ranks", param: "remove_ranks")
        }
        let (newSize, remove) = try Self.scaleTarget(newSize: fields["new_data_parallel_size"], removeRanks: fields["remove_ranks"])
        var wait = true
        if let v = fields["wait"] {
            guard let b = v.boolValue else { throw APIError.badRequest("wait must be true or false", param: "wait") }
            wait = b
        }
        var operationId: String?
        if let v = fields["operation_id"] {
            guard let s = v.stringValue, (1...128).contains(s.utf8.count),
                  s.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0) }) else {
                throw APIError.badRequest("operation_id must be 1 to 128 characters of A-Z, a-z, 0-9, '-', '_' and '.'", param: "operation_id")
            }
            operationId = s
        }
        var drain: Double?
        if let v = fields["drain_timeout"] {
            guard let d = v.doubleValue, d.isFinite, d >= 0, d <= 3600 else {
                throw APIError.badRequest("drain_timeout must be seconds in 0...3600", param: "drain_timeout")
            }
            drain = d
        }
        let answer = wait
            ? await scaling.scale(newSize: newSize, removeRanks: remove, drainTimeout: drain, operationId: operationId)
            : scaling.startScale(newSize: newSize, removeRanks: remove, drainTimeout: drain, operationId: operationId)
        return Self.json(answer.body, status: HTTPResponse.Status(code: answer.status))
    }
}
