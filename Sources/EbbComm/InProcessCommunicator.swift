import EbbCore
import Foundation

/// The shared state of one in-process group: N ranks as threads of one process.
///
/// Create one hub per generation and hand `communicator(rank:)` to each rank's thread.
/// A hub built for generation g+1 is independent of the one for generation g.
public final class InProcessHub: @unchecked Sendable {
    public let size: Int
    public let generation: UInt64
    public let members: [String]
    public let timeout: Duration

    private struct Contribution {
        var bytes: [UInt8]
        var meta: [Int]
    }

    private struct Round {
        var kind: String
        var contributions: [Contribution?]
        var arrived = 0
        var readers = 0
    }

    private struct Message {
        var id: UInt64
        var bytes: [UInt8]
    }

    private struct Channel: Hashable {
        var from: Int
        var to: Int
        var tag: UInt32
    }

    // All state below is guarded by `cond`.
    private let cond = NSCondition()
    private var nextSeq: [UInt64]
    private var rounds: [UInt64: Round] = [:]
    private var mailboxes: [Channel: [Message]] = [:]
    private var consumed: Set<UInt64> = []
    private var nextMessageID: UInt64 = 0
    private var closed: [Bool]
    private var broken: String?

    public init(size: Int, generation: UInt64 = 0, members: [String]? = nil, timeout: Duration = .seconds(30)) throws {
        guard size >= 1 else { throw EbbError(.invalidArgument, "in-process hub: size must be at least 1, got \(size)") }
        guard timeout > .zero else { throw EbbError(.invalidArgument, "in-process hub: timeout must be positive") }
        let m = members ?? (0..<size).map { "rank\($0)" }
        guard m.count == size else {
            throw EbbError(.invalidArgument, "in-process hub: \(m.count) members for size \(size)")
        }
        self.size = size
        self.generation = generation
        self.members = m
        self.timeout = timeout
        self.nextSeq = Array(repeating: 0, count: size)
        self.closed = Array(repeating: false, count: size)
    }

    /// The communicator for `rank`.
    public func communicator(rank: Int) throws -> InProcessCommunicator {
        guard rank >= 0, rank < size else {
            throw EbbError(.invalidArgument, "in-process hub: rank \(rank) out of range 0..<\(size)")
        }
        return InProcessCommunicator(hub: self, rank: rank)
    }

    private func prefix(_ rank: Int) -> String { "in-process communicator gen \(generation) rank \(rank)" }

    private func deadline() -> Date { Date(timeIntervalSinceNow: timeout.seconds) }

    /// Checks that the group is usable; call with `cond` held.
    private func checkUsable(_ rank: Int, _ what: String) throws {
        if closed[rank] { throw EbbError(.io, "\(prefix(rank)): \(what) on a closed communicator") }
        if let b = broken { throw EbbError(.io, "\(prefix(rank)): \(what): group is broken (\(b))") }
    }

    private func breakGroup(_ reason: String) {
        if broken == nil { broken = reason }
        cond.broadcast()
    }

