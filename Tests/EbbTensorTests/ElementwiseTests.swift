import Foundation
import Testing
import EbbTensor

@Suite struct ElementwiseTests {
    @Test(arguments: [(1, 1), (5, 7), (3, 129), (9, 64)])
    func rmsNormMatchesReference(_ rows: Int, _ d: Int) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(rows * 131 + d))
        let xv = rng.floats(rows * d, in: -3...3), wv = rng.floats(d, in: 0.5...1.5)
        let eps: Float = 1e-6
        var expected = [Double](repeating: 0, count: rows * d)
        for r in 0..<rows {
            var ss = 0.0
            for i in 0..<d { ss += Double(xv[r * d + i]) * Double(xv[r * d + i]) }
            let inv = 1 / (ss / Double(d) + Double(eps)).squareRoot()
            for i in 0..<d { expected[r * d + i] = Double(xv[r * d + i]) * inv * Double(wv[i]) }
        }
        let w = try upload(backend, wv, [d])
        // Strided input → strided output.
        let (x, xParent) = try stridedView(backend, xv, shape: [rows, d], lead: 2, trail: 1)
        let (out, outParent) = try stridedView(backend, [Float](repeating: 0, count: rows * d), shape: [rows, d], lead: 1, trail: 2)
        backend.rmsNorm(x, weight: w, eps: eps, out: out)
        expectClose(backend.downloadFloats(out), expected, atol: 1e-5, rtol: 1e-5, "strided")
        #expect(gapsUntouched(backend, outParent, lead: 1, cols: d))
        // In place on the strided view.
        backend.rmsNorm(x, weight: w, eps: eps, out: x)
        expectClose(backend.downloadFloats(x), expected, atol: 1e-5, rtol: 1e-5, "in place")
        #expect(gapsUntouched(backend, xParent, lead: 2, cols: d))
        // 3-D input flattens to rows.
        let x3 = try upload(backend, xv, [1, rows, d])
        backend.rmsNorm(x3, weight: w, eps: eps, out: x3)
        expectClose(backend.downloadFloats(x3), expected, atol: 1e-5, rtol: 1e-5, "3-D in place")
    }

    @Test func rmsNormOfZeroRowIsFinite() throws {
        let backend = makeBackend()
        let x = try upload(backend, [0, 0, 0], [1, 3])
        let w = try upload(backend, [1, 2, 3], [3])
        backend.rmsNorm(x, weight: w, eps: 1e-5, out: x)
        #expect(backend.downloadFloats(x) == [0, 0, 0])
    }

    @Test(arguments: [(1, 1), (4, 3), (7, 33)])
    func addMatchesReference(_ rows: Int, _ d: Int) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(rows + d * 7))
        let av = rng.floats(rows * d), bv = rng.floats(rows * d)
        let (a, _) = try stridedView(backend, av, shape: [rows, d], lead: 1, trail: 0)
        let b = try upload(backend, bv, [rows, d])
        backend.add(a, b, out: a)
        expectClose(backend.downloadFloats(a), zip(av, bv).map { Double($0) + Double($1) }, atol: 1e-6)
    }

    @Test(arguments: [(1, 1), (3, 5), (6, 64)])
    func siluAndMulMatchesReference(_ rows: Int, _ inner: Int) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(rows * 17 + inner))
        let xv = rng.floats(rows * 2 * inner, in: -6...6)
        var expected = [Double](repeating: 0, count: rows * inner)
        for r in 0..<rows {
            for i in 0..<inner {
                let g = Double(xv[r * 2 * inner + i]), u = Double(xv[r * 2 * inner + inner + i])
                expected[r * inner + i] = g / (1 + exp(-g)) * u
            }
        }
        let (x, _) = try stridedView(backend, xv, shape: [rows, 2 * inner], lead: 3, trail: 2)
        let (out, outParent) = try stridedView(backend, [Float](repeating: 0, count: rows * inner), shape: [rows, inner], lead: 2, trail: 1)
        backend.siluAndMul(x, out: out)
        expectClose(backend.downloadFloats(out), expected, atol: 1e-5, rtol: 1e-5)
        #expect(gapsUntouched(backend, outParent, lead: 2, cols: inner))
    }

    // MARK: Rope

    /// Reference rope in Double, with the angle formed as the op forms it (f32 position ×
    /// f32 inverse frequency) so positions far from zero compare tightly.
    private func referenceRope(_ x: [Float], tokens: Int, heads: Int, d: Int, positions: [Int32],
                               inv: [Float], factor: Float, interleaved: Bool) -> [Double] {
        var out = x.map(Double.init)
        let half = d / 2
        for t in 0..<tokens {
            for h in 0..<heads {
                let base = (t * heads + h) * d
                for i in 0..<half {
                    let angle = Double(Float(positions[t]) * inv[i])
                    let c = cos(angle) * Double(factor), s = sin(angle) * Double(factor)
                    let (ia, ib) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                    let a = Double(x[base + ia]), b = Double(x[base + ib])
                    out[base + ia] = a * c - b * s
                    out[base + ib] = b * c + a * s
                }
            }
        }
        return out
    }

    static let ropeParameters: [RopeParameters] = [
        RopeParameters(theta: 10000, dimension: 8),
        RopeParameters(theta: 1_000_000, dimension: 16, kind: .linear(factor: 4)),
        RopeParameters(theta: 10000, dimension: 8, interleaved: true),
        RopeParameters(theta: 10000, dimension: 64,
                       kind: .yarn(.init(factor: 32, originalMaxPositionEmbeddings: 4096, truncate: false)),
                       interleaved: false),
        RopeParameters(theta: 10000, dimension: 64,
                       kind: .yarn(.init(factor: 40, originalMaxPositionEmbeddings: 4096, mscale: 1, mscaleAllDim: 1)),
                       interleaved: true),
    ]

    /// The rope part of each head as a column slice of a wider `[T, H, nope + D]` tensor,
    /// as the DeepSeek models take it; the other columns must not change.
    @Test(arguments: ropeParameters)
    func ropeMatchesReference(_ p: RopeParameters) throws {
        let backend = makeBackend()
        let rotary = try RotaryEmbedding(parameters: p, backend: backend)
        var rng = SeededRNG(seed: UInt64(p.dimension))
        let tokens = 11, heads = 3, d = p.dimension, nope = 5
        let xv = rng.floats(tokens * heads * d)
        let positions: [Int32] = (0..<tokens).map { Int32($0 * $0 * 97 % 5000) }
        let (x, parent) = try stridedView(backend, xv, shape: [tokens, heads, d], lead: nope, trail: 0)
        let pos = try uploadInts(backend, positions, [tokens])
        backend.rope(x, positions: pos, rope: rotary)
        let inv = p.inverseFrequencies()
        let expected = referenceRope(xv, tokens: tokens, heads: heads, d: d, positions: positions,
                                     inv: inv.values, factor: inv.attentionFactor, interleaved: p.interleaved)
        expectClose(backend.downloadFloats(x), expected, atol: 2e-5, rtol: 1e-5)
        #expect(gapsUntouched(backend, parent, lead: nope, cols: d))
        // Position 0 is the identity up to the attention factor.
        if positions[0] == 0 {
            let first = Array(backend.downloadFloats(x)[0..<d])
            expectClose(first, xv[0..<d].map { Double($0) * Double(inv.attentionFactor) }, atol: 1e-6, rtol: 1e-6)
        }
    }

    /// ⟨rope(q, m), rope(k, n)⟩ depends on m − n only, for both layouts.
    @Test(arguments: [false, true])
    func ropeDotProductDependsOnlyOnDistance(_ interleaved: Bool) throws {
        let backend = makeBackend()
        let d = 32
        let rotary = try RotaryEmbedding(parameters: RopeParameters(theta: 10000, dimension: d, interleaved: interleaved), backend: backend)
        var rng = SeededRNG(seed: interleaved ? 1 : 2)
        let q = rng.floats(d), k = rng.floats(d)
        // (m, n) pairs: three with distance 5, one with distance 6.
        let pairs: [(Int32, Int32)] = [(7, 2), (20, 15), (105, 100), (8, 2)]
        var dots = [Double]()
        for (m, n) in pairs {
            let qt = try upload(backend, q, [1, 1, d]), kt = try upload(backend, k, [1, 1, d])
            backend.rope(qt, positions: try uploadInts(backend, [m], [1]), rope: rotary)
            backend.rope(kt, positions: try uploadInts(backend, [n], [1]), rope: rotary)
            dots.append(zip(backend.downloadFloats(qt), backend.downloadFloats(kt)).reduce(0.0) { $0 + Double($1.0) * Double($1.1) })
        }
        #expect(abs(dots[0] - dots[1]) < 1e-4, "\(dots)")
        #expect(abs(dots[0] - dots[2]) < 1e-4, "\(dots)")
        #expect(abs(dots[0] - dots[3]) > 1e-3, "a different distance should change the dot product: \(dots)")
        // Rotation keeps norms.
        let qt = try upload(backend, q, [1, 1, d])
        backend.rope(qt, positions: try uploadInts(backend, [1234], [1]), rope: rotary)
        let n0 = q.reduce(0.0) { $0 + Double($1 * $1) }, n1 = backend.downloadFloats(qt).reduce(0.0) { $0 + Double($1 * $1) }
        #expect(abs(n0 - n1) < 1e-4)
    }

    // MARK: Lookup

    @Test func embeddingCopiesRowsAndZeroesOutOfRange() throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: 3)
        let vocab = 6, d = 5
        let tv = rng.floats(vocab * d)
        let (table, _) = try stridedView(backend, tv, shape: [vocab, d], lead: 1, trail: 1)
        let ids: [Int32] = [0, 5, 3, -1, 6, Int32.max, Int32.min, 3]
        let (out, parent) = try stridedView(backend, [Float](repeating: 9, count: ids.count * d), shape: [ids.count, d], lead: 2, trail: 0)
        backend.embedding(ids: try uploadInts(backend, ids, [ids.count]), table: table, out: out)
        var expected = [Double]()
        for id in ids {
            if id >= 0 && Int(id) < vocab { expected += tv[Int(id) * d ..< Int(id) * d + d].map(Double.init) }
            else { expected += [Double](repeating: 0, count: d) }
        }
        #expect(backend.downloadFloats(out).map(Double.init) == expected)
        #expect(gapsUntouched(backend, parent, lead: 2, cols: d))
    }

    @Test func argmaxTakesLowestIndexOnTies() throws {
        let backend = makeBackend()
        let rows: [[Float]] = [
            [1, 3, 3, 2],
            [5, 5, 5, 5],
            [-.infinity, -.infinity, -.infinity, -.infinity],
            [-1, -2, -0.5, -0.5],
            [0, 0, 0, 7],
            [.infinity, 1, .infinity, 0],
            [-3, -3, -4, -9],
        ]
        let (x, _) = try stridedView(backend, rows.flatMap { $0 }, shape: [rows.count, 4], lead: 1, trail: 2)
        let out = try backend.empty([rows.count], dtype: .i32)
        backend.argmax(x, out: out)
        #expect(backend.downloadInts(out) == [1, 0, 0, 2, 3, 0, 0])
    }

    @Test func argmaxMatchesReferenceOnRandomRows() throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: 11)
        let r = 37, v = 101
        // Coarse values so ties occur often.
        let xv = (0..<(r * v)).map { _ in Float(Int.random(in: -20...20, using: &rng)) }
        let x = try upload(backend, xv, [r, v])
        let out = try backend.empty([r], dtype: .i32)
        backend.argmax(x, out: out)
        let expected: [Int32] = (0..<r).map { row in
            let slice = xv[(row * v)..<(row * v + v)]
            let m = slice.max() ?? 0
            return Int32((slice.firstIndex(of: m) ?? 0) - row * v)
        }
        #expect(backend.downloadInts(out) == expected)
    }

    @Test func gatherRowsCopiesIndexedRows() throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: 5)
        let rows = 9, d = 6
        let xv = rng.floats(rows * d)
        let (x, _) = try stridedView(backend, xv, shape: [rows, d], lead: 0, trail: 2)
        let indices: [Int32] = [8, 0, 3, 3, 7, 1, 8, 2, 5, 4, 6, 0, 9, -1]
        let (out, parent) = try stridedView(backend, [Float](repeating: 7, count: indices.count * d), shape: [indices.count, d], lead: 1, trail: 1)
        backend.gatherRows(x, indices: try uploadInts(backend, indices, [indices.count]), out: out)
        var expected = [Double]()
        for i in indices {
            // Out-of-range indices give zero rows rather than reading outside x.
            if i >= 0 && Int(i) < rows { expected += xv[Int(i) * d ..< Int(i) * d + d].map(Double.init) }
            else { expected += [Double](repeating: 0, count: d) }
        }
        #expect(backend.downloadFloats(out).map(Double.init) == expected)
        #expect(gapsUntouched(backend, parent, lead: 1, cols: d))
    }
}
