import EbbCore
import EbbTensor

/// Every `Backend` op, checked against the CPU backend on random inputs.
public enum BackendParity {
    /// Runs all checks; a check that throws is reported as failed.
    public static func run(device: any Backend, seed: UInt64 = 1) -> [ParityResult] {
        let h = ParityHarness(device: device, cpu: CPUBackend(), seed: seed)
        let checks: [(String, (ParityHarness) throws -> Void)] = [
            ("memory", memory), ("gemm", gemm), ("groupedLinear", grouped), ("elementwise", elementwise),
            ("rope", rope), ("indexing", indexing), ("pagedAttention", attention), ("prepareQKV", prepareQKV), ("latentAttention", latent),
            ("expandedLatentAttention", expandedLatent),
            ("routing", routing), ("moe", moe), ("expertExchange", expertExchange),
        ]
        for (name, check) in checks {
            do { try check(h) } catch { h.fail(name, error) }
        }
        if let cuda = device as? CUDABackend {
            do { try cuda.checkErrors() } catch { h.fail("deferred errors", error) }
        }
        return h.results
    }

    static func memory(_ h: ParityHarness) throws {
        let x = try h.randomPair([13, 40])
        h.compare("upload/download", x, tolerance: 0)
        let y = try h.poisoned([13, 24])
        h.cpu.copy(x.cpu.columnSlice(8..<32), into: y.cpu)
        h.dev.copy(x.dev.columnSlice(8..<32), into: y.dev)
        h.compare("copy strided", y, tolerance: 0)
        h.cpu.fill(x.cpu.columnSlice(3..<9), value: -2.5)
        h.dev.fill(x.dev.columnSlice(3..<9), value: -2.5)
        h.compare("fill strided", x, tolerance: 0)
        let i = try h.ints((0..<50).map { Int32($0 * 3 - 20) }, [50])
        h.cpu.fill(i.cpu.reshaped([5, 10]).columnSlice(0..<4), value: 9)
        h.dev.fill(i.dev.reshaped([5, 10]).columnSlice(0..<4), value: 9)
        h.compareInts("fill i32", i)
        // Checksums of rows (a strided view and a long contiguous one): identical bits.
        h.compareChecksums("rowChecksums strided", x, columns: 5..<37)
        h.compareChecksums("rowChecksums long rows", try h.randomPair([3, 70_001]))
    }

    static func gemm(_ h: ParityHarness) throws {
        // Linear: x [37, 64] · w[53, 64]ᵀ
        let x = try h.randomPair([37, 64]), w = try h.randomPair([53, 64])
        let out = try h.poisoned([37, 53])
        for (b, p) in [(h.cpu as any Backend, (x.cpu, w.cpu, out.cpu)), (h.dev, (x.dev, w.dev, out.dev))] {
            b.gemm(MatrixOperand(p.0), MatrixOperand(p.1, transposed: true), MatrixOperand(p.2), m: 37, n: 53, k: 64, batch: 1, alpha: 1, beta: 0)
        }
        h.compare("gemm x·wᵀ", out)
        // Decode-sized rows (bf16 runs take `gemv_rows`): a K with a tail past the unrolled
        // loop (1032 = 129 chunks of 8), odd N, f32 and compute-dtype outputs.
        for (rows, outType) in [(1, DType.f32), (3, nil), (8, DType.f32), (6, nil)] {
            let dx = try h.randomPair([rows, 1032]), dw = try h.randomPair([37, 1032], scale: 0.2)
            let dout = try h.floats([Float](repeating: 7, count: rows * 37), [rows, 37], dtype: outType)
            for (b, p) in [(h.cpu as any Backend, (dx.cpu, dw.cpu, dout.cpu)), (h.dev, (dx.dev, dw.dev, dout.dev))] {
                b.gemm(MatrixOperand(p.0), MatrixOperand(p.1, transposed: true), MatrixOperand(p.2), m: rows, n: 37, k: 1032,
                       batch: 1, alpha: 1, beta: 0)
            }
            h.compare("gemm \(rows) rows x·wᵀ, K=1032 → \(outType.map { "\($0)" } ?? "compute dtype")", dout)
        }
        // Batched, strided, A transposed, alpha/beta.
        let a = try h.randomPair([3, 20, 16]), bm = try h.randomPair([3, 20, 24])
        let c = try h.randomPair([3, 16, 24])
        for (b, p) in [(h.cpu as any Backend, (a.cpu, bm.cpu, c.cpu)), (h.dev, (a.dev, bm.dev, c.dev))] {
            b.gemm(MatrixOperand(p.0, leadingDimension: 16, batchStride: 320, transposed: true),
                   MatrixOperand(p.1, leadingDimension: 24, batchStride: 480),
                   MatrixOperand(p.2, leadingDimension: 24, batchStride: 384), m: 16, n: 24, k: 20, batch: 3, alpha: 0.5, beta: 1)
        }
        h.compare("gemm batched aᵀ·b, α=0.5 β=1", c)
    }

