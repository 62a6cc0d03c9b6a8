import CEbbGloo
import EbbCore
import Foundation

/// Where a Gloo rank listens: a host name or address (e.g. "127.0.0.1", a hostname that
/// resolves to this machine) or a network interface name (e.g. "eth0").
public struct GlooTransport: Sendable, Equatable {
    public var hostname: String?
    public var interface: String?

    public init(hostname: String? = nil, interface: String? = nil) {
        self.hostname = hostname
        self.interface = interface
    }

    public static let loopback = GlooTransport(hostname: "127.0.0.1")
}

/// The rendezvous store seen from C: a box the callbacks find through their `user` pointer.
private final class StoreBox {
    let store: any KeyValueStore
    init(_ store: any KeyValueStore) { self.store = store }
}

private func writeError(_ message: String, _ err: UnsafeMutablePointer<CChar>?, _ cap: Int) {
    guard let err, cap > 0 else { return }
    let bytes = Array(message.utf8.prefix(cap - 1))
    for (i, b) in bytes.enumerated() { err[i] = CChar(bitPattern: b) }
    err[bytes.count] = 0
}

private func box(_ user: UnsafeMutableRawPointer?) -> StoreBox? {
    guard let user else { return nil }
    return Unmanaged<StoreBox>.fromOpaque(user).takeUnretainedValue()
}

private let storeSet: ebb_gloo_store_set_fn = { user, key, data, len, err, cap in
    guard let b = box(user), let key else { writeError("bad store callback arguments", err, cap); return 1 }
    let value = (data != nil && len > 0) ? Array(UnsafeBufferPointer(start: data, count: len)) : []
    do {
        try b.store.set(String(cString: key), value)
        return 0
    } catch {
        writeError("\(error)", err, cap)
        return 1
    }
}

private let storeGet: ebb_gloo_store_get_fn = { user, key, timeoutMs, out, outLen, err, cap in
    guard let b = box(user), let key, let out, let outLen else {
        writeError("bad store callback arguments", err, cap)
        return 1
    }
    do {
        let v = try b.store.get(String(cString: key), timeout: .milliseconds(max(timeoutMs, 1)))
        out.pointee = nil
        outLen.pointee = 0
        if !v.isEmpty {
            guard let mem = malloc(v.count) else { writeError("out of memory", err, cap); return 1 }
            v.withUnsafeBytes { mem.copyMemory(from: $0.baseAddress!, byteCount: v.count) }
            out.pointee = mem.assumingMemoryBound(to: UInt8.self)
            outLen.pointee = v.count
        }
        return 0
    } catch {
        writeError("\(error)", err, cap)
        return 1
    }
}

private let storeWait: ebb_gloo_store_wait_fn = { user, keys, n, timeoutMs, err, cap in
    guard let b = box(user) else { writeError("bad store callback arguments", err, cap); return 1 }
    var names: [String] = []
    if let keys {
        for i in 0..<n {
            guard let k = keys[i] else { writeError("null key", err, cap); return 1 }
            names.append(String(cString: k))
        }
    }
    do {
        try b.store.wait(names, timeout: .milliseconds(max(timeoutMs, 1)))
        return 0
    } catch {
        writeError("\(error)", err, cap)
        return 1
    }
}

