import EbbCore

/// Limits and switches of one engine core's ``Scheduler`` (vLLM's `SchedulerConfig` plus
/// the KV-cache size).
public struct SchedulerConfig: Sendable, Equatable {
    /// Token budget of one step: prompt-chunk tokens plus decode tokens of all requests.
    public var maxNumBatchedTokens: Int
    /// Most requests running (holding KV blocks) at once.
    public var maxNumSeqs: Int
    /// Longest sequence (prompt + generated) the model may see.
    public var maxModelLen: Int
    /// Tokens per KV-cache block.
    public var blockSize: Int
    /// Blocks in the KV-cache pool (shared by all layers).
    public var numBlocks: Int
    /// Reuse the KV of full blocks whose token prefix was computed before.
    public var enablePrefixCaching: Bool
    /// Split prompts longer than the remaining budget over several steps. When off, a
    /// prompt is scheduled whole or not at all, and `maxNumBatchedTokens` must be at least
    /// `maxModelLen`.
    public var enableChunkedPrefill: Bool
    /// With chunked prefill, the most tokens one request may compute in one step (0: no
    /// limit besides the budget), so that a long prompt leaves room for others.
    public var longPrefillTokenThreshold: Int

    public init(
        numBlocks: Int,
        blockSize: Int = 16,
        maxNumBatchedTokens: Int = 2048,
        maxNumSeqs: Int = 256,
        maxModelLen: Int = 8192,
        enablePrefixCaching: Bool = true,
        enableChunkedPrefill: Bool = true,
        longPrefillTokenThreshold: Int = 0
    ) {
        self.numBlocks = numBlocks
        self.blockSize = blockSize
        self.maxNumBatchedTokens = maxNumBatchedTokens
        self.maxNumSeqs = maxNumSeqs
        self.maxModelLen = maxModelLen
        self.enablePrefixCaching = enablePrefixCaching
        self.enableChunkedPrefill = enableChunkedPrefill
        self.longPrefillTokenThreshold = longPrefillTokenThreshold
    }

    /// The longest sequence a request can reach here: `maxModelLen`, or less when the
    /// whole pool holds fewer tokens.
    public var maxTokensPerRequest: Int { min(maxModelLen, numBlocks * blockSize) }

    /// Throws `.invalidConfig` naming the first bad field.
    public func validate() throws {
        func positive(_ v: Int, _ name: String) throws {
            guard v > 0 else { throw EbbError(.invalidConfig, "\(name) must be positive, got \(v)") }
        }
        try positive(maxNumBatchedTokens, "maxNumBatchedTokens")
        try positive(maxNumSeqs, "maxNumSeqs")
        try positive(maxModelLen, "maxModelLen")
        try positive(blockSize, "blockSize")
        try positive(numBlocks, "numBlocks")
        guard longPrefillTokenThreshold >= 0 else {
            throw EbbError(
                .invalidConfig, "longPrefillTokenThreshold must be 0 (off) or positive, got \(longPrefillTokenThreshold)")
        }
        if !enableChunkedPrefill && maxNumBatchedTokens < maxModelLen {
            throw EbbError(
                .invalidConfig,
                "without chunked prefill maxNumBatchedTokens (\(maxNumBatchedTokens)) must be at least maxModelLen (\(maxModelLen)); enable chunked prefill or raise the budget"
            )
        }
    }
}