    static func grouped(_ h: ParityHarness) throws {
        // (experts, rows, n, k): GEMV path, tensor-core path (bf16: rows ≥ 4·experts), odd K.
        // Then prefill-sized tiles: a K tail (168 = 5·32 + 8), N past a 128 tile, odd N.
        for (e, r, n, k) in [(6, 9, 40, 64), (4, 300, 72, 96), (5, 23, 17, 30), (8, 700, 200, 168), (3, 260, 259, 64)] {
            var counts = (0..<e).map { _ in h.int(2 * r / e + 1) }
            counts[h.int(e)] = 0
            let total = counts.reduce(0, +)
            var offsets: [Int32] = [0]
            for c in counts { offsets.append(offsets[offsets.count - 1] + Int32(c)) }
            let x = try h.randomPair([max(total, 1), k]), w = try h.randomPair([e, n, k], scale: 0.2)
            let o = try h.ints(offsets, [e + 1])
            let out = try h.poisoned([max(total, 1), n])
            h.cpu.groupedLinear(x.cpu, weights: w.cpu, offsets: o.cpu, out: out.cpu)
            h.dev.groupedLinear(x.dev, weights: w.dev, offsets: o.dev, out: out.dev)
            h.compare("groupedLinear E=\(e) rows=\(total) N=\(n) K=\(k)", out)
            try compareSwiGLU(h, "E=\(e) rows=\(total) N=\(n) K=\(k)", rows: max(total, 1), experts: e, n: n, k: k, offsets: o)
            // The same rows read through an index (the gather folded into the product).
            let source = try h.randomPair([max(total, 1) + 5, k])
            let index = try h.ints((0..<max(total, 1)).map { _ in Int32(h.int(max(total, 1) + 5)) }, [max(total, 1)])
            let indexed = try h.poisoned([max(total, 1), n])
            h.cpu.groupedLinear(source.cpu, rowIndex: index.cpu, weights: w.cpu, offsets: o.cpu, out: indexed.cpu)
            h.dev.groupedLinear(source.dev, rowIndex: index.dev, weights: w.dev, offsets: o.dev, out: indexed.dev)
            h.compare("groupedLinear through a row index E=\(e) rows=\(total) N=\(n) K=\(k)", indexed)
        }
        // Decode-like: 40 experts, 4 rows in experts 3, 17 (two rows) and 39 (the last).
        for k in [64, 30] {
            let offsets: [Int32] = (0...40).map { e in Int32(e > 39 ? 4 : e > 17 ? 3 : e > 3 ? 1 : 0) }
            let x = try h.randomPair([4, k]), w = try h.randomPair([40, 24, k], scale: 0.2)
            let o = try h.ints(offsets, [41])
            let out = try h.poisoned([4, 24])
            h.cpu.groupedLinear(x.cpu, weights: w.cpu, offsets: o.cpu, out: out.cpu)
            h.dev.groupedLinear(x.dev, weights: w.dev, offsets: o.dev, out: out.dev)
            h.compare("groupedLinear E=40 rows=4 (few experts hit) K=\(k)", out)
            try compareSwiGLU(h, "E=40 rows=4 (few experts hit) K=\(k)", rows: 4, experts: 40, n: 24, k: k, offsets: o)
        }
    }