    /// One collective round: deposits this rank's contribution and returns every rank's,
    /// in rank order, once all have arrived.
    fileprivate func exchange(rank: Int, kind: String, bytes: [UInt8], meta: [Int]) throws -> [(bytes: [UInt8], meta: [Int])] {
        cond.lock()
        defer { cond.unlock() }
        try checkUsable(rank, kind)
        let seq = nextSeq[rank]
        nextSeq[rank] += 1
        var round = rounds[seq] ?? Round(kind: kind, contributions: Array(repeating: nil, count: size))
        if round.kind != kind {
            let msg = "collective mismatch at step \(seq): rank \(rank) called \(kind), another rank called \(round.kind)"
            breakGroup(msg)
            throw EbbError(.invalidArgument, "\(prefix(rank)): \(msg)")
        }
        round.contributions[rank] = Contribution(bytes: bytes, meta: meta)
        round.arrived += 1
        rounds[seq] = round
        if round.arrived == size { cond.broadcast() }
        let end = deadline()
        while (rounds[seq]?.arrived ?? 0) < size {
            if let b = broken { throw EbbError(.io, "\(prefix(rank)): \(kind): group is broken (\(b))") }
            if closed[rank] { throw EbbError(.io, "\(prefix(rank)): \(kind): this rank closed the communicator") }
            if let dead = closed.indices.first(where: { closed[$0] && $0 != rank && rounds[seq]?.contributions[$0] == nil }) {
                let msg = "\(kind): rank \(dead) left the group"
                breakGroup(msg)
                throw EbbError(.io, "\(prefix(rank)): \(msg)")
            }
            if !cond.wait(until: end) && (rounds[seq]?.arrived ?? 0) < size {
                let missing = (0..<size).filter { rounds[seq]?.contributions[$0] == nil }
                let msg = "\(kind) timed out after \(timeout) waiting for rank(s) \(missing)"
                breakGroup(msg)
                throw EbbError(.io, "\(prefix(rank)): \(msg)")
            }
        }
        guard var done = rounds[seq] else {
            throw EbbError(.internal, "\(prefix(rank)): \(kind): round \(seq) vanished")
        }
        var result: [(bytes: [UInt8], meta: [Int])] = []
        result.reserveCapacity(size)
        for c in done.contributions {
            guard let c else { throw EbbError(.internal, "\(prefix(rank)): \(kind): missing contribution") }
            result.append((c.bytes, c.meta))
        }
        done.readers += 1
        if done.readers == size { rounds[seq] = nil } else { rounds[seq] = done }
        return result
    }

    fileprivate func send(rank: Int, to peer: Int, tag: UInt32, bytes: [UInt8]) throws {
        cond.lock()
        defer { cond.unlock() }
        try checkUsable(rank, "send")
        if closed[peer] { throw EbbError(.io, "\(prefix(rank)): send: rank \(peer) left the group") }
        let id = nextMessageID
        nextMessageID += 1
        mailboxes[Channel(from: rank, to: peer, tag: tag), default: []].append(Message(id: id, bytes: bytes))
        cond.broadcast()
        // Rendezvous semantics, like Gloo: wait until the peer took the message.
        let end = deadline()
        while !consumed.contains(id) {
            if let b = broken { throw EbbError(.io, "\(prefix(rank)): send: group is broken (\(b))") }
            if closed[rank] { throw EbbError(.io, "\(prefix(rank)): send: this rank closed the communicator") }
            if closed[peer] { throw EbbError(.io, "\(prefix(rank)): send: rank \(peer) left the group") }
            if !cond.wait(until: end) && !consumed.contains(id) {
                let msg = "send to rank \(peer) tag \(tag) timed out after \(timeout)"
                breakGroup(msg)
                throw EbbError(.io, "\(prefix(rank)): \(msg)")
            }
        }
        consumed.remove(id)
    }

    fileprivate func recv(rank: Int, from peer: Int, tag: UInt32, count: Int) throws -> [UInt8] {
        cond.lock()
        defer { cond.unlock() }
        try checkUsable(rank, "recv")
        let ch = Channel(from: peer, to: rank, tag: tag)
        let end = deadline()
        while mailboxes[ch]?.isEmpty ?? true {
            if let b = broken { throw EbbError(.io, "\(prefix(rank)): recv: group is broken (\(b))") }
            if closed[rank] { throw EbbError(.io, "\(prefix(rank)): recv: this rank closed the communicator") }
            if closed[peer] { throw EbbError(.io, "\(prefix(rank)): recv: rank \(peer) left the group") }
            if !cond.wait(until: end) && (mailboxes[ch]?.isEmpty ?? true) {
                let msg = "recv from rank \(peer) tag \(tag) timed out after \(timeout)"
                breakGroup(msg)
                throw EbbError(.io, "\(prefix(rank)): \(msg)")
            }
        }
        guard var queue = mailboxes[ch], !queue.isEmpty else {
            throw EbbError(.internal, "\(prefix(rank)): recv: mailbox vanished")
        }
        let m = queue.removeFirst()
        mailboxes[ch] = queue.isEmpty ? nil : queue
        consumed.insert(m.id)
        cond.broadcast()
        guard m.bytes.count == count else {
            let msg = "recv from rank \(peer) tag \(tag): expected \(count) bytes, the peer sent \(m.bytes.count)"
            breakGroup(msg)
            throw EbbError(.invalidArgument, "\(prefix(rank)): \(msg)")
        }
        return m.bytes
    }

