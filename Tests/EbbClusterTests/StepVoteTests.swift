import EbbComm
import Foundation
import Testing
@testable import EbbCluster

/// The step-sync vote: every rank sees the same tally of every rank's vote.
struct StepVoteTests {
    @Test func tallyOverThreeRanks() throws {
        let hub = try InProcessHub(size: 3)
        var votes = [StepVote(), StepVote(), StepVote()]
        votes[0].hasWork = true
        votes[0].queued = 2
        votes[1].queued = 1
        for i in 0..<3 {
            votes[i].eplbReady = true
            votes[i].reconfiguring = true
            votes[i].reconfigurationReceived = i != 2
        }
        votes[2].failed = true
        let tallies = SharedTallies()
        let fixed = votes
        let threads = (0..<3).map { r in
            Thread {
                do {
                    let t = try fixed[r].tally(over: try hub.communicator(rank: r))
                    tallies.add(t)
                } catch {
                    tallies.fail("\(error)")
                }
            }
        }
        threads.forEach { $0.start() }
        let deadline = Date().addingTimeInterval(10)
        while tallies.count < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        let all = tallies.values
        #expect(all.count == 3 && Set(all.map { "\($0)" }).count == 1, "every rank sees the same tally")
        let t = try #require(all.first)
        #expect(t.anyWork && t.queued == 3 && t.allEPLBReady && !t.allReceived && !t.allPrepared && t.anyFailed && t.anyReconfiguring)
    }

    @Test func aMalformedTallyIsAnError() {
        #expect(throws: (any Error).self) { try StepTally(sums: [1, 2, 3], ranks: 3) }
    }
}

final class SharedTallies: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [StepTally] = []
    private var errors: [String] = []
    func add(_ t: StepTally) { lock.withLock { list.append(t) } }
    func fail(_ e: String) { lock.withLock { errors.append(e) } }
    var count: Int { lock.withLock { list.count + errors.count } }
    var values: [StepTally] { lock.withLock { list } }
}