    /// `groupedSwiGLULinear` (fused on the GEMV path) against the CPU's `siluAndMul` then
    /// `groupedLinear`.
    static func compareSwiGLU(_ h: ParityHarness, _ what: String, rows: Int, experts: Int, n: Int, k: Int,
                              offsets: ParityHarness.Pair) throws {
        let gateUp = try h.randomPair([rows, 2 * k], scale: 2), w = try h.randomPair([experts, n, k], scale: 0.2)
        let out = try h.poisoned([rows, n])
        h.cpu.groupedSwiGLULinear(gateUp.cpu, weights: w.cpu, offsets: offsets.cpu, out: out.cpu)
        h.dev.groupedSwiGLULinear(gateUp.dev, weights: w.dev, offsets: offsets.dev, out: out.dev)
        h.compare("groupedSwiGLULinear \(what)", out)
    }

    static func elementwise(_ h: ParityHarness) throws {
        let x = try h.randomPair([7, 96]), w = try h.randomPair([96])
        let o = try h.poisoned([7, 96])
        h.cpu.rmsNorm(x.cpu, weight: w.cpu, eps: 1e-6, out: o.cpu)
        h.dev.rmsNorm(x.dev, weight: w.dev, eps: 1e-6, out: o.dev)
        h.compare("rmsNorm", o)
        let s = try h.randomPair([5, 3, 48]), sw = try h.randomPair([32])
        h.cpu.rmsNorm(s.cpu.columnSlice(8..<40), weight: sw.cpu, eps: 1e-5, out: s.cpu.columnSlice(8..<40))
        h.dev.rmsNorm(s.dev.columnSlice(8..<40), weight: sw.dev, eps: 1e-5, out: s.dev.columnSlice(8..<40))
        h.compare("rmsNorm in place, strided", s)
        let a = try h.randomPair([9, 33]), b = try h.randomPair([9, 33])
        h.cpu.add(a.cpu, b.cpu, out: a.cpu)
        h.dev.add(a.dev, b.dev, out: a.dev)
        h.compare("add (aliased)", a)
        let branch0 = try h.randomPair([9, 33]), aw = try h.randomPair([33]), an = try h.poisoned([9, 33])
        h.cpu.addRMSNorm(a.cpu, branch0.cpu, weight: aw.cpu, eps: 1e-6, out: an.cpu)
        h.dev.addRMSNorm(a.dev, branch0.dev, weight: aw.dev, eps: 1e-6, out: an.dev)
        h.compare("addRMSNorm: residual", a)
        h.compare("addRMSNorm: normed", an)
        let g = try h.randomPair([6, 2 * 50], scale: 4), gs = try h.poisoned([6, 50])
        h.cpu.siluAndMul(g.cpu, out: gs.cpu)
        h.dev.siluAndMul(g.dev, out: gs.dev)
        h.compare("siluAndMul", gs)
        if h.dev.residualDType != h.dev.computeDType {
            // The residual stream (f32) beside activations in the compute dtype.
            let r = try h.floats(h.random(7 * 96), [7, 96], dtype: h.dev.residualDType)
            let rn = try h.poisoned([7, 96])
            h.cpu.rmsNorm(r.cpu, weight: w.cpu, eps: 1e-6, out: rn.cpu)
            h.dev.rmsNorm(r.dev, weight: w.dev, eps: 1e-6, out: rn.dev)
            h.compare("rmsNorm residual → compute dtype", rn)
            let branch = try h.randomPair([7, 96])
            h.cpu.add(r.cpu, branch.cpu, out: r.cpu)
            h.dev.add(r.dev, branch.dev, out: r.dev)
            h.compare("add residual += branch", r, tolerance: 1e-6)
            let normed = try h.poisoned([7, 96])
            h.cpu.addRMSNorm(r.cpu, branch.cpu, weight: w.cpu, eps: 1e-6, out: normed.cpu)
            h.dev.addRMSNorm(r.dev, branch.dev, weight: w.dev, eps: 1e-6, out: normed.dev)
            h.compare("addRMSNorm residual += branch", r, tolerance: 1e-6)
            h.compare("addRMSNorm residual → compute dtype", normed)
            let table = try h.randomPair([50, 24]), ids = try h.ints([3, 0, 49, 7], [4])
            let e = try h.floats([Float](repeating: 7, count: 4 * 24), [4, 24], dtype: h.dev.residualDType)
            h.cpu.embedding(ids: ids.cpu, table: table.cpu, out: e.cpu)
            h.dev.embedding(ids: ids.dev, table: table.dev, out: e.dev)
            h.compare("embedding into the residual dtype", e, tolerance: 0)
        }
    }

