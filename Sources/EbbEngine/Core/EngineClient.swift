import EbbCore

/// What a request's stream carries.
public enum EngineEvent: Sendable {
    case output(RequestOutput)
    /// The request could not be queued or the engine failed; the stream ends after it.
    case error(EbbError)
}

/// The engine as the HTTP front end sees it: one engine core in this process
/// (`EngineLoop`) or a coordinator in front of several engine-core processes.
public protocol EngineClient: Sendable {
    var maxModelLen: Int { get }
    var vocabSize: Int { get }
    /// Totals over every rank.
    var stats: EngineStats { get }
    /// Per-rank load, indexed by rank (one entry for a single engine).
    var rankStats: [EngineStats] { get }
    /// Submits a request; its outputs arrive on the returned stream, which ends after the
    /// finishing output. Cancelling the consumer aborts the request.
    func submit(_ request: EngineRequest) -> AsyncStream<EngineEvent>
    func abort(_ id: String)
}

extension EngineClient {
    public var rankStats: [EngineStats] { [stats] }
}

extension EngineStats {
    /// Sums counters and gauges over ranks; KV usage is the mean weighted by blocks.
    public static func total(_ ranks: [EngineStats]) -> EngineStats {
        var t = EngineStats()
        var usedBlocks = 0.0
        for r in ranks {
            t.running += r.running
            t.waiting += r.waiting
            t.numBlocks += r.numBlocks
            t.preemptions += r.preemptions
            t.prefixCacheQueries += r.prefixCacheQueries
            t.prefixCacheHits += r.prefixCacheHits
            t.steps = max(t.steps, r.steps)
            t.requestsAssigned += r.requestsAssigned
            t.expertExchangeLayerCalls += r.expertExchangeLayerCalls
            t.expertExchangeBytes += r.expertExchangeBytes
            t.expertExchangeSeconds += r.expertExchangeSeconds
            usedBlocks += r.kvCacheUsage * Double(r.numBlocks)
        }
        t.kvCacheUsage = t.numBlocks > 0 ? usedBlocks / Double(t.numBlocks) : 0
        // Every rank takes the same EPLB decisions: report rank 0's, with the bytes of all.
        if let first = ranks.first {
            t.eplb = first.eplb
            t.eplb.bytesSent = ranks.reduce(0) { $0 + $1.eplb.bytesSent }
        }
        return t
    }
}
