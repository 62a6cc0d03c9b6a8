import EbbComm
import EbbCore

/// What one rank says at a step boundary (the step-sync all-reduce). Every rank adds its
/// vote; the tally tells each rank the same thing, so every boundary decision (step or
/// not, switch EPLB, begin / commit / roll back a reconfiguration) is taken by all ranks
/// together.
struct StepVote: Equatable {
    /// This rank has requests to step.
    var hasWork = false
    /// Requests running or waiting here.
    var queued = 0
    /// This rank's EPLB rearrangement has staged its experts.
    var eplbReady = false
    /// A reconfiguration was received and may begin (no rearrangement running).
    var reconfigurationReceived = false
    /// This rank's preparation of the reconfiguration finished without error.
    var prepared = false
    /// The reconfiguration failed here, or the coordinator aborted it.
    var failed = false
    /// This rank holds a reconfiguration (received, preparing or prepared).
    var reconfiguring = false

    var encoded: [Int64] {
        [hasWork ? 1 : 0, Int64(queued), eplbReady ? 1 : 0, reconfigurationReceived ? 1 : 0, prepared ? 1 : 0,
         failed ? 1 : 0, reconfiguring ? 1 : 0]
    }

    /// Sums every rank's vote over `communicator`.
    func tally(over communicator: any Communicator) throws -> StepTally {
        try StepTally(sums: communicator.allReduced(encoded, op: .sum), ranks: communicator.size)
    }
}

/// The votes of every rank, summed.
struct StepTally: Equatable {
    let anyWork: Bool
    let queued: Int
    let allEPLBReady: Bool
    let allReceived: Bool
    let allPrepared: Bool
    let anyFailed: Bool
    let anyReconfiguring: Bool

    init(sums: [Int64], ranks: Int) throws {
        guard sums.count == 7 else { throw EbbError(.io, "step vote: \(sums.count) values, expected 7") }
        let n = Int64(ranks)
        anyWork = sums[0] > 0
        queued = Int(sums[1])
        allEPLBReady = sums[2] == n
        allReceived = sums[3] == n
        allPrepared = sums[4] == n
        anyFailed = sums[5] > 0
        anyReconfiguring = sums[6] > 0
    }
}
