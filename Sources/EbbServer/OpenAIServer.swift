import EbbCore
import EbbEngine
import EbbSampling
import EbbTokenizer
import Foundation
import Hummingbird

/// The OpenAI-compatible HTTP front end over one engine: tokenizes, submits, streams,
/// detokenizes, and answers errors in OpenAI's shape. Every handler turns bad input into
/// a 4xx; nothing a client sends can stop the server.
public final class OpenAIServer: Sendable {
    public let engine: any EngineClient
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate?
    public let modelName: String
    public let eosTokenIds: [Int]
    /// Resizing, when the engine is a resizable deployment.
    public let scaling: (any ElasticScaling)?
    /// Who may call what (`--api-key`, `--admin-api-key`).
    public let keys: AccessKeys
    let metrics = ServerMetrics()
    let startTime = Date()
    public static let version = "0.1.0"
    /// Largest request body accepted.
    public static let maxBodyBytes = 32 << 20
    /// Deepest JSON nesting accepted.
    public static let maxJSONDepth = 64

    public init(engine: any EngineClient, tokenizer: Tokenizer, chatTemplate: ChatTemplate?, modelName: String, eosTokenIds: [Int],
                scaling: (any ElasticScaling)? = nil, keys: AccessKeys = AccessKeys()) {
        self.engine = engine
        self.scaling = scaling
        self.keys = keys
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.modelName = modelName
        self.eosTokenIds = eosTokenIds
    }

    public func makeRouter() -> Router<EbbRequestContext> {
        let router = Router(context: EbbRequestContext.self)
        router.add(middleware: AccessMiddleware(keys: keys))
        router.get("/health") { _, _ in Response(status: .ok) }
        router.get("/version") { _, _ in Self.json(.object(["version": .string(Self.version)])) }
        router.get("/v1/models") { [self] _, _ in Self.json(modelsJSON()) }
        router.get("/metrics") { [self] _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(string: metrics.render(engine: engine.stats, ranks: engine.rankStats,
                                                                                     elastic: scaling?.metricsSnapshot()))))
        }
        addScaleRoutes(router)
        addDashboardRoutes(router)
        router.post("/v1/completions") { [self] request, context in
            await handle(request) { body in try await completions(body, channel: context.channel) }
        }
        router.post("/v1/chat/completions") { [self] request, context in
            await handle(request) { body in try await chatCompletions(body, channel: context.channel) }
        }
        router.post("/tokenize") { [self] request, _ in
            await handle(request) { body in try tokenizeRoute(body) }
        }
        router.post("/detokenize") { [self] request, _ in
            await handle(request) { body in try detokenizeRoute(body) }
        }
        return router
    }

    /// Serves until the task is cancelled or the process gets SIGINT/SIGTERM.
    public func run(host: String, port: Int, onReady: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = Application(router: makeRouter(), configuration: .init(address: .hostname(host, port: port), serverName: "ebb"),
                              onServerRunning: { channel in await onReady(channel.localAddress?.port ?? port) })
        try await app.runService()
    }

    // MARK: Plumbing

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: value.serialized())))
    }

    static func errorResponse(_ error: APIError) -> Response { json(error.json, status: error.status) }

    /// Reads and parses the body, runs `body`, and turns every thrown error into OpenAI's
    /// error shape.
    func handle(_ request: Request, _ body: (JSONValue) async throws -> Response) async -> Response {
        do {
            var request = request
            let buffer: ByteBuffer
            do {
                buffer = try await request.collectBody(upTo: Self.maxBodyBytes)
            } catch {
                throw APIError(.contentTooLarge, "the request body is larger than \(Self.maxBodyBytes) bytes or could not be read")
            }
            let bytes = Array(buffer.readableBytesView)
            let shape = Self.scanJSON(bytes)
            guard shape.depth <= Self.maxJSONDepth else {
                throw APIError.badRequest("the request body nests JSON deeper than \(Self.maxJSONDepth) levels")
            }
            guard !shape.trailingComma else {
                throw APIError.badRequest("malformed JSON body: a trailing comma before ']' or '}'")
            }
            let value: JSONValue
            do {
                value = try JSONValue.parse(Data(bytes))
            } catch let e as EbbError {
                throw APIError.badRequest("malformed JSON body: \(e.message)")
            }
            return try await body(value)
        } catch {
            let api = APIError.from(error)
            metrics.countRequest(status: Int(api.status.code), finishReason: "error")
            return Self.errorResponse(api)
        }
    }

    /// Largest bracket depth outside strings (a cheap guard before a recursive parser).
    static func nestingDepth(_ bytes: [UInt8]) -> Int { scanJSON(bytes).depth }

    /// One pass over the body outside strings: the deepest bracket nesting, and whether a
    /// comma is followed (after whitespace) by a closing bracket, which strict JSON
    /// forbids and Foundation's decoder lets through.
    static func scanJSON(_ bytes: [UInt8]) -> (depth: Int, trailingComma: Bool) {
        var depth = 0, deepest = 0, inString = false, escaped = false
        var afterComma = false, trailing = false
        for b in bytes {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                continue
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if afterComma { trailing = true }
                depth -= 1
            default: break
            }
            afterComma = b == UInt8(ascii: ",")
        }
        return (deepest, trailing)
    }

    func checkModel(_ options: GenerationOptions) throws(APIError) {
        if let m = options.model, m != modelName {
            throw APIError(.notFound, "The model `\(m)` does not exist.", type: "NotFoundError", param: "model")
        }
    }

    func modelsJSON() -> JSONValue {
        let model = ModelList.Model(id: modelName, created: Int(startTime.timeIntervalSince1970), root: modelName,
                                    maxModelLen: engine.maxModelLen)
        return (try? JSONValueEncoder.encode(ModelList(data: [model]))) ?? .null
    }

    /// Token ids of a prompt, checked against the vocabulary and the model length.
    func promptIds(_ prompt: PromptInput) throws(APIError) -> [Int] {
        let ids: [Int]
        switch prompt {
        case .text(let s): ids = tokenizer.encode(s)
        case .tokens(let t):
            if let bad = t.first(where: { $0 < 0 || $0 >= engine.vocabSize }) {
                throw .badRequest("token id \(bad) is outside the vocabulary (0..<\(engine.vocabSize))", param: "prompt")
            }
            ids = t
        }
        guard !ids.isEmpty else { throw .badRequest("the prompt is empty", param: "prompt") }
        return ids
    }

    func checkLength(_ ids: [Int], _ options: GenerationOptions) throws(APIError) {
        let limit = engine.maxModelLen
        let wanted = ids.count + (options.params.maxTokens ?? 1)
        if ids.count >= limit || wanted > limit {
            throw .badRequest("This model's maximum context length is \(limit) tokens. However, you requested \(wanted) tokens (\(ids.count) in the messages, \(options.params.maxTokens ?? 1) in the completion). Please reduce the length of the messages or completion.", param: "max_tokens")
        }
    }

    func validateParams(_ options: GenerationOptions) throws(APIError) {
        do {
            try options.params.validate(vocabSize: engine.vocabSize)
        } catch {
            throw APIError.from(error)
        }
    }

    static func newId(_ prefix: String) -> String {
        prefix + "-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
    }

    func tokenText(_ id: Int, asIds: Bool) -> String {
        asIds ? "token_id:\(id)" : tokenizer.decode([id])
    }
}
