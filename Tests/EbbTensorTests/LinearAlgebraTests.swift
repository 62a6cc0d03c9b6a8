import Foundation
import Testing
import EbbTensor

/// Element (i, j) of `op(M)` for a row-major matrix at `base` with leading dimension `ld`.
private func element(_ data: [Float], base: Int, ld: Int, transposed: Bool, _ i: Int, _ j: Int) -> Double {
    Double(transposed ? data[base + j * ld + i] : data[base + i * ld + j])
}

struct GemmCase: Sendable, CustomTestStringConvertible {
    var m: Int, n: Int, k: Int, batch: Int
    var transA: Bool, transB: Bool
    var alpha: Float, beta: Float
    var testDescription: String { "m\(m) n\(n) k\(k) b\(batch) tA\(transA) tB\(transB) α\(alpha) β\(beta)" }
}

@Suite struct LinearAlgebraTests {
    static let gemmCases: [GemmCase] = [
        GemmCase(m: 1, n: 1, k: 1, batch: 1, transA: false, transB: false, alpha: 1, beta: 0),
        GemmCase(m: 3, n: 5, k: 7, batch: 1, transA: false, transB: true, alpha: 1, beta: 0),
        GemmCase(m: 3, n: 5, k: 7, batch: 1, transA: true, transB: false, alpha: 0.5, beta: 0.25),
        GemmCase(m: 17, n: 9, k: 33, batch: 1, transA: true, transB: true, alpha: -1.5, beta: 1),
        GemmCase(m: 4, n: 6, k: 5, batch: 3, transA: false, transB: false, alpha: 1, beta: 0.5),
        GemmCase(m: 7, n: 3, k: 11, batch: 4, transA: false, transB: true, alpha: 2, beta: -0.75),
        GemmCase(m: 5, n: 8, k: 2, batch: 2, transA: true, transB: true, alpha: 1, beta: 0),
        GemmCase(m: 33, n: 65, k: 31, batch: 2, transA: true, transB: false, alpha: 0.3, beta: 0.7),
    ]

