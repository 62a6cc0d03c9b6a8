import EbbCore
import Testing

@testable import EbbEngine

@Suite struct BlockHashTests {
    @Test func deterministicAndChained() {
        let a = BlockHash.of(parent: nil, tokens: [1, 2, 3, 4] as [TokenID])
        #expect(a == BlockHash.of(parent: nil, tokens: [1, 2, 3, 4] as [TokenID]))
        #expect(a != BlockHash.of(parent: nil, tokens: [1, 2, 3, 5] as [TokenID]))
        #expect(a != BlockHash.of(parent: nil, tokens: [1, 2, 3, 4] as [TokenID], extraKey: 7))
        let b = BlockHash.of(parent: a, tokens: [5, 6, 7, 8] as [TokenID])
        #expect(b != BlockHash.of(parent: nil, tokens: [5, 6, 7, 8] as [TokenID]))
        // Fixed value: hashes must not change between runs or processes.
        #expect(a == BlockHash.of(parent: BlockHash.root, tokens: [1, 2, 3, 4] as [TokenID]))
        let chain = BlockHash.chain(tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9], blockSize: 4)
        #expect(chain == [a, b])  // the partial third block has no hash
        #expect(BlockHash.chain(tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9], blockSize: 4, limit: 1) == [a])
    }

    @Test func noCollisionsOnSmallInputs() {
        var seen = Set<BlockHash>()
        for x in 0..<64 {
            for y in 0..<64 {
                seen.insert(BlockHash.of(parent: nil, tokens: [TokenID(x), TokenID(y)]))
            }
        }
        #expect(seen.count == 64 * 64)
    }
}

@Suite struct BlockPoolTests {
    @Test func allocateAndFreeCounts() throws {
        var pool = try BlockPool(numBlocks: 8)
        #expect(pool.numFreeBlocks == 8)
        let aResult = pool.allocate(5)
        let a = try #require(aResult)
        #expect(a.count == 5 && Set(a).count == 5)
        #expect(pool.numFreeBlocks == 3 && pool.numUsedBlocks == 5)
        let tooMany = pool.allocate(4)
        #expect(tooMany == nil)
        #expect(pool.numFreeBlocks == 3)  // a failed allocation changes nothing
        pool.free(a)
        #expect(pool.numFreeBlocks == 8)
        #expect(pool.invariantViolations().isEmpty)
        #expect(throws: EbbError.self) { try BlockPool(numBlocks: 0) }
    }

    @Test func lruEvictsLeastRecentlyFreedCachedBlock() throws {
        var pool = try BlockPool(numBlocks: 3)
        let blocksResult = pool.allocate(3)
        let blocks = try #require(blocksResult)
        var keys: [BlockCacheKey] = []
        for (i, b) in blocks.enumerated() {
            let key = BlockCacheKey(parent: nil, tokens: [TokenID(i), 100] as [TokenID])
            pool.cache(b, key: key)
            keys.append(key)
        }
        // Free in the order 1, 0, 2: block 1 is the least recently freed.
        pool.free([blocks[1]])
        pool.free([blocks[0]])
        pool.free([blocks[2]])
        #expect(pool.freeQueue == [blocks[1], blocks[0], blocks[2]])
        #expect(pool.lookup(keys[1]) == blocks[1])
        let takenResult = pool.allocate(1)
        let taken = try #require(takenResult)
        #expect(taken == [blocks[1]])
        #expect(pool.lookup(keys[1]) == nil)  // evicted
        #expect(pool.lookup(keys[0]) == blocks[0])
        #expect(pool.lookup(keys[2]) == blocks[2])
        #expect(pool.numEvictions == 1)
        // A hit on a free cached block takes it out of the free queue.
        pool.touch([blocks[2]])
        #expect(pool.freeQueue == [blocks[0]])
        #expect(pool.refCount(blocks[2]) == 1)
        #expect(pool.invariantViolations().isEmpty)
    }

    @Test func unhashedFreedBlocksAreReusedBeforeCachedOnes() throws {
        var pool = try BlockPool(numBlocks: 2)
        let bResult = pool.allocate(2)
        let b = try #require(bResult)
        pool.cache(b[0], key: BlockCacheKey(parent: nil, tokens: [1] as [TokenID]))
        pool.free(b.reversed())  // b[1] (partial, unhashed) first
        #expect(pool.freeQueue == [b[1], b[0]])
        let reused = pool.allocate(1)
        #expect(reused == [b[1]])
        #expect(pool.numEvictions == 0)
    }

    @Test func hashCollisionIsNotAHit() throws {
        var pool = try BlockPool(numBlocks: 2)
        let bResult = pool.allocate(1)
        let b = try #require(bResult)
        let real = BlockCacheKey(parent: nil, tokens: [1, 2] as [TokenID])
        pool.cache(b[0], key: real)
        // A different block that (pretend) hashes to the same value.
        let forged = BlockCacheKey(hash: real.hash, parent: nil, extraKey: nil, tokens: [3, 4])
        #expect(pool.lookup(forged) == nil)
        #expect(pool.lookup(real) == b[0])
        let otherParent = BlockCacheKey(hash: real.hash, parent: BlockHash(1), extraKey: nil, tokens: [1, 2])
        #expect(pool.lookup(otherParent) == nil)
    }

