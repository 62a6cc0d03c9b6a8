import EbbCore
import EbbEngine
import Foundation
import Synchronization

/// Runs `AutoscalePolicy` against a coordinator: samples its load every `interval`, starts
/// the resizes the policy asks for, and keeps every decision for `/elastic_ep/status` and
/// `/metrics` (consecutive holds folded into one record with the latest reason and a count;
/// a hold is logged when its kind — the reason up to its numbers — changes).
public final class Autoscaler: Sendable {
    public struct Record: Sendable {
        public var unixTime: Double
        public var action: AutoscalePolicy.Action
        public var reason: String
        /// Consecutive samples that gave this decision.
        public var repeats: Int
    }

    private struct State {
        var policy: AutoscalePolicy
        var records: [Record] = []
        var counts: [String: Int] = [:]
        var task: Task<Void, Never>?
    }

    private let coordinator: Coordinator
    private let interval: Duration
    /// The size a policy may not go below: the fewest ranks that hold every expert.
    private let floor: Int
    private let state: Mutex<State>
    private let log: @Sendable (String) -> Void

    public init(coordinator: Coordinator, config: AutoscalePolicy.Config, floor: Int, interval: Duration = .seconds(1),
                log: @escaping @Sendable (String) -> Void) {
        self.coordinator = coordinator
        self.interval = interval
        self.floor = floor
        self.state = Mutex(State(policy: AutoscalePolicy(config: config)))
        self.log = log
    }

