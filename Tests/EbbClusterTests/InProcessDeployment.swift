@testable import EbbCluster
import EbbComm
import EbbControl
import EbbCore
import EbbEngine
import EbbModel
import EbbTensor
import Foundation
import GRPCCore
import Synchronization

/// A whole deployment in one process, for tests: the real coordinator and control plane
/// (gRPC on loopback), and every rank a real `EngineCoreShell` — engine loop, step votes,
/// resizes, recoveries — whose data plane is the in-process communicator instead of Gloo
/// between processes. A "kill" closes the rank's groups (its peers' collectives fail at
/// once, as when a process's sockets close) and its control stream, as `kill -9` does.
/// Every rank serves the built-in tiny MoE model (16 experts) with 8 expert slots per rank.
final class InProcessDeployment: Sendable {
    static let slotsPerRank = 8
    static let model = "builtin:tiny-moe"

    let coordinator: Coordinator
    let port: Int
    let groups = InProcessGroups()
    let eplb: EPLBConfig
    let faults: FaultInjection?
    private let running = Mutex<[String: Task<Void, Never>]>([:])
    /// Engines stopped or fenced by the coordinator (their end is not reported as an exit).
    private let stopped = Mutex<Set<String>>([])
    let logs = Mutex<[String]>([])

    private init(coordinator: Coordinator, port: Int, eplb: EPLBConfig, faults: FaultInjection?) {
        self.coordinator = coordinator
        self.port = port
        self.eplb = eplb
        self.faults = faults
    }

    func log(_ line: String) { logs.withLock { $0.append(line) } }

