import EbbCore
import Foundation
import Synchronization

/// What the dashboard plots: one sample of the deployment a second (the last `capacity`),
/// and what happened meanwhile — resizes, lost ranks, the autoscaler's actions.
public struct Timeline: Sendable {
    public struct Sample: Sendable, Equatable {
        public var unixTime: Double
        public var ranks: Int
        public var generation: UInt64
        /// Requests in flight (running or waiting) over every rank.
        public var live: Int
        public var waiting: Int
        /// The fullest rank's KV-cache usage, 0…1.
        public var kvUsage: Double
        public var tokensPerSecond: Double
        public var ttftP90: Double?
        public var tpotP90: Double?
        public var scaling: Bool
        public var recovering: Bool
    }

    public struct Event: Sendable, Equatable {
        public enum Kind: String, Sendable { case resize, failure, autoscale }
        public var unixTime: Double
        public var kind: Kind
        public var label: String
    }

    public let capacity: Int
    public private(set) var samples: [Sample] = []
    public private(set) var events: [Event] = []

    public init(capacity: Int = 600) {
        self.capacity = max(1, capacity)
    }

    public mutating func record(_ sample: Sample) {
        samples.append(sample)
        if samples.count > capacity { samples.removeFirst(samples.count - capacity) }
        // Events before the oldest sample are off the chart.
        if let oldest = samples.first?.unixTime {
            events.removeFirst(events.firstIndex { $0.unixTime >= oldest } ?? events.count)
        }
    }

    public mutating func note(_ event: Event) {
        let at = events.lastIndex { $0.unixTime <= event.unixTime }.map { $0 + 1 } ?? 0
        events.insert(event, at: at)
        if events.count > 4 * capacity { events.removeFirst(events.count - 4 * capacity) }
    }

    public var json: JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { .number($0.isFinite ? $0 : 0) } ?? .null }
        let keys = ["unix_time", "ranks", "generation", "live", "waiting", "kv_cache_usage", "tokens_per_second",
                    "ttft_p90", "tpot_p90", "scaling", "recovering"]
        return .orderedObject(keys: ["samples", "events"], values: [
            "samples": .array(samples.map { s in
                .orderedObject(keys: keys, values: [
                    "unix_time": num(s.unixTime), "ranks": num(Double(s.ranks)), "generation": num(Double(s.generation)),
                    "live": num(Double(s.live)), "waiting": num(Double(s.waiting)), "kv_cache_usage": num(s.kvUsage),
                    "tokens_per_second": num(s.tokensPerSecond), "ttft_p90": num(s.ttftP90), "tpot_p90": num(s.tpotP90),
                    "scaling": .bool(s.scaling), "recovering": .bool(s.recovering),
                ])
            }),
            "events": .array(events.map { e in
                .orderedObject(keys: ["unix_time", "kind", "label"], values: [
                    "unix_time": num(e.unixTime), "kind": .string(e.kind.rawValue), "label": .string(e.label),
                ])
            }),
        ])
    }
}

/// Samples a coordinator into a `Timeline` every `interval`, and notes the resizes, lost
/// ranks and autoscaler actions that appeared since the last sample.
public final class TimelineRecorder: Sendable {
    private struct State {
        var timeline: Timeline
        var resizesSeen = 0
        var incidentsSeen: ContinuousClock.Instant?
        var decisionsSeen: Double = 0
        var task: Task<Void, Never>?
    }

    private let coordinator: Coordinator
    private let autoscaler: Autoscaler?
    private let interval: Duration
    private let state: Mutex<State>

    public init(coordinator: Coordinator, autoscaler: Autoscaler?, interval: Duration = .seconds(1), capacity: Int = 600) {
        self.coordinator = coordinator
        self.autoscaler = autoscaler
        self.interval = interval
        self.state = Mutex(State(timeline: Timeline(capacity: capacity)))
    }

    public func start() {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: self?.interval ?? .seconds(1))
                self?.tick(now: .now, unixNow: Date().timeIntervalSince1970)
            }
        }
        state.withLock { $0.task = task }
    }

    public func stop() { state.withLock { $0.task?.cancel() } }

    public var timeline: Timeline { state.withLock { $0.timeline } }

    /// One sample, and the events since the last one.
    func tick(now: ContinuousClock.Instant, unixNow: Double) {
        let load = coordinator.autoscaleSample(now: now)
        let generation = coordinator.generation
        let resizing = coordinator.isResizing
        let resizes = coordinator.resizeEvents
        let resizeTotal = coordinator.resizeOutcomeCounts.values.reduce(0, +)
        let incidents = coordinator.incidents
        let decisions = autoscaler?.records ?? []
        func unix(_ t: ContinuousClock.Instant) -> Double { unixNow - (now - t).seconds }
        state.withLock { s in
            for r in resizes.suffix(max(0, resizeTotal - s.resizesSeen)) {
                let label = r.outcome == "committed" ? "\(r.fromRanks)→\(r.toRanks) ranks in \(String(format: "%.2f", r.totalSeconds)) s"
                    : "\(r.fromRanks)→\(r.toRanks) \(r.outcome)"
                s.timeline.note(.init(unixTime: unixNow, kind: .resize, label: label))
            }
            s.resizesSeen = resizeTotal
            for i in incidents where s.incidentsSeen.map({ i.detectedAt > $0 }) ?? true {
                s.timeline.note(.init(unixTime: unix(i.detectedAt), kind: .failure,
                                      label: "\(i.engine) lost (\(i.cause.rawValue))"))
            }
            if let last = incidents.last?.detectedAt { s.incidentsSeen = last }
            for d in decisions where d.unixTime > s.decisionsSeen {
                if case .scale(let n) = d.action {
                    s.timeline.note(.init(unixTime: d.unixTime, kind: .autoscale, label: "autoscaler → \(n) ranks: \(d.reason)"))
                }
            }
            if let last = decisions.last?.unixTime { s.decisionsSeen = max(s.decisionsSeen, last) }
            let recovering = incidents.contains { $0.outcome == "recovering" }
            s.timeline.record(.init(unixTime: unixNow, ranks: load.ranks, generation: generation, live: load.live,
                                    waiting: load.waiting, kvUsage: load.kvUsage, tokensPerSecond: load.tokensPerSecond,
                                    ttftP90: load.ttftP90, tpotP90: load.tpotP90, scaling: resizing, recovering: recovering))
        }
    }
}
