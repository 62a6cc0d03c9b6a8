import EbbComm
import EbbCore
import Foundation
import Testing

/// Gloo over TCP on 127.0.0.1, one Gloo context per thread in this process.
@Suite("GlooCommunicator", .serialized, .timeLimit(.minutes(1)), .enabled(if: GlooCommunicator.isAvailable))
struct GlooCommunicatorTests {
    static func tempDir() -> String {
        NSTemporaryDirectory() + "ebb-gloo-test-\(UInt64.random(in: 0...UInt64.max))"
    }

    static func group(_ n: Int, generation: UInt64 = 0, store: any KeyValueStore,
                      timeout: Duration = .seconds(10)) throws -> [GlooCommunicator] {
        try runRanksOK(n) { r in
            try GlooCommunicator(rank: r, size: n, generation: generation, store: store, timeout: timeout)
        }
    }

    @Test("every collective over TCP", arguments: [1, 2, 3])
    func collectives(n: Int) throws {
        let comms = try Self.group(n, store: InMemoryKeyValueStore())
        _ = try runRanksOK(n) { r in try exerciseCollectives(comms[r]) }
        comms.forEach { $0.close() }
    }

    @Test("rendezvous through a file store")
    func fileStore() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileKeyValueStore(directory: dir)
        let comms = try Self.group(2, generation: 7, store: store)
        let out = try runRanksOK(2) { r in try comms[r].allReduced([Float(r + 1)], op: .sum) }
        #expect(out == [[3], [3]])
        comms.forEach { $0.close() }
    }

    @Test("two generations alive at once on one store")
    func twoGenerations() throws {
        let store = InMemoryKeyValueStore()
        let g1 = try Self.group(2, generation: 1, store: store)
        // Generation 2 (three ranks) is built while generation 1 keeps working.
        let out = try runRanksOK(3) { r -> [Float] in
            var a: [Float] = []
            if r < 2 { a += try g1[r].allReduced([Float(1)], op: .sum) }
            let g2 = try GlooCommunicator(rank: r, size: 3, generation: 2, store: store, timeout: .seconds(10))
            a += try g2.allReduced([Float(1)], op: .sum)
            if r < 2 { a += try g1[r].allReduced([Float(10)], op: .sum) }
            let v = try g2.allToAllV([Float(r), Float(r), Float(r)], sendCounts: [1, 1, 1], recvCounts: [1, 1, 1])
            a += v
            g2.close()
            return a
        }
        #expect(out[0] == [2, 3, 20, 0, 1, 2])
        #expect(out[2] == [3, 0, 1, 2])
        #expect(store.keys.contains { $0.hasPrefix("ebb/gen1/") })
        #expect(store.keys.contains { $0.hasPrefix("ebb/gen2/") })
        g1.forEach { $0.close() }
    }

    @Test("a rank that never joins the rendezvous times out")
    func rendezvousTimeout() throws {
        let start = ContinuousClock.now
        let res = try runRanks(1, limit: .seconds(10)) { _ in
            _ = try GlooCommunicator(rank: 0, size: 2, generation: 0, store: InMemoryKeyValueStore(), timeout: .milliseconds(300))
        }
        #expect(throws: EbbError.self) { try res[0].get() }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("a peer that stops participating makes collectives and recv time out")
    func peerTimeout() throws {
        let comms = try Self.group(2, store: InMemoryKeyValueStore(), timeout: .milliseconds(400))
        let start = ContinuousClock.now
        let res = try runRanks(1, limit: .seconds(10)) { _ in try comms[0].allReduced([Float(1)], op: .sum) }
        #expect(throws: EbbError.self) { try res[0].get() }
        let res2 = try runRanks(1, limit: .seconds(10)) { _ in try comms[1].recv(Float.self, from: 0, tag: 9) }
        #expect(throws: EbbError.self) { try res2[0].get() }
        #expect(ContinuousClock.now - start < .seconds(6))
        comms.forEach { $0.close() }
    }

    @Test("a peer that closes makes the other side fail, not hang")
    func peerClosed() throws {
        let comms = try Self.group(2, store: InMemoryKeyValueStore(), timeout: .seconds(5))
        let start = ContinuousClock.now
        let res = try runRanks(2, limit: .seconds(15)) { r in
            if r == 1 { Thread.sleep(forTimeInterval: 0.1); comms[1].close(); return }
            _ = try comms[0].allReduced([Float(1)], op: .sum)
        }
        #expect(throws: EbbError.self) { try res[0].get() }
        #expect(ContinuousClock.now - start < .seconds(8))
        #expect(throws: EbbError.self) { try comms[1].barrier() }
        comms[0].close()
    }

    @Test("abort or close from another thread ends the operation in progress, and the peer's", arguments: [false, true])
    func abortInFlight(byClosing: Bool) throws {
        let comms = try Self.group(2, store: InMemoryKeyValueStore(), timeout: .seconds(60))
        try checkAbortReleasesWaits(comms, byClosing: byClosing)
    }

    @Test("small all-reduce latency between two ranks (printed, not asserted)")
    func latency() throws {
        let comms = try Self.group(2, store: InMemoryKeyValueStore())
        let iters = 500
        let times = try runRanksOK(2) { r -> Double in
            var v: [Float] = [1, 2, 3, 4]
            for _ in 0..<100 { try comms[r].allReduce(&v, op: .sum) }
            let t0 = ContinuousClock.now
            for _ in 0..<iters { v = [1, 2, 3, 4]; try comms[r].allReduce(&v, op: .sum) }
            let d = ContinuousClock.now - t0
            return (Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18) / Double(iters)
        }
        print("gloo 2-rank all-reduce of 4 f32 (threads, 127.0.0.1): \(String(format: "%.1f", times[0] * 1e6)) µs per call")
        comms.forEach { $0.close() }
    }
}

extension GlooCommunicatorTests {
    @Test("all-reduce on both sides of the algorithm switch, and a large all-to-all-v", arguments: [2, 3])
    func large(n: Int) throws {
        let comms = try GlooCommunicatorTests.group(n, store: InMemoryKeyValueStore())
        _ = try runRanksOK(n) { r in
            for count in [1, 7, 65_536, 65_537, 300_000] {
                let v = try comms[r].allReduced((0..<count).map { Float(($0 % 97) * (r + 1)) }, op: .sum)
                let k = Float(n * (n + 1) / 2)
                #expect(v == (0..<count).map { Float($0 % 97) * k })
                let m = try comms[r].allReduced([Int64](repeating: Int64(r), count: count), op: .max)
                #expect(m.allSatisfy { $0 == Int64(n - 1) })
            }
            let per = 50_000
            let send = (0..<(per * n)).map { Int32(r * 1_000_000 + $0) }
            let got = try comms[r].allToAllV(send, sendCounts: Array(repeating: per, count: n),
                                             recvCounts: Array(repeating: per, count: n))
            let want = (0..<n).flatMap { from in (0..<per).map { Int32(from * 1_000_000 + r * per + $0) } }
            #expect(got == want)
        }
        comms.forEach { $0.close() }
    }
}
