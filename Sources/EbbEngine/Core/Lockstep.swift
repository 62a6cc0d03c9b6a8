import EbbComm
import EbbCore
import EbbModel
import EbbTensor

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

/// One rank's step shape, as the ranks agree on it before a step with a fixed-size expert
/// exchange (element-wise maximum over the ranks).
public struct StepShape: Sendable, Equatable {
    /// Tokens this rank runs.
    public var tokens: Int
    /// Sequences, when every one decodes one token (0 for a rank without work).
    public var decodeBatch: Int
    /// 1 when some sequence prefills (or wants every position's logits), else 0.
    public var nonDecode: Int

    public init(tokens: Int, decodeBatch: Int, nonDecode: Int) {
        self.tokens = tokens
        self.decodeBatch = decodeBatch
        self.nonDecode = nonDecode
    }

    public init(_ inputs: [SequenceInput]) {
        let decode = inputs.allSatisfy { $0.tokens.count == 1 && !$0.allLogits }
        self.init(tokens: inputs.reduce(0) { $0 + $1.tokens.count }, decodeBatch: decode ? inputs.count : 0,
                  nonDecode: decode ? 0 : 1)
    }

    /// The element-wise maximum over the ranks of `communicator`.
    public func agreed(over communicator: any Communicator) throws -> StepShape {
        let global = try communicator.allReduced([Int64(tokens), Int64(decodeBatch), Int64(nonDecode)], op: .max)
        guard global.count == 3, global.allSatisfy({ $0 >= 0 && $0 <= 1 << 30 }) else {
            throw EbbError(.io, "step agreement: peers sent an invalid shape \(global)")
        }
        return StepShape(tokens: Int(global[0]), decodeBatch: Int(global[1]), nonDecode: Int(global[2]))
    }
}

/// A fixed-size expert exchange over any communicator for tensors in host memory (the CPU
/// backend): the same algorithm as NCCL's on GPUs, so it can be tested without one.
public final class HostMemoryDeviceExchange: DeviceExpertExchange {
    public let communicator: any Communicator
    public init(_ communicator: any Communicator) { self.communicator = communicator }
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    public func allToAllV(_ input: UnsafeRawBufferPointer, sendCounts: [Int],
                          into output: UnsafeMutableRawBufferPointer, recvCounts: [Int], elementSize: Int) throws {
        try communicator.allToAllV(input, sendCounts: sendCounts, into: output, recvCounts: recvCounts,
                                   elementSize: elementSize)
    }

    private func bytes(_ t: Tensor) throws -> UnsafeMutableRawBufferPointer {
        guard t.device == .cpu, t.isContiguous else {
            throw EbbError(.invalidArgument, "the host-memory expert exchange needs contiguous CPU tensors, got \(t.device)")
        }
        return UnsafeMutableRawBufferPointer(start: t.hostPointer, count: t.count * t.dtype.byteSize)
    }

    public func allGather(_ input: Tensor, into output: Tensor) throws {
        guard output.count == input.count * size, input.dtype == output.dtype else {
            throw EbbError(.invalidArgument, "allGather: output of \(output.count) elements for \(size) × \(input.count)")
        }
        try communicator.allGather(UnsafeRawBufferPointer(try bytes(input)), into: try bytes(output))
    }

    public func allToAll(_ input: Tensor, into output: Tensor) throws {
        guard input.count == output.count, input.count % size == 0, input.dtype == output.dtype else {
            throw EbbError(.invalidArgument, "allToAll: \(input.count) and \(output.count) elements do not split into \(size) equal chunks")
        }
        let chunk = input.count / size
        let counts = [Int](repeating: chunk, count: size)
        try communicator.allToAllV(UnsafeRawBufferPointer(try bytes(input)), sendCounts: counts, into: try bytes(output),
                                   recvCounts: counts, elementSize: input.dtype.byteSize)
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
        if core.stepAgreement == nil {
            let communicator = self.communicator
            core.stepAgreement = { try $0.agreed(over: communicator) }
        }
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