    static func rope(_ h: ParityHarness) throws {
        let positions = try h.ints((0..<6).map { Int32($0 * 37 + 3) }, [6])
        for (interleaved, kind) in [(false, RopeParameters.Kind.standard), (true, .yarn(.init(factor: 4, originalMaxPositionEmbeddings: 64)))] {
            let params = RopeParameters(theta: 10000, dimension: 16, kind: kind, interleaved: interleaved)
            let rc = try RotaryEmbedding(parameters: params, backend: h.cpu)
            let rd = try RotaryEmbedding(parameters: params, backend: h.dev)
            let x = try h.randomPair([6, 3, 24])
            h.cpu.rope(x.cpu.columnSlice(8..<24), positions: positions.cpu, rope: rc)
            h.dev.rope(x.dev.columnSlice(8..<24), positions: positions.dev, rope: rd)
            h.compare("rope \(interleaved ? "interleaved yarn" : "neox"), strided", x, tolerance: max(h.tolerance, 1e-4))
        }
    }

    static func indexing(_ h: ParityHarness) throws {
        let table = try h.randomPair([50, 24])
        let ids = try h.ints([3, 0, 49, 50, -1, 7], [6])
        let e = try h.poisoned([6, 24])
        h.cpu.embedding(ids: ids.cpu, table: table.cpu, out: e.cpu)
        h.dev.embedding(ids: ids.dev, table: table.dev, out: e.dev)
        h.compare("embedding (out-of-range ids → 0)", e, tolerance: 0)
        var values = h.random(4 * 1000)
        values[1000 + 17] = 5; values[1000 + 900] = 5  // a tie: lowest index wins
        let x = try h.floats(values, [4, 1000])
        let am = try h.empty([4], dtype: .i32)
        h.cpu.argmax(x.cpu, out: am.cpu)
        h.dev.argmax(x.dev, out: am.dev)
        h.compareInts("argmax", am)
        let idx = try h.ints([2, -1, 0, 49, 60, 2], [6])
        let gr = try h.poisoned([6, 24])
        h.cpu.gatherRows(table.cpu, indices: idx.cpu, out: gr.cpu)
        h.dev.gatherRows(table.dev, indices: idx.dev, out: gr.dev)
        h.compare("gatherRows", gr, tolerance: 0)
    }

    /// Two sequences: one prefilling `new[0]` tokens after `cached[0]`, one decoding after
    /// `cached[1]`; block size 16, shuffled block tables. Long contexts make the GPU split
    /// the keys (flash-decoding), short ones not.
    static func batch(_ h: ParityHarness, cached: [Int], new: [Int])
        throws -> (AttentionMetadata, AttentionMetadata, tokens: Int, blocks: Int) {
        let bs = 16
        let needed = (0..<2).map { (cached[$0] + new[$0] + bs - 1) / bs }
        let blocks = needed.reduce(0, +) + 2
        var ids = (0..<blocks).map { Int32($0) }
        for i in stride(from: ids.count - 1, to: 0, by: -1) { ids.swapAt(i, h.int(i + 1)) }
        let tables = [Array(ids[0..<needed[0]]), Array(ids[needed[0]..<(needed[0] + needed[1])])]
        let width = needed.max() ?? 1
        var slots = [Int32](), starts: [Int32] = [0], lengths = [Int32]()
        for s in 0..<2 {
            for i in cached[s]..<(cached[s] + new[s]) {
                slots.append(tables[s][i / bs] * Int32(bs) + Int32(i % bs))
            }
            starts.append(starts[s] + Int32(new[s]))
            lengths.append(Int32(cached[s] + new[s]))
        }
        let flat = tables.flatMap { $0 + [Int32](repeating: 0, count: width - $0.count) }
        let sm = try h.ints(slots, [slots.count]), qs = try h.ints(starts, [3]), cl = try h.ints(lengths, [2])
        let bt = try h.ints(flat, [2, width])
        let tokens = slots.count, maxContext = Int(lengths.max() ?? 0)
        func meta(_ p: KeyPath<ParityHarness.Pair, Tensor>) -> AttentionMetadata {
            AttentionMetadata(slotMapping: sm[keyPath: p], queryStart: qs[keyPath: p], contextLengths: cl[keyPath: p],
                              blockTables: bt[keyPath: p], blockSize: bs, numSequences: 2, numTokens: tokens, maxContextLength: maxContext)
        }
        return (meta(\.cpu), meta(\.dev), tokens, blocks)
    }

