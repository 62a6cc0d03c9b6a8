import EbbEngine
import Foundation
import Prometheus
import Synchronization

/// Prometheus metrics of the server (names follow vLLM's `vllm:` set, prefixed `ebb:`).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let promptTokens: Counter
    let generationTokens: Counter
    let preemptions: Counter
    private let lastPreemptions = Mutex<Int>(0)
    let running: Gauge
    let waiting: Gauge
    let kvCacheUsage: Gauge
    let prefixCacheQueries: Gauge
    let prefixCacheHits: Gauge
    let timeToFirstToken: ValueHistogram
    let timePerOutputToken: ValueHistogram
    let e2eLatency: ValueHistogram

    init() {
        promptTokens = registry.makeCounter(name: "ebb:prompt_tokens_total", help: "Prompt tokens processed")
        generationTokens = registry.makeCounter(name: "ebb:generation_tokens_total", help: "Tokens generated")
        preemptions = registry.makeCounter(name: "ebb:num_preemptions", help: "Requests preempted (KV blocks ran out)")
        running = registry.makeGauge(name: "ebb:num_requests_running", help: "Requests running in the engine")
        waiting = registry.makeGauge(name: "ebb:num_requests_waiting", help: "Requests waiting in the engine")
        kvCacheUsage = registry.makeGauge(name: "ebb:kv_cache_usage_perc", help: "Fraction of KV-cache blocks in use")
        prefixCacheQueries = registry.makeGauge(name: "ebb:prefix_cache_queries", help: "Prompt tokens looked up in the prefix cache")
        prefixCacheHits = registry.makeGauge(name: "ebb:prefix_cache_hits", help: "Prompt tokens found in the prefix cache")
        let latencyBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80]
        timeToFirstToken = registry.makeValueHistogram(name: "ebb:time_to_first_token_seconds", buckets: latencyBuckets,
                                                       help: "Time to first token")
        timePerOutputToken = registry.makeValueHistogram(name: "ebb:time_per_output_token_seconds", buckets: latencyBuckets,
                                                         help: "Time per output token after the first")
        e2eLatency = registry.makeValueHistogram(name: "ebb:e2e_request_latency_seconds",
                                                 buckets: latencyBuckets + [160, 320, 640], help: "End-to-end request latency")
    }

    private let statusCounters = StatusCounters()

    final class StatusCounters: @unchecked Sendable {
        let lock = NSLock()
        var counters: [String: Counter] = [:]
    }

    /// Counts a finished request by HTTP status and finish reason.
    func countRequest(status: Int, finishReason: String) {
        let key = "\(status)|\(finishReason)"
        statusCounters.lock.lock()
        let counter = statusCounters.counters[key] ?? registry.makeCounter(
            name: "ebb:request_success_total", labels: [("status", "\(status)"), ("finished_reason", finishReason)],
            help: "Requests by HTTP status and finish reason")
        statusCounters.counters[key] = counter
        statusCounters.lock.unlock()
        counter.increment()
    }

    /// Per-rank gauges, made when a rank first appears.
    private let rankGauges = RankGauges()

    final class RankGauges: @unchecked Sendable {
        let lock = NSLock()
        var gauges: [Int: [(Gauge, @Sendable (EngineStats) -> Double)]] = [:]
        var eplb: [(Gauge, @Sendable (EPLBStats) -> Double)]?
        var named: [String: Gauge] = [:]
        var balancedness: [Int: Gauge] = [:]
    }

    /// (name, help, value) of each per-rank gauge.
    private static let perRank: [(String, String, @Sendable (EngineStats) -> Double)] = [
        ("ebb:rank_num_requests_running", "Requests running on one data-parallel rank", { Double($0.running) }),
        ("ebb:rank_num_requests_waiting", "Requests waiting on one data-parallel rank", { Double($0.waiting) }),
        ("ebb:rank_kv_cache_usage_perc", "Fraction of one rank's KV-cache blocks in use", { $0.kvCacheUsage }),
        ("ebb:rank_requests_assigned_total", "Requests the coordinator has sent to one rank", { Double($0.requestsAssigned) }),
        ("ebb:rank_expert_exchange_layer_calls_total", "MoE layer passes with an expert-parallel dispatch and combine on one rank",
         { Double($0.expertExchangeLayerCalls) }),
        ("ebb:rank_expert_exchange_bytes_total", "Bytes one rank sent to other ranks in expert-parallel all-to-alls",
         { Double($0.expertExchangeBytes) }),
        ("ebb:rank_expert_exchange_seconds_total", "Seconds one rank spent in expert-parallel all-to-alls",
         { $0.expertExchangeSeconds }),
    ]

    /// A gauge by name and labels, made once (call with `rankGauges.lock` held).
    private func gauge(_ name: String, _ help: String, labels: [(String, String)] = []) -> Gauge {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        if let g = rankGauges.named[key] { return g }
        let g = registry.makeGauge(name: name, labels: labels, help: help)
        rankGauges.named[key] = g
        return g
    }

    /// Deployment-wide EPLB gauges (made on first use), and one balancedness gauge per layer.
    private static let eplbGauges: [(String, String, @Sendable (EPLBStats) -> Double)] = [
        ("ebb:eplb_rearrangements_total", "Expert rearrangements switched in", { Double($0.rearrangements) }),
        ("ebb:eplb_skipped_total", "Rebalance decisions that kept the placement (negligible gain)", { Double($0.skipped) }),
        ("ebb:eplb_last_transfer_seconds", "Seconds the last expert weight transfer took (in the background)", { $0.lastTransferSeconds }),
        ("ebb:eplb_last_commit_seconds", "Seconds the last switch to a new placement paused serving", { $0.lastCommitSeconds }),
        ("ebb:eplb_bytes_sent_total", "Bytes of expert weights moved between ranks", { Double($0.bytesSent) }),
    ]

    func render(engine: EngineStats, ranks: [EngineStats] = [], elastic: ElasticMetricsSnapshot? = nil) -> String {
        rankGauges.lock.lock()
        if let elastic {
            gauge("ebb:elastic_generation", "Generation (epoch) of the deployment's ranks").set(Double(elastic.generation))
            gauge("ebb:elastic_num_ranks", "Data-parallel ranks serving").set(Double(elastic.ranks))
            for outcome in ["committed", "rolled_back", "noop"] {
                gauge("ebb:elastic_resizes_total", "Resizes by outcome", labels: [("outcome", outcome)])
                    .set(Double(elastic.resizes[outcome] ?? 0))
            }
            for outcome in ["recovered", "recovering", "failed", "no_survivors"] {
                gauge("ebb:rank_failures_total", "Lost ranks by the outcome of their recovery", labels: [("outcome", outcome)])
                    .set(Double(elastic.rankFailures[outcome] ?? 0))
            }
            gauge("ebb:requests_resubmitted_total", "Requests continued on another rank after theirs was lost")
                .set(Double(elastic.resubmittedRequests))
            if let decisions = elastic.autoscaleDecisions {
                for action in ["up", "down", "hold"] {
                    gauge("ebb:autoscaler_decisions_total", "Autoscaler decisions by action (one per sample)", labels: [("action", action)])
                        .set(Double(decisions[action] ?? 0))
                }
            }
            for (phase, seconds) in elastic.lastPhases {
                gauge("ebb:elastic_last_resize_phase_seconds", "Seconds each phase of the last resize took",
                      labels: [("phase", phase)]).set(seconds)
            }
        }
        if ranks.count > 1 {
            let e = engine.eplb
            let gauges = rankGauges.eplb ?? Self.eplbGauges.map { name, help, value in
                (registry.makeGauge(name: name, help: help), value)
            }
            rankGauges.eplb = gauges
            for (gauge, value) in gauges { gauge.set(value(e)) }
            for (layer, b) in e.layerBalancedness.enumerated() {
                let g = rankGauges.balancedness[layer] ?? registry.makeGauge(
                    name: "ebb:eplb_layer_balancedness", labels: [("layer", "\(layer)")],
                    help: "Mean over max tokens per rank of one MoE layer at the last EPLB decision (1 = even)")
                rankGauges.balancedness[layer] = g
                g.set(b)
            }
        }
        for (rank, r) in ranks.enumerated() {
            let gauges = rankGauges.gauges[rank] ?? Self.perRank.map { name, help, value in
                (registry.makeGauge(name: name, labels: [("rank", "\(rank)")], help: help), value)
            }
            rankGauges.gauges[rank] = gauges
            for (gauge, value) in gauges { gauge.set(value(r)) }
        }
        rankGauges.lock.unlock()
        running.set(Double(engine.running))
        waiting.set(Double(engine.waiting))
        kvCacheUsage.set(engine.kvCacheUsage)
        let delta = lastPreemptions.withLock { last in
            let d = max(0, engine.preemptions - last)
            last = max(last, engine.preemptions)
            return d
        }
        if delta > 0 { preemptions.increment(by: Int64(delta)) }
        prefixCacheQueries.set(Double(engine.prefixCacheQueries))
        prefixCacheHits.set(Double(engine.prefixCacheHits))
        return registry.emitToString()
    }
}
