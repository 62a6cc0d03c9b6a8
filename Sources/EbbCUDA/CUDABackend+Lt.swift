import CEbbCUDA
import EbbCore
import Foundation
import Synchronization

/// Dense GEMMs through cuBLASLt: each shape is planned once (layouts, the heuristic's
/// algorithm for the fixed workspace) and replanned never; a shape cuBLASLt has no
/// algorithm for goes to `cublasGemmStridedBatchedEx` instead. `EBB_CUDA_GEMM=cublas`
/// turns cuBLASLt off (for comparisons).
final class LtPlans: @unchecked Sendable {
    struct Key: Hashable {
        let transA: Bool, transB: Bool
        let m: Int, n: Int, k: Int
        let typeA: Int32, typeB: Int32, typeC: Int32
        let lda: Int, ldb: Int, ldc: Int
        let strideA: Int, strideB: Int, strideC: Int
        let batch: Int
    }

    let api: UnsafePointer<EbbCUDAApi>
    let handle: UnsafeMutableRawPointer
    private let plans = Mutex<[Key: UnsafeMutablePointer<EbbLtPlan>?]>([:])

    /// nil when cuBLASLt is missing, fails to start, or is turned off.
    init?(api: UnsafePointer<EbbCUDAApi>) {
        guard api.pointee.loaded & Int32(EBB_LIB_CUBLASLT) != 0,
              ProcessInfo.processInfo.environment["EBB_CUDA_GEMM"]?.lowercased() != "cublas",
              let create = api.pointee.cublasLtCreate else { return nil }
        var h: UnsafeMutableRawPointer?
        guard create(&h) == 0, let h else { return nil }
        self.api = api
        handle = h
    }

    deinit {
        plans.withLock { all in
            for case let p? in all.values {
                ebb_lt_plan_destroy(api, p)
                p.deallocate()
            }
        }
        _ = api.pointee.cublasLtDestroy?(handle)
    }

    /// The plan for `key`, made on first use; nil when cuBLASLt cannot run this shape.
    func plan(_ key: Key, maxWorkspace: Int) -> UnsafeMutablePointer<EbbLtPlan>? {
        plans.withLock { all in
            if let known = all[key] { return known }
            let p = UnsafeMutablePointer<EbbLtPlan>.allocate(capacity: 1)
            let status = ebb_lt_plan(api, handle, p, key.transA ? Int32(EBB_CUBLAS_OP_T) : Int32(EBB_CUBLAS_OP_N),
                                     key.transB ? Int32(EBB_CUBLAS_OP_T) : Int32(EBB_CUBLAS_OP_N),
                                     UInt64(key.m), UInt64(key.n), UInt64(key.k),
                                     key.typeA, Int64(key.lda), Int64(key.strideA), key.typeB, Int64(key.ldb), Int64(key.strideB),
                                     key.typeC, Int64(key.ldc), Int64(key.strideC), Int32(key.batch), maxWorkspace)
            if status != 0 {
                p.deallocate()
                all[key] = .some(nil)
                return nil
            }
            all[key] = p
            return p
        }
    }
}
