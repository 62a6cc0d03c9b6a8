/// One streamed request of the chaos benchmark on the run's clock (seconds since it began).
public struct StreamTimeline: Sendable, Equatable {
    public var start: Double
    /// When each content chunk (token) arrived.
    public var tokens: [Double]
    public var end: Double
    public var error: String?

    public init(start: Double, tokens: [Double], end: Double, error: String?) {
        self.start = start
        self.tokens = tokens
        self.end = end
        self.error = error
    }

    /// From a request's result: tokens at TTFT, then each inter-token gap after it.
    public init(start: Double, result: RequestResult) {
        var times: [Double] = []
        if result.success {
            var t = start + result.ttft
            times.append(t)
            for gap in result.itl {
                t += gap
                times.append(t)
            }
        }
        self.init(start: start, tokens: times, end: start + result.latency, error: result.success ? nil : result.error)
    }
}

/// What the chaos benchmark reports around one kill, from the streams' timelines.
public enum ChaosAnalysis {
    /// The longest time any stream open at `kill` waited from the kill to its next token
    /// (a stream that ended without another token counts to its end).
    public static func killToNextToken(_ streams: [StreamTimeline], kill: Double) -> Double {
        var worst = 0.0
        for s in streams where s.start <= kill && s.end > kill {
            let next = s.tokens.first { $0 > kill } ?? s.end
            worst = max(worst, next - kill)
        }
        return worst
    }

    /// The longest gap between two events of one stream (its start, tokens, end) that
    /// spans `kill`.
    public static func longestGapAcross(_ streams: [StreamTimeline], kill: Double) -> Double {
        var worst = 0.0
        for s in streams where s.start <= kill && s.end > kill {
            let events = [s.start] + s.tokens + [s.end]
            for (a, b) in zip(events, events.dropFirst()) where a <= kill && b > kill {
                worst = max(worst, b - a)
            }
        }
        return worst
    }

    /// The `p`-th percentile of the inter-token gaps whose later token arrived in `window`.
    public static func gapPercentile(_ streams: [StreamTimeline], in window: Range<Double>, _ p: Double) -> Double {
        var gaps: [Double] = []
        for s in streams {
            for (a, b) in zip(s.tokens, s.tokens.dropFirst()) where window.contains(b) { gaps.append(b - a) }
        }
        return Stats.percentile(gaps, p)
    }

    /// Requests that failed and ended in `window`.
    public static func failures(_ streams: [StreamTimeline], in window: Range<Double>) -> [StreamTimeline] {
        streams.filter { $0.error != nil && window.contains($0.end) }
    }
}