    fileprivate func close(rank: Int) {
        cond.lock()
        closed[rank] = true
        cond.broadcast()
        cond.unlock()
    }

    fileprivate func abort(rank: Int, reason: String) {
        cond.lock()
        closed[rank] = true
        breakGroup("rank \(rank) aborted: \(reason)")
        cond.unlock()
    }
}

/// One rank of an `InProcessHub`. Same semantics as the Gloo communicator, including
/// timeouts (a rank that never arrives makes the others throw after `timeout`) and closed
/// peers (a rank that called `close()` makes its peers' pending and later calls throw).
public final class InProcessCommunicator: Communicator, @unchecked Sendable {
    public let hub: InProcessHub
    public let rank: Int
    public var size: Int { hub.size }
    public var generation: UInt64 { hub.generation }
    public var members: [String] { hub.members }
    public var timeout: Duration { hub.timeout }

    fileprivate init(hub: InProcessHub, rank: Int) {
        self.hub = hub
        self.rank = rank
    }

    /// Builds all ranks of a new group at once (convenience for tests).
    public static func makeGroup(size: Int, generation: UInt64 = 0, members: [String]? = nil,
                                 timeout: Duration = .seconds(30)) throws -> [InProcessCommunicator] {
        let hub = try InProcessHub(size: size, generation: generation, members: members, timeout: timeout)
        return try (0..<size).map { try hub.communicator(rank: $0) }
    }

    public func allReduce(_ buffer: UnsafeMutableRawBufferPointer, dtype: CommDType, op: ReduceOp) throws {
        guard buffer.count % dtype.byteSize == 0 else {
            throw EbbError(.invalidArgument, "allReduce: \(buffer.count) bytes is not a whole number of \(dtype) elements")
        }
        let all = try hub.exchange(rank: rank, kind: "allReduce", bytes: Array(UnsafeRawBufferPointer(buffer)),
                                   meta: [buffer.count, Int(dtype.rawValue), Int(op.rawValue)])
        for (r, c) in all.enumerated() where c.meta != all[0].meta {
            throw EbbError(.invalidArgument,
                           "allReduce: rank \(r) passed (bytes, dtype, op) \(c.meta), rank 0 passed \(all[0].meta)")
        }
        switch dtype {
        case .f32: reduce(Float.self, all, into: buffer, op)
        case .f64: reduce(Double.self, all, into: buffer, op)
        case .i32: reduce(Int32.self, all, into: buffer, op)
        case .i64: reduce(Int64.self, all, into: buffer, op)
        case .u8: reduce(UInt8.self, all, into: buffer, op)
        }
    }

