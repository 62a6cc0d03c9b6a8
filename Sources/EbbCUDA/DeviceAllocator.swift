import CEbbCUDA
import EbbCore
import Synchronization

/// A caching allocator over `cuMemAlloc`: freed blocks go to a free list keyed by their
/// rounded size and are handed out again without a driver call. Every op runs on the
/// backend's one stream, so a block released while queued kernels still use it can be
/// reused by later work on that stream (stream order makes it safe), as PyTorch does.
///
/// Pools: blocks belong to pool 0, except while a CUDA graph is being captured, when new
/// allocations come from (and releases return to) that capture's private pool, so the
/// addresses the graph recorded are never handed to anyone else while the graph lives.
final class DeviceAllocator: @unchecked Sendable {
    struct Block: Sendable {
        let address: EbbCUdeviceptr
        let size: Int
        let pool: Int
    }

    private struct State {
        var free: [Int: [Int: [EbbCUdeviceptr]]] = [0: [:]]
        var livePools: Set<Int> = [0]
        var currentPool = 0
        var nextPool = 1
        var cachedBytes = 0
        var allocatedBytes = 0
    }

    private let api: UnsafePointer<EbbCUDAApi>
    private let state = Mutex(State())
    private let deviceName: String
    /// nil: a caching allocator. Otherwise released blocks go straight back to the driver
    /// (bound to this context first): the allocator of a side stream, whose blocks may end
    /// up in the model and be released while another stream's queued kernels read them.
    private let uncachedContext: EbbCUcontext?

    init(api: UnsafePointer<EbbCUDAApi>, deviceName: String, uncachedContext: EbbCUcontext? = nil) {
        self.api = api
        self.deviceName = deviceName
        self.uncachedContext = uncachedContext
    }

    /// Sizes round up to 512 bytes, and above 1 MiB to 2 MiB, so repeated shapes hit.
    static func rounded(_ bytes: Int) -> Int {
        let b = max(bytes, 1)
        if b <= 1 << 20 { return (b + 511) & ~511 }
        return (b + (2 << 20) - 1) & ~((2 << 20) - 1)
    }

    /// A block of at least `bytes`. `reclaim` is called (and the allocation retried) when
    /// the driver is out of memory: it must wait for the stream so cached blocks can go.
    func allocate(_ bytes: Int, reclaim: () throws -> Void) throws -> Block {
        let size = Self.rounded(bytes)
        let (cached, pool): (EbbCUdeviceptr?, Int) = state.withLock { s in
            let pool = s.currentPool
            if var list = s.free[pool]?[size], let p = list.popLast() {
                s.free[pool]?[size] = list
                s.cachedBytes -= size
                return (p, pool)
            }
            return (nil, pool)
        }
        if let cached { return Block(address: cached, size: size, pool: pool) }
        let alloc = try CUDAStatus.fn(api.pointee.cuMemAlloc, "cuMemAlloc")
        var pointer: EbbCUdeviceptr = 0
        var code = alloc(&pointer, size)
        if code == Int32(EBB_CUDA_ERROR_OUT_OF_MEMORY) {
            try reclaim()
            try releaseCached()
            code = alloc(&pointer, size)
        }
        if code == Int32(EBB_CUDA_ERROR_OUT_OF_MEMORY) {
            var free = 0, total = 0
            _ = api.pointee.cuMemGetInfo?(&free, &total)
            let held = state.withLock { $0.allocatedBytes }
            throw EbbError(.resourceExhausted,
                           "out of GPU memory on \(deviceName): could not allocate \(Self.gib(size)) "
                           + "(\(Self.gib(free)) free of \(Self.gib(total)); Ebb holds \(Self.gib(held)))")
        }
        try CUDAStatus.check(api, code, "cuMemAlloc(\(size) bytes)")
        state.withLock { $0.allocatedBytes += size }
        return Block(address: pointer, size: size, pool: pool)
    }

    /// Returns a block to its pool's free list (no driver call; any thread), or to the
    /// driver when this allocator does not cache (`cuMemFree` waits for the device).
    func release(_ block: Block) {
        if let context = uncachedContext {
            _ = api.pointee.cuCtxSetCurrent?(context)
            _ = api.pointee.cuMemFree?(block.address)
            state.withLock { $0.allocatedBytes -= block.size }
            return
        }
        state.withLock { s in
            let pool = s.livePools.contains(block.pool) ? block.pool : 0
            s.free[pool, default: [:]][block.size, default: []].append(block.address)
            s.cachedBytes += block.size
        }
    }

    /// Frees every cached block of pool 0 back to the driver (the caller synchronized).
    func releaseCached() throws {
        let blocks: [(EbbCUdeviceptr, Int)] = state.withLock { s in
            var out = [(EbbCUdeviceptr, Int)]()
            for (size, list) in s.free[0] ?? [:] { for p in list { out.append((p, size)) } }
            s.free[0] = [:]
            for (p, size) in out { _ = p; s.cachedBytes -= size; s.allocatedBytes -= size }
            return out
        }
        let free = try CUDAStatus.fn(api.pointee.cuMemFree, "cuMemFree")
        for (p, _) in blocks { try CUDAStatus.check(api, free(p), "cuMemFree") }
    }

    /// Starts a private pool for a graph capture; returns its id.
    func beginPrivatePool() -> Int {
        state.withLock { s in
            let id = s.nextPool
            s.nextPool += 1
            s.livePools.insert(id)
            s.free[id] = [:]
            s.currentPool = id
            return id
        }
    }

    /// Ends the capture: new allocations come from pool 0 again.
    func endPrivatePool() {
        state.withLock { $0.currentPool = 0 }
    }

    /// The graph that owned `pool` is gone: its blocks join pool 0.
    func retirePool(_ pool: Int) {
        guard pool != 0 else { return }
        state.withLock { s in
            s.livePools.remove(pool)
            for (size, list) in s.free[pool] ?? [:] { s.free[0, default: [:]][size, default: []].append(contentsOf: list) }
            s.free[pool] = nil
            if s.currentPool == pool { s.currentPool = 0 }
        }
    }

    var statistics: (allocated: Int, cached: Int) {
        state.withLock { ($0.allocatedBytes, $0.cachedBytes) }
    }

    static func gib(_ bytes: Int) -> String {
        bytes >= 1 << 30 ? "\((Double(bytes) / Double(1 << 30) * 100).rounded() / 100) GiB"
            : "\((Double(bytes) / Double(1 << 20) * 10).rounded() / 10) MiB"
    }
}
