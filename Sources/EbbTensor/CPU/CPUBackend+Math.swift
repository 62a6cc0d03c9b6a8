import CEbbBLAS
import Foundation

extension CPUBackend {
    // MARK: GEMM

    public func gemm(_ a: MatrixOperand, _ b: MatrixOperand, _ c: MatrixOperand,
                     m: Int, n: Int, k: Int, batch: Int, alpha: Float, beta: Float) {
        guard m > 0, n > 0, batch > 0 else { return }
        precondition(a.tensor.dtype == .f32 && b.tensor.dtype == .f32 && c.tensor.dtype == .f32)
        precondition(!c.transposed, "output of gemm cannot be transposed")
        let pa = a.tensor.floatPointer + a.offset
        let pb = b.tensor.floatPointer + b.offset
        let pc = c.tensor.floatPointer + c.offset
        if k == 0 {
            for i in 0..<batch {
                for r in 0..<m {
                    for col in 0..<n {
                        // beta = 0 means C is not read (BLAS convention): NaNs do not survive.
                        let at = i * c.batchStride + r * c.leadingDimension + col
                        pc[at] = beta == 0 ? 0 : pc[at] * beta
                    }
                }
            }
            return
        }
        for i in 0..<batch {
            cblas_sgemm(CblasRowMajor,
                        a.transposed ? CblasTrans : CblasNoTrans,
                        b.transposed ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha,
                        pa + i * a.batchStride, Int32(a.leadingDimension),
                        pb + i * b.batchStride, Int32(b.leadingDimension),
                        beta, pc + i * c.batchStride, Int32(c.leadingDimension))
        }
    }

