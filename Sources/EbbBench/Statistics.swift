/// Percentiles and summaries of samples, with NumPy's default conventions (linear
/// interpolation between closest ranks; population standard deviation), so numbers
/// compare directly with `vllm bench serve`.
public enum Stats {
    /// The `p`-th percentile (0...100) of `values`; 0 for no values.
    public static func percentile(_ values: [Double], _ p: Double) -> Double {
        percentile(sorted: values.sorted(), p)
    }

    /// The `p`-th percentile of already sorted `sorted`; 0 for no values.
    public static func percentile(sorted: [Double], _ p: Double) -> Double {
        guard let first = sorted.first, let last = sorted.last else { return 0 }
        let q = min(max(p, 0), 100) / 100
        let rank = q * Double(sorted.count - 1)
        let lo = Int(rank.rounded(.down))
        let hi = min(lo + 1, sorted.count - 1)
        if rank <= 0 { return first }
        if lo >= sorted.count - 1 { return last }
        let frac = rank - Double(lo)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * frac
    }

    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    public static func std(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let m = mean(values)
        return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)).squareRoot()
    }
}

/// Mean, median, standard deviation and chosen percentiles of one metric.
public struct MetricSummary: Sendable, Equatable {
    public var count: Int
    public var mean: Double
    public var median: Double
    public var std: Double
    /// (percentile, value) pairs, in the order asked for.
    public var percentiles: [(p: Double, value: Double)]

    public init(_ values: [Double], percentiles ps: [Double] = [99]) {
        let sorted = values.sorted()
        count = sorted.count
        mean = Stats.mean(sorted)
        median = Stats.percentile(sorted: sorted, 50)
        std = Stats.std(sorted)
        percentiles = ps.map { ($0, Stats.percentile(sorted: sorted, $0)) }
    }

    /// Every value multiplied by `factor` (e.g. 1000 for seconds to milliseconds).
    public func scaled(by factor: Double) -> MetricSummary {
        var s = self
        s.mean *= factor
        s.median *= factor
        s.std *= factor
        s.percentiles = percentiles.map { ($0.p, $0.value * factor) }
        return s
    }

    public static func == (a: MetricSummary, b: MetricSummary) -> Bool {
        a.count == b.count && a.mean == b.mean && a.median == b.median && a.std == b.std &&
            a.percentiles.count == b.percentiles.count &&
            zip(a.percentiles, b.percentiles).allSatisfy { $0.p == $1.p && $0.value == $1.value }
    }
}

/// The aggregate numbers of one benchmark run, as `vllm bench serve` reports them.
/// Latency summaries are in milliseconds.
public struct BenchmarkSummary: Sendable, Equatable {
    public var completed: Int
    public var failed: Int
    public var duration: Double
    public var totalInputTokens: Int
    public var totalOutputTokens: Int
    public var requestThroughput: Double
    public var outputThroughput: Double
    public var totalTokenThroughput: Double
    public var ttftMs: MetricSummary
    public var tpotMs: MetricSummary
    public var itlMs: MetricSummary
    public var e2elMs: MetricSummary

    /// Summarizes `results` of a run that took `duration` seconds. Token counts and
    /// latencies cover successful requests only; TPOT covers those with two or more tokens.
    public init(results: [RequestResult], duration: Double, percentiles: [Double] = [99]) {
        let ok = results.filter(\.success)
        completed = ok.count
        failed = results.count - ok.count
        self.duration = duration
        totalInputTokens = ok.reduce(0) { $0 + $1.promptTokens }
        totalOutputTokens = ok.reduce(0) { $0 + $1.outputTokens }
        func perSecond(_ n: Int) -> Double { duration > 0 ? Double(n) / duration : 0 }
        requestThroughput = perSecond(completed)
        outputThroughput = perSecond(totalOutputTokens)
        totalTokenThroughput = perSecond(totalInputTokens + totalOutputTokens)
        ttftMs = MetricSummary(ok.map(\.ttft), percentiles: percentiles).scaled(by: 1000)
        tpotMs = MetricSummary(ok.compactMap(\.tpot), percentiles: percentiles).scaled(by: 1000)
        itlMs = MetricSummary(ok.flatMap(\.itl), percentiles: percentiles).scaled(by: 1000)
        e2elMs = MetricSummary(ok.map(\.latency), percentiles: percentiles).scaled(by: 1000)
    }
}