    /// Runs `body` against a deployment of `ranks` ready ranks (elastic EP on), then stops it.
    static func with(ranks: Int, faults: FaultInjection? = nil, phaseTimeout: Duration = .seconds(20),
                     _ body: @Sendable (InProcessDeployment) async throws -> Void) async throws {
        let lines = Mutex<[String]>([])
        let ids = (0..<ranks).map { "engine-\($0)" }
        let coordinator = Coordinator(generation: 1, engineIds: ids, heartbeatTimeout: .seconds(30), expertParallel: true,
                                      log: { line in lines.withLock { $0.append("[coordinator] " + line) } },
                                      onFailure: { e in lines.withLock { $0.append("[coordinator] FAILURE: \(e.message)") } })
        try await withLoopbackControlPlane(coordinator) { port in
            let eplb = EPLBConfig(numRedundantExperts: slotsPerRank * ranks - 16)
            let d = InProcessDeployment(coordinator: coordinator, port: port, eplb: eplb, faults: faults)
            coordinator.enableElastic(ElasticHooks(maxRanks: 8, phaseTimeout: phaseTimeout, launch: { id, rank, size, generation, _ in
                d.start(id, rank: rank, worldSize: size, generation: generation, joining: true)
            }, stop: { id in d.stop(id) }, fault: nil))
            coordinator.setRecoveryHooks(fence: { id in d.stop(id) }, timeout: .seconds(30))
            for (rank, id) in ids.enumerated() { d.start(id, rank: rank, worldSize: ranks, generation: 1, joining: false) }
            let monitor = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    coordinator.checkLiveness()
                }
            }
            defer { monitor.cancel() }
            do {
                try await coordinator.waitUntilReady(timeout: .seconds(60))
                try await body(d)
            } catch {
                d.logs.withLock { $0 += lines.withLock { $0 } }
                let tail = d.logs.withLock { $0.suffix(60).joined(separator: "\n") }
                coordinator.shutdown(reason: "test failed")
                await d.stopAll()
                throw EbbError(.internal, "\(error)\n--- last log lines ---\n\(tail)")
            }
            coordinator.shutdown(reason: "test over")
            await d.stopAll()
            if ProcessInfo.processInfo.environment["EBB_TEST_LOGS"] != nil {
                print((lines.withLock { $0 } + d.logs.withLock { $0 }).joined(separator: "\n"))
            }
        }
    }

    /// Starts engine `id` as rank `rank` of `worldSize` (a joiner takes its weights from peers).
    func start(_ id: String, rank: Int, worldSize: Int, generation: UInt64, joining: Bool) {
        let identity = EngineCoreIdentity(engineId: id, rank: rank, worldSize: worldSize, generation: generation,
                                          expertParallel: true, device: "cpu", eplb: eplb, joining: joining)
        let backend = CPUBackend(threads: 1)
        let groups = self.groups
        let shell = EngineCoreShell(
            identity: identity, coordinator: ControlAddress(host: "127.0.0.1", port: port), backend: backend,
            dataPlaneTimeout: .seconds(20), restoreSource: { try BuiltinModels.resolve(Self.model).weights }, faults: faults,
            makeGroups: { _ in groups.owned(by: id) }, log: { [self] in log("[\(id)] " + $0) }
        ) { setup, wrap in
            let (config, weights) = try BuiltinModels.resolve(Self.model)
            let model = try CausalLM(config: config, weights: wrap(weights), backend: backend,
                                     placement: try setup?.placements(config: config), expertParallel: setup?.group)
            return try EngineCore(model: model, config: EngineConfig(kvCacheBytes: 16 << 20, maxNumBatchedTokens: 64))
        }
        let task = Task { [self] in
            let code = await shell.run()
            // As the launcher reports a process that exited by itself.
            if !stopped.withLock({ $0.contains(id) }) {
                coordinator.engineExited(id, description: "exited with status \(code)")
            }
        }
        running.withLock { $0[id] = task }
    }

    /// `kill -9`: the rank's groups close under its peers and its control stream ends.
    func kill(_ id: String) {
        groups.kill(id)
        running.withLock { $0[id] }?.cancel()
    }

    /// The coordinator stopped or fenced it.
    func stop(_ id: String) {
        stopped.withLock { _ = $0.insert(id) }
        kill(id)
    }

    func stopAll() async {
        let tasks = running.withLock { Array($0) }
        for (id, task) in tasks {
            stopped.withLock { _ = $0.insert(id) }
            groups.kill(id)
            task.cancel()
        }
        for (_, task) in tasks { await task.value }
    }

    // MARK: Requests

    static func request(_ i: Int) -> EngineRequest {
        let prompt = (0..<(5 + i % 4)).map { (i * 37 + $0 * 11) % 300 + 3 }
        return EngineRequest(id: "req-\(i)", promptTokenIds: prompt,
                             params: SamplingParams(temperature: 0, maxTokens: 24, ignoreEOS: true), eosTokenIds: [])
    }

    /// Submits `count` greedy requests; the task returns each one's tokens (or throws its error).
    func submit(_ count: Int) -> Task<[String: [Int]], any Error> {
        let streams = (0..<count).map { i in (Self.request(i).id, coordinator.submit(Self.request(i))) }
        return Task {
            var out: [String: [Int]] = [:]
            for (id, stream) in streams {
                for await event in stream {
                    switch event {
                    case .output(let o): out[id, default: []] += o.newTokenIds
                    case .error(let e): throw EbbError(.internal, "request \(id) failed: \(e.message)")
                    }
                }
            }
            return out
        }
    }

    /// The same requests on one rank holding every expert.
    static func reference(_ count: Int) throws -> [String: [Int]] {
        let (config, weights) = try BuiltinModels.resolve(model)
        let core = try EngineCore(model: try CausalLM(config: config, weights: weights, backend: CPUBackend(threads: 1)),
                                  config: EngineConfig(kvCacheBytes: 16 << 20, maxNumBatchedTokens: 64))
        for i in 0..<count { try core.add(request(i)) }
        var out: [String: [Int]] = [:]
        while core.hasWork {
            for o in try core.step() { out[o.requestId, default: []] += o.newTokenIds }
        }
        return out
    }

    /// Waits (up to `timeout`) for `condition`.
    func eventually(_ what: String, timeout: Duration = .seconds(60), _ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now > end { throw EbbError(.io, "timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The running resize's phase (nil when none runs).
    var resizePhase: ResizeMachine.Phase? { coordinator.lock.withLock { coordinator.resize?.phase } }
}
