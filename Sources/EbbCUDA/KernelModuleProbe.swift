import EbbCore

/// Compiles a deliberately broken kernel, to show (and test) the compile-error message.
public enum KernelModuleProbe {
    public static func compileBroken(_ backend: CUDABackend) throws -> Int {
        let source = "extern \"C\" __global__ void broken(float *p) { p[0] = undefined_name; }\n"
        let arch = "sm_\(backend.computeCapability.major)\(backend.computeCapability.minor)"
        return try KernelModule.compile(api: backend.api, source: source, options: ["--gpu-architecture=\(arch)"]).count
    }
}
