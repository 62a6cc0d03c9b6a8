import CEbbCUDA
import EbbCore

/// Turns CUDA, NVRTC and cuBLAS status codes into `EbbError`s a user can act on.
enum CUDAStatus {
    /// The function pointer of a library the process-wide table loaded; the table only
    /// reports a library loaded when every pointer Ebb uses was found.
    static func fn<F>(_ f: F?, _ name: String) throws -> F {
        guard let f else { throw EbbError(.unsupported, "CUDA function \(name) was not loaded") }
        return f
    }

    static func name(_ api: UnsafePointer<EbbCUDAApi>, _ code: EbbCUresult) -> String {
        var namePointer: UnsafePointer<CChar>?
        var textPointer: UnsafePointer<CChar>?
        _ = api.pointee.cuGetErrorName?(code, &namePointer)
        _ = api.pointee.cuGetErrorString?(code, &textPointer)
        let name = namePointer.map { String(cString: $0) } ?? "CUDA error \(code)"
        let text = textPointer.map { String(cString: $0) } ?? ""
        return text.isEmpty ? name : "\(name) (\(text))"
    }

    /// Throws for a driver call that did not return CUDA_SUCCESS.
    static func check(_ api: UnsafePointer<EbbCUDAApi>, _ code: EbbCUresult, _ what: @autoclosure () -> String) throws {
        guard code != 0 else { return }
        if code == Int32(EBB_CUDA_ERROR_OUT_OF_MEMORY) {
            throw EbbError(.resourceExhausted, "\(what()): the GPU is out of memory (\(name(api, code)))")
        }
        throw EbbError(.internal, "\(what()) failed: \(name(api, code))")
    }

    static func checkBLAS(_ api: UnsafePointer<EbbCUDAApi>, _ status: EbbCublasStatus, _ what: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        let text = api.pointee.cublasGetStatusString?(status).map { String(cString: $0) } ?? "status \(status)"
        throw EbbError(.internal, "\(what()) failed: \(text)")
    }

    static func checkNVRTC(_ api: UnsafePointer<EbbCUDAApi>, _ result: EbbNvrtcResult, _ what: @autoclosure () -> String) throws {
        guard result != 0 else { return }
        let text = api.pointee.nvrtcGetErrorString?(result).map { String(cString: $0) } ?? "result \(result)"
        throw EbbError(.internal, "\(what()) failed: \(text)")
    }
}