    public func start() {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: self?.interval ?? .seconds(1))
                self?.tick(now: .now)
            }
        }
        state.withLock { $0.task = task }
    }

    public func stop() { state.withLock { $0.task?.cancel() } }

    /// One sample, one decision.
    func tick(now: ContinuousClock.Instant) {
        let sample = coordinator.autoscaleSample(now: now)
        let decision = state.withLock { s -> AutoscalePolicy.Decision in
            let d = s.policy.decide(sample, now: now)
            record(d, ranks: sample.ranks, in: &s)
            return d
        }
        if let finding = decision.finding { log("autoscaler: \(finding); adding no ranks above \(sample.ranks - 1) until it shrinks") }
        guard case .scale(let n) = decision.action else { return }
        log("autoscaler: \(decision.reason)")
        Task { [self] in
            do {
                let op = try coordinator.startResize(.size(n), operationId: nil)
                _ = try await coordinator.result(of: op.id)
            } catch {
                let message = (error as? ResizeError)?.message ?? "\(error)"
                log("autoscaler: the resize to \(n) ranks did not happen: \(message)")
                state.withLock {
                    $0.policy.resizeFailed()
                    record(AutoscalePolicy.Decision(action: .hold, reason: "the resize to \(n) ranks did not happen: \(message)"),
                           ranks: sample.ranks, in: &$0)
                }
            }
        }
    }

    private func record(_ d: AutoscalePolicy.Decision, ranks: Int, in s: inout State) {
        let key: String
        switch d.action {
        case .hold: key = "hold"
        case .scale(let n): key = n > ranks ? "up" : "down"
        }
        s.counts[key, default: 0] += 1
        func kind(_ reason: String) -> Substring { reason.prefix { $0 != "(" && $0 != ";" } }
        if case .hold = d.action, let last = s.records.last, case .hold = last.action {
            if kind(last.reason) != kind(d.reason) { log("autoscaler: holding: \(d.reason)") }
            s.records[s.records.count - 1].repeats += 1
            s.records[s.records.count - 1].reason = d.reason
            s.records[s.records.count - 1].unixTime = Date().timeIntervalSince1970
            return
        }
        if case .hold = d.action { log("autoscaler: holding: \(d.reason)") }
        s.records.append(Record(unixTime: Date().timeIntervalSince1970, action: d.action, reason: d.reason, repeats: 1))
        if s.records.count > 50 { s.records.removeFirst(s.records.count - 50) }
    }

    /// `POST /elastic_ep/autoscale`: pause or resume, change the bounds or the cooldown.
    public func control(enabled: Bool?, minRanks: Int?, maxRanks: Int?, cooldown: Double?, limit: Int) throws {
        try state.withLock { s in
            var c = s.policy.config
            if let minRanks { c.minRanks = minRanks }
            if let maxRanks { c.maxRanks = maxRanks }
            if let cooldown {
                guard cooldown.isFinite, cooldown >= 0, cooldown <= 86_400 else {
                    throw ResizeError.invalid("cooldown must be seconds in 0...86400")
                }
                c.cooldown = .milliseconds(Int64(cooldown * 1000))
            }
            guard c.minRanks >= floor else {
                throw ResizeError.invalid("min_data_parallel_size \(c.minRanks) is below \(floor), the fewest ranks that hold every expert")
            }
            guard c.minRanks <= c.maxRanks, c.maxRanks <= limit else {
                throw ResizeError.invalid("need \(floor) ≤ min_data_parallel_size ≤ max_data_parallel_size ≤ \(limit) (--max-data-parallel-size)")
            }
            s.policy.config = c
            if let enabled { s.policy.paused = !enabled }
        }
        log("autoscaler: \(statusLine)")
    }

    private var statusLine: String {
        state.withLock { s in
            let c = s.policy.config
            return "\(s.policy.paused ? "paused" : "on"), \(c.minRanks)...\(c.maxRanks) ranks, cooldown \(c.cooldown)"
        }
    }

    /// Decisions by action ("up", "down", "hold").
    public var decisionCounts: [String: Int] { state.withLock { $0.counts } }

    /// The latest decisions, oldest first (consecutive holds folded into one).
    public var records: [Record] { state.withLock { $0.records } }

    public var json: JSONValue {
        state.withLock { s in
            func num(_ x: Double) -> JSONValue { .number(x.isFinite ? x : 0) }
            let c = s.policy.config
            let decisions: [JSONValue] = s.records.map { r in
                let action: String, target: JSONValue
                switch r.action {
                case .hold: (action, target) = ("hold", .null)
                case .scale(let n): (action, target) = ("scale", num(Double(n)))
                }
                return .orderedObject(keys: ["unix_time", "action", "to", "reason", "repeats"], values: [
                    "unix_time": num(r.unixTime), "action": .string(action), "to": target, "reason": .string(r.reason),
                    "repeats": num(Double(r.repeats)),
                ])
            }
            return .orderedObject(keys: ["enabled", "min_data_parallel_size", "max_data_parallel_size", "cooldown_seconds",
                                         "ceiling", "decisions"], values: [
                "enabled": .bool(!s.policy.paused), "min_data_parallel_size": num(Double(c.minRanks)),
                "max_data_parallel_size": num(Double(c.maxRanks)), "cooldown_seconds": num(c.cooldown.seconds),
                "ceiling": s.policy.ceiling.map { num(Double($0)) } ?? .null, "decisions": .array(decisions),
            ])
        }
    }
}

extension Coordinator {
    /// The load the autoscaler decides on, over the last `window`.
    func autoscaleSample(now: ContinuousClock.Instant, window: Duration = .seconds(5)) -> AutoscalePolicy.Sample {
        lock.withLock {
            let members = membership.members
            let loads = members.map { membership.engines[$0]?.load ?? EngineStats() }
            let live = members.reduce(0) { $0 + router.liveCount(on: $1) }
            let running = loads.reduce(0) { $0 + $1.running }
            let service = router.window.summary(over: window, now: now)
            return AutoscalePolicy.Sample(
                ranks: members.count, live: live, waiting: max(loads.reduce(0) { $0 + $1.waiting }, live - running),
                kvUsage: loads.map(\.kvCacheUsage).max() ?? 0, ttftP90: service.ttftP90, tpotP90: service.tpotP90,
                tokensPerSecond: service.tokensPerSecond, busy: resize != nil || recovery?.isRecovering == true,
                arrivalsPerSecond: service.arrivalsPerSecond, meanRequestSeconds: service.meanRequestSeconds)
        }
    }

    /// The fewest ranks that hold every expert (1 before the ranks report).
    public var minimumRanks: Int {
        lock.withLock {
            let (perRank, experts) = membership.expertShape
            return perRank > 0 ? max(1, (experts + perRank - 1) / perRank) : 1
        }
    }
}
