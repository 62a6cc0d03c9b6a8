import AsyncHTTPClient
import EbbCore
import Foundation
import NIOCore

/// Settings of `ebb bench chaos`.
public struct ChaosConfig: Sendable {
    public var baseURL: String
    public var concurrency: Int
    public var duration: Double
    public var killInterval: Double
    /// The rank to kill each time (nil: a random serving rank).
    public var killRank: Int?
    /// SIGKILL (default) or SIGSTOP.
    public var signal: Int32
    public var inputLen: Int
    public var outputLen: Int
    public var seed: UInt64

    public init(baseURL: String, concurrency: Int, duration: Double, killInterval: Double, killRank: Int?, signal: Int32,
                inputLen: Int, outputLen: Int, seed: UInt64) {
        self.baseURL = baseURL
        self.concurrency = concurrency
        self.duration = duration
        self.killInterval = killInterval
        self.killRank = killRank
        self.signal = signal
        self.inputLen = inputLen
        self.outputLen = outputLen
        self.seed = seed
    }
}

/// One kill and what followed.
public struct KillRecord: Sendable {
    public var rank: Int
    public var engineId: String
    public var pid: Int32
    /// On the run's clock.
    public var at: Double
    public var unixTime: Double
    /// From the kill to the server noticing it (its `detected_unix`).
    public var detection: Double?
    /// From the kill until the survivors served (the incident's recovery finished).
    public var recovered: Double?
    /// From the kill until as many ranks served as before it.
    public var backToSize: Double?
    public var resubmitted: Int?
    public var outcome: String?
}

/// `ebb bench chaos`: steady streaming load on an elastic deployment of this host while a
/// rank is killed every `killInterval` seconds; per kill it reports the detection time,
/// the interruption streams saw (kill → next token, and the longest gap across the kill,
/// against the p99 gap before), requests re-submitted, requests failed, and the time until
/// the survivors serve and until the deployment is back to its size.
public struct ChaosBenchmark: Sendable {
    public let config: ChaosConfig

    public init(config: ChaosConfig) { self.config = config }

    public struct Report: Sendable {
        public var kills: [KillRecord]
        public var streams: [StreamTimeline]
        public var table: String
    }

