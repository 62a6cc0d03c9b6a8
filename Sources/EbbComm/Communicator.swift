import EbbCore

/// Element types a communicator moves and reduces.
public enum CommDType: Int32, Sendable, Equatable, CaseIterable {
    case f32 = 0
    case i32 = 1
    case i64 = 2
    case u8 = 3
    case f64 = 4

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .i64, .f64: return 8
        case .u8: return 1
        }
    }
}

/// Element-wise reductions for `allReduce`.
public enum ReduceOp: Int32, Sendable, Equatable, CaseIterable {
    case sum = 0
    case max = 1
    case min = 2
}

/// Swift element types that map onto a `CommDType` (used by the typed array helpers).
public protocol CommElement: BitwiseCopyable, Sendable, Comparable {
    static var commDType: CommDType { get }
    static var zero: Self { get }
    /// Addition as the reduction does it: wrapping for integers (like C++), IEEE for floats.
    static func commSum(_ a: Self, _ b: Self) -> Self
}

extension Float: CommElement {
    public static var commDType: CommDType { .f32 }
    public static var zero: Float { 0 }
    public static func commSum(_ a: Float, _ b: Float) -> Float { a + b }
}
extension Double: CommElement {
    public static var commDType: CommDType { .f64 }
    public static var zero: Double { 0 }
    public static func commSum(_ a: Double, _ b: Double) -> Double { a + b }
}
extension Int32: CommElement {
    public static var commDType: CommDType { .i32 }
    public static var zero: Int32 { 0 }
    public static func commSum(_ a: Int32, _ b: Int32) -> Int32 { a &+ b }
}
extension Int64: CommElement {
    public static var commDType: CommDType { .i64 }
    public static var zero: Int64 { 0 }
    public static func commSum(_ a: Int64, _ b: Int64) -> Int64 { a &+ b }
}
extension UInt8: CommElement {
    public static var commDType: CommDType { .u8 }
    public static var zero: UInt8 { 0 }
    public static func commSum(_ a: UInt8, _ b: UInt8) -> UInt8 { a &+ b }
}

/// A data-plane group of `size` ranks, this object being rank `rank`, for one `generation`.
///
/// The requirements work on raw host memory so that tensors can be exchanged without
/// copies; the extension below adds typed `[T]` conveniences. Semantics shared by every
/// implementation:
///
/// - Every call is synchronous, is made from one thread at a time (the engine's thread), and
///   either completes or throws an `EbbError` — `.io` for a timeout, a dead/closed peer or a
///   broken transport, `.invalidArgument` for mismatched sizes or bad ranks. A call never
///   waits longer than `timeout` (plus scheduling slack); a peer that never arrives produces an
///   error, not a hang. After a timeout or transport error the communicator is broken:
///   later calls fail too. Build the next generation instead.
/// - Collectives must be entered by every rank in the same order with matching sizes.
/// - `send` has rendezvous semantics: it may block until the peer posts the matching `recv`
///   (Gloo does). Never rely on buffering: order sends and receives so they pair up.
/// - Tags distinguish concurrent point-to-point streams between the same two ranks;
///   messages with the same (source, destination, tag) arrive in order.
/// - Generations are independent objects: a generation g+1 communicator can be built and
///   used while generation g is still serving.
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    var generation: UInt64 { get }
    /// Member identities (e.g. engine-core ids), indexed by rank.
    var members: [String] { get }
    /// Bound on every operation.
    var timeout: Duration { get }

    /// In place: `buffer` holds `buffer.count / dtype.byteSize` elements of `dtype`.
    func allReduce(_ buffer: UnsafeMutableRawBufferPointer, dtype: CommDType, op: ReduceOp) throws
    /// Every rank contributes `input.count` bytes; `output` holds `size * input.count`
    /// bytes, rank r's contribution at offset `r * input.count`.
    func allGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws
    /// In place: on `root` the buffer is the source, elsewhere the destination (same size).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    /// Variable all-to-all. `input` holds, in rank order, `sendCounts[r]` elements for rank
    /// r; `output` receives, in rank order, `recvCounts[r]` elements from rank r. Counts are in
    /// elements of `elementSize` bytes; zero counts are allowed. `recvCounts[r]` must equal
    /// rank r's `sendCounts[self.rank]`.
    func allToAllV(
        _ input: UnsafeRawBufferPointer, sendCounts: [Int],
        into output: UnsafeMutableRawBufferPointer, recvCounts: [Int], elementSize: Int) throws
    /// Sends exactly `bytes.count` bytes to `peer`; the receiver must post a buffer of the
    /// same size.
    func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: UInt32) throws
    /// Receives exactly `bytes.count` bytes from `peer`.
    func recv(into bytes: UnsafeMutableRawBufferPointer, from peer: Int, tag: UInt32) throws
    func barrier() throws
    /// Leaves the group; peers waiting on this rank get an error. Idempotent.
    func close()
    /// Breaks the group from any thread, while another thread may be inside an operation:
    /// that operation and every later one throw `.io` naming `reason`, and peers waiting on
    /// this rank fail too. `close()` still releases the group.
    func abort(reason: String)
}