/// A `Communicator` over Gloo's TCP transport (Debian's libgloo-dev, through `CEbbGloo`).
///
/// The constructor rendezvouses with the other `size - 1` ranks through `store`, under the
/// key prefix `storePrefix` (default `ebb/gen<generation>`), so communicators of different
/// generations never see each other's keys and can coexist. It blocks until every rank has
/// joined or `connectTimeout` (default `timeout`) passes. Every operation is bounded by
/// `timeout`; a peer that died produces an `EbbError(.io, …)`.
public final class GlooCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let generation: UInt64
    public let members: [String]
    public let timeout: Duration

    /// Held for the whole of an operation (one at a time) and while the context is destroyed.
    private let operationLock = NSLock()
    /// Guards `ctx`; never held while waiting on the network, so `abort` runs at once.
    private let contextLock = NSLock()
    private var ctx: OpaquePointer?  // ebb_gloo_ctx*; destroyed only under both locks

    /// Whether this build links libgloo.
    public static var isAvailable: Bool { ebb_gloo_available() != 0 }

    public init(rank: Int, size: Int, generation: UInt64, members: [String]? = nil, store: any KeyValueStore,
                storePrefix: String? = nil, transport: GlooTransport = .loopback, timeout: Duration = .seconds(30),
                connectTimeout: Duration? = nil) throws {
        guard size >= 1, rank >= 0, rank < size, let r32 = Int32(exactly: rank), let s32 = Int32(exactly: size) else {
            throw EbbError(.invalidArgument, "gloo communicator: rank \(rank) out of range for size \(size)")
        }
        let connectTimeout = connectTimeout ?? timeout
        guard timeout >= .milliseconds(1), connectTimeout >= .milliseconds(1) else {
            throw EbbError(.invalidArgument, "gloo communicator: timeouts must be at least 1 ms")
        }
        let m = members ?? (0..<size).map { "rank\($0)" }
        guard m.count == size else {
            throw EbbError(.invalidArgument, "gloo communicator: \(m.count) members for size \(size)")
        }
        self.rank = rank
        self.size = size
        self.generation = generation
        self.members = m
        self.timeout = timeout

        let prefixed = PrefixStore(store, prefix: storePrefix ?? "ebb/gen\(generation)")
        let b = StoreBox(prefixed)
        var cb = ebb_gloo_store(user: Unmanaged.passUnretained(b).toOpaque(), set: storeSet, get: storeGet, wait: storeWait)
        var out: OpaquePointer?
        var err = [CChar](repeating: 0, count: 1024)
        let rc = withExtendedLifetime(b) {
            ebb_gloo_connect(&cb, r32, s32, transport.hostname, transport.interface, connectTimeout.milliseconds,
                             timeout.milliseconds, &out, &err, err.count)
        }
        guard rc == 0, let out else {
            throw Self.error(rc, err, "gen \(generation) rank \(rank)")
        }
        ctx = out
    }

    deinit {
        if let ctx { ebb_gloo_destroy(ctx) }
    }

    private static func error(_ rc: Int32, _ err: [CChar], _ who: String) -> EbbError {
        let msg = err.withUnsafeBufferPointer { p in
            String(decoding: p.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let code: EbbError.Code
        switch Int(rc) {
        case Int(EBB_GLOO_INVALID): code = .invalidArgument
        case Int(EBB_GLOO_INTERNAL): code = .internal
        default: code = .io  // timeout, transport, store
        }
        let kind = Int(rc) == Int(EBB_GLOO_TIMEOUT) ? " (timed out)" : ""
        return EbbError(code, "gloo communicator \(who)\(kind): \(msg)")
    }

    /// Runs one shim call with the context, one operation at a time, mapping failures to EbbError.
    private func call(_ what: String, _ body: (OpaquePointer, UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
        operationLock.lock()
        defer { operationLock.unlock() }
        contextLock.lock()
        let ctx = self.ctx
        contextLock.unlock()
        guard let ctx else { throw EbbError(.io, "gloo communicator gen \(generation) rank \(rank): \(what) on a closed communicator") }
        var err = [CChar](repeating: 0, count: 1024)
        let n = err.count
        let rc = err.withUnsafeMutableBufferPointer { p -> Int32 in
            guard let base = p.baseAddress else { return Int32(EBB_GLOO_INTERNAL) }
            return body(ctx, base, n)
        }
        if rc != 0 { throw Self.error(rc, err, "gen \(generation) rank \(rank)") }
    }

    public func allReduce(_ buffer: UnsafeMutableRawBufferPointer, dtype: CommDType, op: ReduceOp) throws {
        guard buffer.count % dtype.byteSize == 0 else {
            throw EbbError(.invalidArgument, "allReduce: \(buffer.count) bytes is not a whole number of \(dtype) elements")
        }
        let count = buffer.count / dtype.byteSize
        guard count > 0, let base = buffer.baseAddress else { return }
        try call("allReduce") { ebb_gloo_allreduce($0, base, count, dtype.rawValue, op.rawValue, $1, $2) }
    }

    public func allGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        guard output.count == input.count * size else {
            throw EbbError(.invalidArgument, "allGather: output holds \(output.count) bytes, need \(input.count * size)")
        }
        guard input.count > 0, let inp = input.baseAddress, let outp = output.baseAddress else { return }
        try call("allGather") { ebb_gloo_allgather($0, inp, outp, input.count, $1, $2) }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        try checkRoot(root)
        guard buffer.count > 0, let base = buffer.baseAddress else { return }
        try call("broadcast") { ebb_gloo_broadcast($0, base, buffer.count, Int32(root), $1, $2) }
    }

    public func allToAllV(_ input: UnsafeRawBufferPointer, sendCounts: [Int], into output: UnsafeMutableRawBufferPointer,
                          recvCounts: [Int], elementSize: Int) throws {
        guard elementSize > 0 else { throw EbbError(.invalidArgument, "allToAllV: element size must be positive") }
        try checkCounts(sendCounts, recvCounts, available: input.count / elementSize)
        guard output.count >= recvCounts.reduce(0, +) * elementSize else {
            throw EbbError(.invalidArgument, "allToAllV: output too small for the receive counts")
        }
        let sc = sendCounts.map { Int64($0) }
        let rc = recvCounts.map { Int64($0) }
        let inp = input.baseAddress
        let outp = output.baseAddress
        try call("allToAllV") { c, e, n in
            sc.withUnsafeBufferPointer { s in
                rc.withUnsafeBufferPointer { r in
                    ebb_gloo_alltoallv(c, inp, s.baseAddress, outp, r.baseAddress, elementSize, e, n)
                }
            }
        }
    }

    public func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: UInt32) throws {
        try checkPeer(peer, "send")
        let p = bytes.baseAddress
        try call("send") { ebb_gloo_send($0, p, bytes.count, Int32(peer), tag, $1, $2) }
    }

    public func recv(into bytes: UnsafeMutableRawBufferPointer, from peer: Int, tag: UInt32) throws {
        try checkPeer(peer, "recv")
        let p = bytes.baseAddress
        try call("recv") { ebb_gloo_recv($0, p, bytes.count, Int32(peer), tag, $1, $2) }
    }

    public func barrier() throws {
        if size == 1 { return }
        try call("barrier") { ebb_gloo_barrier($0, $1, $2) }
    }

    /// Fails the operation in progress (if any) and every later one at once, from any
    /// thread, and closes the connections so that peers waiting on this rank fail too.
    public func abort(reason: String) {
        contextLock.lock()
        defer { contextLock.unlock() }
        if let ctx { ebb_gloo_abort(ctx, reason) }
    }

    /// Closes the TCP connections; peers' pending and later operations fail. An operation
    /// in progress on another thread is aborted first. Idempotent.
    public func close() {
        contextLock.lock()
        let c = ctx
        ctx = nil
        if let c { ebb_gloo_abort(c, "the communicator was closed") }
        contextLock.unlock()
        guard let c else { return }
        operationLock.lock()
        ebb_gloo_destroy(c)
        operationLock.unlock()
    }
}
