import EbbCore

/// A fixed set of KV-cache blocks with reference counts, an LRU free queue and the
/// prefix-cache index (modelled on vLLM v1's `BlockPool`).
///
/// Block ids are `0..<numBlocks`; the model runner indexes one paged KV tensor per layer
/// with them, so the same id is used in every layer.
///
/// - A block with `refCount > 0` belongs to one or more requests (more than one only when
///   requests share a cached prefix).
/// - Every block with `refCount == 0` sits in the *free queue*. Allocation takes from the
///   head; freed blocks go to the tail, so among free blocks that still hold cached
///   content the least recently freed one is evicted (reused) first. A free block whose
///   content has no hash (a partial block, or prefix caching off) is put at the head
///   instead: reusing it costs nothing, so cached blocks live longer.
/// - A block that holds a full, hashed block of tokens is in the cache index until it is
///   reused for other content. A hit on a free cached block takes it out of the free
///   queue ("touch").
public struct BlockPool: Sendable {
    public let numBlocks: Int
    public let enableCaching: Bool

    private var refCounts: [Int32]
    private var keys: [BlockCacheKey?]
    /// Doubly linked free queue over block ids; `-1` is "none".
    private var prev: [Int32]
    private var next: [Int32]
    private var inFreeQueue: [Bool]
    private var head: Int32 = -1
    private var tail: Int32 = -1
    public private(set) var numFreeBlocks: Int
    /// Cached content → block ids holding it (normally one; more when two requests
    /// computed the same block at the same time).
    private var index: [BlockHash: [Int32]] = [:]

    /// Blocks evicted from the cache so far (reused while holding cached content).
    public private(set) var numEvictions: Int = 0

    public init(numBlocks: Int, enableCaching: Bool = true) throws {
        guard numBlocks > 0, numBlocks < Int(Int32.max) else {
            throw EbbError(.invalidConfig, "numBlocks must be in 1..<\(Int32.max), got \(numBlocks)")
        }
        self.numBlocks = numBlocks
        self.enableCaching = enableCaching
        refCounts = Array(repeating: 0, count: numBlocks)
        keys = Array(repeating: nil, count: numBlocks)
        prev = Array(repeating: -1, count: numBlocks)
        next = Array(repeating: -1, count: numBlocks)
        inFreeQueue = Array(repeating: false, count: numBlocks)
        numFreeBlocks = 0
        for b in 0..<Int32(numBlocks) { pushTail(b) }
    }

    // MARK: Queries

    public var numUsedBlocks: Int { numBlocks - numFreeBlocks }

    /// Number of blocks currently indexed in the prefix cache (free or in use).
    public var numCachedBlocks: Int { index.values.reduce(0) { $0 + $1.count } }

    public func refCount(_ block: Int32) -> Int {
        isValid(block) ? Int(refCounts[Int(block)]) : 0
    }

    public func cacheKey(_ block: Int32) -> BlockCacheKey? {
        isValid(block) ? keys[Int(block)] : nil
    }

    /// The free queue from head (next to be reused) to tail.
    public var freeQueue: [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(numFreeBlocks)
        var b = head
        while b >= 0 && out.count <= numBlocks {
            out.append(b)
            b = next[Int(b)]
        }
        return out
    }

    /// A cached block holding exactly `key`'s content, if any.
    public func lookup(_ key: BlockCacheKey) -> Int32? {
        guard enableCaching, let ids = index[key.hash] else { return nil }
        for id in ids where keys[Int(id)] == key { return id }
        return nil
    }

    // MARK: Mutation

