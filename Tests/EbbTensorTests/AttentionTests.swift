import Foundation
import Testing
import EbbTensor

/// A step over several sequences: sequence s has `cached[s]` tokens already in the cache
/// and `new[s]` tokens in this step. Blocks are handed out from a shuffled pool so block
/// tables are scattered and non-contiguous.
private struct Layout {
    let blockSize: Int
    let cached: [Int]
    let new: [Int]
    let numBlocks: Int
    var tables: [[Int32]]       // per sequence, padded to `width` with block 0
    let width: Int

    init(blockSize: Int, cached: [Int], new: [Int], rng: inout SeededRNG) {
        self.blockSize = blockSize
        self.cached = cached
        self.new = new
        let need = zip(cached, new).map { ($0 + $1 + blockSize - 1) / blockSize }
        width = (need.max() ?? 0) + 1
        numBlocks = need.reduce(0, +) + 3   // spare blocks nobody uses
        var pool = (0..<numBlocks).map { Int32($0) }
        pool.shuffle(using: &rng)
        var tables = [[Int32]]()
        var next = 0
        for n in need {
            var row = Array(pool[next..<(next + n)])
            next += n
            row += [Int32](repeating: 0, count: width - n)
            tables.append(row)
        }
        self.tables = tables
    }

    var sequences: Int { cached.count }
    var contextLengths: [Int] { zip(cached, new).map { $0 + $1 } }
    var numTokens: Int { new.reduce(0, +) }

    func slot(_ s: Int, position j: Int) -> Int32 {
        tables[s][j / blockSize] * Int32(blockSize) + Int32(j % blockSize)
    }

    /// Metadata for writing the already-cached prefixes (one "token" per cached position).
    func prefixMetadata(_ backend: CPUBackend) throws -> AttentionMetadata {
        var slots = [Int32]()
        for s in 0..<sequences { for j in 0..<cached[s] { slots.append(slot(s, position: j)) } }
        return try metadata(backend, slots: slots, starts: [0, Int32(slots.count)], lengths: [Int32(slots.count)])
    }

    /// Metadata of the step itself.
    func stepMetadata(_ backend: CPUBackend) throws -> AttentionMetadata {
        var slots = [Int32](), starts: [Int32] = [0]
        for s in 0..<sequences {
            for i in 0..<new[s] { slots.append(slot(s, position: cached[s] + i)) }
            starts.append(Int32(slots.count))
        }
        return try metadata(backend, slots: slots, starts: starts, lengths: contextLengths.map { Int32($0) })
    }

    private func metadata(_ backend: CPUBackend, slots: [Int32], starts: [Int32], lengths: [Int32]) throws -> AttentionMetadata {
        AttentionMetadata(slotMapping: try uploadInts(backend, slots, [slots.count]),
                          queryStart: try uploadInts(backend, starts, [starts.count]),
                          contextLengths: try uploadInts(backend, lengths, [lengths.count]),
                          blockTables: try uploadInts(backend, tables.flatMap { $0 }, [sequences, width]),
                          blockSize: blockSize, numSequences: lengths.count, numTokens: slots.count,
                          maxContextLength: Int(lengths.max() ?? 0))
    }
}

/// Dense causal softmax attention of one query over `keys`/`values` (rows), in Double.
private func denseAttention(query: [Double], keys: [[Double]], values: [[Double]], scale: Double) -> [Double] {
    guard !keys.isEmpty else { return [Double](repeating: 0, count: values.first?.count ?? 0) }
    let scores = keys.map { k in zip(query, k).reduce(0.0) { $0 + $1.0 * $1.1 } * scale }
    let m = scores.max() ?? 0
    let e = scores.map { exp($0 - m) }
    let sum = e.reduce(0, +)
    var out = [Double](repeating: 0, count: values[0].count)
    for (j, v) in values.enumerated() { for i in 0..<v.count { out[i] += e[j] / sum * v[i] } }
    return out
}

struct AttentionCase: Sendable, CustomTestStringConvertible {
    var blockSize: Int, cached: [Int], new: [Int], heads: Int, kvHeads: Int, d: Int, dv: Int
    var testDescription: String { "bs\(blockSize) cached\(cached) new\(new) H\(heads) Hkv\(kvHeads) D\(d) Dv\(dv)" }
}

