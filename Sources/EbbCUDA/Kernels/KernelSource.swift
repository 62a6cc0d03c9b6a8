/// The complete CUDA C source Ebb compiles with NVRTC: shared helpers and templates once,
/// then the `extern "C"` entry points for each storage type (`_f32`, `_bf16`).
enum KernelSource {
    static let storageTypes: [(suffix: String, type: String)] = [("f32", "float"), ("bf16", "bf16_t")]

    static let full: String = {
        var text = "// Ebb CUDA kernels (compiled by NVRTC at run time)\n"
        text += KernelCommon.source + "\n"
        text += KernelTensorCore.source + "\n"
        text += KernelElementwise.templates + "\n"
        text += KernelAttention.templates + "\n"
        text += KernelRouting.templates + "\n"
        text += KernelFlashAttention.source + "\n"
        text += KernelElementwise.mixed + "\n"
        let typed = KernelElementwise.wrappers + "\n" + KernelAttention.wrappers + "\n" + KernelRouting.wrappers
        for (suffix, type) in storageTypes {
            text += typed.replacingOccurrences(of: "$S", with: suffix).replacingOccurrences(of: "$T", with: type) + "\n"
        }
        return text
    }()
}
