import EbbCore

/// The longest run of cached full blocks found for a sequence of tokens.
public struct CachedPrefix: Sendable, Equatable {
    /// Cached block ids, in sequence order.
    public let blocks: [Int32]
    /// Their chained hashes (`hashes[i]` is the hash of `blocks[i]`).
    public let hashes: [BlockHash]
    /// `blocks.count * blockSize`: tokens whose KV is already in the cache.
    public let numCachedTokens: Int
    /// Length of the sequence that was looked up (for hit-rate statistics).
    public let numQueriedTokens: Int

    public init(blocks: [Int32], hashes: [BlockHash], numCachedTokens: Int, numQueriedTokens: Int) {
        self.blocks = blocks
        self.hashes = hashes
        self.numCachedTokens = numCachedTokens
        self.numQueriedTokens = numQueriedTokens
    }

    /// A miss on a sequence of `numQueriedTokens` tokens.
    public static func miss(numQueriedTokens: Int) -> CachedPrefix {
        CachedPrefix(blocks: [], hashes: [], numCachedTokens: 0, numQueriedTokens: numQueriedTokens)
    }
}

/// Prefix-cache counters, in tokens (as vLLM's `PrefixCacheStats`).
public struct PrefixCacheStats: Sendable, Equatable {
    /// Requests admitted with a prefix-cache lookup.
    public var requests: Int = 0
    /// Tokens looked up (the full length of each admitted request's token sequence).
    public var queries: Int = 0
    /// Tokens found in the cache.
    public var hits: Int = 0

    public init() {}

    public var hitRate: Double { queries > 0 ? Double(hits) / Double(queries) : 0 }
}

/// Per-request block tables over one ``BlockPool``, with automatic prefix caching
/// (modelled on vLLM v1's `KVCacheManager`).
///
/// A request's block table lists the block ids that hold its tokens in order: token at
/// position `p` lives in block `table[p / blockSize]`, slot `p % blockSize`. The model
/// runner uses the same table for every layer.
///
/// Life of a request:
/// 1. ``findCachedPrefix(tokens:extraKey:)`` when it is admitted (fresh or resumed),
/// 2. ``allocateSlots(requestId:numComputedTokens:numNewTokens:cachedPrefix:)`` before
///    every step that computes tokens for it (with the prefix on the first call),
/// 3. ``cacheFullBlocks(requestId:tokens:numComputedTokens:extraKey:)`` after each step,
///    which registers the blocks that are now full and computed,
/// 4. ``free(requestId:)`` when it finishes, is aborted or preempted.
public struct KVCacheManager: Sendable {
    public let blockSize: Int
    public let enablePrefixCaching: Bool
    public private(set) var pool: BlockPool
    public private(set) var prefixCacheStats = PrefixCacheStats()

    private struct RequestBlocks: Sendable {
        var blocks: [Int32] = []
        /// Hashes of the first `hashes.count` blocks, which are all registered in the cache.
        var hashes: [BlockHash] = []
    }

    private var requests: [String: RequestBlocks] = [:]

    public init(numBlocks: Int, blockSize: Int = 16, enablePrefixCaching: Bool = true) throws {
        guard blockSize > 0 else {
            throw EbbError(.invalidConfig, "blockSize must be positive, got \(blockSize)")
        }
        self.blockSize = blockSize
        self.enablePrefixCaching = enablePrefixCaching
        self.pool = try BlockPool(numBlocks: numBlocks, enableCaching: enablePrefixCaching)
    }

    // MARK: Usage

    public var numBlocks: Int { pool.numBlocks }
    /// Blocks with refCount 0 (some may still hold evictable cached content).
    public var freeBlocks: Int { pool.numFreeBlocks }
    /// Blocks held by at least one request.
    public var usedBlocks: Int { pool.numUsedBlocks }
    /// Fraction of blocks in use, 0...1.
    public var usage: Double { Double(usedBlocks) / Double(numBlocks) }
    /// Tokens found in the prefix cache so far.
    public var prefixCacheHits: Int { prefixCacheStats.hits }
    /// Tokens looked up in the prefix cache so far.
    public var prefixCacheQueries: Int { prefixCacheStats.queries }

    /// Blocks needed to hold `numTokens` tokens.
    public func blocksNeeded(forTokens numTokens: Int) -> Int {
        numTokens <= 0 ? 0 : (numTokens + blockSize - 1) / blockSize
    }

    /// The request's block table, or nil when it holds no blocks.
    public func blockTable(for requestId: String) -> [Int32]? {
        requests[requestId]?.blocks
    }

    /// Ids of the requests that hold blocks.
    public var requestIds: [String] { Array(requests.keys) }

    // MARK: Prefix cache

