import EbbComm
import EbbCore
import Foundation
import Testing

/// Results per rank, filled by threads.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<T, any Error>?]
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
    func put(_ i: Int, _ r: Result<T, any Error>) { lock.lock(); results[i] = r; lock.unlock() }
    func all() -> [Result<T, any Error>?] { lock.lock(); defer { lock.unlock() }; return results }
}

struct RanksDidNotFinish: Error, CustomStringConvertible {
    var description: String
}

/// Runs `body(rank)` on `n` threads and waits at most `limit` for all of them.
func runRanks<T: Sendable>(_ n: Int, limit: Duration = .seconds(20),
                           _ body: @escaping @Sendable (Int) throws -> T) throws -> [Result<T, any Error>] {
    let box = ResultBox<T>(n)
    let group = DispatchGroup()
    for r in 0..<n {
        group.enter()
        let t = Thread {
            box.put(r, Result { try body(r) })
            group.leave()
        }
        t.stackSize = 1 << 20
        t.start()
    }
    let secs = Double(limit.components.seconds) + Double(limit.components.attoseconds) * 1e-18
    if group.wait(timeout: .now() + secs) == .timedOut {
        throw RanksDidNotFinish(description: "ranks did not finish within \(limit)")
    }
    return try box.all().enumerated().map { i, r in
        guard let r else { throw RanksDidNotFinish(description: "rank \(i) left no result") }
        return r
    }
}

/// Runs ranks and returns their values, failing on any error.
func runRanksOK<T: Sendable>(_ n: Int, limit: Duration = .seconds(20),
                             _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
    try runRanks(n, limit: limit, body).map { try $0.get() }
}

/// Deterministic all-to-all counts: rank `from` sends `count(from, to)` elements to `to`
/// (zero for some pairs).
func a2aCount(_ from: Int, _ to: Int) -> Int { (from * 3 + to * 2 + 1) % 4 }

/// The value rank `from` sends as its k-th element to `to`.
func a2aValue(_ from: Int, _ to: Int, _ k: Int) -> Float { Float(from * 1000 + to * 100 + k) }

/// Exercises every collective on `comm` and checks the results (shared by both implementations).
func exerciseCollectives(_ comm: any Communicator) throws {
    let n = comm.size, r = comm.rank
    // all-reduce sum / max / min, f32 and i32
    let sum = try comm.allReduced([Float(r + 1), 2], op: .sum)
    let wantSum: [Float] = [Float(n * (n + 1) / 2), Float(2 * n)]
    #expect(sum == wantSum)
    let mx = try comm.allReduced([Int32(r), Int32(-r)], op: .max)
    #expect(mx == [Int32(n - 1), 0])
    let mn = try comm.allReduced([Float(r), Float(-r)], op: .min)
    #expect(mn == [0, Float(-(n - 1))])
    let isum = try comm.allReduced([Int32(r * 10), 1, 2, 3], op: .sum)
    let wantI: [Int32] = [Int32(10 * n * (n - 1) / 2), Int32(n), Int32(2 * n), Int32(3 * n)]
    #expect(isum == wantI)
    // all-gather
    let g = try comm.allGather([Int32(r), Int32(r * r)])
    var wantG: [Int32] = []
    for i in 0..<n { wantG.append(Int32(i)); wantG.append(Int32(i * i)) }
    #expect(g == wantG)
    // broadcast from every root
    for root in 0..<n {
        var b: [Float] = r == root ? [Float(root) + 0.5, 7] : [0, 0]
        try comm.broadcast(&b, root: root)
        #expect(b == [Float(root) + 0.5, 7])
        let arr = try comm.broadcastArray(r == root ? [Int32](repeating: Int32(root), count: root + 1) : [], root: root)
        #expect(arr == [Int32](repeating: Int32(root), count: root + 1))
    }
    // all-to-all-v with uneven and zero counts
    let sendCounts = (0..<n).map { a2aCount(r, $0) }
    let recvCounts = (0..<n).map { a2aCount($0, r) }
    let send = (0..<n).flatMap { to in (0..<a2aCount(r, to)).map { a2aValue(r, to, $0) } }
    let got = try comm.allToAllV(send, sendCounts: sendCounts, recvCounts: recvCounts)
    let want = (0..<n).flatMap { from in (0..<a2aCount(from, r)).map { a2aValue(from, r, $0) } }
    #expect(got == want)
    // all zero counts
    let empty = try comm.allToAllV([Float](), sendCounts: Array(repeating: 0, count: n), recvCounts: Array(repeating: 0, count: n))
    #expect(empty.isEmpty)
    // send / recv around a ring (even ranks send first, odd ranks receive first: rendezvous)
    if n > 1 {
        let next = (r + 1) % n, prev = (r + n - 1) % n
        let msg = [Int32](repeating: Int32(r), count: r + 2)
        if r % 2 == 0 {
            try comm.send(msg, to: next, tag: 5)
            let m = try comm.recv(Int32.self, from: prev, tag: 5)
            #expect(m == [Int32](repeating: Int32(prev), count: prev + 2))
        } else {
            let m = try comm.recv(Int32.self, from: prev, tag: 5)
            #expect(m == [Int32](repeating: Int32(prev), count: prev + 2))
            try comm.send(msg, to: next, tag: 5)
        }
    }
    try comm.barrier()
}

/// Rank 0 and rank 1 each wait for a message the other never sends (the group's timeout is
/// long); a third thread aborts (or closes) rank 0 meanwhile. Both waits must end with an
/// error well before the timeout — the hang guard of `runRanks` fails the test otherwise —
/// rank 0's naming the abort, and rank 0's later operations must fail too.
func checkAbortReleasesWaits(_ comms: [any Communicator], byClosing: Bool) throws {
    let results = try runRanks(3, limit: .seconds(20)) { r -> [Float] in
        switch r {
        case 0: return try comms[0].recv(Float.self, from: 1, tag: 7)
        case 1: return try comms[1].recv(Float.self, from: 0, tag: 8)
        default:
            Thread.sleep(forTimeInterval: 0.2)
            if byClosing { comms[0].close() } else { comms[0].abort(reason: "the test aborts rank 0") }
            return []
        }
    }
    #expect { try results[0].get() } throws: { error in
        byClosing || "\(error)".contains("the test aborts rank 0")
    }
    #expect(throws: EbbError.self) { try results[1].get() }
    #expect(throws: EbbError.self) { try comms[0].barrier() }
    comms.forEach { $0.close() }
}
