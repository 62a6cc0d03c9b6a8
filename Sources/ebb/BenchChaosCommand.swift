import ArgumentParser
import EbbBench
import EbbCore
import Foundation

/// `ebb bench chaos`: streaming load on an elastic deployment of this host while a rank is
/// killed every few seconds; prints, per kill, detection, interruption, re-submitted and
/// failed requests, and the time until the deployment serves and is back to its size.
struct BenchChaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Kill ranks of a serving elastic deployment under load and measure what clients see",
        discussion: """
            The server must run on this host with --enable-elastic-ep (the ranks' pids come from \
            GET /elastic_ep/status). --concurrency clients stream completions of --input-len random \
            token ids with max_tokens --output-len and ignore_eos, back to back, for --duration \
            seconds; every --kill-interval seconds a rank (--kill-rank, or a random serving one) \
            gets --signal. Add --replace-failed-ranks to the server to measure the way back to full size.
            """)

    @Option(help: "Base URL of the server")
    var url: String = "http://127.0.0.1:8000"

    @Option(help: "Streaming clients")
    var concurrency: Int = 6

    @Option(help: "Seconds the load runs")
    var duration: Double = 60

    @Option(help: "Seconds between kills (the first comes after one interval)")
    var killInterval: Double = 15

    @Option(help: "The rank to kill each time (default: a random serving rank)")
    var killRank: Int?

    @Option(help: "kill (SIGKILL) or stop (SIGSTOP: a hung rank)")
    var signal: String = "kill"

    @Option(help: "Prompt tokens per request")
    var inputLen: Int = 64

    @Option(help: "Output tokens per request")
    var outputLen: Int = 128

    @Option(help: "Seed of the prompts and the victims")
    var seed: UInt64 = 0

    func run() async throws {
        let sig: Int32
        switch signal {
        case "kill": sig = SIGKILL
        case "stop": sig = SIGSTOP
        default: throw ValidationError("--signal must be kill or stop, got '\(signal)'")
        }
        guard concurrency >= 1, duration > 0, killInterval > 0, inputLen >= 1, outputLen >= 1 else {
            throw ValidationError("--concurrency, --duration, --kill-interval, --input-len and --output-len must be positive")
        }
        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        let config = ChaosConfig(baseURL: url, concurrency: concurrency, duration: duration, killInterval: killInterval,
                                 killRank: killRank, signal: sig, inputLen: inputLen, outputLen: outputLen, seed: seed)
        do {
            let report = try await ChaosBenchmark(config: config).run(log: log)
            print(report.table)
            let failed = report.streams.compactMap(\.error)
            if !failed.isEmpty { log("failed requests (first 5): \(failed.prefix(5))") }
        } catch {
            log("error: \(describe(error))")
            throw ExitCode(1)
        }
    }
}