    static let shapes: [(cached: [Int], new: [Int])] = [([20, 40], [5, 1]), ([200, 300], [3, 1])]
    /// Prefill and chunked-prefill steps, which bf16 runs on tensor cores (`flash_prefill`):
    /// partial 64-token tiles, a prefill after cached tokens, a one-token sequence beside one
    /// that prefills, and long enough for several double-buffered key tiles.
    static let prefillShapes: [(cached: [Int], new: [Int])] = [([0, 37], [150, 70]), ([100, 0], [1, 40]), ([0, 300], [260, 40])]

    static func attention(_ h: ParityHarness) throws {
        for shape in shapes + prefillShapes {
            let (mc, md, t, blocks) = try batch(h, cached: shape.cached, new: shape.new)
            for (heads, kvHeads, d) in [(8, 2, 32), (4, 4, 80), (12, 1, 64), (16, 4, 128)] {
                // Caches pre-filled with random history; the step writes its own tokens.
                let kc = try h.randomPair([blocks, 16, kvHeads, d]), vc = try h.randomPair([blocks, 16, kvHeads, d])
                let k = try h.randomPair([t, kvHeads, d]), v = try h.randomPair([t, kvHeads, d])
                let q = try h.randomPair([t, heads, d])
                let out = try h.poisoned([t, heads, d])
                h.cpu.writeKV(key: k.cpu, value: v.cpu, keyCache: kc.cpu, valueCache: vc.cpu, metadata: mc)
                h.dev.writeKV(key: k.dev, value: v.dev, keyCache: kc.dev, valueCache: vc.dev, metadata: md)
                h.compare("writeKV", kc, tolerance: 0)
                let scale = 1 / Float(d).squareRoot()
                h.cpu.pagedAttention(query: q.cpu, keyCache: kc.cpu, valueCache: vc.cpu, metadata: mc, scale: scale, out: out.cpu)
                h.dev.pagedAttention(query: q.dev, keyCache: kc.dev, valueCache: vc.dev, metadata: md, scale: scale, out: out.dev)
                h.compare("pagedAttention H=\(heads) Hkv=\(kvHeads) D=\(d) context \(mc.maxContextLength)", out)
            }
        }
    }

    /// The fused projection's norms, rotation and cache writes, against the CPU's split ops.
    static func prepareQKV(_ h: ParityHarness) throws {
        for (shape, interleaved) in [(shapes[0], false), (prefillShapes[0], true)] {
            let (mc, md, t, blocks) = try batch(h, cached: shape.cached, new: shape.new)
            let positions = try h.ints((0..<t).map { Int32($0 * 7 + 1) }, [t])
            for (heads, kvHeads, d, normed) in [(8, 2, 32, true), (12, 1, 64, false), (16, 4, 128, true)] {
                let kind: RopeParameters.Kind = interleaved ? .yarn(.init(factor: 4, originalMaxPositionEmbeddings: 64)) : .standard
                let params = RopeParameters(theta: 10000, dimension: d, kind: kind, interleaved: interleaved)
                let rc = try RotaryEmbedding(parameters: params, backend: h.cpu), rd = try RotaryEmbedding(parameters: params, backend: h.dev)
                let qkv = try h.randomPair([t, (heads + 2 * kvHeads) * d])
                let qn = try h.randomPair([d]), kn = try h.randomPair([d])
                let kc = try h.randomPair([blocks, 16, kvHeads, d]), vc = try h.randomPair([blocks, 16, kvHeads, d])
                let q = try h.poisoned([t, heads, d])
                h.cpu.prepareQKV(qkv.cpu, heads: heads, kvHeads: kvHeads, qNorm: normed ? qn.cpu : nil, kNorm: normed ? kn.cpu : nil,
                                 eps: 1e-6, positions: positions.cpu, rope: rc, query: q.cpu, keyCache: kc.cpu, valueCache: vc.cpu, metadata: mc)
                h.dev.prepareQKV(qkv.dev, heads: heads, kvHeads: kvHeads, qNorm: normed ? qn.dev : nil, kNorm: normed ? kn.dev : nil,
                                 eps: 1e-6, positions: positions.dev, rope: rd, query: q.dev, keyCache: kc.dev, valueCache: vc.dev, metadata: md)
                let what = "H=\(heads) Hkv=\(kvHeads) D=\(d)\(normed ? " normed" : "")\(interleaved ? " interleaved yarn" : "")"
                let tolerance = max(h.tolerance, 1e-4)
                h.compare("prepareQKV query \(what)", q, tolerance: tolerance)
                h.compare("prepareQKV keys \(what)", kc, tolerance: tolerance)
                h.compare("prepareQKV values \(what)", vc, tolerance: 0)
            }
        }
    }

