import EbbCore
import Foundation

/// When every rank is lost there is nobody to copy weights from: a new generation starts
/// from the checkpoint, as at start-up (`--replace-failed-ranks`). Meanwhile requests get 503.
extension Coordinator {
    /// Makes `size` new engines the members of a new generation that loads the checkpoint;
    /// returns it and their ids (launch them as initial ranks, then `waitUntilRestarted`).
    public func restartFromCheckpoint(size: Int) throws -> (generation: UInt64, engineIds: [String]) {
        try lock.withLock {
            if let failure { throw EbbError(.io, "the deployment has failed: \(failure.message)") }
            guard membership.members.isEmpty, resize == nil, restarting == nil, size >= 1 else {
                throw EbbError(.invalidArgument, "a restart from the checkpoint is only for a deployment with no rank left")
            }
            let g = membership.claimGeneration()
            recovery?.noteGeneration(g)
            let ids = membership.newEngineIds(size)
            for id in ids { membership.engines[id] = Membership.Engine() }
            membership.switchTo(g, members: ids)
            restarting = (Set(ids), nil)
            return (g, ids)
        }
    }

    /// Waits until the restarted ranks are ready; throws if one of them is lost first or the
    /// time runs out (then the deployment has no rank again, and the starters are fenced).
    public func waitUntilRestarted(timeout: Duration) async throws {
        let end = ContinuousClock.now + timeout
        while true {
            let (ready, problem, failed) = lock.withLock { (membership.allReady, restarting?.problem, failure) }
            if let failed { throw failed }
            if ready {
                lock.withLock { restarting = nil }
                return
            }
            if problem != nil || ContinuousClock.now >= end {
                abandonRestart()
                throw EbbError(.io, problem ?? "the new ranks did not become ready within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Gives a restart up: its ranks are fenced and the deployment has no rank again.
    public func abandonRestart() {
        let ids: [String] = lock.withLock {
            guard restarting != nil else { return [] }
            let ids = membership.members
            for id in ids { membership.engines[id]?.released = true }
            membership.switchTo(nil, members: [])
            restarting = nil
            return ids
        }
        for id in ids { fence?(id) }
    }

    /// A starting rank of a restart was lost: the restart fails (no recovery of a generation
    /// that never served).
    func restartLostLocked(_ engine: String, message: String) -> [RankRecovery.Action]? {
        guard let r = restarting, r.ids.contains(engine) else { return nil }
        if restarting?.problem == nil { restarting?.problem = message }
        membership.engines[engine]?.released = true
        return [.fence(engine)]
    }
}
