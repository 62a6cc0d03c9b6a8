import CEbbCUDA
import EbbCore

/// The CUDA libraries Ebb loads at run time (driver API, NVRTC, cuBLAS, cuBLASLt, NCCL),
/// and what was found. Nothing here needs CUDA to build; without it `available` is false
/// and `report` says what is missing and where Ebb looked.
public enum CUDALibraries {
    public enum Library: String, CaseIterable, Sendable {
        case cuda = "libcuda", nvrtc = "libnvrtc", cublas = "libcublas", cublasLt = "libcublasLt", nccl = "libnccl"

        var bit: Int32 {
            switch self {
            case .cuda: return Int32(EBB_LIB_CUDA)
            case .nvrtc: return Int32(EBB_LIB_NVRTC)
            case .cublas: return Int32(EBB_LIB_CUBLAS)
            case .cublasLt: return Int32(EBB_LIB_CUBLASLT)
            case .nccl: return Int32(EBB_LIB_NCCL)
            }
        }
    }

    /// The libraries the CUDA backend cannot run without.
    public static let required: [Library] = [.cuda, .nvrtc, .cublas]

    /// What one search found.
    public struct Probe: Sendable, Equatable {
        public let loaded: Set<Library>
        /// One line per library: the path it was loaded from, or why it was not.
        public let report: String

        public var missing: [Library] { CUDALibraries.required.filter { !loaded.contains($0) } }
        public var usable: Bool { missing.isEmpty }

        /// The error to throw when the backend cannot start.
        public var unavailableError: EbbError {
            EbbError(.unsupported, "CUDA is unavailable: missing \(missing.map(\.rawValue).joined(separator: ", ")). "
                + "Install the NVIDIA driver and CUDA 12/13 (NVRTC, cuBLAS), or point EBB_CUDA_LIB_DIR at the folder(s) "
                + "holding them (colon-separated).\n" + report)
        }
    }

    /// Searches `directories` (colon-separated) and, with `searchDefaults`, the loader's
    /// path and the usual CUDA folders. Independent of the process-wide table.
    public static func probe(directories: String?, searchDefaults: Bool) -> Probe {
        var api = EbbCUDAApi()
        let bits = ebb_cuda_load(&api, directories, searchDefaults ? 1 : 0)
        return Probe(loaded: decode(bits), report: reportText(&api))
    }

    /// The process-wide search (`EBB_CUDA_LIB_DIR`, then defaults), done once.
    public static var process: Probe {
        guard let api = ebb_cuda_api() else { return Probe(loaded: [], report: "ebb_cuda_api returned nothing") }
        var copy = api.pointee
        return Probe(loaded: decode(api.pointee.loaded), report: reportText(&copy))
    }

    static func decode(_ bits: Int32) -> Set<Library> {
        Set(Library.allCases.filter { bits & $0.bit != 0 })
    }

    private static func reportText(_ api: inout EbbCUDAApi) -> String {
        withUnsafeBytes(of: &api.report) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