    static func latent(_ h: ParityHarness) throws {
        for shape in shapes {
            let (mc, md, t, blocks) = try batch(h, cached: shape.cached, new: shape.new)
            for (heads, l, r) in [(4, 32, 16), (6, 96, 40)] {
                let cache = try h.randomPair([blocks, 16, l + r])
                let lat = try h.randomPair([t, l]), rk = try h.randomPair([t, 2 * r])
                h.cpu.writeLatentKV(latent: lat.cpu, ropeKey: rk.cpu.columnSlice(r..<(2 * r)), cache: cache.cpu, metadata: mc)
                h.dev.writeLatentKV(latent: lat.dev, ropeKey: rk.dev.columnSlice(r..<(2 * r)), cache: cache.dev, metadata: md)
                h.compare("writeLatentKV", cache, tolerance: 0)
                let q = try h.randomPair([t, heads, l + r])
                let out = try h.poisoned([t, heads, l])
                let ql = q.cpu.columnSlice(0..<l), qr = q.cpu.columnSlice(l..<(l + r))
                h.cpu.latentAttention(queryLatent: ql, queryRope: qr, cache: cache.cpu, latentDim: l, metadata: mc, scale: 0.1, out: out.cpu)
                h.dev.latentAttention(queryLatent: q.dev.columnSlice(0..<l), queryRope: q.dev.columnSlice(l..<(l + r)), cache: cache.dev,
                                      latentDim: l, metadata: md, scale: 0.1, out: out.dev)
                h.compare("latentAttention H=\(heads) L=\(l) R=\(r) context \(mc.maxContextLength)", out)
            }
        }
    }

    /// MLA prefill in the expanded form (bf16 on CUDA): the context gather from the paged
    /// latent cache, then attention with keys [nope part, shared rope key].
    static func expandedLatent(_ h: ParityHarness) throws {
        for shape in shapes + prefillShapes {
            var (mc, md, t, blocks) = try batch(h, cached: shape.cached, new: shape.new)
            var starts: [Int32] = [0]
            for (c, n) in zip(shape.cached, shape.new) { starts.append(starts[starts.count - 1] + Int32(c + n)) }
            let cs = try h.ints(starts, [starts.count]), total = Int(starts[starts.count - 1])
            (mc.contextStart, mc.totalContext, md.contextStart, md.totalContext) = (cs.cpu, total, cs.dev, total)
            for (heads, l, n, r, v) in [(3, 32, 32, 16, 32), (2, 64, 128, 64, 128)] {
                let cache = try h.randomPair([blocks, 16, l + r])
                let context = try h.poisoned([total, l + r])
                h.cpu.gatherContext(cache.cpu, metadata: mc, out: context.cpu)
                h.dev.gatherContext(cache.dev, metadata: md, out: context.dev)
                h.compare("gatherContext W=\(l + r) context \(mc.maxContextLength)", context, tolerance: 0)
                guard h.dev.expandsLatentPrefill(nopeDim: n, ropeDim: r, valueDim: v) else { continue }
                let kv = try h.randomPair([total, heads * (n + v)]), q = try h.randomPair([t, heads, n + r])
                let out = try h.poisoned([t, heads, v])
                h.cpu.expandedLatentAttention(query: q.cpu, keyValues: kv.cpu, ropeKeys: context.cpu.columnSlice(l..<(l + r)),
                                              nopeDim: n, valueDim: v, metadata: mc, scale: 0.1, out: out.cpu)
                h.dev.expandedLatentAttention(query: q.dev, keyValues: kv.dev, ropeKeys: context.dev.columnSlice(l..<(l + r)),
                                              nopeDim: n, valueDim: v, metadata: md, scale: 0.1, out: out.dev)
                h.compare("expandedLatentAttention N=\(n) R=\(r) V=\(v) H=\(heads) context \(mc.maxContextLength)", out)
            }
        }
    }

