/// What clients got lately, as the coordinator streams it: time to first token, time per
/// output token, and output tokens, each with when it happened, for the last `horizon`.
struct ServiceWindow {
    struct Point {
        var at: ContinuousClock.Instant
        var value: Double
    }

    var horizon: Duration = .seconds(10)
    private var ttft: [Point] = []
    private var tpot: [Point] = []
    private var tokens: [Point] = []
    private var arrivals: [Point] = []
    private var durations: [Point] = []

    struct Summary: Sendable, Equatable {
        var ttftP90: Double?
        var tpotP90: Double?
        var tokensPerSecond: Double
        var arrivalsPerSecond: Double
        var meanRequestSeconds: Double?
    }

    mutating func arrived(at now: ContinuousClock.Instant) {
        append(&arrivals, Point(at: now, value: 1))
    }

    mutating func finished(after seconds: Double, at now: ContinuousClock.Instant) {
        append(&durations, Point(at: now, value: seconds))
    }

    mutating func firstToken(after seconds: Double, at now: ContinuousClock.Instant) {
        append(&ttft, Point(at: now, value: seconds))
    }

    mutating func nextTokens(perToken seconds: Double, at now: ContinuousClock.Instant) {
        append(&tpot, Point(at: now, value: seconds))
    }

    mutating func delivered(_ count: Int, at now: ContinuousClock.Instant) {
        append(&tokens, Point(at: now, value: Double(count)))
    }

    /// Appends, dropping the points older than the horizon once they are a sizable part.
    private func append(_ list: inout [Point], _ point: Point) {
        list.append(point)
        guard list.count > 64, let first = list.first, point.at - first.at > horizon else { return }
        list.removeFirst(list.firstIndex { point.at - $0.at <= horizon } ?? list.count)
    }

    /// The 90th percentiles and the token rate over the last `window`.
    func summary(over window: Duration, now: ContinuousClock.Instant) -> Summary {
        func recent(_ list: [Point]) -> [Double] { list.filter { now - $0.at <= window }.map(\.value) }
        func p90(_ list: [Point]) -> Double? {
            let sorted = recent(list).sorted()
            guard !sorted.isEmpty else { return nil }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.down)))]
        }
        let lasted = recent(durations)
        return Summary(ttftP90: p90(ttft), tpotP90: p90(tpot),
                       tokensPerSecond: recent(tokens).reduce(0, +) / max(window.seconds, 1e-9),
                       arrivalsPerSecond: recent(arrivals).reduce(0, +) / max(window.seconds, 1e-9),
                       meanRequestSeconds: lasted.isEmpty ? nil : lasted.reduce(0, +) / Double(lasted.count))
    }
}
