import CEbbCUDA
import Foundation
import EbbCore
import EbbTensor

extension CUDABackend {
    // MARK: GEMM

    static func cudaDataType(_ dtype: DType) throws -> Int32 {
        switch dtype {
        case .f32: return Int32(EBB_CUDA_R_32F)
        case .bf16: return Int32(EBB_CUDA_R_16BF)
        case .f16: return Int32(EBB_CUDA_R_16F)
        case .i32: throw EbbError(.unsupported, "GEMM of i32 tensors")
        }
    }

    /// Row-major `C = αAB + βC` through cuBLAS's column-major GEMM: computes Cᵀ = BᵀAᵀ,
    /// so B goes first and m/n swap. f32 accumulation in every mode.
    public func gemm(_ a: MatrixOperand, _ b: MatrixOperand, _ c: MatrixOperand,
                     m: Int, n: Int, k: Int, batch: Int, alpha: Float, beta: Float) {
        guard m > 0, n > 0, batch > 0 else { return }
        precondition(!c.transposed, "output of gemm cannot be transposed")
        perform {
            if k == 0 {
                guard beta == 0 else { throw EbbError(.unsupported, "CUDA gemm with k = 0 and beta ≠ 0") }
                for i in 0..<batch {
                    let view = Tensor(buffer: c.tensor.buffer, dtype: c.tensor.dtype, shape: [m, n],
                                      offset: c.tensor.offset + c.offset + i * c.batchStride, rowStride: c.leadingDimension)
                    fill(view, value: 0)
                }
                return
            }
            try bind()
            if try decodeGEMV(a, b, c, m: m, n: n, k: k, batch: batch, alpha: alpha, beta: beta) { return }
            var alphaValue = alpha, betaValue = beta
            let pa = pointer(a.tensor) + UInt64(a.offset * a.tensor.dtype.byteSize)
            let pb = pointer(b.tensor) + UInt64(b.offset * b.tensor.dtype.byteSize)
            let pc = pointer(c.tensor) + UInt64(c.offset * c.tensor.dtype.byteSize)
            var status: EbbCublasStatus = 0
            let rowsClass = m <= 16 ? "m≤16" : m <= 256 ? "m≤256" : "m>256"
            let what = "(m \(m), n \(n), k \(k), batch \(batch), \(a.tensor.dtype)·\(b.tensor.dtype)→\(c.tensor.dtype))"
            if let lt {
                // Same mapping as below: column-major Cᵀ = Bᵀ·Aᵀ.
                let key = LtPlans.Key(transA: b.transposed, transB: a.transposed, m: n, n: m, k: k,
                                      typeA: try Self.cudaDataType(b.tensor.dtype), typeB: try Self.cudaDataType(a.tensor.dtype),
                                      typeC: try Self.cudaDataType(c.tensor.dtype),
                                      lda: b.leadingDimension, ldb: a.leadingDimension, ldc: c.leadingDimension,
                                      strideA: b.batchStride, strideB: a.batchStride, strideC: c.batchStride, batch: batch)
                if let plan = lt.plan(key, maxWorkspace: Self.workspaceBytes) {
                    try profiled("cublasLt gemm \(a.tensor.dtype) \(rowsClass)") {
                        status = ebb_lt_run(api, lt.handle, plan, &alphaValue, UnsafeRawPointer(bitPattern: UInt(pb)),
                                            UnsafeRawPointer(bitPattern: UInt(pa)), &betaValue,
                                            UnsafeMutableRawPointer(bitPattern: UInt(pc)),
                                            UnsafeMutableRawPointer(bitPattern: UInt(workspace.address)), stream)
                    }
                    try CUDAStatus.checkBLAS(api, status, "cublasLtMatmul" + what)
                    return
                }
            }
            let call = try CUDAStatus.fn(api.pointee.cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx")
            try profiled("cublas gemm \(a.tensor.dtype) \(rowsClass)") { status = call(blas,
                              Int32(b.transposed ? EBB_CUBLAS_OP_T : EBB_CUBLAS_OP_N),
                              Int32(a.transposed ? EBB_CUBLAS_OP_T : EBB_CUBLAS_OP_N),
                              Int32(n), Int32(m), Int32(k), &alphaValue,
                              UnsafeRawPointer(bitPattern: UInt(pb)), try Self.cudaDataType(b.tensor.dtype),
                              Int32(b.leadingDimension), Int64(b.batchStride),
                              UnsafeRawPointer(bitPattern: UInt(pa)), try Self.cudaDataType(a.tensor.dtype),
                              Int32(a.leadingDimension), Int64(a.batchStride),
                              &betaValue,
                              UnsafeMutableRawPointer(bitPattern: UInt(pc)), try Self.cudaDataType(c.tensor.dtype),
                              Int32(c.leadingDimension), Int64(c.batchStride),
                              Int32(batch), Int32(EBB_CUBLAS_COMPUTE_32F), Int32(EBB_CUBLAS_GEMM_DEFAULT)) }
            try CUDAStatus.checkBLAS(api, status, "cublasGemmStridedBatchedEx" + what)
        }
    }

    /// `x · Wᵀ` for a decode step's few rows (up to 8; bf16 x and weights in the Linear
    /// layout, f32 or bf16 out, α = 1, β = 0) on `gemv_rows`, which streams the weights at
    /// close to bandwidth where cuBLAS's kernels for M = 1 do not. false: not such a shape
    /// (cuBLAS runs it). `EBB_CUDA_DECODE_GEMV=cublas` turns it off, to compare.
    private func decodeGEMV(_ a: MatrixOperand, _ b: MatrixOperand, _ c: MatrixOperand,
                            m: Int, n: Int, k: Int, batch: Int, alpha: Float, beta: Float) throws -> Bool {
        guard Self.decodeGEMVEnabled, batch == 1, m <= 8, alpha == 1, beta == 0, !a.transposed, b.transposed,
              a.tensor.dtype == .bf16, b.tensor.dtype == .bf16, c.tensor.dtype == .f32 || c.tensor.dtype == .bf16,
              k % 8 == 0, a.leadingDimension % 8 == 0, b.leadingDimension % 8 == 0 else { return false }
        let pa = pointer(a.tensor) + UInt64(a.offset * 2), pb = pointer(b.tensor) + UInt64(b.offset * 2)
        let pc = pointer(c.tensor) + UInt64(c.offset * c.tensor.dtype.byteSize)
        guard pa % 16 == 0, pb % 16 == 0 else { return false }
        let rows = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8
        try launch(typed("gemv_rows\(rows)_bf16", c.tensor.dtype), grid: ((n + 7) / 8, 1, 1), block: 128,
                   [.raw(pa), .int(a.leadingDimension), .raw(pb), .int(b.leadingDimension), .raw(pc), .int(c.leadingDimension),
                    .int(m), .int(n), .int(k)])
        return true
    }

    /// `EBB_CUDA_DECODE_GEMV`, read once.
    static let decodeGEMVEnabled = ProcessInfo.processInfo.environment["EBB_CUDA_DECODE_GEMV"]?.lowercased() != "cublas"

    /// Grouped GEMM with device-side offsets (no host round trip, so it can be captured):
    /// few rows per expert → two output columns a warp streaming the weights (GEMV);
    /// many rows, bf16 → tensor-core tiles.
    public func groupedLinear(_ x: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        groupedProduct(x, rowIndex: nil, weights: weights, offsets: offsets, out: out)
    }

    /// The same over rows `x[rowIndex[r]]`, read through the index by the kernels (no
    /// gathered copy).
    public func groupedLinear(_ x: Tensor, rowIndex: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        groupedProduct(x, rowIndex: rowIndex, weights: weights, offsets: offsets, out: out)
    }

    private func groupedProduct(_ x: Tensor, rowIndex: Tensor?, weights: Tensor, offsets: Tensor, out: Tensor) {
        precondition(weights.shape.count == 3 && weights.isContiguous)
        let experts = weights.shape[0], n = weights.shape[1], k = weights.shape[2]
        precondition(offsets.count == experts + 1 && x.columns == k && out.columns == n)
        let rows = rowIndex?.count ?? x.rows
        precondition(out.rows >= rows && (rowIndex == nil || rowIndex?.dtype == .i32))
        guard rows > 0, n > 0, experts > 0 else { return }
        perform {
            let aligned = x.dtype == .bf16 && weights.dtype == .bf16 && out.dtype == .bf16 && k % 8 == 0
                && x.rowStride % 8 == 0 && pointer(x) % 16 == 0 && pointer(weights) % 16 == 0
            let args: [Arg] = [.tensor(x), .int(x.rowStride), .optionalTensor(rowIndex), .tensor(weights), .tensor(offsets),
                               .tensor(out), .int(out.rowStride)]
            if aligned && rows >= 4 * experts {
                let tilesY = (rows + 63) / 64 + experts
                try launch("grouped_mma_bf16", grid: ((n + 127) / 128, tilesY, 1), block: 256,
                           args + [.int(experts), .int(n), .int(k)])
            } else {
                // One block row per expert that can have rows: at most `rows` of them.
                let groups = min(experts, rows)
                if aligned {
                    try launch("grouped_gemv_vec_bf16", grid: ((n + 15) / 16, groups, 1), block: 256, args + [.int(n), .int(k), .int(experts)])
                } else {
                    try launch(typed("grouped_gemv", x.dtype), grid: ((n + 7) / 8, groups, 1), block: 256, args + [.int(n), .int(k), .int(experts)])
                }
            }
        }
    }

    /// The down projection with its activation: on the GEMV path (few rows per expert, bf16)
    /// the activation is applied as the rows are read (`grouped_gemv_swiglu_bf16`), one
    /// kernel instead of two; otherwise `siluAndMul` then `groupedLinear`.
    public func groupedSwiGLULinear(_ gateUp: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        precondition(weights.shape.count == 3 && weights.isContiguous)
        let experts = weights.shape[0], n = weights.shape[1], k = weights.shape[2]
        precondition(offsets.count == experts + 1 && gateUp.columns == 2 * k && out.columns == n && out.rows == gateUp.rows)
        let rows = gateUp.rows
        guard rows > 0, n > 0, experts > 0 else { return }
        perform {
            let fused = gateUp.dtype == .bf16 && weights.dtype == .bf16 && out.dtype == .bf16 && k % 8 == 0
                && gateUp.rowStride % 8 == 0 && pointer(gateUp) % 16 == 0 && pointer(weights) % 16 == 0 && rows < 4 * experts
            guard fused else {
                let activated = try empty([rows, k], dtype: gateUp.dtype)
                siluAndMul(gateUp, out: activated)
                groupedLinear(activated, weights: weights, offsets: offsets, out: out)
                return
            }
            try launch("grouped_gemv_swiglu_bf16", grid: ((n + 15) / 16, min(experts, rows), 1), block: 256,
                       [.tensor(gateUp), .int(gateUp.rowStride), .tensor(weights), .tensor(offsets), .tensor(out),
                        .int(out.rowStride), .int(n), .int(k), .int(experts)])
        }
    }

    // MARK: Elementwise

    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        let d = x.columns
        precondition(weight.count == d && out.columns == d && out.rows == x.rows)
        perform {
            let threads = normThreads(d)
            let name: String
            if x.dtype == out.dtype && weight.dtype == out.dtype {
                name = try typed("rms_norm", x.dtype)
            } else if x.dtype == .f32 && out.dtype == .bf16 && weight.dtype == .bf16 {
                name = "rms_norm_f32_bf16"
            } else {
                throw EbbError(.unsupported, "CUDA rmsNorm of \(x.dtype) with \(weight.dtype) weights into \(out.dtype)")
            }
            try launch(name, grid: (x.rows, 1, 1), block: threads,
                       [.tensor(x), .int(x.rowStride), .tensor(weight), .tensor(out), .int(out.rowStride), .int(d), .float(eps)])
        }
    }

