import EbbCore
import Foundation

/// One resize as an orchestrator sees it: started, polled by id, finished. Its state is
/// `preparing` (drain, launch, register, prepare), `committing` (the new generation serves,
/// leaving ranks hand back), `committed`, `rolled_back` or `failed` (the deployment failed).
public struct ResizeOperation: Sendable {
    public var id: String
    public var target: ResizeTarget
    public var fromRanks: Int
    public var toRanks: Int
    public var generation: UInt64
    public var state: String
    public var error: String?
    /// Phase name → seconds so far (the running phase last).
    public var phases: [(String, Double)] = []
    public var createdUnix: Double
    public var finishedUnix: Double?

    public var isFinished: Bool { finishedUnix != nil }

    public var json: JSONValue {
        func num(_ x: Double) -> JSONValue { .number(x.isFinite ? x : 0) }
        let target: JSONValue
        switch self.target {
        case .size(let n): target = .object(["new_data_parallel_size": num(Double(n))])
        case .remove(let ranks): target = .object(["remove_ranks": .array(ranks.map { num(Double($0)) })])
        }
        return .orderedObject(keys: ["operation_id", "state", "target", "from", "to", "generation", "error", "phases",
                                     "created_unix", "finished_unix"], values: [
            "operation_id": .string(id), "state": .string(state), "target": target,
            "from": num(Double(fromRanks)), "to": num(Double(toRanks)), "generation": num(Double(generation)),
            "error": error.map { .string($0) } ?? .null,
            "phases": .orderedObject(keys: phases.map(\.0), values: Dictionary(phases.map { ($0.0, num($0.1)) }, uniquingKeysWith: { a, _ in a })),
            "created_unix": num(createdUnix), "finished_unix": finishedUnix.map(num) ?? .null,
        ])
    }
}

/// What a resize would do, before it runs: the ranks it retires (old rank numbers and
/// engine ids) and how many join.
public struct ResizePlan: Sendable, Equatable {
    public var fromRanks: Int
    public var toRanks: Int
    public var retiringRanks: [Int]
    public var retiringEngines: [String]
    public var joining: Int

    public var json: JSONValue {
        .orderedObject(keys: ["from", "to", "retiring_ranks", "retiring_engines", "joining"], values: [
            "from": .number(Double(fromRanks)), "to": .number(Double(toRanks)),
            "retiring_ranks": .array(retiringRanks.map { .number(Double($0)) }),
            "retiring_engines": .array(retiringEngines.map { .string($0) }), "joining": .number(Double(joining)),
        ])
    }
}

/// A resize's outcome, awaited by any number of callers (the synchronous API waits on it;
/// the asynchronous one polls its operation instead).
final class ResizeTicket: @unchecked Sendable {
    let operationId: String
    private let lock = NSLock()
    private var result: Result<ResizeEvent, ResizeError>?
    private var waiters: [CheckedContinuation<ResizeEvent, any Error>] = []

    init(operationId: String) {
        self.operationId = operationId
    }

    func complete(_ r: Result<ResizeEvent, ResizeError>) {
        let waiting: [CheckedContinuation<ResizeEvent, any Error>] = lock.withLock {
            guard result == nil else { return [] }
            result = r
            defer { waiters = [] }
            return waiters
        }
        for w in waiting { w.resume(with: r.mapError { $0 as any Error }) }
    }

    func value() async throws -> ResizeEvent {
        try await withCheckedThrowingContinuation { c in
            let done: Result<ResizeEvent, ResizeError>? = lock.withLock {
                if result == nil { waiters.append(c) }
                return result
            }
            if let done { c.resume(with: done.mapError { $0 as any Error }) }
        }
    }
}
