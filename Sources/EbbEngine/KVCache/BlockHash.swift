/// Token ids as the engine stores and feeds them (the model runner's `input_ids` dtype).
public typealias TokenID = Int32

/// The hash of one full KV-cache block, chained over its parent block's hash.
///
/// `hash(block i) = H(hash(block i-1), extraKey, tokens of block i)`, so equal hashes mean
/// (up to collisions) equal *prefixes*, not only equal blocks. The function is a 64-bit
/// FNV-1a over the little-endian bytes of the inputs followed by a MurmurHash3 `fmix64`
/// finalizer. It is deterministic across processes and runs (unlike Swift's seeded
/// `Hasher`), so ranks and restarts agree on hashes.
///
/// Collision handling: the block pool stores the full ``BlockCacheKey`` (parent hash,
/// extra key, token ids) next to each cached block and a lookup only hits when the whole
/// key compares equal. A false hit therefore needs two different prefixes whose *parent*
/// hashes collide at 64 bits while the block's own tokens are identical; with n cached
/// blocks that chance is about n²/2⁶⁵ (below 10⁻⁹ for a million blocks).
public struct BlockHash: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public var description: String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    /// The seed that stands in for "no parent" (the first block of a sequence).
    public static let root = BlockHash(0x6562_625f_6b76_6361)  // "ebb_kvca"

    /// Hashes one block of tokens given its parent's hash (nil for the first block).
    public static func of<C: Collection>(
        parent: BlockHash?, tokens: C, extraKey: UInt64? = nil
    ) -> BlockHash where C.Element == TokenID {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        @inline(__always) func mix(_ word: UInt64, bytes: Int) {
            var w = word
            for _ in 0..<bytes {
                h ^= w & 0xff
                h &*= 0x0000_0100_0000_01b3
                w >>= 8
            }
        }
        mix((parent ?? root).value, bytes: 8)
        if let extraKey {
            mix(1, bytes: 1)
            mix(extraKey, bytes: 8)
        } else {
            mix(0, bytes: 1)
        }
        mix(UInt64(tokens.count), bytes: 4)
        for t in tokens { mix(UInt64(UInt32(bitPattern: t)), bytes: 4) }
        // fmix64 (MurmurHash3): spreads FNV's weak high bits over the whole word.
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h &*= 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return BlockHash(h)
    }

    /// The chained hashes of every *full* block of `tokens` (a trailing partial block has
    /// none), optionally only the first `limit` of them.
    public static func chain(
        tokens: [TokenID], blockSize: Int, extraKey: UInt64? = nil, limit: Int = .max
    ) -> [BlockHash] {
        guard blockSize > 0 else { return [] }
        let n = min(tokens.count / blockSize, limit)
        var out: [BlockHash] = []
        out.reserveCapacity(max(0, n))
        var parent: BlockHash? = nil
        for i in 0..<max(0, n) {
            let h = of(parent: parent, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)], extraKey: extraKey)
            out.append(h)
            parent = h
        }
        return out
    }
}

/// Everything a cached block's content is identified by; compared in full on a hit.
public struct BlockCacheKey: Hashable, Sendable {
    public let hash: BlockHash
    public let parent: BlockHash?
    public let extraKey: UInt64?
    public let tokens: [TokenID]

    public init(hash: BlockHash, parent: BlockHash?, extraKey: UInt64?, tokens: [TokenID]) {
        self.hash = hash
        self.parent = parent
        self.extraKey = extraKey
        self.tokens = tokens
    }

    /// Builds the key of a block, computing its hash.
    public init<C: Collection>(parent: BlockHash?, tokens: C, extraKey: UInt64? = nil) where C.Element == TokenID {
        self.init(
            hash: BlockHash.of(parent: parent, tokens: tokens, extraKey: extraKey),
            parent: parent, extraKey: extraKey, tokens: Array(tokens))
    }
}
