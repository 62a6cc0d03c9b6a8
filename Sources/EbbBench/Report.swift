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
    public func jsonObject() -> [(String, JSONOut)] {
        let s = summary
        var o: [(String, JSONOut)] = [
            ("date", .string(Self.dateFormatter.string(from: date))),
            ("backend", .string("openai")),
            ("model_id", .string(model)),
            ("base_url", .string(config.baseURL)),
            ("endpoint", .string(config.endpoint)),
            ("num_prompts", .int(config.numPrompts)),
            ("request_rate", config.requestRate.isFinite ? .double(config.requestRate) : .string("inf")),
            ("max_concurrency", config.maxConcurrency.map { .int($0) } ?? .null),
            ("input_len", .int(config.inputLen)),
            ("output_len", .int(config.outputLen)),
            ("seed", .int(Int(truncatingIfNeeded: config.seed))),
            ("duration", .double(s.duration)),
            ("completed", .int(s.completed)),
            ("failed", .int(s.failed)),
            ("total_input_tokens", .int(s.totalInputTokens)),
            ("total_output_tokens", .int(s.totalOutputTokens)),
            ("request_throughput", .double(s.requestThroughput)),
            ("output_throughput", .double(s.outputThroughput)),
            ("total_token_throughput", .double(s.totalTokenThroughput)),
        ]
        for (name, m) in [("ttft", s.ttftMs), ("tpot", s.tpotMs), ("itl", s.itlMs), ("e2el", s.e2elMs)] {
            o.append(("mean_\(name)_ms", .double(m.mean)))
            o.append(("median_\(name)_ms", .double(m.median)))
            o.append(("std_\(name)_ms", .double(m.std)))
            for (p, v) in m.percentiles {
                o.append(("p\(ReportTable.percentileLabel(p))_\(name)_ms", .double(v)))
            }
        }
        o.append(("input_lens", .array(results.map { .int($0.promptTokens) })))
        o.append(("output_lens", .array(results.map { .int($0.outputTokens) })))
        o.append(("ttfts", .array(results.map { .double($0.ttft) })))
        o.append(("itls", .array(results.map { .array($0.itl.map { .double($0) }) })))
        o.append(("errors", .array(results.map { .string($0.error ?? "") })))
        return o
    }

    public func json() -> String {
        JSONOut.object(jsonObject()).serialized(indent: "") + "\n"
    }

    private static var dateFormatter: DateFormatter {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f
    }
}

/// A small JSON writer that keeps integers integral and key order as given.
public indirect enum JSONOut: Sendable, Equatable {
    case null
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONOut])
    case object([(String, JSONOut)])

    public static func == (a: JSONOut, b: JSONOut) -> Bool { a.serialized() == b.serialized() }

    /// Compact JSON when `indent` is nil; otherwise top-level keys one per line.
    public func serialized(indent: String? = nil) -> String {
        var out = ""
        write(&out, indent: indent)
        return out
    }

    private func write(_ out: inout String, indent: String?) {
        switch self {
        case .null: out += "null"
        case .int(let i): out += String(i)
        case .double(let d):
            // JSON has no inf/nan; write null for them.
            out += d.isFinite ? "\(d)" : "null"
        case .string(let s): Self.writeString(s, &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += ", " }
                v.write(&out, indent: nil)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { out += "," }
                if let indent { out += "\n  " + indent } else if i > 0 { out += " " }
                Self.writeString(k, &out)
                out += ": "
                v.write(&out, indent: nil)
            }
            if indent != nil, !o.isEmpty { out += "\n" }
            out += "}"
        }
    }

    private static func writeString(_ s: String, _ out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }
}