    /// Threads a row of the norms takes (the fused and the plain norm must agree, so they
    /// sum in the same order).
    func normThreads(_ d: Int) -> Int { d >= 1024 ? 512 : (d >= 256 ? 256 : (d >= 64 ? 64 : 32)) }

    public func addRMSNorm(_ x: Tensor, _ branch: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        let d = x.columns
        precondition(branch.rows == x.rows && branch.columns == d && weight.count == d && out.columns == d && out.rows == x.rows)
        perform {
            let name: String
            if x.dtype == branch.dtype && x.dtype == out.dtype && weight.dtype == out.dtype {
                name = try typed("add_rms_norm", x.dtype)
            } else if x.dtype == .f32 && branch.dtype == .bf16 && out.dtype == .bf16 && weight.dtype == .bf16 {
                name = "add_rms_norm_f32_bf16"
            } else {
                throw EbbError(.unsupported, "CUDA addRMSNorm of \(x.dtype) + \(branch.dtype) with \(weight.dtype) weights into \(out.dtype)")
            }
            try launch(name, grid: (x.rows, 1, 1), block: normThreads(d),
                       [.tensor(x), .int(x.rowStride), .tensor(branch), .int(branch.rowStride), .tensor(weight), .tensor(out),
                        .int(out.rowStride), .int(d), .float(eps)])
        }
    }

