import CEbbCUDA
import EbbCore
import Foundation
import Synchronization

/// The compiled kernels on one device: NVRTC compiles `KernelSource.full` for the
/// device's architecture the first time a backend starts; the CUBIN is cached on disk
/// under a hash of the source, the options and the NVRTC version, so later starts only
/// load it. Functions are looked up by name once and kept.
final class KernelModule: @unchecked Sendable {
    private let api: UnsafePointer<EbbCUDAApi>
    private let module: EbbCUmodule
    private let functions = Mutex<[String: FunctionHandle]>([:])
    private let maxSharedOptIn: Int32
    /// Where the CUBIN came from ("compiled in 2.1 s", "cache").
    let origin: String

    init(api: UnsafePointer<EbbCUDAApi>, arch: String, maxSharedOptIn: Int32, source: String = KernelSource.full) throws {
        self.api = api
        self.maxSharedOptIn = maxSharedOptIn
        let options = ["--gpu-architecture=\(arch)", "--std=c++17"]
        var major: Int32 = 0, minor: Int32 = 0
        _ = api.pointee.nvrtcVersion?(&major, &minor)
        let key = Self.hash(source + options.joined(separator: " ") + "nvrtc \(major).\(minor)")
        let cacheFile = Self.cacheDirectory().map { $0.appendingPathComponent("ebb-kernels-\(arch)-\(key).cubin") }
        var image: [UInt8]
        var origin: String
        if let cacheFile, let data = try? Data(contentsOf: cacheFile), !data.isEmpty {
            image = [UInt8](data)
            origin = "cache \(cacheFile.path)"
        } else {
            let start = ContinuousClock.now
            image = try Self.compile(api: api, source: source, options: options)
            let seconds = (ContinuousClock.now - start).components
            origin = String(format: "compiled by NVRTC %d.%d in %.1f s", major, minor,
                            Double(seconds.seconds) + Double(seconds.attoseconds) * 1e-18)
            if let cacheFile { Self.store(image, at: cacheFile) }
        }
        self.origin = origin
        let load = try CUDAStatus.fn(api.pointee.cuModuleLoadData, "cuModuleLoadData")
        var module: EbbCUmodule?
        try image.withUnsafeBytes { raw in
            try CUDAStatus.check(api, load(&module, raw.baseAddress), "cuModuleLoadData(kernels for \(arch))")
        }
        guard let module else { throw EbbError(.internal, "cuModuleLoadData returned no module") }
        self.module = module
    }

    /// Compiles `source`; a compile error throws with NVRTC's log.
    static func compile(api: UnsafePointer<EbbCUDAApi>, source: String, options: [String]) throws -> [UInt8] {
        let create = try CUDAStatus.fn(api.pointee.nvrtcCreateProgram, "nvrtcCreateProgram")
        let compile = try CUDAStatus.fn(api.pointee.nvrtcCompileProgram, "nvrtcCompileProgram")
        let destroy = try CUDAStatus.fn(api.pointee.nvrtcDestroyProgram, "nvrtcDestroyProgram")
        var program: EbbNvrtcProgram?
        try CUDAStatus.checkNVRTC(api, create(&program, source, "ebb_kernels.cu", 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = destroy(&program) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let result = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { buffer in
            compile(program, Int32(buffer.count), buffer.baseAddress)
        }
        let log = programLog(api: api, program)
        if result != 0 {
            let reason = api.pointee.nvrtcGetErrorString?(result).map { String(cString: $0) } ?? "error \(result)"
            throw EbbError(.internal, "CUDA kernel compilation failed (\(reason)); NVRTC log:\n\(log)")
        }
        let getSize = try CUDAStatus.fn(api.pointee.nvrtcGetCUBINSize, "nvrtcGetCUBINSize")
        let get = try CUDAStatus.fn(api.pointee.nvrtcGetCUBIN, "nvrtcGetCUBIN")
        var size = 0
        try CUDAStatus.checkNVRTC(api, getSize(program, &size), "nvrtcGetCUBINSize")
        var image = [UInt8](repeating: 0, count: size)
        try image.withUnsafeMutableBytes { raw in
            try CUDAStatus.checkNVRTC(api, get(program, raw.baseAddress?.assumingMemoryBound(to: CChar.self)), "nvrtcGetCUBIN")
        }
        return image
    }

    private static func programLog(api: UnsafePointer<EbbCUDAApi>, _ program: EbbNvrtcProgram?) -> String {
        var size = 0
        guard api.pointee.nvrtcGetProgramLogSize?(program, &size) == 0, size > 1 else { return "" }
        var buffer = [CChar](repeating: 0, count: size)
        _ = api.pointee.nvrtcGetProgramLog?(program, &buffer)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A kernel by name.
    func function(_ name: String) throws -> UnsafeMutableRawPointer {
        if let f = functions.withLock({ $0[name] }) { return f.raw }
        let get = try CUDAStatus.fn(api.pointee.cuModuleGetFunction, "cuModuleGetFunction")
        var f: EbbCUfunction?
        try CUDAStatus.check(api, get(&f, module, name), "cuModuleGetFunction(\(name))")
        guard let f else { throw EbbError(.internal, "kernel \(name) not found in the module") }
        // Kernels sized by dynamic shared memory may use all the device allows, less their
        // static shared memory (the driver refuses a dynamic limit that, with it, passes the
        // opt-in maximum; these kernels keep under 1 KiB static, 128 B at most today).
        if maxSharedOptIn > 49152, name.hasPrefix("group_stable") || name.hasPrefix("route_topk") || name.hasPrefix("flash_prefill")
            || name.hasPrefix("flash_mla_prefill") {
            let setAttribute = try CUDAStatus.fn(api.pointee.cuFuncSetAttribute, "cuFuncSetAttribute")
            try CUDAStatus.check(api, setAttribute(f, Int32(EBB_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), maxSharedOptIn - 1024),
                                 "cuFuncSetAttribute(max dynamic shared memory of \(name))")
        }
        let handle = FunctionHandle(raw: f)
        functions.withLock { $0[name] = handle }
        return f
    }

    static func cacheDirectory() -> URL? {
        let env = ProcessInfo.processInfo.environment
        var url: URL
        if let dir = env["EBB_CUDA_CACHE_DIR"], !dir.isEmpty {
            url = URL(fileURLWithPath: dir, isDirectory: true)
        } else if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty {
            url = URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent("ebb")
        } else if let home = env["HOME"], !home.isEmpty {
            url = URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".cache/ebb")
        } else {
            return nil
        }
        if env["EBB_CUDA_CACHE_DIR"] == nil { url = url.appendingPathComponent("cuda") }
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes the cache file atomically; a failure only costs a recompile next time.
    static func store(_ image: [UInt8], at url: URL) {
        try? Data(image).write(to: url, options: .atomic)
    }

    /// FNV-1a 64 of the text, hex.
    static func hash(_ text: String) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01B3
        }
        return String(h, radix: 16)
    }
}

/// A CUfunction: an immutable driver handle, usable from any thread.
struct FunctionHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
}
