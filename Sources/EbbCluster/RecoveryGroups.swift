import EbbComm
import EbbCore
import EbbEngine
import Foundation

/// The groups a rank's recovery in progress has formed, so that a newer recovery can break
/// them from the control thread.
///
/// Two ranks lost one after the other make the coordinator start a recovery, then abandon
/// it for a newer one over fewer ranks. A survivor's engine thread may be blocked in a
/// collective of the abandoned attempt with a peer that has moved on to the newer one (the
/// rendezvous store releases waits for keys, not collectives); until that collective's
/// timeout it would miss every later attempt. When the control thread receives recovery
/// `g`, it aborts the groups of any older attempt, the engine thread's recovery fails at once,
/// and it takes `g` next.
final class RecoveryGroups: @unchecked Sendable {
    private let lock = NSLock()
    /// The attempt the engine thread is forming (nil between attempts).
    private var forming: UInt64?
    private var aborts: [(String) -> Void] = []
    /// The newest recovery the control thread has received.
    private var newest: UInt64 = 0

    /// The engine thread starts forming recovery `generation`; fails when a newer one came.
    func begin(_ generation: UInt64) throws {
        try lock.withLock {
            if let e = supersededLocked(generation) { throw e }
            forming = generation
            aborts = []
        }
    }

    /// Registers a group of the attempt in progress; a group formed after the attempt was
    /// superseded is aborted at once (and the call throws).
    func track(_ group: any Communicator) throws { try track(abort: { group.abort(reason: $0) }) }
    func track(_ channel: any WeightChannel) throws { try track(abort: { channel.abort(reason: $0) }) }

    /// The engine thread is done with the attempt (adopted its groups or closed them).
    func end() {
        lock.withLock {
            forming = nil
            aborts = []
        }
    }

    /// The control thread received recovery `generation`: breaks an older attempt's groups.
    func supersede(by generation: UInt64) {
        let (taken, old): ([(String) -> Void], UInt64?) = lock.withLock {
            newest = max(newest, generation)
            guard let f = forming, f < generation else { return ([], nil) }
            defer { aborts = [] }
            return (aborts, f)
        }
        guard let old else { return }
        for abort in taken { abort("recovery to generation \(old) was superseded by generation \(generation)") }
    }

    /// Registers what breaks a group of the attempt in progress (an NCCL group's abort).
    func track(abort: @escaping (String) -> Void) throws {
        let superseded: EbbError? = lock.withLock {
            guard let f = forming else { return nil }
            if let e = supersededLocked(f) { return e }
            aborts.append(abort)
            return nil
        }
        if let superseded {
            abort(superseded.message)
            throw superseded
        }
    }

    /// Why attempt `generation` is over, when a newer recovery came.
    private func supersededLocked(_ generation: UInt64) -> EbbError? {
        newest > generation
            ? EbbError(.unavailable, "recovery to generation \(generation) was superseded by generation \(newest)") : nil
    }
}
