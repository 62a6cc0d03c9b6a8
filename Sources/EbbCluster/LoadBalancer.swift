import EbbEngine

/// Picks the rank for a new request: the lowest load score among the ranks that accept
/// requests; ties go to the lower KV-cache use, then the lower rank.
///
/// A rank's score counts the requests the coordinator has sent it that are not finished
/// (exact, known at once) and splits them into running and waiting by the rank's last
/// report; a waiting request weighs 4 running ones, as in vLLM's DP load balancer.
public struct LoadBalancer: Sendable {
    public struct RankLoad: Sendable, Equatable {
        public var accepting: Bool
        /// Requests sent to the rank and not finished.
        public var live: Int
        /// The rank's last report.
        public var reported: EngineStats

        public init(accepting: Bool = true, live: Int = 0, reported: EngineStats = EngineStats()) {
            self.accepting = accepting
            self.live = live
            self.reported = reported
        }

        public var score: Int {
            let running = min(live, reported.running)
            let waiting = max(live - running, reported.waiting)
            return 4 * waiting + running
        }
    }

    public init() {}

    /// The chosen rank, or nil when no rank accepts requests.
    public func choose(_ ranks: [RankLoad]) -> Int? {
        var best: Int?
        for (i, r) in ranks.enumerated() where r.accepting {
            guard let b = best else { best = i; continue }
            let o = ranks[b]
            if (r.score, r.reported.kvCacheUsage) < (o.score, o.reported.kvCacheUsage) { best = i }
        }
        return best
    }
}
