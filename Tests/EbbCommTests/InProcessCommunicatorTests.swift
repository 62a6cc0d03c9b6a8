import EbbComm
import EbbCore
import Foundation
import Testing

@Suite("InProcessCommunicator", .timeLimit(.minutes(1)))
struct InProcessCommunicatorTests {
    @Test("every collective", arguments: [1, 2, 3, 4])
    func collectives(n: Int) throws {
        let comms = try InProcessCommunicator.makeGroup(size: n, generation: 3, timeout: .seconds(10))
        #expect(comms.allSatisfy { $0.generation == 3 && $0.size == n })
        _ = try runRanksOK(n) { r in try exerciseCollectives(comms[r]) }
    }

    @Test("raw all-to-all-v on bytes, element size 2")
    func rawAllToAll() throws {
        let comms = try InProcessCommunicator.makeGroup(size: 3, timeout: .seconds(10))
        let out = try runRanksOK(3) { r -> [UInt8] in
            // rank r sends r+1 two-byte elements to everyone (value = r, to)
            let send = (0..<3).flatMap { to in (0..<(r + 1)).flatMap { _ in [UInt8(r), UInt8(to)] } }
            var recv = [UInt8](repeating: 0, count: 2 * (1 + 2 + 3))
            try send.withUnsafeBytes { s in
                try recv.withUnsafeMutableBytes { d in
                    try comms[r].allToAllV(s, sendCounts: [r + 1, r + 1, r + 1], into: d, recvCounts: [1, 2, 3], elementSize: 2)
                }
            }
            return recv
        }
        for r in 0..<3 {
            #expect(out[r] == (0..<3).flatMap { from in (0..<(from + 1)).flatMap { _ in [UInt8(from), UInt8(r)] } })
        }
    }

    @Test("a rank that never joins makes the others time out")
    func timeout() throws {
        let comms = try InProcessCommunicator.makeGroup(size: 3, timeout: .milliseconds(200))
        let start = ContinuousClock.now
        let res = try runRanks(2, limit: .seconds(5)) { r in try comms[r].allReduced([Float(1)], op: .sum) }
        #expect(ContinuousClock.now - start < .seconds(3))
        for x in res {
            #expect(throws: EbbError.self) { try x.get() }
        }
        // The group is broken afterwards: later calls fail fast.
        #expect(throws: EbbError.self) { try comms[0].barrier() }
    }

    @Test("recv with no sender times out; a closed peer fails fast")
    func recvTimeoutAndClose() throws {
        let comms = try InProcessCommunicator.makeGroup(size: 2, timeout: .milliseconds(150))
        #expect(throws: EbbError.self) { _ = try comms[0].recv(Float.self, from: 1, tag: 0) }
        let comms2 = try InProcessCommunicator.makeGroup(size: 2, timeout: .seconds(30))
        let start = ContinuousClock.now
        let res = try runRanks(2, limit: .seconds(5)) { r in
            if r == 1 { Thread.sleep(forTimeInterval: 0.05); comms2[1].close(); return }
            try comms2[0].barrier()
        }
        #expect(throws: EbbError.self) { try res[0].get() }
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test("abort or close from another thread ends the operation in progress, and the peer's", arguments: [false, true])
    func abortInFlight(byClosing: Bool) throws {
        let comms = try InProcessCommunicator.makeGroup(size: 2, timeout: .seconds(60))
        try checkAbortReleasesWaits(comms, byClosing: byClosing)
    }

    @Test("mismatched sizes and bad arguments are errors, not crashes")
    func badArguments() throws {
        let comms = try InProcessCommunicator.makeGroup(size: 2, timeout: .seconds(5))
        #expect(throws: EbbError.self) { try comms[0].send([Float(1)], to: 0, tag: 0) }
        #expect(throws: EbbError.self) { try comms[0].send([Float(1)], to: 2, tag: 0) }
        var b: [Float] = [1]
        #expect(throws: EbbError.self) { try comms[0].broadcast(&b, root: 5) }
        #expect(throws: EbbError.self) { _ = try comms[0].allToAllV([Float(1)], sendCounts: [1], recvCounts: [1]) }
        let res = try runRanks(2) { r in
            _ = try comms[r].allToAllV([Float](repeating: 0, count: 2), sendCounts: [1, 1], recvCounts: r == 0 ? [1, 2] : [1, 1])
        }
        #expect(throws: EbbError.self) { try res[0].get() }
        #expect(throws: EbbError.self) { try InProcessHub(size: 0) }
    }

    @Test("two generations live at once")
    func twoGenerations() throws {
        let g1 = try InProcessCommunicator.makeGroup(size: 2, generation: 1, timeout: .seconds(10))
        let g2 = try InProcessCommunicator.makeGroup(size: 3, generation: 2, timeout: .seconds(10))
        let out = try runRanksOK(3) { r -> [Float] in
            var a: [Float] = []
            if r < 2 { a += try g1[r].allReduced([Float(1)], op: .sum) }
            a += try g2[r].allReduced([Float(1)], op: .sum)
            if r < 2 { a += try g1[r].allReduced([Float(10)], op: .sum) }
            return a
        }
        #expect(out[0] == [2, 3, 20])
        #expect(out[2] == [3])
    }
}