// MARK: - Typed conveniences

extension Communicator {
    /// In-place all-reduce of an array (all ranks pass the same count).
    public func allReduce<T: CommElement>(_ values: inout [T], op: ReduceOp) throws {
        try values.withUnsafeMutableBytes { try allReduce($0, dtype: T.commDType, op: op) }
    }

    /// All-reduce returning the result.
    public func allReduced<T: CommElement>(_ values: [T], op: ReduceOp) throws -> [T] {
        var v = values
        try allReduce(&v, op: op)
        return v
    }

    /// Gathers `values` (same count on every rank), concatenated in rank order.
    public func allGather<T: CommElement>(_ values: [T]) throws -> [T] {
        var out = [T](repeating: T.zero, count: values.count * size)
        try values.withUnsafeBytes { src in
            try out.withUnsafeMutableBytes { dst in try allGather(src, into: dst) }
        }
        return out
    }

    /// Broadcast of a fixed-size array: every rank passes an array of the same count.
    public func broadcast<T: CommElement>(_ values: inout [T], root: Int) throws {
        try values.withUnsafeMutableBytes { try broadcast($0, root: root) }
    }

    /// Broadcast of an array whose length only the root knows (two broadcasts).
    public func broadcastArray<T: CommElement>(_ values: [T], root: Int) throws -> [T] {
        var count: [Int64] = [Int64(rank == root ? values.count : 0)]
        try broadcast(&count, root: root)
        guard let n = Int(exactly: count[0]), n >= 0 else {
            throw EbbError(.io, "broadcastArray: invalid length \(count[0]) from root \(root)")
        }
        var out = rank == root ? values : [T](repeating: T.zero, count: n)
        try broadcast(&out, root: root)
        return out
    }

    /// Variable all-to-all of arrays; returns the received elements in rank order.
    public func allToAllV<T: CommElement>(_ values: [T], sendCounts: [Int], recvCounts: [Int]) throws -> [T] {
        try checkCounts(sendCounts, recvCounts, available: values.count)
        let total = recvCounts.reduce(0, +)
        var out = [T](repeating: T.zero, count: total)
        try values.withUnsafeBytes { src in
            try out.withUnsafeMutableBytes { dst in
                try allToAllV(src, sendCounts: sendCounts, into: dst, recvCounts: recvCounts,
                              elementSize: MemoryLayout<T>.stride)
            }
        }
        return out
    }

    /// Sends a whole array (its length first, then its elements).
    public func send<T: CommElement>(_ values: [T], to peer: Int, tag: UInt32) throws {
        let header: [Int64] = [Int64(values.count)]
        try header.withUnsafeBytes { try send($0, to: peer, tag: tag) }
        if !values.isEmpty {
            try values.withUnsafeBytes { try send($0, to: peer, tag: tag) }
        }
    }

    /// Receives an array sent with `send(_:to:tag:)`.
    public func recv<T: CommElement>(_ type: T.Type = T.self, from peer: Int, tag: UInt32) throws -> [T] {
        var header: [Int64] = [0]
        try header.withUnsafeMutableBytes { try recv(into: $0, from: peer, tag: tag) }
        guard let n = Int(exactly: header[0]), n >= 0, n <= Int.max / MemoryLayout<T>.stride else {
            throw EbbError(.io, "recv: invalid array length \(header[0]) from rank \(peer)")
        }
        var out = [T](repeating: T.zero, count: n)
        if n > 0 {
            try out.withUnsafeMutableBytes { try recv(into: $0, from: peer, tag: tag) }
        }
        return out
    }

    func checkCounts(_ sendCounts: [Int], _ recvCounts: [Int], available: Int) throws {
        guard sendCounts.count == size, recvCounts.count == size else {
            throw EbbError(.invalidArgument,
                           "allToAllV: need \(size) send and receive counts, got \(sendCounts.count) and \(recvCounts.count)")
        }
        guard sendCounts.allSatisfy({ $0 >= 0 }), recvCounts.allSatisfy({ $0 >= 0 }) else {
            throw EbbError(.invalidArgument, "allToAllV: negative count")
        }
        let need = sendCounts.reduce(0, +)
        guard need <= available else {
            throw EbbError(.invalidArgument, "allToAllV: send counts add up to \(need) elements but only \(available) given")
        }
    }

    func checkPeer(_ peer: Int, _ what: String) throws {
        guard peer >= 0, peer < size, peer != rank else {
            throw EbbError(.invalidArgument, "\(what): peer rank \(peer) is not another rank of a group of \(size) (this is rank \(rank))")
        }
    }

    func checkRoot(_ root: Int) throws {
        guard root >= 0, root < size else {
            throw EbbError(.invalidArgument, "broadcast: root \(root) out of range 0..<\(size)")
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
