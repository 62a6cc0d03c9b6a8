import CEbbCUDA
import EbbCore
import EbbCUDA
import EbbTensor
import Foundation

/// A data-plane group over NCCL on GPU ranks, for one generation: collectives on device
/// tensors, enqueued on the backend's stream (so they order with the model's kernels and can
/// be captured in CUDA graphs). NCCL is loaded at run time (`CEbbCUDA`); without it `init`
/// throws a clear error.
///
/// - Rendezvous: rank 0 makes the unique id and writes it to the store (the coordinator's,
///   as Gloo's rendezvous does); the others read it.
/// - Initialization is non-blocking and bounded by `timeout`: when it expires or fails the
///   half-built communicator is aborted (`ncclCommAbort`) and `init` throws.
/// - Errors: every call checks NCCL's result; a watchdog polls `ncclCommGetAsyncError` and
///   aborts the communicator on an asynchronous error (a dead peer, a broken connection), so
///   kernels waiting on that peer are released; the communicator is then broken and every
///   later call throws. Build the next generation instead.
/// - Ranks that share one GPU need distinct `NCCL_HOSTID`s (NCCL refuses two ranks of one
///   host on one device); the launcher sets it.
public final class NCCLCommunicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let generation: UInt64
    public let members: [String]
    public let timeout: Duration
    public let backend: CUDABackend
    private let api: UnsafePointer<EbbCUDAApi>
    private let lock = NSLock()
    private var comm: EbbNcclComm?
    private var failure: EbbError?
    private var closed = false
    private var watchdog: Thread?
    /// When the watched work began (`expectProgress`), until `checkHealth` sees it finish.
    private var busySince: ContinuousClock.Instant?
    /// Seconds NCCL initialization took (rendezvous included).
    public private(set) var initSeconds: Double = 0

    /// NCCL's version (e.g. 22809), or nil when NCCL is not loaded.
    public static var version: Int? {
        guard let api = ebb_cuda_api(), api.pointee.loaded & Int32(EBB_LIB_NCCL) != 0, let get = api.pointee.ncclGetVersion else {
            return nil
        }
        var v: Int32 = 0
        return get(&v) == 0 ? Int(v) : nil
    }

    /// Whether the loaded NCCL can split or shrink a communicator.
    public static var canSplit: Bool { ebb_cuda_api()?.pointee.ncclCommSplit != nil }
    public static var canShrink: Bool { ebb_cuda_api()?.pointee.ncclCommShrink != nil }

    public init(rank: Int, size: Int, generation: UInt64, members: [String]? = nil, store: any KeyValueStore,
                storePrefix: String? = nil, backend: CUDABackend, timeout: Duration) throws {
        guard size >= 1, rank >= 0, rank < size else {
            throw EbbError(.invalidArgument, "NCCL group: rank \(rank) of \(size) is out of range")
        }
        guard let api = ebb_cuda_api(), api.pointee.loaded & Int32(EBB_LIB_NCCL) != 0 else {
            throw EbbError(.unsupported, "NCCL is unavailable: libnccl.so.2 was not loaded (install NCCL 2.18 or newer, or point EBB_CUDA_LIB_DIR at it).\n"
                + CUDALibraries.process.report)
        }
        self.api = api
        self.rank = rank
        self.size = size
        self.generation = generation
        self.members = members ?? (0..<size).map { "rank\($0)" }
        self.timeout = timeout
        self.backend = backend
        let started = ContinuousClock.now
        let prefix = storePrefix ?? "ebb/gen\(generation)/nccl"
        let key = "\(prefix)/unique-id"
        var id = [UInt8](repeating: 0, count: 128)
        if rank == 0 {
            var uid = EbbNcclUniqueId()
            try Self.check(api, api.pointee.ncclGetUniqueId(&uid), "ncclGetUniqueId", nil)
            id = withUnsafeBytes(of: &uid) { Array($0) }
            try store.set(key, id)
        } else {
            id = try store.get(key, timeout: timeout)
            guard id.count == 128 else {
                throw EbbError(.io, "NCCL rendezvous: the unique id under '\(key)' has \(id.count) bytes, not 128")
            }
        }
        try backend.makeCurrent()
        var handle: EbbNcclComm?
        let code = id.withUnsafeBufferPointer { ebb_nccl_init_rank(api, &handle, Int32(size), $0.baseAddress, Int32(rank), 0) }
        guard let handle else {
            try Self.check(api, code, "ncclCommInitRankConfig (rank \(rank) of \(size))", nil)
            throw EbbError(.internal, "ncclCommInitRankConfig returned no communicator")
        }
        comm = handle
        if code != Int32(EBB_NCCL_SUCCESS) && code != Int32(EBB_NCCL_IN_PROGRESS) {
            _ = api.pointee.ncclCommAbort(handle)
            comm = nil
            try Self.check(api, code, "ncclCommInitRankConfig (rank \(rank) of \(size))", nil)
        }
        do {
            try waitReady("initialization of NCCL group (rank \(rank) of \(size), generation \(generation))",
                          deadline: started + timeout)
        } catch {
            _ = api.pointee.ncclCommAbort(handle)
            comm = nil
            throw error
        }
        initSeconds = (ContinuousClock.now - started).seconds
        startWatchdog()
    }

    deinit { close() }

    // MARK: Errors

    private static func text(_ api: UnsafePointer<EbbCUDAApi>, _ code: Int32, _ comm: EbbNcclComm?) -> String {
        var s = api.pointee.ncclGetErrorString(code).map { String(cString: $0) } ?? "NCCL error \(code)"
        if let comm, let last = api.pointee.ncclGetLastError(comm).map({ String(cString: $0) }), !last.isEmpty {
            s += " (\(last))"
        }
        return s
    }

    private static func check(_ api: UnsafePointer<EbbCUDAApi>, _ code: Int32, _ what: String, _ comm: EbbNcclComm?) throws {
        guard code != Int32(EBB_NCCL_SUCCESS), code != Int32(EBB_NCCL_IN_PROGRESS) else { return }
        throw EbbError(.io, "\(what) failed: \(text(api, code, comm))")
    }

    /// Polls the communicator's state until it is no longer in progress (non-blocking
    /// communicators return before their work is enqueued), at most until `deadline`.
    private func waitReady(_ what: String, deadline: ContinuousClock.Instant) throws {
        guard let comm else { throw EbbError(.io, "\(what): the NCCL communicator is closed") }
        var state: Int32 = Int32(EBB_NCCL_IN_PROGRESS)
        while true {
            // Aborted meanwhile (a recovery, the watchdog): stop polling a handle being freed.
            if let broken = lock.withLock({ self.comm == nil ? (failure ?? EbbError(.io, "closed")) : nil }) {
                throw EbbError(.io, "\(what): the NCCL group of generation \(generation) was aborted: \(broken.message)")
            }
            let code = api.pointee.ncclCommGetAsyncError(comm, &state)
            try Self.check(api, code, what, comm)
            if state != Int32(EBB_NCCL_IN_PROGRESS) { break }
            if ContinuousClock.now >= deadline {
                throw EbbError(.io, "\(what) timed out after \(timeout)")
            }
            Thread.sleep(forTimeInterval: 0.0005)
        }
        try Self.check(api, state, what, comm)
    }

    /// The communicator for a call, or the error that broke it.
    private func live(_ what: String) throws -> EbbNcclComm {
        try lock.withLock {
            if let failure { throw EbbError(.io, "\(what): the NCCL group of generation \(generation) is broken: \(failure.message)") }
            guard !closed, let comm else { throw EbbError(.io, "\(what): the NCCL group of generation \(generation) is closed") }
            return comm
        }
    }

    /// Starts watching the work enqueued from now on (a step's collectives): if `checkHealth`
    /// does not follow within `timeout`, a peer died or hung inside a collective, and the
    /// watchdog aborts the group so the kernels waiting for it, and this rank, are released.
    public func expectProgress() {
        lock.withLock { busySince = .now }
    }

    /// Ends the watch and throws when the group broke (an asynchronous error, a hung peer,
    /// an abort): a step whose collectives ran on a broken group has meaningless results.
    public func checkHealth() throws {
        lock.withLock { busySince = nil }
        _ = try live("NCCL group")
    }

    private func startWatchdog() {
        let t = Thread { [weak self] in
            while let me = self, !me.lock.withLock({ me.closed || me.failure != nil }) {
                me.poll()
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        t.name = "nccl-watchdog-gen\(generation)-rank\(rank)"
        watchdog = t
        t.start()
    }

    private func poll() {
        let broken: EbbNcclComm? = lock.withLock {
            guard !closed, failure == nil, let comm else { return nil }
            var state: Int32 = 0
            let code = api.pointee.ncclCommGetAsyncError(comm, &state)
            let bad = code != Int32(EBB_NCCL_SUCCESS) ? code : state
            if bad != Int32(EBB_NCCL_SUCCESS) && bad != Int32(EBB_NCCL_IN_PROGRESS) {
                failure = EbbError(.io, "NCCL reported an asynchronous error: \(Self.text(api, bad, comm)); the group was aborted")
            } else if let busySince, ContinuousClock.now - busySince > timeout {
                failure = EbbError(.io, "the NCCL group of generation \(generation) made no progress for \(timeout) (a peer died or hung in a collective); the group was aborted")
            } else {
                return nil
            }
            self.comm = nil
            return comm
        }
        // Outside the lock (see `abort`).
        if let broken { _ = api.pointee.ncclCommAbort(broken) }
    }

    /// Aborts the group (peers blocked in a collective with it are released). Idempotent.
    /// `ncclCommAbort` runs outside the lock: a call that waits for NCCL must not keep the
    /// engine thread's `waitReady` (which reads `failure`) or the watchdog behind it.
    public func abort(reason: String) {
        let handle: EbbNcclComm? = lock.withLock {
            guard let comm else { return nil }
            if failure == nil { failure = EbbError(.io, reason) }
            self.comm = nil
            return comm
        }
        if let handle { _ = api.pointee.ncclCommAbort(handle) }
    }

    /// Leaves the group: waits for the stream, then destroys the communicator (aborts it
    /// when it is broken). Release graphs that captured it first. Idempotent.
    public func close() {
        let handle: EbbNcclComm? = lock.withLock {
            guard !closed else { return nil }
            closed = true
            defer { comm = nil }
            return comm
        }
        guard let handle else { return }
        if (try? backend.makeCurrent()) != nil { backend.synchronize() }
        _ = api.pointee.ncclCommAbort(handle)
    }

    // MARK: Collectives on device tensors

    private static func ncclType(_ dtype: DType) throws -> Int32 {
        switch dtype {
        case .f32: return Int32(EBB_NCCL_FLOAT32)
        case .bf16: return Int32(EBB_NCCL_BFLOAT16)
        case .f16: return Int32(EBB_NCCL_FLOAT16)
        case .i32: return Int32(EBB_NCCL_INT32)
        }
    }

    private func address(_ t: Tensor, _ what: String) throws -> UnsafeMutableRawPointer {
        guard case .cuda = t.device, t.isContiguous, let p = backend.deviceAddress(t) else {
            throw EbbError(.invalidArgument, "\(what): NCCL needs contiguous tensors on the GPU, got \(t.device) \(t.shape)")
        }
        return p
    }

    /// Runs one enqueue (or a group of them) and waits until NCCL has taken it.
    private func enqueue(_ what: String, _ body: (EbbNcclComm) -> Int32) throws {
        let comm = try live(what)
        try backend.makeCurrent()
        let code = body(comm)
        try Self.check(api, code, what, comm)
        if code == Int32(EBB_NCCL_IN_PROGRESS) {
            try waitReady(what, deadline: .now + timeout)
        }
    }

    /// Rank r's `input` lands at element offset `r · input.count` of `output`.
    public func allGather(_ input: Tensor, into output: Tensor) throws {
        guard output.count == input.count * size, input.dtype == output.dtype else {
            throw EbbError(.invalidArgument, "NCCL allGather: \(output.count) output elements for \(size) × \(input.count)")
        }
        let src = try address(input, "allGather"), dst = try address(output, "allGather")
        let type = try Self.ncclType(input.dtype)
        try enqueue("ncclAllGather") { api.pointee.ncclAllGather(src, dst, input.count, type, $0, backend.streamHandle) }
    }

    /// Equal chunks: input chunk r goes to rank r, output chunk r comes from rank r
    /// (grouped sends and receives).
    public func allToAll(_ input: Tensor, into output: Tensor) throws {
        guard input.count == output.count, input.count % size == 0, input.dtype == output.dtype else {
            throw EbbError(.invalidArgument, "NCCL allToAll: \(input.count) and \(output.count) elements do not split into \(size) equal chunks")
        }
        let src = try address(input, "allToAll"), dst = try address(output, "allToAll")
        let type = try Self.ncclType(input.dtype)
        let chunk = input.count / size, bytes = chunk * input.dtype.byteSize
        try enqueue("NCCL all-to-all") { comm in
            let stream = backend.streamHandle
            var code = api.pointee.ncclGroupStart()
            for peer in 0..<size where code == 0 {
                code = api.pointee.ncclSend(src + peer * bytes, chunk, type, Int32(peer), comm, stream)
                if code == 0 { code = api.pointee.ncclRecv(dst + peer * bytes, chunk, type, Int32(peer), comm, stream) }
            }
            let end = api.pointee.ncclGroupEnd()
            return code != 0 ? code : end
        }
    }

    /// In place.
    public func allReduce(_ tensor: Tensor, op: ReduceOp) throws {
        let p = try address(tensor, "allReduce")
        let type = try Self.ncclType(tensor.dtype)
        let nop: Int32 = op == .sum ? Int32(EBB_NCCL_SUM) : op == .max ? Int32(EBB_NCCL_MAX) : Int32(EBB_NCCL_MIN)
        try enqueue("ncclAllReduce") { api.pointee.ncclAllReduce(p, p, tensor.count, type, nop, $0, backend.streamHandle) }
    }

    /// In place: the root's tensor is copied to every rank's.
    public func broadcast(_ tensor: Tensor, root: Int) throws {
        guard root >= 0, root < size else { throw EbbError(.invalidArgument, "NCCL broadcast: root \(root) of \(size)") }
        let p = try address(tensor, "broadcast")
        let type = try Self.ncclType(tensor.dtype)
        try enqueue("ncclBroadcast") { api.pointee.ncclBroadcast(p, p, tensor.count, type, Int32(root), $0, backend.streamHandle) }
    }

    public func send(_ tensor: Tensor, to peer: Int) throws {
        guard peer >= 0, peer < size, peer != rank else { throw EbbError(.invalidArgument, "NCCL send: peer \(peer) of \(size)") }
        let p = try address(tensor, "send")
        let type = try Self.ncclType(tensor.dtype)
        try enqueue("ncclSend") { api.pointee.ncclSend(p, tensor.count, type, Int32(peer), $0, backend.streamHandle) }
    }

    public func recv(into tensor: Tensor, from peer: Int) throws {
        guard peer >= 0, peer < size, peer != rank else { throw EbbError(.invalidArgument, "NCCL recv: peer \(peer) of \(size)") }
        let p = try address(tensor, "recv")
        let type = try Self.ncclType(tensor.dtype)
        try enqueue("ncclRecv") { api.pointee.ncclRecv(p, tensor.count, type, Int32(peer), $0, backend.streamHandle) }
    }
}