    /// Longest run of cached full blocks that prefixes `tokens`. Never covers the whole
    /// sequence: the last token must be computed to get logits, so the hit is capped at
    /// `tokens.count - 1` tokens, rounded down to whole blocks. Does not change anything.
    public func findCachedPrefix(tokens: [TokenID], extraKey: UInt64? = nil) -> CachedPrefix {
        guard enablePrefixCaching, tokens.count > 1 else { return .miss(numQueriedTokens: tokens.count) }
        let maxBlocks = (tokens.count - 1) / blockSize
        var blocks: [Int32] = []
        var hashes: [BlockHash] = []
        var parent: BlockHash? = nil
        for i in 0..<maxBlocks {
            let key = BlockCacheKey(
                parent: parent, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)], extraKey: extraKey)
            guard let block = pool.lookup(key) else { break }
            blocks.append(block)
            hashes.append(key.hash)
            parent = key.hash
        }
        return CachedPrefix(
            blocks: blocks, hashes: hashes, numCachedTokens: blocks.count * blockSize,
            numQueriedTokens: tokens.count)
    }

    // MARK: Allocation

    /// Makes the request's block table cover `numComputedTokens + cachedTokens +
    /// numNewTokens` tokens, where `cachedTokens` comes from `cachedPrefix` (pass it only
    /// on the request's first allocation, while it holds no blocks).
    ///
    /// Returns the whole block table after allocation, or nil — changing nothing — when
    /// the pool has too few free blocks (the scheduler then preempts or waits) or the
    /// arguments are inconsistent.
    public mutating func allocateSlots(
        requestId: String, numComputedTokens: Int, numNewTokens: Int, cachedPrefix: CachedPrefix? = nil
    ) -> [Int32]? {
        guard numComputedTokens >= 0, numNewTokens >= 0 else { return nil }
        var state = requests[requestId] ?? RequestBlocks()
        let prefix = cachedPrefix ?? .miss(numQueriedTokens: 0)
        if !prefix.blocks.isEmpty {
            // A prefix only makes sense for a request with nothing allocated yet, and it
            // must still be what the cache holds (nothing may run between lookup and here).
            guard state.blocks.isEmpty, numComputedTokens == 0, prefix.blocks.count == prefix.hashes.count,
                prefix.numCachedTokens == prefix.blocks.count * blockSize
            else { return nil }
            for (b, h) in zip(prefix.blocks, prefix.hashes) where pool.cacheKey(b)?.hash != h { return nil }
        }
        let totalTokens = numComputedTokens + prefix.numCachedTokens + numNewTokens
        let required = blocksNeeded(forTokens: totalTokens)
        let have = state.blocks.count + prefix.blocks.count
        let newCount = max(0, required - have)
        // Hit blocks that are free now leave the free queue when touched.
        let freeHits = prefix.blocks.reduce(0) { $0 + (pool.refCount($1) == 0 ? 1 : 0) }
        guard newCount + freeHits <= pool.numFreeBlocks else { return nil }

        if !prefix.blocks.isEmpty {
            pool.touch(prefix.blocks)
            state.blocks = prefix.blocks
            state.hashes = prefix.hashes
        }
        if newCount > 0 {
            guard let fresh = pool.allocate(newCount) else { return nil }  // checked above
            state.blocks.append(contentsOf: fresh)
        }
        if let cachedPrefix, enablePrefixCaching {
            prefixCacheStats.requests += 1
            prefixCacheStats.queries += cachedPrefix.numQueriedTokens
            prefixCacheStats.hits += cachedPrefix.numCachedTokens
        }
        requests[requestId] = state
        return state.blocks
    }

    /// Registers in the prefix cache every block of the request that is full and computed
    /// (`numComputedTokens` tokens of `tokens`, which are the request's prompt followed by
    /// its generated tokens). Blocks registered earlier are skipped.
    public mutating func cacheFullBlocks(
        requestId: String, tokens: [TokenID], numComputedTokens: Int, extraKey: UInt64? = nil
    ) {
        guard enablePrefixCaching, var state = requests[requestId] else { return }
        let numFull = min(min(numComputedTokens, tokens.count) / blockSize, state.blocks.count)
        guard numFull > state.hashes.count else { return }
        for i in state.hashes.count..<numFull {
            let key = BlockCacheKey(
                parent: state.hashes.last, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)],
                extraKey: extraKey)
            pool.cache(state.blocks[i], key: key)
            state.hashes.append(key.hash)
        }
        requests[requestId] = state
    }

    /// Releases the request's blocks, tail first, and forgets its table. Cached blocks
    /// stay in the prefix cache until evicted. Returns how many blocks the table held.
    @discardableResult
    public mutating func free(requestId: String) -> Int {
        guard let state = requests.removeValue(forKey: requestId) else { return 0 }
        pool.free(state.blocks.reversed())
        return state.blocks.count
    }

    /// Forgets all cached content; only possible while no request holds blocks.
    public mutating func resetPrefixCache() -> Bool { pool.resetCache() }

    // MARK: Invariants

    /// Describes every broken invariant (empty when consistent): the pool's own, each
    /// block's refCount equals the number of requests holding it, and no request holds a
    /// block twice.
    public func invariantViolations() -> [String] {
        var problems = pool.invariantViolations()
        var holders = Array(repeating: 0, count: pool.numBlocks)
        for (id, state) in requests {
            if Set(state.blocks).count != state.blocks.count { problems.append("request \(id) holds a block twice") }
            if state.hashes.count > state.blocks.count { problems.append("request \(id) has more hashes than blocks") }
            for b in state.blocks {
                guard b >= 0, Int(b) < holders.count else {
                    problems.append("request \(id) holds invalid block \(b)")
                    continue
                }
                holders[Int(b)] += 1
            }
            for (i, h) in state.hashes.enumerated() where enablePrefixCaching {
                if pool.cacheKey(state.blocks[i])?.hash != h {
                    problems.append("request \(id) block \(i) not cached under its hash")
                }
            }
        }
        for b in 0..<pool.numBlocks where holders[b] != pool.refCount(Int32(b)) {
            problems.append("block \(b) held by \(holders[b]) requests but refCount \(pool.refCount(Int32(b)))")
        }
        if pool.numFreeBlocks + pool.numUsedBlocks != pool.numBlocks { problems.append("free + used != total") }
        return problems
    }
}
