import CEbbCUDA
import EbbCore
import EbbTensor
import Foundation
import Synchronization

/// The CUDA backend: one device, one stream, a caching allocator, NVRTC-compiled kernels
/// and cuBLAS GEMMs. Weights and activations are held in `computeDType` (bf16, or f32 to
/// check against f32 references); arithmetic accumulates in f32.
///
/// Errors: the `Backend` protocol's ops do not throw (they only enqueue work). An op that
/// fails records the first error; the next throwing call (`empty`, `upload`,
/// `checkErrors()`, `synchronizeChecked()`, graph capture) throws it and clears it.
/// `downloadFloats`/`downloadInts` return zeros after a failure, so a caller that reads
/// results must call `checkErrors()` (or any throwing op) before trusting them.
public final class CUDABackend: Backend, @unchecked Sendable {
    public let device: Device
    public let computeDType: DType
    /// The residual stream stays in f32 in both modes: with bf16 activations, rounding it
    /// after every layer would lose the small per-layer updates.
    public var residualDType: DType { .f32 }
    public let deviceName: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessors: Int
    public let totalMemory: Int
    /// Where the kernels came from ("compiled by NVRTC ...", "cache ...").
    public var kernelOrigin: String { kernels.origin }

    let api: UnsafePointer<EbbCUDAApi>
    let context: EbbCUcontext
    let stream: EbbCUstream
    let blas: EbbCublasHandle
    let allocator: DeviceAllocator
    let kernels: KernelModule
    let workspace: DeviceAllocator.Block
    static let workspaceBytes = 64 << 20
    /// cuBLASLt for dense GEMMs, when the library is there.
    let lt: LtPlans?
    private let pendingError = Mutex<EbbError?>(nil)
    let profiler = Mutex<KernelProfiler?>(nil)
    /// Host ↔ device copies of this stream (the transfer lane counts its own).
    let transfers = Mutex(HostTransfers())
    public var hostTransfers: HostTransfers? { transfers.withLock { $0 } }
    /// This backend's side stream for weight moves (made on first use).
    private let lane = Mutex<CUDABackend?>(nil)
    /// Whether this backend is itself a transfer lane.
    private let isLane: Bool

    /// Number of CUDA devices, or 0 when the libraries or the driver are missing.
    public static func deviceCount() -> Int {
        let probe = CUDALibraries.process
        guard probe.loaded.contains(.cuda), let api = ebb_cuda_api(),
              let initialize = api.pointee.cuInit, let count = api.pointee.cuDeviceGetCount else { return 0 }
        guard initialize(0) == 0 else { return 0 }
        var n: Int32 = 0
        return count(&n) == 0 ? Int(n) : 0
    }

