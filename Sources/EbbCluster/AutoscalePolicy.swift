import Foundation

/// When to resize, as a state machine: a sample of the deployment's load in, a decision out
/// (scale to N ranks, or hold) with its reason. It holds no lock, starts nothing and reads
/// no clock.
///
/// Up when the same pressure shows in `upAfter` samples in a row (at once when requests in
/// flight are twice the target): more requests in flight per rank than `targetConcurrency`
/// (Knative's concurrency target), more waiting requests per rank than `queuePerRank`,
/// KV-cache use above `kvHigh`, or a p90 time to first token or time per output token above
/// its target — to the size that brings requests in flight per rank to the target, at least
/// one rank more. Down when nothing waits and fewer ranks would carry the requests in
/// flight at half the target each, for `downAfter` — to that size. Between the two it holds
/// (hysteresis). Never while a resize or a recovery runs, never within `cooldown` of its last
/// resize, never outside `minRanks...maxRanks`. After a scale-up it checks, `settle` later
/// and if the pressure is still there, that the token rate rose by `minGain`; when it did
/// not, it adds no rank above that size until the deployment has shrunk again, and says so.
public struct AutoscalePolicy: Sendable {
    public struct Config: Sendable, Equatable {
        public var minRanks: Int
        public var maxRanks: Int
        public var cooldown: Duration
        public var targetConcurrency: Double = 8
        public var queuePerRank: Double = 2
        public var kvHigh: Double = 0.9
        /// p90 targets in seconds (nil: not a signal).
        public var ttftTarget: Double?
        public var tpotTarget: Double?
        public var upAfter = 2
        public var downAfter: Duration = .seconds(10)
        public var settle: Duration = .seconds(5)
        public var minGain = 0.1

        public init(minRanks: Int, maxRanks: Int, cooldown: Duration, targetConcurrency: Double = 8, ttftTarget: Double? = nil,
                    tpotTarget: Double? = nil) {
            self.targetConcurrency = targetConcurrency
            self.minRanks = minRanks
            self.maxRanks = maxRanks
            self.cooldown = cooldown
            self.ttftTarget = ttftTarget
            self.tpotTarget = tpotTarget
        }
    }

    /// The deployment as one sample sees it.
    public struct Sample: Sendable, Equatable {
        public var ranks: Int
        /// Requests sent to ranks and not finished, and those of them waiting to run.
        public var live: Int
        public var waiting: Int
        /// The highest KV-cache use of any rank (0...1).
        public var kvUsage: Double
        public var ttftP90: Double?
        public var tpotP90: Double?
        public var tokensPerSecond: Double
        /// A resize or a recovery runs.
        public var busy: Bool
        /// Requests arriving a second lately, and how long a request lasts (Little's law gives
        /// the requests in flight the arrivals will keep, before the queue shows them).
        public var arrivalsPerSecond: Double
        public var meanRequestSeconds: Double?

        public init(ranks: Int, live: Int, waiting: Int, kvUsage: Double, ttftP90: Double? = nil, tpotP90: Double? = nil,
                    tokensPerSecond: Double, busy: Bool = false, arrivalsPerSecond: Double = 0, meanRequestSeconds: Double? = nil) {
            self.arrivalsPerSecond = arrivalsPerSecond
            self.meanRequestSeconds = meanRequestSeconds
            self.ranks = ranks
            self.live = live
            self.waiting = waiting
            self.kvUsage = kvUsage
            self.ttftP90 = ttftP90
            self.tpotP90 = tpotP90
            self.tokensPerSecond = tokensPerSecond
            self.busy = busy
        }
    }

    public enum Action: Sendable, Equatable {
        case hold
        case scale(to: Int)
    }

    public struct Decision: Sendable, Equatable {
        public var action: Action
        public var reason: String
        /// What the check after a scale-up found, when it ran with this sample.
        public var finding: String?
        public init(action: Action, reason: String, finding: String? = nil) {
            self.action = action
            self.reason = reason
            self.finding = finding
        }
    }

    public var config: Config
    public var paused = false
    /// The size above which ranks did not raise throughput (nil: none seen).
    public private(set) var ceiling: Int?
    private var upStreak = 0
    private var lowSince: ContinuousClock.Instant?
    private var lastResize: ContinuousClock.Instant?
    /// A scale-up whose effect is still to be checked.
    private var check: (from: Int, to: Int, before: Double, at: ContinuousClock.Instant)?

    public init(config: Config) {
        self.config = config
    }

    public mutating func decide(_ s: Sample, now: ContinuousClock.Instant) -> Decision {
        var d = decideAndCheck(s, now: now)
        if let finding = lastFinding {
            d.finding = finding
            lastFinding = nil
        }
        return d
    }

    private var lastFinding: String?

