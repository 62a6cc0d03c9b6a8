import EbbComm
import EbbCore
import EbbModel

/// Lets a data-plane communicator carry a model's expert exchanges.
public final class CommunicatorExchange: ExpertExchange {
    public let communicator: any Communicator
    public init(_ communicator: any Communicator) { self.communicator = communicator }
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    public func allToAllV(_ input: UnsafeRawBufferPointer, sendCounts: [Int],
                          into output: UnsafeMutableRawBufferPointer, recvCounts: [Int], elementSize: Int) throws {
        try communicator.allToAllV(input, sendCounts: sendCounts, into: output, recvCounts: recvCounts,
                                   elementSize: elementSize)
    }
}

/// One rank's step in a data-parallel deployment with expert parallelism: the ranks first
/// agree, with one small all-reduce, whether any of them has work (and how many requests
/// they hold) and whether every rank has a staged expert rearrangement ready; then they
/// switch placements if all are ready (a step boundary every rank agrees on), and if any
/// has work every rank steps, a rank without work running a dummy batch so that it enters
/// every MoE exchange.
public struct LockstepStepper {
    public let communicator: any Communicator
    public let balancer: ExpertBalancer?

    public init(communicator: any Communicator, balancer: ExpertBalancer? = nil) {
        self.communicator = communicator
        self.balancer = balancer
    }

    /// Agrees on work, then steps `core`. Returns nil when every rank is idle, else the
    /// outputs of this rank's requests. Throws when the data plane fails (fatal for the
    /// generation: the ranks can no longer stay in step).
    public func step(_ core: EngineCore) throws -> [RequestOutput]? {
        let stats = core.stats
        let ready: Int64 = (balancer?.readyToCommit ?? false) ? 1 : 0
        let local: [Int64] = [core.hasWork ? 1 : 0, Int64(stats.running + stats.waiting), ready]
        let global = try communicator.allReduced(local, op: .sum)
        if let balancer, global[2] == Int64(communicator.size) { try balancer.commit() }
        guard global[0] > 0 else { return nil }
        let outputs = try core.step(lockstep: true)
        try balancer?.afterStep()
        return outputs
    }
}
