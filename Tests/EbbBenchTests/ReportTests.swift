import Foundation
import Testing
@testable import EbbBench

@Suite struct ReportTests {
    func report() -> BenchmarkReport {
        let ok = RequestResult(success: true, promptTokens: 8, outputTokens: 4, ttft: 0.01, itl: [0.002, 0.003, 0.004], latency: 0.02, error: nil)
        let bad = RequestResult.failure(promptTokens: 8, latency: 0.001, error: "HTTP 503: \"busy\"")
        let config = ServeBenchmarkConfig(baseURL: "http://127.0.0.1:8000", requestRate: .infinity, numPrompts: 3,
                                          inputLen: 8, outputLen: 4, maxConcurrency: 2, percentiles: [90, 99.9])
        return BenchmarkReport(config: config, model: "tiny", date: Date(timeIntervalSince1970: 0), results: [ok, ok, bad], duration: 0.5)
    }

    @Test func tableHasEveryRow() {
        let table = report().table
        for label in ["Serving Benchmark Result", "Successful requests:", "Failed requests:", "Benchmark duration (s):",
                      "Total input tokens:", "Total generated tokens:", "Request throughput (req/s):",
                      "Output token throughput (tok/s):", "Total token throughput (tok/s):",
                      "Maximum request concurrency:", "Request rate configured (RPS):",
                      "Time to First Token", "Mean TTFT (ms):", "Median TTFT (ms):", "P90 TTFT (ms):", "P99.9 TTFT (ms):",
                      "Time per Output Token (excl. 1st token)", "Mean TPOT (ms):", "Median TPOT (ms):", "P99.9 TPOT (ms):",
                      "Inter-token Latency", "Mean ITL (ms):", "Median ITL (ms):", "P99.9 ITL (ms):",
                      "End-to-end Latency", "Mean E2EL (ms):", "Median E2EL (ms):", "P99.9 E2EL (ms):"] {
            #expect(table.contains(label), "missing \(label)")
        }
        let lines = table.split(separator: "\n")
        #expect(lines.first.map(String.init) == "============ Serving Benchmark Result ============")
        #expect(lines.contains("Successful requests:                     2"))
        #expect(lines.contains("Failed requests:                         1"))
        #expect(lines.contains("Total generated tokens:                  8"))
        #expect(lines.contains("Output token throughput (tok/s):         16.00"))
        #expect(lines.contains("Request rate configured (RPS):           inf"))
        #expect(lines.contains("Mean TTFT (ms):                          10.00"))
        #expect(lines.contains("Median ITL (ms):                         3.00"))
        #expect(lines.filter { $0.hasPrefix("=") || $0.hasPrefix("-") }.allSatisfy { $0.count == 50 })
    }

    @Test func jsonIsValidAndUsesVLLMKeys() throws {
        let text = report().json()
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(obj["completed"] as? Int == 2)
        #expect(obj["failed"] as? Int == 1)
        #expect(obj["request_rate"] as? String == "inf")
        #expect(obj["max_concurrency"] as? Int == 2)
        #expect(obj["model_id"] as? String == "tiny")
        for key in ["duration", "total_input_tokens", "total_output_tokens", "request_throughput", "output_throughput",
                    "total_token_throughput", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p90_ttft_ms", "p99.9_ttft_ms",
                    "mean_tpot_ms", "mean_itl_ms", "mean_e2el_ms", "p99.9_e2el_ms", "input_lens", "output_lens", "ttfts", "itls", "errors"] {
            #expect(obj[key] != nil, "missing \(key)")
        }
        #expect((obj["errors"] as? [String])?.last == "HTTP 503: \"busy\"")
    }

    @Test func failureMessagesAreCountedMostFrequentFirst() {
        let f = { (m: String) in RequestResult.failure(promptTokens: 1, latency: 0, error: m) }
        let config = ServeBenchmarkConfig(baseURL: "http://127.0.0.1:1", numPrompts: 4, inputLen: 1, outputLen: 1)
        let r = BenchmarkReport(config: config, model: "m", date: Date(), results: [f("a"), f("b"), f("b"), f("c")], duration: 1)
        let m = r.failureMessages(limit: 2)
        #expect(m.map(\.message) == ["b", "a"] && m.map(\.count) == [2, 1])
    }

    @Test func progressLine() {
        #expect(ProgressLine.render(done: 12, total: 100, failed: 0, elapsed: 1.3, width: 10) == "[#.........] 12/100 1.3s")
        #expect(ProgressLine.render(done: 5, total: 10, failed: 2, elapsed: 0, width: 10) == "[#####.....] 5/10 (2 failed) 0.0s")
    }

    @Test func configValidation() {
        #expect(ServeBenchmarkConfig(baseURL: "http://127.0.0.1:8000/", numPrompts: 1, inputLen: 1, outputLen: 1).validationErrors().isEmpty)
        #expect(ServeBenchmarkConfig.parseBaseURL("http://127.0.0.1:8000/") == .success("http://127.0.0.1:8000"))
        #expect(!ServeBenchmarkConfig(baseURL: "127.0.0.1:8000", numPrompts: 1, inputLen: 1, outputLen: 1).validationErrors().isEmpty)
        #expect(!ServeBenchmarkConfig(baseURL: "ftp://x", numPrompts: 1, inputLen: 1, outputLen: 1).validationErrors().isEmpty)
        #expect(ServeBenchmarkConfig(baseURL: "http://h", requestRate: 0, numPrompts: 0, inputLen: 1, outputLen: 1,
                                     maxConcurrency: 0).validationErrors().count == 3)
    }
}