    @Test func resetCacheOnlyWhenIdle() throws {
        var pool = try BlockPool(numBlocks: 2)
        let bResult = pool.allocate(1)
        let b = try #require(bResult)
        let key = BlockCacheKey(parent: nil, tokens: [1] as [TokenID])
        pool.cache(b[0], key: key)
        let resetWhileBusy = pool.resetCache()
        #expect(resetWhileBusy == false)
        pool.free(b)
        #expect(pool.lookup(key) == b[0])
        let didReset = pool.resetCache()
        #expect(didReset)
        #expect(pool.lookup(key) == nil)
        #expect(pool.invariantViolations().isEmpty)
    }
}

@Suite struct KVCacheManagerTests {
    @Test func allocateGrowsTableAndFailsWithoutChange() throws {
        var kv = try KVCacheManager(numBlocks: 4, blockSize: 4)
        let t1Result = kv.allocateSlots(requestId: "a", numComputedTokens: 0, numNewTokens: 5)
        let t1 = try #require(t1Result)
        #expect(t1.count == 2)
        let t2Result = kv.allocateSlots(requestId: "a", numComputedTokens: 5, numNewTokens: 3)
        let t2 = try #require(t2Result)
        #expect(t2.count == 2 && Array(t2.prefix(2)) == t1)  // 8 tokens still fit in 2 blocks
        let t3Result = kv.allocateSlots(requestId: "a", numComputedTokens: 8, numNewTokens: 1)
        let t3 = try #require(t3Result)
        #expect(t3.count == 3 && Array(t3.prefix(2)) == t1)
        let tooMany = kv.allocateSlots(requestId: "b", numComputedTokens: 0, numNewTokens: 8)
        #expect(tooMany == nil)
        #expect(kv.blockTable(for: "b") == nil)
        #expect(kv.freeBlocks == 1 && kv.usedBlocks == 3 && kv.usage == 0.75)
        let freed = kv.free(requestId: "a")
        #expect(freed == 3)
        #expect(kv.freeBlocks == 4)
        #expect(kv.invariantViolations().isEmpty)
    }

    @Test func prefixHitIsCappedBelowTheWholePrompt() throws {
        var kv = try KVCacheManager(numBlocks: 16, blockSize: 4)
        let tokens = prompt(12)
        let allocatedResult = kv.allocateSlots(requestId: "a", numComputedTokens: 0, numNewTokens: 12)
        _ = try #require(allocatedResult)
        kv.cacheFullBlocks(requestId: "a", tokens: tokens, numComputedTokens: 12)
        // Same 12 tokens: at most 11 may be cached → 2 whole blocks.
        #expect(kv.findCachedPrefix(tokens: tokens).numCachedTokens == 8)
        // 13 tokens with the same first 12: all 3 blocks.
        #expect(kv.findCachedPrefix(tokens: tokens + [99]).numCachedTokens == 12)
        // Diverges inside the second block: only the first.
        var other = tokens
        other[5] = 77
        #expect(kv.findCachedPrefix(tokens: other).numCachedTokens == 4)
        // Another extra key never hits.
        #expect(kv.findCachedPrefix(tokens: tokens + [99], extraKey: 5).numCachedTokens == 0)
        #expect(kv.findCachedPrefix(tokens: [1]).numCachedTokens == 0)

        let hit = kv.findCachedPrefix(tokens: tokens + [99])
        let tbResult = kv.allocateSlots(requestId: "b", numComputedTokens: 0, numNewTokens: 1, cachedPrefix: hit)
        let tb = try #require(tbResult)
        #expect(tb.count == 4 && Array(tb.prefix(3)) == kv.blockTable(for: "a"))
        #expect(kv.pool.refCount(tb[0]) == 2)
        #expect(kv.prefixCacheStats.queries == 13 && kv.prefixCacheStats.hits == 12)
        #expect(kv.invariantViolations().isEmpty)
    }

    @Test func disabledPrefixCachingNeverHits() throws {
        var kv = try KVCacheManager(numBlocks: 16, blockSize: 4, enablePrefixCaching: false)
        let tokens = prompt(12)
        let allocatedResult = kv.allocateSlots(requestId: "a", numComputedTokens: 0, numNewTokens: 12)
        _ = try #require(allocatedResult)
        kv.cacheFullBlocks(requestId: "a", tokens: tokens, numComputedTokens: 12)
        #expect(kv.findCachedPrefix(tokens: tokens + [1]).numCachedTokens == 0)
        #expect(kv.pool.numCachedBlocks == 0)
    }
}