    private mutating func decideAndCheck(_ s: Sample, now: ContinuousClock.Instant) -> Decision {
        func hold(_ reason: String) -> Decision { Decision(action: .hold, reason: reason) }
        if paused { return hold("paused") }
        if s.busy { return hold("a resize or a recovery is running") }
        let pressure = pressures(s)
        // The size at which requests in flight would sit at half the target.
        let comfortable = max(config.minRanks, Int((Double(s.live) / (config.targetConcurrency / 2)).rounded(.up)))
        let low = s.waiting == 0 && comfortable < s.ranks
        if !pressure.isEmpty {
            upStreak += 1
            lowSince = nil
        } else {
            upStreak = 0
            lowSince = low ? (lowSince ?? now) : nil
        }
        var note = ""
        if let c = check, now - c.at >= config.settle {
            check = nil
            if !pressure.isEmpty && s.tokensPerSecond < c.before * (1 + config.minGain) {
                ceiling = c.from
                lastFinding = "scaling \(c.from) → \(c.to) ranks did not raise throughput (\(Self.rate(c.before)) → \(Self.rate(s.tokensPerSecond)) tokens/s)"
                note = "; \(lastFinding ?? ""): no ranks above \(c.from) are added until the deployment shrinks (ranks sharing this host's cores do not add capacity)"
            }
        }
        let load = "\(s.live) requests on \(s.ranks) ranks, \(s.waiting) waiting, KV \(Int((s.kvUsage * 100).rounded()))%, \(Self.rate(s.tokensPerSecond)) tokens/s"
        let cooling = lastResize.map { now - $0 < config.cooldown } ?? false
        if !pressure.isEmpty {
            let why = pressure.joined(separator: ", ")
            let limit = min(config.maxRanks, ceiling ?? config.maxRanks)
            guard s.ranks < limit else {
                return hold("\(why) (\(load)), but at \(s.ranks == config.maxRanks ? "--max-data-parallel-size" : "the size above which ranks did not help") (\(s.ranks))\(note)")
            }
            let surge = Double(s.live) > 2 * config.targetConcurrency * Double(max(s.ranks, 1))
            guard upStreak >= config.upAfter || surge else { return hold("\(why) (\(load)); waiting for it to persist\(note)") }
            guard !cooling else { return hold("\(why) (\(load)); in the cooldown after the last resize\(note)") }
            // Size for the requests in flight, or for what the arrivals will keep in flight plus
            // the queue, whichever is more.
            let demand = max(Double(s.live), s.arrivalsPerSecond * (s.meanRequestSeconds ?? 0) + Double(s.waiting))
            let needed = Int((demand / config.targetConcurrency).rounded(.up))
            let to = min(limit, max(s.ranks + 1, needed))
            lastResize = now
            upStreak = 0
            check = (s.ranks, to, s.tokensPerSecond, now)
            return Decision(action: .scale(to: to), reason: "\(why) (\(load)): scaling up to \(to)\(note)")
        }
        if low, let since = lowSince, s.ranks > config.minRanks {
            guard now - since >= config.downAfter else {
                return hold("low load (\(load)) for \(Self.rate((now - since).seconds)) s of \(Self.rate(config.downAfter.seconds))\(note)")
            }
            guard !cooling else { return hold("low load (\(load)); in the cooldown after the last resize\(note)") }
            lastResize = now
            lowSince = nil
            ceiling = nil
            check = nil
            return Decision(action: .scale(to: comfortable), reason: "low load (\(load)) for \(Self.rate(config.downAfter.seconds)) s: scaling down to \(comfortable)\(note)")
        }
        return hold("within targets (\(load))\(note)")
    }

    /// A resize the policy asked for did not happen: allow the next decision at once.
    public mutating func resizeFailed() {
        lastResize = nil
        check = nil
    }

    /// What is over its threshold.
    private func pressures(_ s: Sample) -> [String] {
        var out: [String] = []
        let inFlight = Double(s.live) / Double(max(s.ranks, 1))
        if inFlight > config.targetConcurrency {
            out.append("\(Self.rate(inFlight)) requests in flight per rank > \(Self.rate(config.targetConcurrency))")
        }
        let perRank = Double(s.waiting) / Double(max(s.ranks, 1))
        if perRank > config.queuePerRank { out.append("\(Self.rate(perRank)) waiting requests per rank > \(Self.rate(config.queuePerRank))") }
        if s.kvUsage > config.kvHigh { out.append("KV cache \(Int((s.kvUsage * 100).rounded()))% > \(Int(config.kvHigh * 100))%") }
        if let t = config.ttftTarget, let p = s.ttftP90, p > t { out.append("TTFT p90 \(Self.ms(p)) > \(Self.ms(t))") }
        if let t = config.tpotTarget, let p = s.tpotP90, p > t { out.append("TPOT p90 \(Self.ms(p)) > \(Self.ms(t))") }
        return out
    }

    static func rate(_ x: Double) -> String { x >= 100 ? String(Int(x.rounded())) : String(format: "%.1f", x) }
    static func ms(_ seconds: Double) -> String { "\(Int((seconds * 1000).rounded())) ms" }
}
