import EbbCore
import Foundation

/// Replays a request-rate trace against `AutoscalePolicy` (the same code `ebb serve
/// --autoscale` runs), one simulated second at a time, with a fluid model of the ranks:
/// each rank serves `concurrency` requests at once, each taking `serviceSeconds`, so a rank
/// finishes `concurrency / serviceSeconds` requests a second; arrivals beyond the capacity
/// wait in a queue, and a request's time to first token is `baseTTFT` plus its wait. A
/// resize takes `scaleUpSeconds` or `scaleDownSeconds`; the old size serves until it ends.
public struct AutoscaleSimulation: Sendable {
    /// Per-rank capacity and resize costs (measured numbers; see docs/benchmarks.md).
    public struct Profile: Sendable, Equatable {
        public var concurrency: Double
        public var serviceSeconds: Double
        public var baseTTFT: Double
        public var ttftTarget: Double
        public var scaleUpSeconds: Double
        public var scaleDownSeconds: Double
        public var tokensPerRequest: Double

        public init(concurrency: Double = 8, serviceSeconds: Double = 2, baseTTFT: Double = 0.2, ttftTarget: Double = 2,
                    scaleUpSeconds: Double = 1.5, scaleDownSeconds: Double = 1.0, tokensPerRequest: Double = 128) {
            self.concurrency = concurrency
            self.serviceSeconds = serviceSeconds
            self.baseTTFT = baseTTFT
            self.ttftTarget = ttftTarget
            self.scaleUpSeconds = scaleUpSeconds
            self.scaleDownSeconds = scaleDownSeconds
            self.tokensPerRequest = tokensPerRequest
        }

        /// Requests one rank finishes a second.
        public var rankRate: Double { concurrency / serviceSeconds }

        /// A profile from a JSON object with any of these keys.
        public static func parse(_ json: JSONValue) throws -> Profile {
            guard let o = json.objectValue else { throw EbbError(.invalidArgument, "a profile is a JSON object") }
            var p = Profile()
            let fields: [(String, WritableKeyPath<Profile, Double>)] = [
                ("concurrency", \.concurrency), ("service_seconds", \.serviceSeconds), ("base_ttft", \.baseTTFT),
                ("ttft_target", \.ttftTarget), ("scale_up_seconds", \.scaleUpSeconds), ("scale_down_seconds", \.scaleDownSeconds),
                ("tokens_per_request", \.tokensPerRequest),
            ]
            let known = Set(fields.map(\.0))
            if let unknown = o.keys.sorted().first(where: { !known.contains($0) }) {
                throw EbbError(.invalidArgument, "profile: unknown field '\(unknown)'")
            }
            for (name, path) in fields {
                guard let v = o[name] else { continue }
                guard let d = v.doubleValue, d.isFinite, d > 0 else {
                    throw EbbError(.invalidArgument, "profile: \(name) must be a positive number")
                }
                p[keyPath: path] = d
            }
            return p
        }
    }

    /// Requests a second, per second of the trace.
    public struct Trace: Sendable {
        public var name: String
        public var rates: [Double]

        /// One day compressed into two hours: a night floor, a morning rise, an afternoon peak.
        public static func diurnal(peak: Double = 40, seconds: Int = 7200) -> Trace {
            let rates = (0..<seconds).map { t -> Double in
                let phase = Double(t) / Double(seconds) * 2 * Double.pi
                let day = (1 - cos(phase)) / 2
                return peak * (0.08 + 0.92 * day * day)
            }
            return Trace(name: "diurnal", rates: rates)
        }

        /// A quiet service hit by sudden bursts: 5 minutes at 8× the base rate every 20 minutes.
        public static func burst(base: Double = 4, seconds: Int = 7200) -> Trace {
            let rates = (0..<seconds).map { t -> Double in
                let inCycle = t % 1200
                return inCycle >= 600 && inCycle < 900 ? base * 8 : base
            }
            return Trace(name: "burst", rates: rates)
        }

