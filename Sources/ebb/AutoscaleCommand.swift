import ArgumentParser
import EbbBench
import EbbCluster
import EbbCore
import Foundation

/// `ebb autoscale simulate`: the autoscaler's policy against a request-rate trace.
struct AutoscaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoscale", abstract: "Try the autoscaler's policy offline", subcommands: [Simulate.self])

    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay a request-rate trace against the autoscaler's policy; write a plot and a summary",
            discussion: """
            The plot (PNG) has three panels sharing the time axis: requests a second (blue) against \
            the serving capacity (green); ranks (black); time to first token (purple) against its \
            target (orange), seconds that miss it marked red along the bottom.
            """)

        @Option(help: "diurnal, burst, or a CSV file of 'seconds,requests_per_second' lines")
        var trace: String = "diurnal"

        @Option(help: "JSON profile: concurrency, service_seconds, base_ttft, ttft_target, scale_up_seconds, scale_down_seconds, tokens_per_request")
        var profile: String?

        @Option(help: "PNG file to write (default: autoscale-TRACE.png)")
        var out: String?

        @Option(help: "Fewest and most ranks")
        var minRanks: Int = 1
        @Option(help: "Most ranks")
        var maxRanks: Int = 16

        @Option(help: "Seconds between resizes")
        var cooldown: Double = 30

        @Option(help: "Requests in flight per rank above which it scales up")
        var targetConcurrency: Double = 8

        @Flag(help: "Print every resize decision with its reason")
        var decisions = false

        func run() throws {
            try runReportingErrors {
                guard minRanks >= 1, maxRanks >= minRanks, maxRanks <= 1024, cooldown >= 0, targetConcurrency > 0 else {
                    throw EbbError(.invalidArgument, "need 1 ≤ --min-ranks ≤ --max-ranks ≤ 1024, --cooldown ≥ 0, --target-concurrency > 0")
                }
                var p = AutoscaleSimulation.Profile()
                if let profile {
                    p = try AutoscaleSimulation.Profile.parse(try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: profile))))
                }
                let t: AutoscaleSimulation.Trace
                switch trace {
                case "diurnal": t = .diurnal()
                case "burst": t = .burst()
                default: t = try .parseCSV(try String(contentsOfFile: trace, encoding: .utf8), name: trace)
                }
                let config = AutoscalePolicy.Config(minRanks: minRanks, maxRanks: maxRanks,
                                                    cooldown: .milliseconds(Int64(cooldown * 1000)),
                                                    targetConcurrency: targetConcurrency, ttftTarget: p.ttftTarget)
                let result = AutoscaleSimulation(profile: p, config: config).run(t)
                let path = out ?? "autoscale-\(t.name == trace ? URL(fileURLWithPath: trace).deletingPathExtension().lastPathComponent : t.name).png"
                try Data(Self.plot(result, profile: p)).write(to: URL(fileURLWithPath: path))
                print("trace \(t.name): \(t.rates.count) s, peak \(String(format: "%.1f", t.rates.max() ?? 0)) requests/s; a rank serves \(String(format: "%.1f", p.rankRate)) requests/s")
                print(result.summary)
                if decisions {
                    for d in result.decisions { print("\(d.second) s: \(d.reason)") }
                }
                print("plot: \(path)")
            }
        }

        static func plot(_ r: AutoscaleSimulation.Result, profile: AutoscaleSimulation.Profile) -> [UInt8] {
            let w = 1200, panel = 180, gap = 20
            var c = PNGCanvas(width: w, height: 3 * panel + 4 * gap)
            let x = 40, pw = w - 2 * x
            let ys = (0..<3).map { gap + $0 * (panel + gap) }
            for y in ys { c.fill(x: x, y: y, w: pw, h: panel, .grey) }
            let rates = r.points.map(\.rate)
            let capacity = r.points.map { Double($0.ranks) * profile.rankRate }
            let top = max(rates.max() ?? 1, capacity.max() ?? 1) * 1.1
            c.series(capacity, x: x, y: ys[0], w: pw, h: panel, top: top, .green)
            c.series(rates, x: x, y: ys[0], w: pw, h: panel, top: top, .blue)
            let ranks = r.points.map { Double($0.ranks) }
            c.series(ranks, x: x, y: ys[1], w: pw, h: panel, top: (ranks.max() ?? 1) * 1.2, .black)
            let ttftTop = profile.ttftTarget * 2
            c.series(Array(repeating: profile.ttftTarget, count: r.points.count), x: x, y: ys[2], w: pw, h: panel, top: ttftTop, .orange)
            c.series(r.points.map(\.ttft), x: x, y: ys[2], w: pw, h: panel, top: ttftTop, .purple)
            for (i, p) in r.points.enumerated() where p.violated {
                let px = x + Int(Double(i) / Double(max(r.points.count - 1, 1)) * Double(pw - 1))
                c.fill(x: px, y: ys[2] + panel - 6, w: 1, h: 6, .red)
            }
            return c.png()
        }
    }
}
