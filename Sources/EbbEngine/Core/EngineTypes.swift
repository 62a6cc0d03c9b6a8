import EbbCore
import EbbSampling
import Foundation

/// A request as the engine core receives it: token ids and sampling parameters. One
/// request is one sequence; `n` > 1 choices are fanned out into several requests by the
/// front end (each with its `choiceIndex`, so seeded sampling differs per choice).
public struct EngineRequest: Sendable {
    public var id: String
    public var promptTokenIds: [Int]
    public var params: SamplingParams
    public var eosTokenIds: [Int]
    public var priority: Int
    public var choiceIndex: Int
    public var arrivalTime: Double

    public init(id: String, promptTokenIds: [Int], params: SamplingParams, eosTokenIds: [Int],
                priority: Int = 0, choiceIndex: Int = 0, arrivalTime: Double = 0) {
        self.id = id
        self.promptTokenIds = promptTokenIds
        self.params = params
        self.eosTokenIds = eosTokenIds
        self.priority = priority
        self.choiceIndex = choiceIndex
        self.arrivalTime = arrivalTime
    }
}

/// What one step produced for one request.
public struct RequestOutput: Sendable {
    public var requestId: String
    /// Tokens sampled this step (zero or one).
    public var newTokenIds: [Int]
    /// Logprobs of the new tokens, when asked for.
    public var logprobs: [TokenLogprobs]
    /// Prompt logprobs (first token has none), delivered once, with the first token.
    public var promptLogprobs: [TokenLogprobs?]?
    public var finishReason: FinishReason?
    /// Prompt tokens served from the prefix cache (set on the first output).
    public var numCachedPromptTokens: Int?

    public init(requestId: String, newTokenIds: [Int] = [], logprobs: [TokenLogprobs] = [],
                promptLogprobs: [TokenLogprobs?]? = nil, finishReason: FinishReason? = nil, numCachedPromptTokens: Int? = nil) {
        self.requestId = requestId
        self.newTokenIds = newTokenIds
        self.logprobs = logprobs
        self.promptLogprobs = promptLogprobs
        self.finishReason = finishReason
        self.numCachedPromptTokens = numCachedPromptTokens
    }

    public var isFinished: Bool { finishReason != nil }
}

/// Limits of one engine core.
public struct EngineConfig: Sendable {
    public var blockSize: Int
    /// Bytes for the KV cache; nil = `kvCacheFraction` of the memory available.
    public var kvCacheBytes: Int?
    public var kvCacheFraction: Double
    public var maxNumBatchedTokens: Int
    public var maxNumSeqs: Int
    /// Longest prompt + output; nil = the model's `max_position_embeddings`.
    public var maxModelLen: Int?
    public var enablePrefixCaching: Bool
    public var maxLogprobs: Int
    /// On a GPU: the fraction of the device's memory this engine may hold in all (weights,
    /// KV cache, activations), as vLLM's `--gpu-memory-utilization`. Used when
    /// `kvCacheBytes` is nil; `kvCacheFraction` is the host's rule.
    public var gpuMemoryUtilization: Double
    /// Run every step eagerly; otherwise decode steps replay graphs where the backend has them.
    public var enforceEager: Bool

    public init(blockSize: Int = 16, kvCacheBytes: Int? = nil, kvCacheFraction: Double = 0.05,
                maxNumBatchedTokens: Int = 2048, maxNumSeqs: Int = 256, maxModelLen: Int? = nil,
                enablePrefixCaching: Bool = true, maxLogprobs: Int = 20, gpuMemoryUtilization: Double = 0.9,
                enforceEager: Bool = false) {
        self.gpuMemoryUtilization = gpuMemoryUtilization
        self.enforceEager = enforceEager
        self.blockSize = blockSize
        self.kvCacheBytes = kvCacheBytes
        self.kvCacheFraction = kvCacheFraction
        self.maxNumBatchedTokens = maxNumBatchedTokens
        self.maxNumSeqs = maxNumSeqs
        self.maxModelLen = maxModelLen
        self.enablePrefixCaching = enablePrefixCaching
        self.maxLogprobs = maxLogprobs
    }
}

/// Counters and gauges of an engine core, for `/metrics` and load reports.
public struct EngineStats: Sendable, Equatable {
    public var running: Int = 0
    public var waiting: Int = 0
    public var kvCacheUsage: Double = 0
    public var numBlocks: Int = 0
    public var preemptions: Int = 0
    public var prefixCacheQueries: Int = 0
    public var prefixCacheHits: Int = 0
    public var steps: UInt64 = 0
    /// Requests the coordinator has sent this rank (multi-rank deployments only).
    public var requestsAssigned: Int = 0
    /// Expert-parallel traffic of this rank (zero on one rank).
    public var expertExchangeLayerCalls: Int = 0
    public var expertExchangeBytes: Int = 0
    public var expertExchangeSeconds: Double = 0
    /// Expert load balancing (zero without EPLB).
    public var eplb = EPLBStats()
    public init() {}
}

/// Memory the OS says is available (Linux `MemAvailable`), or nil.
public func availableMemoryBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
        let parts = line.split(separator: " ").filter { !$0.isEmpty }
        if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return nil
}