    static func routing(_ h: ParityHarness) throws {
        let configs: [(String, RouterConfig, Int, Bool)] = [
            ("softmax top-4 normalized", RouterConfig(scoring: .softmax, topK: 4, normalize: true), 16, false),
            ("softmax top-8 of 128", RouterConfig(scoring: .softmax, topK: 8, normalize: false), 128, false),
            ("sigmoid grouped (DeepSeek-V3)", RouterConfig(scoring: .sigmoid, topK: 8, normalize: true, numGroups: 8, topKGroups: 4,
                                                           scalingFactor: 2.5), 256, true),
            ("softmax grouped top-1 (DeepSeek-V2)", RouterConfig(scoring: .softmax, topK: 6, normalize: false, numGroups: 8, topKGroups: 3,
                                                                 groupScoreTopTwo: false), 64, false),
        ]
        // The models route on f32 logits (with a bias in the compute dtype); also check the
        // compute-dtype logits path.
        for (name, router, experts, bias) in configs + [(configs[2].0 + ", f32 logits", configs[2].1, configs[2].2, true)] {
            let tokens = 37
            let f32Logits = name.hasSuffix("f32 logits")
            let logits = try h.floats(h.random(tokens * experts, scale: 3), [tokens, experts], dtype: f32Logits ? .f32 : nil)
            let b = bias ? try h.randomPair([experts], scale: 0.1) : nil
            let ids = try h.empty([tokens, router.topK], dtype: .i32)
            let w = try h.empty([tokens, router.topK], dtype: .f32)
            h.cpu.routeTopK(logits: logits.cpu, correctionBias: b?.cpu, router: router, ids: ids.cpu, weights: w.cpu)
            h.dev.routeTopK(logits: logits.dev, correctionBias: b?.dev, router: router, ids: ids.dev, weights: w.dev)
            h.compareInts("routeTopK ids: \(name)", ids)
            h.compare("routeTopK weights: \(name)", w, tolerance: 1e-5)
        }
    }

    static func moe(_ h: ParityHarness) throws {
        let tokens = 29, k = 3, experts = 10, width = 2
        let logical = try h.ints((0..<(tokens * k)).map { _ in Int32(h.int(experts + 1)) - (h.int(20) == 0 ? 12 : 0) }, [tokens, k])
        var table = [Int32](), counts = [Int32]()
        for e in 0..<experts {
            let c = e % 3
            counts.append(Int32(c))
            for r in 0..<width { table.append(r < c ? Int32((e * 2 + r) % 18) : -1) }
        }
        let t = try h.ints(table, [experts, width]), c = try h.ints(counts, [experts])
        let slots = try h.empty([tokens, k], dtype: .i32)
        h.cpu.mapExperts(logical.cpu, table: t.cpu, replicaCount: c.cpu, slotBase: 4, slotCount: 9, out: slots.cpu)
        h.dev.mapExperts(logical.dev, table: t.dev, replicaCount: c.dev, slotBase: 4, slotCount: 9, out: slots.dev)
        h.compareInts("mapExperts", slots)
        try compareGrouping(h, slots: slots.cpu.reshaped([tokens * k]), slotsDevice: slots.dev.reshaped([tokens * k]),
                            tokens: tokens, k: k, numSlots: 9, label: "")
        // Prefill-sized: enough pairs for the sort in runs over all SMs (group_chunk_*).
        let manyTokens = 333, manyK = 4, manySlots = 40
        let many = try h.ints((0..<(manyTokens * manyK)).map { _ in h.int(25) == 0 ? -1 : Int32(h.int(manySlots)) }, [manyTokens * manyK])
        try compareGrouping(h, slots: many.cpu, slotsDevice: many.dev, tokens: manyTokens, k: manyK, numSlots: manySlots,
                            label: ", \(manyTokens * manyK) pairs")
    }