    /// Takes `count` blocks from the head of the free queue with `refCount` 1, evicting
    /// their cached content. Nil (and no change) when fewer than `count` are free.
    public mutating func allocate(_ count: Int) -> [Int32]? {
        guard count >= 0, count <= numFreeBlocks else { return nil }
        var out: [Int32] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let b = head
            guard b >= 0 else { break }  // unreachable while numFreeBlocks is right
            unlink(b)
            evict(b)
            refCounts[Int(b)] = 1
            out.append(b)
        }
        return out
    }

    /// Adds a reference to each block (a prefix-cache hit); a free block leaves the free
    /// queue. Invalid ids are ignored.
    public mutating func touch(_ blocks: [Int32]) {
        for b in blocks where isValid(b) {
            if refCounts[Int(b)] == 0 { unlink(b) }
            refCounts[Int(b)] += 1
        }
    }

    /// Drops one reference from each block, in the order given; blocks that reach 0 enter
    /// the free queue (hashed ones at the tail, others at the head). Pass a request's
    /// blocks in reverse so that its tail blocks are evicted before its head blocks.
    public mutating func free(_ blocks: [Int32]) {
        var unhashed: [Int32] = []
        for b in blocks where isValid(b) && refCounts[Int(b)] > 0 {
            refCounts[Int(b)] -= 1
            if refCounts[Int(b)] == 0 {
                if keys[Int(b)] != nil { pushTail(b) } else { unhashed.append(b) }
            }
        }
        // Reverse so that the first unhashed block given ends up at the very head.
        for b in unhashed.reversed() { pushHead(b) }
    }

    /// Records that `block` (in use) now holds the full block `key`. No-op when caching is
    /// off or the block already holds a key.
    public mutating func cache(_ block: Int32, key: BlockCacheKey) {
        guard enableCaching, isValid(block), keys[Int(block)] == nil else { return }
        keys[Int(block)] = key
        index[key.hash, default: []].append(block)
    }

    /// Forgets every cached block. Only allowed while no block is in use (otherwise
    /// returns false and changes nothing), as vLLM's `reset_prefix_cache`.
    public mutating func resetCache() -> Bool {
        guard numFreeBlocks == numBlocks else { return false }
        for b in 0..<numBlocks { keys[b] = nil }
        index.removeAll()
        return true
    }

    // MARK: Invariants

    /// Describes every broken internal invariant (empty when consistent).
    public func invariantViolations() -> [String] {
        var problems: [String] = []
        let queue = freeQueue
        if queue.count != numFreeBlocks {
            problems.append("free queue length \(queue.count) != numFreeBlocks \(numFreeBlocks)")
        }
        var seen = Set<Int32>()
        for b in queue {
            if !seen.insert(b).inserted { problems.append("block \(b) twice in free queue") }
            if refCounts[Int(b)] != 0 { problems.append("block \(b) in free queue with refCount \(refCounts[Int(b)])") }
            if !inFreeQueue[Int(b)] { problems.append("block \(b) in free queue but not flagged") }
        }
        for b in 0..<numBlocks {
            if refCounts[b] < 0 { problems.append("block \(b) refCount \(refCounts[b])") }
            if refCounts[b] == 0 && !seen.contains(Int32(b)) { problems.append("free block \(b) missing from free queue") }
            if let key = keys[b], !(index[key.hash]?.contains(Int32(b)) ?? false) {
                problems.append("cached block \(b) missing from index")
            }
        }
        for (h, ids) in index {
            if ids.isEmpty { problems.append("empty index entry \(h)") }
            for id in ids where keys[Int(id)]?.hash != h { problems.append("index \(h) points at block \(id) with other key") }
        }
        return problems
    }

    // MARK: Private

    private func isValid(_ b: Int32) -> Bool { b >= 0 && Int(b) < numBlocks }

    private mutating func evict(_ b: Int32) {
        guard let key = keys[Int(b)] else { return }
        keys[Int(b)] = nil
        numEvictions += 1
        if var ids = index[key.hash] {
            ids.removeAll { $0 == b }
            index[key.hash] = ids.isEmpty ? nil : ids
        }
    }

    private mutating func pushTail(_ b: Int32) {
        guard !inFreeQueue[Int(b)] else { return }
        prev[Int(b)] = tail
        next[Int(b)] = -1
        if tail >= 0 { next[Int(tail)] = b } else { head = b }
        tail = b
        inFreeQueue[Int(b)] = true
        numFreeBlocks += 1
    }

    private mutating func pushHead(_ b: Int32) {
        guard !inFreeQueue[Int(b)] else { return }
        next[Int(b)] = head
        prev[Int(b)] = -1
        if head >= 0 { prev[Int(head)] = b } else { tail = b }
        head = b
        inFreeQueue[Int(b)] = true
        numFreeBlocks += 1
    }

    private mutating func unlink(_ b: Int32) {
        guard inFreeQueue[Int(b)] else { return }
        let p = prev[Int(b)], n = next[Int(b)]
        if p >= 0 { next[Int(p)] = n } else { head = n }
        if n >= 0 { prev[Int(n)] = p } else { tail = p }
        prev[Int(b)] = -1
        next[Int(b)] = -1
        inFreeQueue[Int(b)] = false
        numFreeBlocks -= 1
    }
}
