import AsyncHTTPClient
import EbbCore
import Foundation
import NIOCore

/// Runs a `vllm bench serve`-style load test against an OpenAI-compatible server: random
/// token-id prompts sent as streamed `/v1/completions` requests on a Poisson schedule,
/// at most `maxConcurrency` at a time, each token timed as its chunk arrives.
///
/// The only host contacted is the one in `config.baseURL`. Every request is bounded by
/// `config.timeout`, so a run ends by itself.
public struct ServeBenchmark: Sendable {
    public let config: ServeBenchmarkConfig
    public let progress: Bool

    public init(config: ServeBenchmarkConfig, progress: Bool) {
        self.config = config
        self.progress = progress
    }

    /// Runs the benchmark. Throws only for what stops it from starting (bad settings, no
    /// model name); failures of single requests are counted in the report.
    public func run(log: @Sendable (String) -> Void = { _ in }) async throws -> BenchmarkReport {
        let problems = config.validationErrors()
        guard problems.isEmpty else { throw EbbError(.invalidArgument, problems.joined(separator: "; ")) }
        let base: String
        switch ServeBenchmarkConfig.parseBaseURL(config.baseURL) {
        case .success(let b): base = b
        case .failure(let e): throw EbbError(.invalidArgument, e.message)
        }

        var httpConfig = HTTPClient.Configuration()
        httpConfig.timeout = .init(connect: .seconds(10), read: Self.amount(config.timeout))
        httpConfig.redirectConfiguration = .disallow
        httpConfig.httpVersion = .http1Only
        let parallel = max(1, min(config.maxConcurrency ?? config.numPrompts, config.numPrompts))
        httpConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: parallel)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfig)

        let outcome: Result<BenchmarkReport, any Error>
        do {
            outcome = .success(try await run(client: client, base: base, log: log))
        } catch {
            outcome = .failure(error)
        }
        try? await client.shutdown()
        return try outcome.get()
    }

    private func run(client: HTTPClient, base: String, log: @Sendable (String) -> Void) async throws -> BenchmarkReport {
        let model: String
        if let m = config.model {
            model = m
        } else {
            model = try await Self.firstModel(client: client, base: base, timeout: min(config.timeout, 60))
            log("model: \(model) (first of GET \(base)/v1/models)")
        }
        let prompts = RandomPrompts.make(count: config.numPrompts, length: config.inputLen, tokenIds: config.tokenIds, seed: config.seed)
        let offsets = ArrivalSchedule.poisson(count: config.numPrompts, rate: config.requestRate, seed: config.seed)
        let url = base + config.endpoint
        let bodies = try prompts.map { try Self.requestBody(model: model, prompt: $0, maxTokens: config.outputLen) }

        let reporter = ProgressReporter(total: config.numPrompts, enabled: progress)
        let date = Date()
        let clock = ContinuousClock()
        let start = clock.now
        reporter.start()
        var results = [RequestResult?](repeating: nil, count: config.numPrompts)
        await withTaskGroup(of: (Int, RequestResult).self) { group in
            var inFlight = 0
            for i in 0..<config.numPrompts {
                if let limit = config.maxConcurrency, inFlight >= limit, let done = await group.next() {
                    results[done.0] = done.1
                    inFlight -= 1
                }
                let due = start.advanced(by: Self.duration(offsets[i]))
                if due > clock.now {
                    try? await Task.sleep(until: due, tolerance: .milliseconds(1), clock: clock)
                }
                let body = bodies[i]
                let promptTokens = prompts[i].count
                let timeout = config.timeout
                group.addTask {
                    let r = await Self.send(client: client, url: url, body: body, promptTokens: promptTokens, timeout: timeout)
                    reporter.record(success: r.success)
                    return (i, r)
                }
                inFlight += 1
            }
            for await (j, r) in group { results[j] = r }
        }
        let duration = Self.seconds(clock.now - start)
        reporter.finish()
        let all = results.map { $0 ?? .failure(promptTokens: config.inputLen, latency: 0, error: "not run") }
        return BenchmarkReport(config: config, model: model, date: date, results: all, duration: duration)
    }

    /// One streamed request, never throwing: every failure becomes a failed result. The
    /// whole exchange, body included, is bounded by `timeout` seconds (AsyncHTTPClient's
    /// deadline only covers the response head).
    static func send(client: HTTPClient, url: String, body: [UInt8], promptTokens: Int, timeout: Double) async -> RequestResult {
        let clock = ContinuousClock()
        let start = clock.now
        return await withTaskGroup(of: RequestResult?.self) { group in
            group.addTask {
                await stream(client: client, url: url, body: body, promptTokens: promptTokens, timeout: timeout, start: start)
            }
            group.addTask {
                do {
                    try await Task.sleep(until: start.advanced(by: duration(timeout)), clock: clock)
                } catch {
                    return nil  // cancelled: the request finished first
                }
                return .failure(promptTokens: promptTokens, latency: seconds(clock.now - start),
                                error: "timed out after \(ReportTable.fixed(timeout)) s (--timeout)")
            }
            var result: RequestResult?
            while result == nil, let next = await group.next() { result = next }
            group.cancelAll()  // stops the other child: the timer, or the request's body stream
            return result ?? .failure(promptTokens: promptTokens, latency: seconds(clock.now - start), error: "cancelled")
        }
    }

    static func stream(client: HTTPClient, url: String, body: [UInt8], promptTokens: Int, timeout: Double,
                       start: ContinuousClock.Instant) async -> RequestResult {
        let clock = ContinuousClock()
        func elapsed() -> Double { seconds(clock.now - start) }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        request.body = .bytes(ByteBuffer(bytes: body))
        var timer = CompletionStreamTimer()
        do {
            let response = try await client.execute(request, deadline: .now() + amount(timeout))
            guard response.status.code == 200 else {
                let text = (try? await response.body.collect(upTo: 64 << 10)).map { String(buffer: $0) } ?? ""
                return .failure(promptTokens: promptTokens, latency: elapsed(),
                                error: "HTTP \(response.status.code): \(errorSummary(text))")
            }
            var parser = SSEParser()
            for try await chunk in response.body {
                let t = elapsed()
                for event in try parser.feed(chunk.readableBytesView) { timer.consume(event, at: t) }
            }
            let t = elapsed()
            for event in try parser.finish() { timer.consume(event, at: t) }
            return timer.result(promptTokens: promptTokens, latency: t)
        } catch {
            var message = describeError(error)
            if timer.contentChunks > 0 { message += " after \(timer.contentChunks) chunks" }
            return .failure(promptTokens: promptTokens, latency: elapsed(), error: message)
        }
    }

    /// The first model id of `GET /v1/models`.
    static func firstModel(client: HTTPClient, base: String, timeout: Double) async throws -> String {
        var request = HTTPClientRequest(url: base + "/v1/models")
        request.method = .GET
        let text: String
        do {
            let response = try await client.execute(request, deadline: .now() + amount(timeout))
            let body = try await response.body.collect(upTo: 16 << 20)
            text = String(buffer: body)
            guard response.status.code == 200 else {
                throw EbbError(.invalidArgument, "GET \(base)/v1/models answered HTTP \(response.status.code): \(errorSummary(text)); pass --model")
            }
        } catch let e as EbbError {
            throw e
        } catch {
            throw EbbError(.invalidArgument, "GET \(base)/v1/models failed: \(describeError(error)); is the server up? (or pass --model)")
        }
        guard let json = try? JSONValue.parse(Data(text.utf8)),
              let id = json["data"]?.arrayValue?.first?["id"]?.stringValue, !id.isEmpty else {
            throw EbbError(.invalidArgument, "GET \(base)/v1/models listed no model id; pass --model")
        }
        return id
    }

    struct StreamOptions: Encodable { var include_usage: Bool }
    struct CompletionBody: Encodable {
        var model: String
        var prompt: [Int]
        var max_tokens: Int
        var ignore_eos: Bool
        var stream: Bool
        var stream_options: StreamOptions
        var temperature: Double
    }

    /// The JSON body of one completion request.
    public static func requestBody(model: String, prompt: [Int], maxTokens: Int) throws -> [UInt8] {
        let body = CompletionBody(model: model, prompt: prompt, max_tokens: maxTokens, ignore_eos: true, stream: true,
                                  stream_options: StreamOptions(include_usage: true), temperature: 0)
        return Array(try JSONEncoder().encode(body))
    }

    /// The `message` of an OpenAI error body, else the body clipped.
    static func errorSummary(_ text: String) -> String {
        if let json = try? JSONValue.parse(Data(text.utf8)) {
            if let m = json["error"]?["message"]?.stringValue { return CompletionStreamTimer.clip(m) }
            if let m = json["message"]?.stringValue { return CompletionStreamTimer.clip(m) }
        }
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? "(empty body)" : CompletionStreamTimer.clip(t)
    }

    static func describeError(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded: return "timed out (--timeout)"
            case .readTimeout: return "read timed out (--timeout)"
            case .connectTimeout: return "connect timed out"
            case .remoteConnectionClosed: return "server closed the connection"
            default: return "HTTP client error: \(e)"
            }
        }
        if let e = error as? SSEParser.ParseError { return "malformed stream: \(e)" }
        if let e = error as? IOError { return "\(String(cString: strerror(e.errnoCode))) (errno \(e.errnoCode))" }
        if error is CancellationError { return "cancelled" }
        return "\(error)"
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    static func duration(_ seconds: Double) -> Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    static func amount(_ seconds: Double) -> TimeAmount {
        .nanoseconds(Int64(min(seconds, 1e9) * 1e9))
    }
}
