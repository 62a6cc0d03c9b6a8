import EbbComm
import EbbCore
import Foundation
import Testing
@testable import EbbCluster

/// A newer recovery breaks the groups of the attempt a survivor is still forming.
struct RecoveryGroupsTests {
    /// The engine thread waits in a collective of recovery 2 with a peer that moved on; the
    /// control thread receives recovery 3 and the wait ends at once (the group's own timeout
    /// is a minute).
    @Test func aNewerRecoveryReleasesAWaitInTheOlderOnesGroup() throws {
        let hub = try InProcessHub(size: 2, timeout: .seconds(60))
        let group = try hub.communicator(rank: 0)
        let recovery = RecoveryGroups()
        try recovery.begin(2)
        try recovery.track(group)
        let waiter = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            recovery.supersede(by: 3)
        }
        waiter.start()
        #expect { try group.recv(Float.self, from: 1, tag: 1) } throws: { error in
            "\(error)".contains("superseded by generation 3")
        }
        recovery.end()
    }

    @Test func anAttemptOlderThanTheNewestRecoveryFailsBeforeForming() throws {
        let recovery = RecoveryGroups()
        recovery.supersede(by: 4)
        #expect(throws: EbbError.self) { try recovery.begin(3) }
        try recovery.begin(4)
        recovery.end()
    }

    @Test func aGroupFormedAfterTheAttemptWasSupersededIsAbortedAtOnce() throws {
        let hub = try InProcessHub(size: 2, timeout: .seconds(60))
        let group = try hub.communicator(rank: 0)
        let recovery = RecoveryGroups()
        try recovery.begin(2)
        recovery.supersede(by: 3)
        #expect(throws: EbbError.self) { try recovery.track(group) }
        #expect(throws: EbbError.self) { try group.barrier() }
    }

    /// The recovery being formed, or one already received, is not broken by its own message;
    /// nor is anything once the attempt ended.
    @Test func theSameOrAFinishedAttemptIsLeftAlone() throws {
        let hub = try InProcessHub(size: 1, timeout: .seconds(5))
        let group = try hub.communicator(rank: 0)
        let recovery = RecoveryGroups()
        recovery.supersede(by: 2)
        try recovery.begin(2)
        try recovery.track(group)
        recovery.supersede(by: 2)
        try group.barrier()
        recovery.end()
        recovery.supersede(by: 5)
        try group.barrier()
    }
}