    public func add(_ a: Tensor, _ b: Tensor, out: Tensor) {
        precondition(a.count == b.count && a.count == out.count && a.columns == out.columns && b.columns == out.columns)
        perform {
            if a.dtype == out.dtype && b.dtype == out.dtype {
                try launch(typed("add", out.dtype), grid: (gridFor(out.count), 1, 1), block: 256,
                           [.tensor(a), .int(a.rowStride), .tensor(b), .int(b.rowStride), .tensor(out), .int(out.rowStride),
                            .int(out.rows), .int(out.columns)])
                return
            }
            // An f32 residual plus a bf16 branch (either order).
            guard out.dtype == .f32, Set([a.dtype, b.dtype]) == [.f32, .bf16] else {
                throw EbbError(.unsupported, "CUDA add of \(a.dtype) and \(b.dtype) into \(out.dtype)")
            }
            let (wide, narrow) = a.dtype == .f32 ? (a, b) : (b, a)
            try launch("add_f32_bf16", grid: (gridFor(out.count), 1, 1), block: 256,
                       [.tensor(wide), .int(wide.rowStride), .tensor(narrow), .int(narrow.rowStride), .tensor(out), .int(out.rowStride),
                        .int(out.rows), .int(out.columns)])
        }
    }

    public func siluAndMul(_ x: Tensor, out: Tensor) {
        let inner = out.columns
        precondition(x.columns == 2 * inner && x.rows == out.rows)
        perform {
            try launch(typed("silu_mul", out.dtype), grid: (gridFor(out.count), 1, 1), block: 256,
                       [.tensor(x), .int(x.rowStride), .tensor(out), .int(out.rowStride), .int(out.rows), .int(inner)])
        }
    }