@Suite struct AttentionTests {
    static let cases: [AttentionCase] = [
        AttentionCase(blockSize: 4, cached: [0, 5, 11], new: [4, 1, 3], heads: 4, kvHeads: 2, d: 8, dv: 8),
        AttentionCase(blockSize: 3, cached: [7, 0], new: [2, 5], heads: 6, kvHeads: 1, d: 5, dv: 3),
        AttentionCase(blockSize: 16, cached: [0], new: [9], heads: 2, kvHeads: 2, d: 16, dv: 16),
        AttentionCase(blockSize: 2, cached: [3, 1, 0, 6], new: [1, 1, 1, 1], heads: 8, kvHeads: 4, d: 4, dv: 6),
        // A sequence with no new tokens in the step sits between two that have some.
        AttentionCase(blockSize: 4, cached: [2, 4, 1], new: [3, 0, 2], heads: 2, kvHeads: 1, d: 6, dv: 6),
    ]

    @Test(arguments: cases)
    func pagedAttentionMatchesDenseCausal(_ c: AttentionCase) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(c.blockSize * 7919 + c.heads * 31 + c.d))
        let layout = Layout(blockSize: c.blockSize, cached: c.cached, new: c.new, rng: &rng)
        // Every position's key and value, per sequence: [ctx][Hkv·D].
        let keys = layout.contextLengths.map { n in (0..<n).map { _ in rng.floats(c.kvHeads * c.d) } }
        let values = layout.contextLengths.map { n in (0..<n).map { _ in rng.floats(c.kvHeads * c.dv) } }
        let keyCache = try upload(backend, [Float](repeating: .nan, count: layout.numBlocks * c.blockSize * c.kvHeads * c.d),
                                  [layout.numBlocks, c.blockSize, c.kvHeads, c.d])
        let valueCache = try upload(backend, [Float](repeating: .nan, count: layout.numBlocks * c.blockSize * c.kvHeads * c.dv),
                                    [layout.numBlocks, c.blockSize, c.kvHeads, c.dv])
        // Prefixes written earlier, then this step's keys and values.
        let prefix = try layout.prefixMetadata(backend)
        if prefix.numTokens > 0 {
            let pk = (0..<layout.sequences).flatMap { s in keys[s][0..<c.cached[s]].flatMap { $0 } }
            let pv = (0..<layout.sequences).flatMap { s in values[s][0..<c.cached[s]].flatMap { $0 } }
            backend.writeKV(key: try upload(backend, pk, [prefix.numTokens, c.kvHeads, c.d]),
                            value: try upload(backend, pv, [prefix.numTokens, c.kvHeads, c.dv]),
                            keyCache: keyCache, valueCache: valueCache, metadata: prefix)
        }
        let step = try layout.stepMetadata(backend)
        let nk = (0..<layout.sequences).flatMap { s in keys[s][c.cached[s]...].flatMap { $0 } }
        let nv = (0..<layout.sequences).flatMap { s in values[s][c.cached[s]...].flatMap { $0 } }
        backend.writeKV(key: try upload(backend, nk, [step.numTokens, c.kvHeads, c.d]),
                        value: try upload(backend, nv, [step.numTokens, c.kvHeads, c.dv]),
                        keyCache: keyCache, valueCache: valueCache, metadata: step)

        let qv = rng.floats(step.numTokens * c.heads * c.d, in: -2...2)
        let (query, _) = try stridedView(backend, qv, shape: [step.numTokens, c.heads, c.d], lead: 3, trail: 1)
        let (out, outParent) = try stridedView(backend, [Float](repeating: 0, count: step.numTokens * c.heads * c.dv),
                                               shape: [step.numTokens, c.heads, c.dv], lead: 0, trail: 2)
        let scale = 1 / Float(c.d).squareRoot()
        backend.pagedAttention(query: query, keyCache: keyCache, valueCache: valueCache, metadata: step, scale: scale, out: out)

        var expected = [Double]()
        let group = c.heads / c.kvHeads
        for s in 0..<layout.sequences {
            for i in 0..<c.new[s] {
                let t = expected.count / (c.heads * c.dv)
                let position = c.cached[s] + i
                for h in 0..<c.heads {
                    let kvh = h / group
                    let q = (0..<c.d).map { Double(qv[(t * c.heads + h) * c.d + $0]) }
                    let ks = (0...position).map { j in (0..<c.d).map { Double(keys[s][j][kvh * c.d + $0]) } }
                    let vs = (0...position).map { j in (0..<c.dv).map { Double(values[s][j][kvh * c.dv + $0]) } }
                    expected += denseAttention(query: q, keys: ks, values: vs, scale: Double(scale))
                }
            }
        }
        expectClose(backend.downloadFloats(out), expected, atol: 1e-5, rtol: 1e-4, c.testDescription)
        #expect(gapsUntouched(backend, outParent, lead: 0, cols: c.dv))
    }

    /// writeKV skips padding tokens (slot −1) and slots beyond the cache.
    @Test func writeKVSkipsInvalidSlots() throws {
        let backend = makeBackend()
        let keyCache = try backend.empty([2, 2, 1, 2], dtype: .f32)
        let valueCache = try backend.empty([2, 2, 1, 2], dtype: .f32)
        let md = AttentionMetadata(slotMapping: try uploadInts(backend, [3, -1, 4, 0], [4]),
                                   queryStart: try uploadInts(backend, [0, 4], [2]),
                                   contextLengths: try uploadInts(backend, [4], [1]),
                                   blockTables: try uploadInts(backend, [0, 1], [1, 2]),
                                   blockSize: 2, numSequences: 1, numTokens: 4, maxContextLength: 4)
        let k = try upload(backend, [1, 2, 3, 4, 5, 6, 7, 8], [4, 1, 2])
        let v = try upload(backend, [-1, -2, -3, -4, -5, -6, -7, -8], [4, 1, 2])
        backend.writeKV(key: k, value: v, keyCache: keyCache, valueCache: valueCache, metadata: md)
        #expect(backend.downloadFloats(keyCache) == [7, 8, 0, 0, 0, 0, 1, 2])
        #expect(backend.downloadFloats(valueCache) == [-7, -8, 0, 0, 0, 0, -1, -2])
    }

    /// MLA in latent form against a dense reference. Latent and rope key come as column
    /// slices of one `[T, L + R + pad]` projection output; the rope query as a slice of
    /// `[T, H, nope + R]`.
    @Test(arguments: [(4, [0, 6, 2], [3, 1, 5]), (3, [8], [1]), (1, [2, 0], [2, 2])])
    func latentAttentionMatchesReference(_ blockSize: Int, _ cached: [Int], _ new: [Int]) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(blockSize * 101 + cached.count))
        let heads = 3, l = 10, r = 4, nope = 6
        let layout = Layout(blockSize: blockSize, cached: cached, new: new, rng: &rng)
        let latents = layout.contextLengths.map { n in (0..<n).map { _ in rng.floats(l) } }
        let ropeKeys = layout.contextLengths.map { n in (0..<n).map { _ in rng.floats(r) } }
        let cache = try upload(backend, [Float](repeating: .nan, count: layout.numBlocks * blockSize * (l + r)),
                               [layout.numBlocks, blockSize, l + r])
        func write(_ md: AttentionMetadata, _ rows: (Int) -> ArraySlice<[Float]>, _ ropes: (Int) -> ArraySlice<[Float]>) throws {
            guard md.numTokens > 0 else { return }
            var projected = [Float]()
            for s in 0..<layout.sequences {
                for (a, b) in zip(rows(s), ropes(s)) { projected += a + b + [sentinel] }
            }
            let full = try upload(backend, projected, [md.numTokens, l + r + 1])
            backend.writeLatentKV(latent: full.columnSlice(0..<l), ropeKey: full.columnSlice(l..<(l + r)), cache: cache, metadata: md)
        }
        try write(try layout.prefixMetadata(backend), { latents[$0][0..<cached[$0]] }, { ropeKeys[$0][0..<cached[$0]] })
        let step = try layout.stepMetadata(backend)
        try write(step, { latents[$0][cached[$0]...] }, { ropeKeys[$0][cached[$0]...] })

        let t = step.numTokens
        let qlv = rng.floats(t * heads * l), qrv = rng.floats(t * heads * r)
        let queryLatent = try upload(backend, qlv, [t, heads, l])
        let (queryRope, _) = try stridedView(backend, qrv, shape: [t, heads, r], lead: nope, trail: 0)
        let out = try backend.empty([t, heads, l], dtype: .f32)
        let scale: Float = 0.3
        backend.latentAttention(queryLatent: queryLatent, queryRope: queryRope, cache: cache, latentDim: l,
                                metadata: step, scale: scale, out: out)
        var expected = [Double]()
        var token = 0
        for s in 0..<layout.sequences {
            for i in 0..<new[s] {
                let position = cached[s] + i
                for h in 0..<heads {
                    // The key is [latent, ropeKey] and the query [qLatent, qRope]; values are latents.
                    let q = (0..<l).map { Double(qlv[(token * heads + h) * l + $0]) }
                        + (0..<r).map { Double(qrv[(token * heads + h) * r + $0]) }
                    let ks = (0...position).map { j in (latents[s][j] + ropeKeys[s][j]).map(Double.init) }
                    let vs = (0...position).map { j in latents[s][j].map(Double.init) }
                    expected += denseAttention(query: q, keys: ks, values: vs, scale: Double(scale))
                }
                token += 1
            }
        }
        expectClose(backend.downloadFloats(out), expected, atol: 1e-5, rtol: 1e-4)
    }

    /// MLA prefill in the expanded form: `gatherContext` copies every sequence's context out
    /// of the paged latent cache in order, and `expandedLatentAttention` is causal attention
    /// with head h's key [its nope part, the shared rope key] and its value part.
    @Test(arguments: [(4, [0, 6, 2], [3, 1, 5]), (3, [8], [1]), (1, [2, 0], [2, 2])])
    func expandedLatentAttentionMatchesReference(_ blockSize: Int, _ cached: [Int], _ new: [Int]) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(blockSize * 37 + cached.count))
        let heads = 3, l = 10, r = 4, nope = 6, v = 5
        let layout = Layout(blockSize: blockSize, cached: cached, new: new, rng: &rng)
        let contexts = layout.contextLengths
        let rows = contexts.map { n in (0..<n).map { _ in rng.floats(l + r) } }
        var cacheValues = [Float](repeating: .nan, count: layout.numBlocks * blockSize * (l + r))
        for s in 0..<layout.sequences {
            for j in 0..<contexts[s] {
                let slot = Int(layout.slot(s, position: j))
                for c in 0..<(l + r) { cacheValues[slot * (l + r) + c] = rows[s][j][c] }
            }
        }
        let cache = try upload(backend, cacheValues, [layout.numBlocks, blockSize, l + r])
        var step = try layout.stepMetadata(backend)
        var starts: [Int32] = [0]
        for c in contexts { starts.append(starts[starts.count - 1] + Int32(c)) }
        step.contextStart = try uploadInts(backend, starts, [starts.count])
        step.totalContext = Int(starts[starts.count - 1])
        let total = step.totalContext
        let context = try backend.empty([total, l + r], dtype: .f32)
        backend.gatherContext(cache, metadata: step, out: context)
        #expect(backend.downloadFloats(context) == rows.flatMap { $0.flatMap { $0 } })

        let kvValues = rng.floats(total * heads * (nope + v))
        let keyValues = try upload(backend, kvValues, [total, heads * (nope + v)])
        let t = step.numTokens
        let qv = rng.floats(t * heads * (nope + r))
        let query = try upload(backend, qv, [t, heads, nope + r])
        let out = try backend.empty([t, heads, v], dtype: .f32)
        let scale: Float = 0.4
        backend.expandedLatentAttention(query: query, keyValues: keyValues, ropeKeys: context.columnSlice(l..<(l + r)),
                                        nopeDim: nope, valueDim: v, metadata: step, scale: scale, out: out)
        var expected = [Double]()
        var token = 0
        for s in 0..<layout.sequences {
            let first = Int(starts[s])
            for i in 0..<new[s] {
                let position = cached[s] + i
                for h in 0..<heads {
                    let q = (0..<(nope + r)).map { Double(qv[(token * heads + h) * (nope + r) + $0]) }
                    func kv(_ j: Int, _ c: Int) -> Double { Double(kvValues[(first + j) * heads * (nope + v) + h * (nope + v) + c]) }
                    let ks = (0...position).map { j in (0..<nope).map { kv(j, $0) } + rows[s][j][l...].map(Double.init) }
                    let vs = (0...position).map { j in (0..<v).map { kv(j, nope + $0) } }
                    expected += denseAttention(query: q, keys: ks, values: vs, scale: Double(scale))
                }
                token += 1
            }
        }
        expectClose(backend.downloadFloats(out), expected, atol: 1e-5, rtol: 1e-4)
    }
}