    public func groupedLinear(_ x: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        precondition(weights.shape.count == 3 && weights.isContiguous)
        let experts = weights.shape[0], n = weights.shape[1], k = weights.shape[2]
        precondition(offsets.count == experts + 1 && x.columns == k && out.columns == n)
        let off = offsets.int32Pointer
        let px = x.floatPointer, pw = weights.floatPointer, po = out.floatPointer
        for e in 0..<experts {
            let start = Int(off[e]), end = Int(off[e + 1])
            guard end > start else { continue }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                        Int32(end - start), Int32(n), Int32(k), 1,
                        px + start * x.rowStride, Int32(x.rowStride),
                        pw + e * n * k, Int32(k),
                        0, po + start * out.rowStride, Int32(out.rowStride))
        }
    }

    public func groupedLinear(_ x: Tensor, rowIndex: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        let gathered: Tensor
        do { gathered = try empty([rowIndex.count, x.columns], dtype: .f32) } catch {
            preconditionFailure("groupedLinear: \(error)")
        }
        gatherRows(x, indices: rowIndex, out: gathered)
        groupedLinear(gathered, weights: weights, offsets: offsets, out: out)
    }

    public func groupedSwiGLULinear(_ gateUp: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        let activated: Tensor
        do { activated = try empty([gateUp.rows, gateUp.columns / 2], dtype: .f32) } catch {
            preconditionFailure("groupedSwiGLULinear: \(error)")
        }
        siluAndMul(gateUp, out: activated)
        groupedLinear(activated, weights: weights, offsets: offsets, out: out)
    }

    // MARK: Elementwise

    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        let d = x.columns
        precondition(weight.count == d && out.columns == d && out.rows == x.rows)
        let px = x.floatPointer, pw = weight.floatPointer, po = out.floatPointer
        let xs = x.rowStride, os = out.rowStride
        parallelFor(x.rows, grain: max(1, 4096 / max(d, 1))) { rows in
            for r in rows {
                let src = px + r * xs, dst = po + r * os
                var sum: Float = 0
                for i in 0..<d { sum += src[i] * src[i] }
                let inv = 1 / (sum / Float(d) + eps).squareRoot()
                for i in 0..<d { dst[i] = pw[i] * (src[i] * inv) }
            }
        }
    }

    public func add(_ a: Tensor, _ b: Tensor, out: Tensor) {
        precondition(a.count == b.count && a.count == out.count && a.columns == out.columns && b.columns == out.columns)
        let d = a.columns
        let pa = a.floatPointer, pb = b.floatPointer, po = out.floatPointer
        parallelFor(a.rows, grain: max(1, 16384 / max(d, 1))) { rows in
            for r in rows {
                let x = pa + r * a.rowStride, y = pb + r * b.rowStride, z = po + r * out.rowStride
                for i in 0..<d { z[i] = x[i] + y[i] }
            }
        }
    }

    public func siluAndMul(_ x: Tensor, out: Tensor) {
        let inner = out.columns
        precondition(x.columns == 2 * inner && x.rows == out.rows)
        let px = x.floatPointer, po = out.floatPointer
        parallelFor(x.rows, grain: max(1, 8192 / max(inner, 1))) { rows in
            for r in rows {
                let src = px + r * x.rowStride, dst = po + r * out.rowStride
                for i in 0..<inner {
                    let g = src[i]
                    dst[i] = (g / (1 + expf(-g))) * src[inner + i]
                }
            }
        }
    }

    public func rope(_ x: Tensor, positions: Tensor, rope: RotaryEmbedding) {
        precondition(x.shape.count == 3 && x.columns == rope.dimension)
        let heads = x.shape[1]
        let d = rope.dimension, half = d / 2
        let inv = rope.inverseFrequencies.floatPointer
        let pos = positions.int32Pointer
        let factor = rope.attentionFactor
        let interleaved = rope.interleaved
        let px = x.floatPointer
        parallelFor(x.shape[0], grain: 8) { tokens in
            var cosTable = [Float](repeating: 0, count: half)
            var sinTable = [Float](repeating: 0, count: half)
            for t in tokens {
                let p = Float(pos[t])
                for i in 0..<half {
                    let angle = p * inv[i]
                    cosTable[i] = cosf(angle) * factor
                    sinTable[i] = sinf(angle) * factor
                }
                for h in 0..<heads {
                    let row = px + (t * heads + h) * x.rowStride
                    if interleaved {
                        for i in 0..<half {
                            let a = row[2 * i], b = row[2 * i + 1]
                            row[2 * i] = a * cosTable[i] - b * sinTable[i]
                            row[2 * i + 1] = b * cosTable[i] + a * sinTable[i]
                        }
                    } else {
                        for i in 0..<half {
                            let a = row[i], b = row[i + half]
                            row[i] = a * cosTable[i] - b * sinTable[i]
                            row[i + half] = b * cosTable[i] + a * sinTable[i]
                        }
                    }
                }
            }
        }
    }

    public func embedding(ids: Tensor, table: Tensor, out: Tensor) {
        let d = table.columns, vocab = table.rows
        precondition(out.columns == d && out.rows == ids.count)
        let pid = ids.int32Pointer, pt = table.floatPointer, po = out.floatPointer
        for t in 0..<ids.count {
            let id = Int(pid[t])
            let dst = po + t * out.rowStride
            if id >= 0 && id < vocab {
                dst.update(from: pt + id * table.rowStride, count: d)
            } else {
                dst.update(repeating: 0, count: d)
            }
        }
    }

    public func addRMSNorm(_ x: Tensor, _ branch: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        add(x, branch, out: x)
        rmsNorm(x, weight: weight, eps: eps, out: out)
    }

    public func argmax(_ x: Tensor, out: Tensor) {
        let v = x.columns
        precondition(out.count == x.rows && out.dtype == .i32)
        let px = x.floatPointer, po = out.int32Pointer
        parallelFor(x.rows) { rows in
            for r in rows {
                let row = px + r * x.rowStride
                var best = -Float.infinity, index = 0
                for i in 0..<v where row[i] > best {
                    best = row[i]
                    index = i
                }
                po[r] = Int32(index)
            }
        }
    }

    public func rowChecksums(_ x: Tensor) -> [UInt64] {
        (0..<x.rows).map { r in
            let at = x.hostPointer + r * x.rowStride * x.dtype.byteSize
            switch x.dtype {
            case .f32: return RowChecksum.of(at.assumingMemoryBound(to: Float.self), count: x.columns)
            case .bf16: return RowChecksum.of(bf16: at.assumingMemoryBound(to: UInt16.self), count: x.columns)
            default: preconditionFailure("row checksums of a \(x.dtype) tensor")
            }
        }
    }

    public func gatherRows(_ x: Tensor, indices: Tensor, out: Tensor) {
        let d = x.columns
        precondition(out.columns == d && out.rows == indices.count)
        let pi = indices.int32Pointer, px = x.floatPointer, po = out.floatPointer
        parallelFor(indices.count, grain: max(1, 8192 / max(d, 1))) { rows in
            for i in rows {
                let src = Int(pi[i])
                if src >= 0 && src < x.rows {
                    (po + i * out.rowStride).update(from: px + src * x.rowStride, count: d)
                } else {
                    (po + i * out.rowStride).update(repeating: 0, count: d)
                }
            }
        }
    }
}