    public func rope(_ x: Tensor, positions: Tensor, rope: RotaryEmbedding) {
        precondition(x.shape.count == 3 && x.columns == rope.dimension)
        let heads = x.shape[1], half = rope.dimension / 2
        perform {
            let n = x.shape[0] * heads * half
            try launch(typed("rope", x.dtype), grid: (gridFor(n), 1, 1), block: 256,
                       [.tensor(x), .int(x.rowStride), .int(heads), .int(x.shape[0]), .tensor(positions),
                        .tensor(rope.inverseFrequencies), .int(half), .float(rope.attentionFactor), .int(rope.interleaved ? 1 : 0)])
        }
    }

    public func embedding(ids: Tensor, table: Tensor, out: Tensor) {
        let d = table.columns
        precondition(out.columns == d && out.rows == ids.count)
        perform {
            let name: String
            if table.dtype == out.dtype {
                name = try typed("embedding", out.dtype)
            } else if table.dtype == .bf16 && out.dtype == .f32 {
                name = "embedding_bf16_f32"
            } else {
                throw EbbError(.unsupported, "CUDA embedding of a \(table.dtype) table into \(out.dtype)")
            }
            try launch(name, grid: (gridFor(out.count), 1, 1), block: 256,
                       [.tensor(ids), .tensor(table), .int(table.rowStride), .int(table.rows), .tensor(out), .int(out.rowStride),
                        .int(ids.count), .int(d)])
        }
    }

    public func argmax(_ x: Tensor, out: Tensor) {
        precondition(out.count == x.rows && out.dtype == .i32)
        perform {
            try launch(typed("argmax", x.dtype), grid: (x.rows, 1, 1), block: 256,
                       [.tensor(x), .int(x.rowStride), .int(x.columns), .tensor(out)])
        }
    }

    public func rowChecksums(_ x: Tensor) -> [UInt64] {
        guard x.rows > 0 else { return [] }
        var result = [UInt64](repeating: 0, count: x.rows)
        perform {
            // Per row two u32 halves, accumulated with 64-bit atomics.
            let sums = try empty([x.rows, 2], dtype: .i32)
            fill(sums, value: 0)
            let blocks = max(1, min((x.columns + 255) / 256, 64))
            try launch(typed("row_checksums", x.dtype), grid: (blocks, x.rows, 1), block: 256,
                       [.tensor(x), .int(x.rowStride), .int(x.columns), .tensor(sums)])
            let halves = downloadInts(sums)
            for r in 0..<x.rows {
                result[r] = UInt64(UInt32(bitPattern: halves[2 * r])) | UInt64(UInt32(bitPattern: halves[2 * r + 1])) << 32
            }
        }
        return result
    }

    public func gatherRows(_ x: Tensor, indices: Tensor, out: Tensor) {
        let d = x.columns
        precondition(out.columns == d && out.rows == indices.count)
        perform {
            try launch(typed("gather_rows", out.dtype), grid: (gridFor(out.count), 1, 1), block: 256,
                       [.tensor(x), .int(x.rowStride), .int(x.rows), .tensor(indices), .tensor(out), .int(out.rowStride),
                        .int(indices.count), .int(d)])
        }
    }
}