    private func reduce<T: CommElement>(
        _: T.Type, _ all: [(bytes: [UInt8], meta: [Int])], into buffer: UnsafeMutableRawBufferPointer, _ op: ReduceOp
    ) {
        let n = buffer.count / MemoryLayout<T>.stride
        var acc = [T](repeating: T.zero, count: n)
        // Rank order, so every rank computes bit-identical results.
        for (r, c) in all.enumerated() {
            c.bytes.withUnsafeBytes { raw in
                for i in 0..<n {
                    let v = raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.stride, as: T.self)
                    if r == 0 { acc[i] = v; continue }
                    switch op {
                    case .sum: acc[i] = T.commSum(acc[i], v)
                    case .max: acc[i] = Swift.max(acc[i], v)
                    case .min: acc[i] = Swift.min(acc[i], v)
                    }
                }
            }
        }
        acc.withUnsafeBytes { src in buffer.copyMemory(from: src) }
    }

    public func allGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        guard output.count == input.count * size else {
            throw EbbError(.invalidArgument, "allGather: output holds \(output.count) bytes, need \(input.count * size)")
        }
        let all = try hub.exchange(rank: rank, kind: "allGather", bytes: Array(input), meta: [input.count])
        for (r, c) in all.enumerated() where c.bytes.count != input.count {
            throw EbbError(.invalidArgument, "allGather: rank \(r) contributed \(c.bytes.count) bytes, this rank \(input.count)")
        }
        for (r, c) in all.enumerated() {
            c.bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(rebasing: output[(r * input.count)..<((r + 1) * input.count)]).copyMemory(from: src)
            }
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        try checkRoot(root)
        let all = try hub.exchange(rank: rank, kind: "broadcast", bytes: rank == root ? Array(UnsafeRawBufferPointer(buffer)) : [],
                                   meta: [root, buffer.count])
        for (r, c) in all.enumerated() where c.meta != all[0].meta {
            throw EbbError(.invalidArgument, "broadcast: rank \(r) passed (root, bytes) \(c.meta), rank 0 passed \(all[0].meta)")
        }
        if rank != root {
            all[root].bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
    }

    public func allToAllV(_ input: UnsafeRawBufferPointer, sendCounts: [Int], into output: UnsafeMutableRawBufferPointer,
                          recvCounts: [Int], elementSize: Int) throws {
        guard elementSize > 0 else { throw EbbError(.invalidArgument, "allToAllV: element size must be positive") }
        try checkCounts(sendCounts, recvCounts, available: input.count / elementSize)
        let totalRecv = recvCounts.reduce(0, +)
        guard output.count >= totalRecv * elementSize else {
            throw EbbError(.invalidArgument, "allToAllV: output holds \(output.count) bytes, need \(totalRecv * elementSize)")
        }
        let sendBytes = sendCounts.reduce(0, +) * elementSize
        let all = try hub.exchange(rank: rank, kind: "allToAllV",
                                   bytes: Array(UnsafeRawBufferPointer(rebasing: input[0..<sendBytes])),
                                   meta: [elementSize] + sendCounts)
        var outOffset = 0
        for (r, c) in all.enumerated() {
            guard c.meta.count == size + 1, c.meta[0] == elementSize else {
                throw EbbError(.invalidArgument, "allToAllV: rank \(r) used element size \(c.meta.first ?? -1), this rank \(elementSize)")
            }
            let theirCounts = c.meta[1...]
            let n = theirCounts[theirCounts.startIndex + rank]
            guard n == recvCounts[r] else {
                throw EbbError(.invalidArgument,
                               "allToAllV: rank \(r) sends \(n) elements to rank \(rank), which expects \(recvCounts[r])")
            }
            let off = theirCounts.prefix(rank).reduce(0, +) * elementSize
            let len = n * elementSize
            if len > 0 {
                c.bytes.withUnsafeBytes { src in
                    UnsafeMutableRawBufferPointer(rebasing: output[outOffset..<(outOffset + len)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[off..<(off + len)]))
                }
            }
            outOffset += len
        }
    }

    public func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: UInt32) throws {
        try checkPeer(peer, "send")
        try hub.send(rank: rank, to: peer, tag: tag, bytes: Array(bytes))
    }

    public func recv(into bytes: UnsafeMutableRawBufferPointer, from peer: Int, tag: UInt32) throws {
        try checkPeer(peer, "recv")
        let got = try hub.recv(rank: rank, from: peer, tag: tag, count: bytes.count)
        got.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    public func barrier() throws {
        _ = try hub.exchange(rank: rank, kind: "barrier", bytes: [], meta: [])
    }

    public func close() {
        hub.close(rank: rank)
    }

    public func abort(reason: String) {
        hub.abort(rank: rank, reason: reason)
    }
}