    /// groupBySlot of `tokens · k` pairs, then the weighted scatter-add of random rows by the
    /// grouping it returned.
    static func compareGrouping(_ h: ParityHarness, slots: Tensor, slotsDevice: Tensor, tokens: Int, k: Int, numSlots: Int,
                                label: String) throws {
        let pairs = tokens * k
        let weights = try h.floats(h.random(pairs), [pairs], dtype: .f32)
        let ti = try h.empty([pairs], dtype: .i32), off = try h.empty([numSlots + 1], dtype: .i32)
        let sw = try h.empty([pairs], dtype: .f32)
        h.cpu.groupBySlot(slots, weights: weights.cpu, pairsPerToken: k, numSlots: numSlots,
                          tokenIndex: ti.cpu, sortedWeights: sw.cpu, offsets: off.cpu)
        h.dev.groupBySlot(slotsDevice, weights: weights.dev, pairsPerToken: k, numSlots: numSlots,
                          tokenIndex: ti.dev, sortedWeights: sw.dev, offsets: off.dev)
        h.compareInts("groupBySlot token index\(label)", ti)
        h.compareInts("groupBySlot offsets\(label)", off)
        h.compare("groupBySlot weights\(label)", sw, tolerance: 0)
        let y = try h.randomPair([pairs, 40])
        let out = try h.randomPair([tokens, 40])
        h.cpu.scatterAddWeighted(y.cpu, rowIndex: ti.cpu, weight: sw.cpu, out: out.cpu)
        h.dev.scatterAddWeighted(y.dev, rowIndex: ti.dev, weight: sw.dev, out: out.dev)
        h.compare("scatterAddWeighted\(label)", out)
    }

    /// The fixed-size expert exchange's ops (see `MoEBlock.expertParallelFixed`).
    static func expertExchange(_ h: ParityHarness) throws {
        let tokens = 23, k = 4, perRank = 5, ranks = 3, d = 48
        let slots = try h.ints((0..<(tokens * k)).map { _ in Int32(h.int(ranks * perRank + 2)) - 2 }, [tokens, k])
        let mask = try h.ints((0..<tokens).map { $0 % 7 == 3 ? -1 : Int32($0) }, [tokens])
        h.cpu.maskPairs(slots.cpu, rowMask: mask.cpu)
        h.dev.maskPairs(slots.dev, rowMask: mask.dev)
        h.compareInts("maskPairs", slots)
        let local = try h.empty([tokens * k], dtype: .i32)
        h.cpu.rebaseSlots(slots.cpu, base: perRank, count: perRank, out: local.cpu)
        h.dev.rebaseSlots(slots.dev, base: perRank, count: perRank, out: local.dev)
        h.compareInts("rebaseSlots", local)
        let counts = try h.ints([Int32](repeating: 2, count: ranks * perRank), [ranks * perRank])
        h.cpu.countSlots(slots.cpu, counts: counts.cpu)
        h.dev.countSlots(slots.dev, counts: counts.dev)
        h.compareInts("countSlots", counts)
        let x = try h.randomPair([tokens * k, d])
        let rows = try h.ints((0..<(tokens * k)).map { i in i % 5 == 0 ? -1 : Int32((i * 7) % (tokens * k)) }, [tokens * k])
        let scattered = try h.randomPair([tokens * k, d])
        h.cpu.scatterRows(x.cpu, rowIndex: rows.cpu, out: scattered.cpu)
        h.dev.scatterRows(x.dev, rowIndex: rows.dev, out: scattered.dev)
        h.compare("scatterRows", scattered, tolerance: 0)
        let logical = try h.ints((0..<(tokens * k)).map { _ in Int32(h.int(9)) }, [tokens, k])
        let weights = try h.floats(h.random(tokens * k), [tokens, k], dtype: .f32)
        let received = try h.randomPair([ranks * tokens * k, d])
        let out = try h.randomPair([tokens, d])
        h.cpu.combinePairs(received.cpu, slots: slots.cpu, logical: logical.cpu, weights: weights.cpu, slotsPerRank: perRank,
                           pairsPerRank: tokens * k, out: out.cpu)
        h.dev.combinePairs(received.dev, slots: slots.dev, logical: logical.dev, weights: weights.dev, slotsPerRank: perRank,
                           pairsPerRank: tokens * k, out: out.dev)
        h.compare("combinePairs", out)
    }
}