    public init(device index: Int = 0, computeDType: DType = .bf16) throws {
        guard computeDType == .bf16 || computeDType == .f32 else {
            throw EbbError(.invalidArgument, "the CUDA backend computes in bf16 or f32, not \(computeDType)")
        }
        let probe = CUDALibraries.process
        guard probe.usable, let api = ebb_cuda_api() else { throw probe.unavailableError }
        self.api = api
        self.computeDType = computeDType
        let a = api.pointee
        let initialize = try CUDAStatus.fn(a.cuInit, "cuInit")
        let code = initialize(0)
        if code != 0 {
            throw EbbError(.unsupported, "no usable CUDA driver/device: cuInit failed with \(CUDAStatus.name(api, code))")
        }
        var count: Int32 = 0
        try CUDAStatus.check(api, try CUDAStatus.fn(a.cuDeviceGetCount, "cuDeviceGetCount")(&count), "cuDeviceGetCount")
        guard index >= 0, index < Int(count) else {
            throw EbbError(.invalidArgument, "cuda:\(index) does not exist: this machine has \(count) CUDA device(s)")
        }
        var dev: EbbCUdevice = 0
        try CUDAStatus.check(api, try CUDAStatus.fn(a.cuDeviceGet, "cuDeviceGet")(&dev, Int32(index)), "cuDeviceGet")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        _ = a.cuDeviceGetName?(&nameBuffer, 255, dev)
        deviceName = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let attribute = try CUDAStatus.fn(a.cuDeviceGetAttribute, "cuDeviceGetAttribute")
        func attr(_ which: Int32) throws -> Int {
            var v: Int32 = 0
            try CUDAStatus.check(api, attribute(&v, which, dev), "cuDeviceGetAttribute(\(which))")
            return Int(v)
        }
        computeCapability = (try attr(Int32(EBB_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)),
                             try attr(Int32(EBB_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)))
        multiprocessors = try attr(Int32(EBB_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT))
        let sharedOptIn = try attr(Int32(EBB_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN))
        var total = 0
        _ = a.cuDeviceTotalMem?(&total, dev)
        totalMemory = total
        var ctx: EbbCUcontext?
        try CUDAStatus.check(api, try CUDAStatus.fn(a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")(&ctx, dev),
                             "cuDevicePrimaryCtxRetain(cuda:\(index))")
        guard let ctx else { throw EbbError(.internal, "cuDevicePrimaryCtxRetain returned no context") }
        context = ctx
        device = .cuda(index)
        allocator = DeviceAllocator(api: api, deviceName: "cuda:\(index) (\(deviceName))")
        (stream, blas, workspace) = try Self.makeStream(api: api, context: ctx, allocator: allocator)
        lt = LtPlans(api: api)
        let arch = "sm_\(computeCapability.major)\(computeCapability.minor)"
        kernels = try KernelModule(api: api, arch: arch, maxSharedOptIn: Int32(sharedOptIn))
        isLane = false
    }

    /// A lane: the same device, context and kernels with its own stream, cuBLAS handle and
    /// a non-caching allocator, so a background thread can stage weights while the serving
    /// thread's stream runs (and captures graphs) undisturbed.
    private init(laneOf parent: CUDABackend) throws {
        api = parent.api
        computeDType = parent.computeDType
        deviceName = parent.deviceName
        computeCapability = parent.computeCapability
        multiprocessors = parent.multiprocessors
        totalMemory = parent.totalMemory
        device = parent.device
        context = parent.context
        kernels = parent.kernels
        lt = nil
        isLane = true
        allocator = DeviceAllocator(api: api, deviceName: "\(device) (\(deviceName), transfer lane)",
                                    uncachedContext: context)
        (stream, blas, workspace) = try Self.makeStream(api: api, context: context, allocator: allocator)
    }

    /// A stream of `context`, a cuBLAS handle bound to it, and the handle's fixed workspace
    /// (so GEMMs allocate nothing and can be captured in graphs).
    private static func makeStream(api: UnsafePointer<EbbCUDAApi>, context: EbbCUcontext, allocator: DeviceAllocator) throws
        -> (EbbCUstream, EbbCublasHandle, DeviceAllocator.Block) {
        let a = api.pointee
        try CUDAStatus.check(api, try CUDAStatus.fn(a.cuCtxSetCurrent, "cuCtxSetCurrent")(context), "cuCtxSetCurrent")
        var s: EbbCUstream?
        try CUDAStatus.check(api, try CUDAStatus.fn(a.cuStreamCreate, "cuStreamCreate")(&s, UInt32(EBB_CU_STREAM_NON_BLOCKING)),
                             "cuStreamCreate")
        guard let s else { throw EbbError(.internal, "cuStreamCreate returned no stream") }
        var handle: EbbCublasHandle?
        try CUDAStatus.checkBLAS(api, try CUDAStatus.fn(a.cublasCreate, "cublasCreate")(&handle), "cublasCreate")
        guard let handle else { throw EbbError(.internal, "cublasCreate returned no handle") }
        try CUDAStatus.checkBLAS(api, try CUDAStatus.fn(a.cublasSetStream, "cublasSetStream")(handle, s), "cublasSetStream")
        let workspace = try allocator.allocate(workspaceBytes) {}
        try CUDAStatus.checkBLAS(api, try CUDAStatus.fn(a.cublasSetWorkspace, "cublasSetWorkspace")(
            handle, UnsafeMutableRawPointer(bitPattern: UInt(workspace.address)), workspaceBytes), "cublasSetWorkspace")
        return (s, handle, workspace)
    }

    /// The side stream weight moves run on (resizes, EPLB), made once; a lane is its own lane.
    /// Work queued there is ordered only with itself: synchronize it before the serving
    /// stream reads what it wrote.
    public func transferLane() throws -> any Backend {
        if isLane { return self }
        return try lane.withLock { l in
            if let l { return l }
            let made = try CUDABackend(laneOf: self)
            l = made
            return made
        }
    }

    deinit {
        _ = api.pointee.cuCtxSetCurrent?(context)
        _ = api.pointee.cuStreamSynchronize?(stream)
        _ = api.pointee.cublasDestroy?(blas)
        _ = api.pointee.cuStreamDestroy?(stream)
    }

    public var summary: String {
        let gib = Double(totalMemory) / Double(1 << 30)
        return String(format: "%@ (%@, sm_%d%d, %d SMs, %.0f GiB, %@)", device.description, deviceName,
                      computeCapability.major, computeCapability.minor, multiprocessors, gib, computeDType.rawValue)
    }

    // MARK: Errors

    /// Keeps the first error of a non-throwing op for the next throwing call.
    func record(_ error: any Error) {
        let e = (error as? EbbError) ?? EbbError(.internal, "\(error)")
        pendingError.withLock { if $0 == nil { $0 = e } }
    }

    /// Runs `body`, recording what it throws.
    @inline(__always)
    func perform(_ body: () throws -> Void) {
        do { try body() } catch { record(error) }
    }

    /// Throws (and clears) the first error recorded since the last check.
    public func checkErrors() throws {
        if let e = pendingError.withLock({ e -> EbbError? in defer { e = nil }; return e }) { throw e }
    }

    /// Makes the context current on the calling thread (each thread has its own).
    @inline(__always)
    func bind() throws {
        try CUDAStatus.check(api, try CUDAStatus.fn(api.pointee.cuCtxSetCurrent, "cuCtxSetCurrent")(context), "cuCtxSetCurrent")
    }

    public func synchronize() {
        perform {
            try bind()
            try CUDAStatus.check(api, try CUDAStatus.fn(api.pointee.cuStreamSynchronize, "cuStreamSynchronize")(stream),
                                 "cuStreamSynchronize (an earlier kernel failed)")
        }
    }

    /// Waits for the stream and throws any error recorded or raised on the way.
    public func synchronizeChecked() throws {
        synchronize()
        try checkErrors()
    }

    /// Free and total device memory: what the driver reports free plus the blocks this
    /// backend's allocator holds cached but unused (they are handed out before the driver
    /// is asked again).
    public var deviceMemory: (free: Int, total: Int)? {
        guard (try? bind()) != nil, let info = api.pointee.cuMemGetInfo else { return nil }
        var free = 0, total = 0
        guard info(&free, &total) == 0 else { return nil }
        return (free + allocator.statistics.cached, total)
    }

    /// Device memory held by the allocator: in use or cached.
    public var memoryStatistics: (allocated: Int, cached: Int) { allocator.statistics }

    // MARK: Pointers and launches

    @inline(__always)
    func pointer(_ t: Tensor) -> UInt64 {
        UInt64(UInt(bitPattern: t.buffer.address)) + UInt64(t.offset * t.dtype.byteSize)
    }

    enum Arg {
        case tensor(Tensor)
        case optionalTensor(Tensor?)
        case raw(UInt64)
        case int(Int)
        case float(Float)
    }

    /// `name_f32` or `name_bf16` for a tensor's storage type.
    func typed(_ name: String, _ dtype: DType) throws -> String {
        switch dtype {
        case .f32: return name + "_f32"
        case .bf16: return name + "_bf16"
        default: throw EbbError(.unsupported, "CUDA kernel \(name) has no \(dtype) version")
        }
    }

    /// Enqueues a kernel on the stream.
    func launch(_ name: String, grid: (Int, Int, Int), block: Int, shared: Int = 0, _ args: [Arg]) throws {
        guard grid.0 > 0, grid.1 > 0, grid.2 > 0 else { return }
        try bind()
        let f = try kernels.function(name)
        var slots = [UInt64](repeating: 0, count: max(args.count, 1))
        for (i, a) in args.enumerated() {
            switch a {
            case .tensor(let t): slots[i] = pointer(t)
            case .optionalTensor(let t): slots[i] = t.map(pointer) ?? 0
            case .raw(let v): slots[i] = v
            case .int(let v): slots[i] = UInt64(bitPattern: Int64(v))
            case .float(let v): slots[i] = UInt64(v.bitPattern)
            }
        }
        let launchKernel = try CUDAStatus.fn(api.pointee.cuLaunchKernel, "cuLaunchKernel")
        var code: EbbCUresult = 0
        try profiled(name) { code = slots.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return -1 }
            var params: [UnsafeMutableRawPointer?] = (0..<args.count).map { UnsafeMutableRawPointer(base + $0) }
            return params.withUnsafeMutableBufferPointer { p in
                launchKernel(f, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1, UInt32(shared), stream,
                             p.baseAddress, nil)
            }
        } }
        try CUDAStatus.check(api, code, "launching \(name) (grid \(grid), block \(block), \(shared) B shared)")
    }

    /// Blocks for a grid-stride loop over `n` items.
    func gridFor(_ n: Int, threads: Int = 256) -> Int {
        max(1, min((n + threads - 1) / threads, multiprocessors * 16))
    }
}

// MARK: For device communicators (NCCL)

extension CUDABackend {
    /// The stream every op of this backend runs on (a `CUstream`, usable as `cudaStream_t`).
    public var streamHandle: EbbCUstream { stream }

    /// The loaded CUDA/NCCL function table.
    public var libraries: UnsafePointer<EbbCUDAApi> { api }

    /// Makes this backend's context current on the calling thread.
    public func makeCurrent() throws { try bind() }

    /// The device address of a tensor's first element.
    public func deviceAddress(_ t: Tensor) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(pointer(t)))
    }
}
