import Foundation

/// The end-of-run table, laid out as `vllm bench serve` prints it.
public enum ReportTable {
    public static let width = 50

    /// The table for `summary`. `requestRate` and `maxConcurrency` are echoed as configured.
    public static func render(_ summary: BenchmarkSummary, requestRate: Double, maxConcurrency: Int?) -> String {
        var lines = [String]()
        lines.append(banner(" Serving Benchmark Result ", fill: "="))
        lines.append(row("Successful requests:", "\(summary.completed)"))
        lines.append(row("Failed requests:", "\(summary.failed)"))
        lines.append(row("Request rate configured (RPS):", requestRate.isFinite ? fixed(requestRate) : "inf"))
        if let c = maxConcurrency { lines.append(row("Maximum request concurrency:", "\(c)")) }
        lines.append(row("Benchmark duration (s):", fixed(summary.duration)))
        lines.append(row("Total input tokens:", "\(summary.totalInputTokens)"))
        lines.append(row("Total generated tokens:", "\(summary.totalOutputTokens)"))
        lines.append(row("Request throughput (req/s):", fixed(summary.requestThroughput)))
        lines.append(row("Output token throughput (tok/s):", fixed(summary.outputThroughput)))
        lines.append(row("Total token throughput (tok/s):", fixed(summary.totalTokenThroughput)))
        section(&lines, "Time to First Token", "TTFT", summary.ttftMs)
        section(&lines, "Time per Output Token (excl. 1st token)", "TPOT", summary.tpotMs)
        section(&lines, "Inter-token Latency", "ITL", summary.itlMs)
        section(&lines, "End-to-end Latency", "E2EL", summary.e2elMs)
        lines.append(String(repeating: "=", count: width))
        return lines.joined(separator: "\n") + "\n"
    }

    static func section(_ lines: inout [String], _ title: String, _ metric: String, _ s: MetricSummary) {
        lines.append(banner(title, fill: "-"))
        lines.append(row("Mean \(metric) (ms):", fixed(s.mean)))
        lines.append(row("Median \(metric) (ms):", fixed(s.median)))
        for (p, v) in s.percentiles {
            lines.append(row("P\(percentileLabel(p)) \(metric) (ms):", fixed(v)))
        }
    }

    /// `99` for 99, `99.9` for 99.9.
    public static func percentileLabel(_ p: Double) -> String {
        p == p.rounded() ? String(Int(p)) : String(p)
    }

    /// `title` centred in a line of `fill`.
    public static func banner(_ title: String, fill: Character) -> String {
        let pad = max(width - title.count, 0)
        let left = pad / 2
        return String(repeating: fill, count: left) + title + String(repeating: fill, count: pad - left)
    }

    /// A label padded to 40 columns, a space, and the value.
    public static func row(_ label: String, _ value: String) -> String {
        let padded = label.count < 40 ? label + String(repeating: " ", count: 40 - label.count) : label
        return padded + " " + value
    }

    public static func fixed(_ x: Double) -> String {
        x.isFinite ? String(format: "%.2f", x) : "\(x)"
    }
}