    /// Operands with padded leading dimensions and batch strides (gaps between matrices),
    /// placed at an offset inside a column-sliced tensor.
    @Test(arguments: gemmCases)
    func gemmMatchesReference(_ c: GemmCase) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(c.m * 1000 + c.n * 37 + c.k + c.batch * 100_003))
        // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k when transposed).
        let (aRows, aCols) = c.transA ? (c.k, c.m) : (c.m, c.k)
        let (bRows, bCols) = c.transB ? (c.n, c.k) : (c.k, c.n)
        let lda = aCols + 3, ldb = bCols + 1, ldc = c.n + 2
        let strideA = aRows * lda + 5, strideB = bRows * ldb + 2, strideC = c.m * ldc + 4
        let offA = 2, offB = 1, offC = 3
        let aData = rng.floats(offA + strideA * c.batch)
        let bData = rng.floats(offB + strideB * c.batch)
        let cData = rng.floats(offC + strideC * c.batch)
        let a = try upload(backend, aData, [aData.count])
        let b = try upload(backend, bData, [bData.count])
        let out = try upload(backend, cData, [cData.count])
        backend.gemm(MatrixOperand(a, offset: offA, leadingDimension: lda, batchStride: strideA, transposed: c.transA),
                     MatrixOperand(b, offset: offB, leadingDimension: ldb, batchStride: strideB, transposed: c.transB),
                     MatrixOperand(out, offset: offC, leadingDimension: ldc, batchStride: strideC),
                     m: c.m, n: c.n, k: c.k, batch: c.batch, alpha: c.alpha, beta: c.beta)
        var expected = cData.map(Double.init)
        for bi in 0..<c.batch {
            for i in 0..<c.m {
                for j in 0..<c.n {
                    var sum = 0.0
                    for p in 0..<c.k {
                        sum += element(aData, base: offA + bi * strideA, ld: lda, transposed: c.transA, i, p)
                            * element(bData, base: offB + bi * strideB, ld: ldb, transposed: c.transB, p, j)
                    }
                    let at = offC + bi * strideC + i * ldc + j
                    expected[at] = Double(c.alpha) * sum + Double(c.beta) * Double(cData[at])
                }
            }
        }
        // Elements outside the C matrices (padding, gaps) must be unchanged.
        expectClose(backend.downloadFloats(out), expected, atol: 1e-5, rtol: 1e-5, c.testDescription)
    }

    /// A column slice as operand: the tensor offset and row stride carry through.
    @Test func gemmOnColumnSlices() throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: 7)
        let m = 5, k = 6, n = 4
        let xv = rng.floats(m * k), wv = rng.floats(n * k)
        let (x, _) = try stridedView(backend, xv, shape: [m, k], lead: 3, trail: 2)
        let w = try upload(backend, wv, [n, k])
        let (y, yParent) = try stridedView(backend, [Float](repeating: 0, count: m * n), shape: [m, n], lead: 1, trail: 4)
        backend.gemm(MatrixOperand(x), MatrixOperand(w, transposed: true), MatrixOperand(y),
                     m: m, n: n, k: k, batch: 1, alpha: 1, beta: 0)
        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { expected[i * n + j] += Double(xv[i * k + p]) * Double(wv[j * k + p]) } } }
        expectClose(backend.downloadFloats(y), expected)
        #expect(gapsUntouched(backend, yParent, lead: 1, cols: n))
    }

    /// k = 0: the product is empty, so C = beta·C; with beta = 0 C is not read (BLAS
    /// convention), so NaNs in an unwritten output do not survive.
    @Test func gemmWithEmptyInnerDimension() throws {
        let backend = makeBackend()
        let a = try backend.empty([1], dtype: .f32)
        let c1 = try upload(backend, [1, 2, 3, 4, 5, 6], [2, 3])
        backend.gemm(MatrixOperand(a), MatrixOperand(a), MatrixOperand(c1), m: 2, n: 3, k: 0, batch: 1, alpha: 1, beta: 0.5)
        #expect(backend.downloadFloats(c1) == [0.5, 1, 1.5, 2, 2.5, 3])
        let c2 = try upload(backend, [.nan, 2, .infinity, 4], [2, 2])
        backend.gemm(MatrixOperand(a), MatrixOperand(a), MatrixOperand(c2), m: 2, n: 2, k: 0, batch: 1, alpha: 1, beta: 0)
        #expect(backend.downloadFloats(c2) == [0, 0, 0, 0])
    }

    /// beta = 0 with k > 0 overwrites garbage in C too.
    @Test func gemmBetaZeroIgnoresOutput() throws {
        let backend = makeBackend()
        let a = try upload(backend, [1, 2, 3, 4], [2, 2])
        let b = try upload(backend, [1, 0, 0, 1], [2, 2])
        let c = try upload(backend, [.nan, .nan, .infinity, -.infinity], [2, 2])
        backend.gemm(MatrixOperand(a), MatrixOperand(b), MatrixOperand(c), m: 2, n: 2, k: 2, batch: 1, alpha: 1, beta: 0)
        #expect(backend.downloadFloats(c) == [1, 2, 3, 4])
    }

    /// Groups of rows per expert, including empty groups at the start, middle and end;
    /// x and out are strided views; rows past the last offset are left alone.
    @Test(arguments: [
        [0, 0, 3, 3, 4, 9, 9],
        [0, 1, 2, 3, 4, 5, 6],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 7, 7, 7, 7, 7, 8],
    ])
    func groupedLinearMatchesReference(_ offsets: [Int]) throws {
        let backend = makeBackend()
        var rng = SeededRNG(seed: UInt64(offsets.reduce(0, +)))
        let experts = offsets.count - 1, n = 5, k = 7, rows = 10
        let xv = rng.floats(rows * k), wv = rng.floats(experts * n * k)
        let (x, _) = try stridedView(backend, xv, shape: [rows, k], lead: 2, trail: 1)
        let w = try upload(backend, wv, [experts, n, k])
        let off = try uploadInts(backend, offsets.map { Int32($0) }, [experts + 1])
        let initial = rng.floats(rows * n)
        let (out, outParent) = try stridedView(backend, initial, shape: [rows, n], lead: 0, trail: 3)
        backend.groupedLinear(x, weights: w, offsets: off, out: out)
        var expected = initial.map(Double.init)
        for e in 0..<experts {
            for r in offsets[e]..<offsets[e + 1] {
                for j in 0..<n {
                    var sum = 0.0
                    for p in 0..<k { sum += Double(xv[r * k + p]) * Double(wv[(e * n + j) * k + p]) }
                    expected[r * n + j] = sum
                }
            }
        }
        expectClose(backend.downloadFloats(out), expected)
        #expect(gapsUntouched(backend, outParent, lead: 0, cols: n))
    }
}