        /// `seconds,requests_per_second` lines (a header line and `#` comments are skipped);
        /// the rate holds until the next line's second.
        public static func parseCSV(_ text: String, name: String) throws -> Trace {
            var points: [(Int, Double)] = []
            for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                let parts = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, let t = Double(parts[0]), let r = Double(parts[1]) else {
                    if points.isEmpty && n == 0 { continue }  // a header
                    throw EbbError(.invalidArgument, "\(name) line \(n + 1): expected 'seconds,requests_per_second'")
                }
                guard t.isFinite, r.isFinite, t >= 0, r >= 0, t <= 30 * 86_400, Int(t) >= (points.last?.0 ?? -1) else {
                    throw EbbError(.invalidArgument, "\(name) line \(n + 1): seconds must increase and rates be ≥ 0")
                }
                points.append((Int(t), r))
            }
            guard let last = points.last else { throw EbbError(.invalidArgument, "\(name) has no rates") }
            var rates = [Double](repeating: 0, count: last.0 + 1)
            for (i, (t, r)) in points.enumerated() {
                let end = i + 1 < points.count ? points[i + 1].0 : last.0 + 1
                for s in t..<max(end, t + 1) where s < rates.count { rates[s] = r }
            }
            return Trace(name: name, rates: rates)
        }
    }

    /// One simulated second.
    public struct Point: Sendable {
        public var rate: Double
        public var ranks: Int
        public var ttft: Double
        public var backlog: Double
        public var violated: Bool
    }

    public struct Result: Sendable {
        public var points: [Point]
        public var decisions: [(second: Int, action: AutoscalePolicy.Action, reason: String)]
        public var rankSeconds: Double
        /// Ranks a static deployment needs for the trace's peak, and its rank-seconds.
        public var staticRanks: Int
        public var staticRankSeconds: Double
        /// Share of requests whose time to first token met the target.
        public var attainment: Double
        public var staticAttainment: Double

        public var summary: String {
            let saved = 1 - rankSeconds / max(staticRankSeconds, 1e-9)
            return String(format: "rank-hours %.2f (static %d ranks: %.2f, %.0f%% fewer); SLO attainment %.2f%% (static %.2f%%); %d resizes",
                          rankSeconds / 3600, staticRanks, staticRankSeconds / 3600, saved * 100, attainment * 100,
                          staticAttainment * 100, decisions.filter { if case .scale = $0.action { return true } else { return false } }.count)
        }
    }

    public let profile: Profile
    public let config: AutoscalePolicy.Config

    public init(profile: Profile, config: AutoscalePolicy.Config) {
        self.profile = profile
        self.config = config
    }

    public func run(_ trace: Trace) -> Result {
        let t0 = ContinuousClock.now
        var policy = AutoscalePolicy(config: config)
        var ranks = config.minRanks
        var backlog = 0.0
        var pending: (to: Int, doneAt: Double)?
        var points: [Point] = []
        var decisions: [(Int, AutoscalePolicy.Action, String)] = []
        var rankSeconds = 0.0
        var met = 0.0, total = 0.0
        var tokenRate = 0.0
        for (second, rate) in trace.rates.enumerated() {
            let now = Double(second)
            if let p = pending, now >= p.doneAt {
                ranks = p.to
                pending = nil
            }
            // One second of the fluid queue.
            let capacity = Double(ranks) * profile.rankRate
            let served = min(backlog + rate, capacity)
            backlog = max(0, backlog + rate - capacity)
            let ttft = profile.baseTTFT + backlog / max(capacity, 1e-9)
            let violated = ttft > profile.ttftTarget
            total += rate
            if !violated { met += rate }
            rankSeconds += Double(max(ranks, pending?.to ?? 0))
            tokenRate = served * profile.tokensPerRequest
            points.append(Point(rate: rate, ranks: ranks, ttft: ttft, backlog: backlog, violated: violated))
            // What the coordinator would see: in flight = in service + waiting (Little's law).
            let inService = min(served * profile.serviceSeconds, Double(ranks) * profile.concurrency)
            let sample = AutoscalePolicy.Sample(
                ranks: ranks, live: Int((inService + backlog).rounded()), waiting: Int(backlog.rounded()),
                kvUsage: min(1, inService / max(Double(ranks) * profile.concurrency, 1) * 0.5),
                ttftP90: ttft, tpotP90: nil, tokensPerSecond: tokenRate, busy: pending != nil, arrivalsPerSecond: rate,
                meanRequestSeconds: profile.serviceSeconds + backlog / max(capacity, 1e-9))
            let d = policy.decide(sample, now: t0 + .seconds(second))
            if case .scale(let n) = d.action {
                let cost = n > ranks ? profile.scaleUpSeconds : profile.scaleDownSeconds
                pending = (n, now + max(1, cost.rounded(.up)))
                decisions.append((second, d.action, d.reason))
            }
        }
        // The static deployment sized for the peak, in the same model.
        let peak = trace.rates.max() ?? 0
        let staticRanks = max(config.minRanks, Int((peak / profile.rankRate).rounded(.up)))
        var staticBacklog = 0.0, staticMet = 0.0
        for rate in trace.rates {
            let capacity = Double(staticRanks) * profile.rankRate
            staticBacklog = max(0, staticBacklog + rate - capacity)
            if profile.baseTTFT + staticBacklog / capacity <= profile.ttftTarget { staticMet += rate }
        }
        return Result(points: points, decisions: decisions, rankSeconds: rankSeconds, staticRanks: staticRanks,
                      staticRankSeconds: Double(staticRanks * trace.rates.count), attainment: total > 0 ? met / total : 1,
                      staticAttainment: total > 0 ? staticMet / total : 1)
    }
}