    public func run(log: @escaping @Sendable (String) -> Void) async throws -> Report {
        guard config.concurrency >= 1, config.duration > 0, config.killInterval > 0, config.inputLen >= 1, config.outputLen >= 1 else {
            throw EbbError(.invalidArgument, "concurrency, durations and lengths must be positive")
        }
        let base: String
        switch ServeBenchmarkConfig.parseBaseURL(config.baseURL) {
        case .success(let b): base = b
        case .failure(let e): throw EbbError(.invalidArgument, e.message)
        }
        var httpConfig = HTTPClient.Configuration()
        httpConfig.timeout = .init(connect: .seconds(10), read: .seconds(600))
        httpConfig.httpVersion = .http1Only
        httpConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: config.concurrency + 2)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfig)
        do {
            let report = try await run(client: client, base: base, log: log)
            try await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func run(client: HTTPClient, base: String, log: @escaping @Sendable (String) -> Void) async throws -> Report {
        let model = try await ServeBenchmark.firstModel(client: client, base: base, timeout: 30)
        let initial = try await Self.status(client: client, base: base)
        let size = Self.serving(initial).count
        guard size > 0 else { throw EbbError(.invalidArgument, "the server reports no serving rank at \(base)/elastic_ep/status") }
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + ServeBenchmark.duration(config.duration)
        let streams = LockedList<StreamTimeline>()
        let config = self.config
        log("chaos: \(config.concurrency) streams on \(size) ranks for \(config.duration) s, a kill every \(config.killInterval) s")
        let kills: [KillRecord] = try await withThrowingTaskGroup(of: [KillRecord].self) { group in
            for worker in 0..<config.concurrency {
                group.addTask {
                    var rng = SplitMix64(seed: config.seed &+ UInt64(worker))
                    while clock.now < end {
                        let prompt = (0..<config.inputLen).map { _ in 3 + Int(rng.next() % 256) }
                        let body = try ServeBenchmark.requestBody(model: model, prompt: prompt, maxTokens: config.outputLen)
                        let t0 = ServeBenchmark.seconds(clock.now - start)
                        let r = await ServeBenchmark.send(client: client, url: base + "/v1/completions", body: body,
                                                          promptTokens: prompt.count, timeout: 300)
                        streams.append(StreamTimeline(start: t0, result: r))
                    }
                    return []
                }
            }
            group.addTask {
                var records: [KillRecord] = []
                var rng = SplitMix64(seed: config.seed ^ 0x5EED)
                var next = start + ServeBenchmark.duration(config.killInterval)
                while next < end {
                    try await Task.sleep(until: next, clock: clock)
                    next = next + ServeBenchmark.duration(config.killInterval)
                    let s = try await Self.status(client: client, base: base)
                    let ranks = Self.serving(s)
                    guard !ranks.isEmpty else { continue }
                    let victim = config.killRank.flatMap { r in ranks.first { $0.rank == r } } ?? ranks[Int(rng.next() % UInt64(ranks.count))]
                    let at = ServeBenchmark.seconds(clock.now - start)
                    let unix = Date().timeIntervalSince1970
                    guard kill(victim.pid, config.signal) == 0 else {
                        log("chaos: cannot signal pid \(victim.pid) (rank \(victim.rank)): errno \(errno); is the server on this host?")
                        continue
                    }
                    log("chaos: signalled rank \(victim.rank) (\(victim.engine), pid \(victim.pid)) at \(ReportTable.fixed(at)) s")
                    var record = KillRecord(rank: victim.rank, engineId: victim.engine, pid: victim.pid, at: at, unixTime: unix)
                    // Follow the incident until the deployment is back to its size or the next kill.
                    while clock.now < min(next, end + .seconds(30)) {
                        try await Task.sleep(for: .milliseconds(50))
                        guard let now = try? await Self.status(client: client, base: base) else { continue }
                        let elapsed = ServeBenchmark.seconds(clock.now - start) - at
                        if let f = now["failures"]?.arrayValue?.last(where: { $0["engine_id"]?.stringValue == victim.engine }) {
                            if record.detection == nil, let d = f["detected_unix"]?.doubleValue { record.detection = d - unix }
                            record.outcome = f["outcome"]?.stringValue
                            record.resubmitted = f["requests_resubmitted"]?.intValue
                            if record.recovered == nil, record.outcome != "recovering" { record.recovered = elapsed }
                        }
                        if record.recovered != nil, Self.serving(now).count >= size, now["is_scaling"]?.boolValue == false {
                            record.backToSize = elapsed
                            break
                        }
                    }
                    records.append(record)
                }
                return records
            }
            var all: [KillRecord] = []
            for try await r in group { all += r }
            return all.sorted { $0.at < $1.at }
        }
        let timelines = streams.values.sorted { $0.start < $1.start }
        return Report(kills: kills, streams: timelines, table: Self.table(kills: kills, streams: timelines, interval: config.killInterval))
    }

    static func table(kills: [KillRecord], streams: [StreamTimeline], interval: Double) -> String {
        func ms(_ x: Double?) -> String { x.map { String(format: "%.0f", $0 * 1000) } ?? "-" }
        func s(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "-" }
        var lines = [ReportTable.banner(" Chaos Benchmark Result ", fill: "=")]
        let done = streams.filter { $0.error == nil }.count
        lines.append(ReportTable.row("Requests completed:", "\(done)"))
        lines.append(ReportTable.row("Requests failed:", "\(streams.count - done)"))
        lines.append(ReportTable.row("Kills:", "\(kills.count)"))
        lines.append("kill  rank  detect ms  kill→next token ms  longest gap ms  p99 gap before ms  resubmitted  failed  serving again s  full size s")
        for (i, k) in kills.enumerated() {
            let window = k.at..<(k.at + interval)
            let before = max(0, k.at - interval)..<k.at
            let row = [
                "\(i + 1)".padding(toLength: 4, withPad: " ", startingAt: 0),
                "\(k.rank)".padding(toLength: 4, withPad: " ", startingAt: 0),
                ms(k.detection).padding(toLength: 9, withPad: " ", startingAt: 0),
                ms(ChaosAnalysis.killToNextToken(streams, kill: k.at)).padding(toLength: 18, withPad: " ", startingAt: 0),
                ms(ChaosAnalysis.longestGapAcross(streams, kill: k.at)).padding(toLength: 14, withPad: " ", startingAt: 0),
                ms(ChaosAnalysis.gapPercentile(streams, in: before, 99)).padding(toLength: 17, withPad: " ", startingAt: 0),
                (k.resubmitted.map(String.init) ?? "-").padding(toLength: 11, withPad: " ", startingAt: 0),
                "\(ChaosAnalysis.failures(streams, in: window).count)".padding(toLength: 6, withPad: " ", startingAt: 0),
                s(k.recovered).padding(toLength: 15, withPad: " ", startingAt: 0),
                s(k.backToSize),
            ]
            lines.append(row.joined(separator: "  "))
        }
        lines.append(String(repeating: "=", count: 50))
        return lines.joined(separator: "\n")
    }

    struct Rank {
        var rank: Int
        var engine: String
        var pid: Int32
    }

    static func serving(_ status: JSONValue) -> [Rank] {
        (status["ranks"]?.arrayValue ?? []).compactMap { r in
            guard r["state"]?.stringValue == "serving", let rank = r["rank"]?.intValue, let pid = r["pid"]?.intValue,
                  let engine = r["engine_id"]?.stringValue else { return nil }
            return Rank(rank: rank, engine: engine, pid: Int32(clamping: pid))
        }
    }

    static func status(client: HTTPClient, base: String) async throws -> JSONValue {
        var request = HTTPClientRequest(url: base + "/elastic_ep/status")
        request.method = .GET
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 4 << 20)
        guard response.status.code == 200 else {
            throw EbbError(.io, "GET /elastic_ep/status answered \(response.status.code) (serve with --enable-elastic-ep)")
        }
        return try JSONValue.parse(Data(body.readableBytesView))
    }
}

/// A list many tasks append to.
final class LockedList<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []
    func append(_ x: T) { lock.withLock { items.append(x) } }
    var values: [T] { lock.withLock { items } }
}
