import ArgumentParser
import EbbBench
import EbbCore
import Foundation

/// `ebb bench serve`: load-tests an OpenAI-compatible server the way `vllm bench serve`
/// does (random token-id prompts, Poisson arrivals, streamed completions) and prints
/// throughput and TTFT/TPOT/ITL/E2E latency.
struct BenchServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load-test an OpenAI-compatible server: throughput, TTFT, TPOT, ITL and end-to-end latency",
        discussion: """
            Sends --num-prompts streamed completion requests of --input-len random token ids \
            (from [--min-token-id, --max-token-id)) with max_tokens --output-len and ignore_eos, \
            arriving as a Poisson process of --request-rate requests/s (inf: all at once), \
            at most --max-concurrency in flight. Prints the same table as `vllm bench serve`.
            """)

    @Option(help: "Base URL of the server")
    var url: String = "http://127.0.0.1:8000"

    @Option(help: "Completions endpoint path")
    var endpoint: String = "/v1/completions"

    @Option(help: "Model name (default: the first id of GET /v1/models)")
    var model: String?

    @Option(help: "Requests per second of Poisson arrivals, or inf to send all at once")
    var requestRate: Double = .infinity

    @Option(help: "Number of requests")
    var numPrompts: Int = 1000

    @Option(help: "Prompt length in tokens")
    var inputLen: Int = 128

    @Option(help: "Tokens generated per request (sent with ignore_eos)")
    var outputLen: Int = 128

    @Option(help: "Most requests in flight at once (default: no limit)")
    var maxConcurrency: Int?

    @Option(help: "Seed of the prompts and of the arrival times")
    var seed: UInt64 = 0

    @Option(help: "Smallest prompt token id")
    var minTokenId: Int = 3

    @Option(help: "Prompt token ids lie below this")
    var maxTokenId: Int = 259

    @Option(help: "Seconds one request may take, to the end of its stream")
    var timeout: Double = 600

    @Option(help: "Comma-separated percentiles to report, e.g. 50,90,99")
    var metricPercentiles: String = "99"

    @Option(help: "Write the results as JSON to this file")
    var resultJson: String?

    @Flag(help: "Do not draw the progress bar (it is drawn only when stderr is a terminal)")
    var noProgress = false

    func run() async throws {
        let percentiles = metricPercentiles.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard percentiles.allSatisfy({ $0 != nil }), !percentiles.isEmpty else {
            throw ValidationError("--metric-percentiles must be numbers separated by commas, got '\(metricPercentiles)'")
        }
        guard minTokenId < maxTokenId else {
            throw ValidationError("--min-token-id must be below --max-token-id")
        }
        let config = ServeBenchmarkConfig(
            baseURL: url, endpoint: endpoint, model: model, requestRate: requestRate, numPrompts: numPrompts,
            inputLen: inputLen, outputLen: outputLen, maxConcurrency: maxConcurrency, seed: seed,
            tokenIds: minTokenId..<maxTokenId, timeout: timeout, percentiles: percentiles.compactMap { $0 })
        let problems = config.validationErrors()
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "\n")) }

        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        log("traffic request rate: \(requestRate.isFinite ? String(requestRate) : "inf") req/s, max concurrency: \(maxConcurrency.map(String.init) ?? "none")")
        log("\(numPrompts) requests of \(inputLen) prompt tokens and \(outputLen) output tokens to \(url)\(endpoint)")

        let report: BenchmarkReport
        do {
            let bench = ServeBenchmark(config: config, progress: !noProgress && ProgressReporter.stderrIsTerminal)
            report = try await bench.run(log: log)
        } catch {
            log("error: \(error)")
            throw ExitCode(1)
        }

        print(report.table, terminator: "")
        let failures = report.failureMessages(limit: 5)
        if !failures.isEmpty {
            log("failures (\(report.summary.failed); up to 5 distinct messages):")
            for (message, count) in failures { log("  \(count)× \(message)") }
        }
        if let path = resultJson {
            do {
                try report.json().write(toFile: path, atomically: true, encoding: .utf8)
                log("results written to \(path)")
            } catch {
                log("error: could not write \(path): \(error)")
                throw ExitCode(1)
            }
        }
        if report.summary.completed == 0 { throw ExitCode(1) }
    }
}
