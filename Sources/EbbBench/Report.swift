import EbbCore
import Foundation

/// Everything one run produced: what was asked, what each request measured, and the summary.
public struct BenchmarkReport: Sendable {
    public var config: ServeBenchmarkConfig
    /// The model name the requests carried.
    public var model: String
    public var date: Date
    public var results: [RequestResult]
    public var summary: BenchmarkSummary

    public init(config: ServeBenchmarkConfig, model: String, date: Date, results: [RequestResult], duration: Double) {
        self.config = config
        self.model = model
        self.date = date
        self.results = results
        summary = BenchmarkSummary(results: results, duration: duration, percentiles: config.percentiles)
    }

    /// The table `vllm bench serve` would print.
    public var table: String {
        ReportTable.render(summary, requestRate: config.requestRate, maxConcurrency: config.maxConcurrency)
    }

    /// Up to `limit` distinct failure messages with how often each occurred, most frequent first.
    public func failureMessages(limit: Int = 5) -> [(message: String, count: Int)] {
        var counts = [String: Int]()
        var order = [String]()
        for r in results where !r.success {
            let m = r.error ?? "unknown error"
            if counts[m] == nil { order.append(m) }
            counts[m, default: 0] += 1
        }
        let ranked = order.enumerated().sorted { a, b in
            let (ca, cb) = (counts[a.element] ?? 0, counts[b.element] ?? 0)
            return ca != cb ? ca > cb : a.offset < b.offset
        }
        return ranked.prefix(limit).map { ($0.element, counts[$0.element] ?? 0) }
    }

    /// The numbers as a JSON object with `vllm bench serve`'s key names (milliseconds for
    /// latencies; per-request arrays `input_lens`, `output_lens`, `ttfts`, `itls` in seconds,
    /// and `errors`).
    public func jsonObject() -> [(String, JSONValue)] {
        let s = summary
        var o: [(String, JSONValue)] = [
            ("date", .string(Self.dateFormatter.string(from: date))),
            ("backend", .string("openai")),
            ("model_id", .string(model)),
            ("base_url", .string(config.baseURL)),
            ("endpoint", .string(config.endpoint)),
            ("num_prompts", .int(config.numPrompts)),
            ("request_rate", config.requestRate.isFinite ? .number(config.requestRate) : .string("inf")),
            ("max_concurrency", config.maxConcurrency.map { .int($0) } ?? .null),
            ("input_len", .int(config.inputLen)),
            ("output_len", .int(config.outputLen)),
            ("seed", .int(Int(truncatingIfNeeded: config.seed))),
            ("duration", .number(s.duration)),
            ("completed", .int(s.completed)),
            ("failed", .int(s.failed)),
            ("total_input_tokens", .int(s.totalInputTokens)),
            ("total_output_tokens", .int(s.totalOutputTokens)),
            ("request_throughput", .number(s.requestThroughput)),
            ("output_throughput", .number(s.outputThroughput)),
            ("total_token_throughput", .number(s.totalTokenThroughput)),
        ]
        for (name, m) in [("ttft", s.ttftMs), ("tpot", s.tpotMs), ("itl", s.itlMs), ("e2el", s.e2elMs)] {
            o.append(("mean_\(name)_ms", .number(m.mean)))
            o.append(("median_\(name)_ms", .number(m.median)))
            o.append(("std_\(name)_ms", .number(m.std)))
            for (p, v) in m.percentiles {
                o.append(("p\(ReportTable.percentileLabel(p))_\(name)_ms", .number(v)))
            }
        }
        o.append(("input_lens", .array(results.map { .int($0.promptTokens) })))
        o.append(("output_lens", .array(results.map { .int($0.outputTokens) })))
        o.append(("ttfts", .array(results.map { .number($0.ttft) })))
        o.append(("itls", .array(results.map { .array($0.itl.map { .number($0) }) })))
        o.append(("errors", .array(results.map { .string($0.error ?? "") })))
        return o
    }

    /// The JSON text: one top-level key per line, values compact.
    public func json() -> String {
        var out = "{"
        for (i, (key, value)) in jsonObject().enumerated() {
            out += i == 0 ? "\n  " : ",\n  "
            JSONValue.writeString(key, into: &out)
            out += ": " + value.serialized()
        }
        return out + "\n}\n"
    }

    private static var dateFormatter: DateFormatter {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f
    }
}

