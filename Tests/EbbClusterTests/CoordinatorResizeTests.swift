@testable import EbbCluster
import EbbControl
import EbbCore
import EbbEngine
import Foundation
import GRPCCore
import Synchronization
import Testing

/// `Coordinator.resize` end to end through the real control plane (gRPC on loopback), with
/// scripted engine cores in place of processes: each says hello, reports ready, and answers
/// reconfigurations as its script says. The real engine cores are driven by the
/// integration tests; these check the coordinator's side of every outcome in one process.
@Suite(.serialized)
struct CoordinatorResizeTests {
    /// How a scripted engine answers a resize's reconfiguration.
    enum Answer: Sendable {
        case commit
        case refuse(String)
        /// Says nothing (a rank stuck in a collective).
        case silent
    }

    /// An engine core double: one control stream, answers by script, records what it got.
    final class ScriptedEngine: Sendable {
        let id: String
        let rank: Int
        let generation: UInt64
        let answer: Answer
        let received = Mutex<[ControlCoordinatorMessage]>([])
        private let task = Mutex<Task<Void, any Error>?>(nil)

        init(id: String, rank: Int, generation: UInt64, answer: Answer) {
            self.id = id
            self.rank = rank
            self.generation = generation
            self.answer = answer
        }

        func kinds() -> [String] {
            received.withLock { $0.compactMap { $0.kind.map { "\($0)".components(separatedBy: "(").first ?? "" } } }
        }

        func got(_ match: (ControlCoordinatorMessage.OneOf_Kind) -> Bool) -> Bool {
            received.withLock { $0.contains { $0.kind.map(match) ?? false } }
        }

        static func ready(rank: Int, generation: UInt64) -> ControlEngineMessage {
            .with {
                $0.ready = .with { r in
                    r.rank = UInt32(rank)
                    r.generation = generation
                    r.slotsPerRank = 16
                    r.numExperts = 16
                    r.maxModelLen = 256
                    r.vocabSize = 100
                    r.kvCacheBytes = 1 << 20
                }
            }
        }

        static func result(_ g: UInt64, committed: Bool, error: String = "") -> ControlEngineMessage {
            .with {
                $0.reconfigureResult = .with { r in
                    r.generation = g
                    r.committed = committed
                    r.error = error
                    r.phases = [.with { p in p.phase = "weights"; p.seconds = 0.01 }]
                }
            }
        }

        func start(port: Int) {
            let (id, rank, generation, answer) = (self.id, self.rank, self.generation, self.answer)
            let (outbound, out) = AsyncStream<ControlEngineMessage>.makeStream()
            out.yield(.with {
                $0.hello = .with { h in
                    h.engineID = id
                    h.rank = UInt32(rank)
                    h.generation = generation
                    h.pid = 1
                    h.device = "cpu"
                }
            })
            let joining = generation > 1
            let t = Task {
                try await withGRPCClient(transport: try controlClientTransport(ControlAddress(host: "127.0.0.1", port: port))) { client in
                    let service = ControlCoordinatorService.Client(wrapping: client)
                    try await service.connect(requestProducer: { writer in
                        for await m in outbound { try await writer.write(m) }
                    }, onResponse: { response in
                        var held: [String] = []
                        for try await m in response.messages {
                            self.received.withLock { $0.append(m) }
                            switch m.kind {
                            case .addRequest(let a):
                                held.append(a.requestID)
                            case .welcome where !joining:
                                out.yield(Self.ready(rank: rank, generation: generation))
                            case .reconfigure(let r) where !r.recoveringFrom.isEmpty:
                                out.yield(Self.result(r.generation, committed: true))
                            case .reconfigure(let r):
                                let old = r.union.prefix(Int(r.oldWorldSize)).contains(id)
                                switch answer {
                                case .commit where old:
                                    out.yield(Self.result(r.generation, committed: true))
                                    if !r.members.contains(id) {
                                        // Leaving: hand back what it holds, each after two tokens.
                                        out.yield(.with {
                                            $0.migrated = .with { m in
                                                m.generation = r.generation
                                                m.requests = held.map { h in .with { x in x.requestID = h; x.outputTokenIds = [7, 8] } }
                                            }
                                        })
                                    }
                                case .commit:
                                    if let newRank = r.members.firstIndex(of: id) {
                                        out.yield(Self.ready(rank: newRank, generation: r.generation))
                                    }
                                case .refuse(let e) where old:
                                    out.yield(Self.result(r.generation, committed: false, error: e))
                                default:
                                    break
                                }
                            case .abortReconfigure(let a):
                                if case .silent = answer { break }
                                out.yield(Self.result(a.generation, committed: false, error: ResizeMachine.abortedByCoordinator))
                            case .shutdown:
                                out.finish()
                                return
                            default:
                                break
                            }
                        }
                    })
                }
            }
            task.withLock { $0 = t }
        }

        /// Closes its control stream (a killed process).
        func kill() { task.withLock { $0?.cancel() } }
    }

    final class Deployment: Sendable {
        let coordinator: Coordinator
        let port: Int
        let engines = Mutex<[String: ScriptedEngine]>([:])
        let stopped = Mutex<[String]>([])
        let fenced = Mutex<[String]>([])
        let logs = Mutex<[String]>([])

        init(coordinator: Coordinator, port: Int) {
            self.coordinator = coordinator
            self.port = port
        }

        func engine(_ id: String) -> ScriptedEngine? { engines.withLock { $0[id] } }

        func add(_ e: ScriptedEngine) {
            engines.withLock { $0[e.id] = e }
            e.start(port: port)
        }
    }

    /// Runs `body` against a coordinator of `answers.count` scripted ranks, all ready, with
    /// elastic hooks whose launches start scripted joiners answering `joiner`.
    func withDeployment(_ answers: [Answer], joiner: Answer? = .commit, phaseTimeout: Duration = .seconds(30),
                        _ body: @Sendable (Deployment) async throws -> Void) async throws {
        let ids = answers.indices.map { "engine-\($0)" }
        let logs = Mutex<[String]>([])
        let coordinator = Coordinator(generation: 1, engineIds: ids, expertParallel: true,
                                      log: { line in logs.withLock { $0.append(line) } },
                                      onFailure: { e in logs.withLock { $0.append("FAILURE: \(e.message)") } })
        try await withLoopbackControlPlane(coordinator) { port in
            let d = Deployment(coordinator: coordinator, port: port)
            coordinator.enableElastic(ElasticHooks(maxRanks: 8, phaseTimeout: phaseTimeout, launch: { id, rank, _, generation, _ in
                guard let joiner else { return }  // launched, never connects
                d.add(ScriptedEngine(id: id, rank: rank, generation: generation, answer: joiner))
            }, stop: { id in
                d.stopped.withLock { $0.append(id) }
                d.engine(id)?.kill()
            }, fault: nil))
            coordinator.setRecoveryHooks(fence: { id in
                d.fenced.withLock { $0.append(id) }
                d.engine(id)?.kill()
            })
            for (rank, answer) in answers.enumerated() {
                d.add(ScriptedEngine(id: ids[rank], rank: rank, generation: 1, answer: answer))
            }
            // Generous bounds: CI runs many suites at once on two cores.
            try await coordinator.waitUntilReady(timeout: .seconds(60))
            try await body(d)
            coordinator.shutdown(reason: "test over")
            for e in d.engines.withLock({ Array($0.values) }) { e.kill() }
        }
    }

    /// Waits (up to 60 s) for `condition`.
    func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + .seconds(60)
        while !condition() {
            if ContinuousClock.now > end { throw EbbError(.io, "timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func request(_ id: String) -> EngineRequest {
        EngineRequest(id: id, promptTokenIds: [1, 2, 3], params: SamplingParams(temperature: 0, maxTokens: 8), eosTokenIds: [])
    }

    @Test func scaleUpCommitsAndTheJoinerTakesRequests() async throws {
        try await withDeployment([.commit, .commit]) { d in
            let event = try await d.coordinator.resize(.size(3))
            #expect(event.outcome == "committed" && event.fromRanks == 2 && event.toRanks == 3)
            #expect(event.phases.map(\.0).prefix(3) == ["launch", "register", "prepare+commit"])
            #expect(event.phases.contains { $0.0 == "rank:weights" })
            #expect(d.coordinator.generation == 2)
            #expect(d.coordinator.engineIds == ["engine-0", "engine-1", "engine-2"])
            #expect(d.stopped.withLock { $0 }.isEmpty)
            // Load goes to the idle joiner once it is ready at the new generation.
            try await eventually("the joiner ready") { d.coordinator.readyReports.allSatisfy { $0 != nil } }
            _ = d.coordinator.submit(request("r0"))
            _ = d.coordinator.submit(request("r1"))
            _ = d.coordinator.submit(request("r2"))
            try await eventually("a request on the joiner") {
                d.engine("engine-2")?.got { if case .addRequest = $0 { return true } else { return false } } == true
            }
        }
    }

    @Test func removingTheMiddleRankCommitsAndStopsIt() async throws {
        try await withDeployment([.commit, .commit, .commit]) { d in
            let event = try await d.coordinator.resize(.remove([1]))
            #expect(event.outcome == "committed" && event.toRanks == 2)
            #expect(d.coordinator.engineIds == ["engine-0", "engine-2"])
            #expect(d.stopped.withLock { $0 } == ["engine-1"])
            let status = d.coordinator.elasticStatusJSON()
            #expect(status["ranks"]?.arrayValue?.count == 2)
        }
    }

    @Test func aRankThatRefusesRollsBackAndItsGenerationIsNotReused() async throws {
        // The step vote fails on every rank: the rank that failed says why, the others that
        // they aborted.
        try await withDeployment([.refuse(ResizeMachine.abortedByCoordinator), .refuse("weights: peer closed")]) { d in
            await #expect(throws: ResizeError.self) { try await d.coordinator.resize(.size(3)) }
            #expect(d.coordinator.generation == 1)
            #expect(d.coordinator.engineIds == ["engine-0", "engine-1"])
            #expect(d.stopped.withLock { $0 } == ["engine-2"], "the joiner is stopped")
            let last = d.coordinator.resizeEvents.last
            #expect(last?.outcome == "rolled_back")
            #expect(last?.error?.contains("weights: peer closed") == true)
            #expect(!d.coordinator.isResizing)
            try await eventually("the abort") {
                d.engine("engine-0")?.got { if case .abortReconfigure = $0 { return true } else { return false } } == true
            }
            // The next attempt gets a new generation number (the failed one's rendezvous keys
            // are stale); these ranks refuse it too.
            await #expect(throws: ResizeError.self) { try await d.coordinator.resize(.size(1)) }
            #expect(d.coordinator.resizeEvents.map(\.generation) == [2, 3])
            #expect(d.coordinator.engineIds == ["engine-0", "engine-1"])
        }
    }

    @Test func aJoinerThatNeverConnectsRollsBackAfterThePhaseTimeout() async throws {
        try await withDeployment([.commit, .commit], joiner: nil, phaseTimeout: .milliseconds(400)) { d in
            do {
                _ = try await d.coordinator.resize(.size(3))
                Issue.record("the resize committed without its joiner")
            } catch let e as ResizeError {
                guard case .rolledBack(let message) = e else {
                    Issue.record("expected a rollback, got \(e)")
                    return
                }
                #expect(message.contains("joining engine cores to connect"))
            }
            #expect(d.coordinator.engineIds == ["engine-0", "engine-1"])
            // Nothing was sent to the ranks: nothing to abort.
            #expect(d.engine("engine-0")?.got { if case .reconfigure = $0 { return true } else { return false } } == false)
        }
    }

    @Test func aRankLostDuringPrepareRollsBackThenTheSurvivorsRecover() async throws {
        try await withDeployment([.silent, .silent, .silent]) { d in
            let outcome = Task { try await d.coordinator.resize(.size(4)) }
            try await eventually("the reconfiguration") {
                d.engine("engine-1")?.got { if case .reconfigure = $0 { return true } else { return false } } == true
            }
            d.engine("engine-1")?.kill()
            d.coordinator.engineExited("engine-1", description: "was killed by signal 9")
            await #expect(throws: ResizeError.self) { try await outcome.value }
            #expect(d.fenced.withLock { $0 } == ["engine-1"])
            // The silent survivor never acknowledged the abort: the rollback waited its bounded
            // time, then the recovery over the survivors ran and they serve.
            try await eventually("the recovery") { d.coordinator.engineIds == ["engine-0", "engine-2"] }
            #expect(d.coordinator.generation == 3)
            #expect(d.coordinator.incidents.last?.outcome == "recovered")
            #expect(d.engine("engine-2")?.got {
                if case .reconfigure(let r) = $0 { return !r.recoveringFrom.isEmpty } else { return false }
            } == true)
            #expect(d.stopped.withLock { $0 } == ["engine-3"], "the joiner of the rolled-back resize is stopped")
        }
    }

    @Test func aSecondResizeWhileOneRunsIsBusy() async throws {
        try await withDeployment([.silent, .silent], phaseTimeout: .seconds(2)) { d in
            let first = Task { try await d.coordinator.resize(.size(1)) }
            try await eventually("the first resize") { d.coordinator.isResizing }
            await #expect(throws: ResizeError.busy("a resize is already running")) { try await d.coordinator.resize(.size(3)) }
            await #expect(throws: ResizeError.self) { try await first.value }
            #expect(d.coordinator.engineIds == ["engine-0", "engine-1"])
        }
    }

    @Test func aRequestOnTheLeavingRankContinuesOnAMember() async throws {
        try await withDeployment([.commit, .commit]) { d in
            _ = d.coordinator.submit(request("a"))
            _ = d.coordinator.submit(request("b"))
            guard let moved = ["a", "b"].first(where: { d.coordinator.rank(of: $0) == 1 }) else {
                Issue.record("the balancer put no request on rank 1")
                return
            }
            try await eventually("the request on rank 1") {
                d.engine("engine-1")?.got { if case .addRequest = $0 { return true } else { return false } } == true
            }
            // The resize ends once the leaving rank handed its request back.
            let event = try await d.coordinator.resize(.size(1))
            #expect(event.migratedRequests == 1)
            #expect(d.coordinator.rank(of: moved) == 0)
            try await eventually("the resumed request on rank 0") {
                d.engine("engine-0")?.got {
                    if case .resumeRequest(let r) = $0 { return r.request.requestID == moved && r.outputTokenIds == [7, 8] }
                    return false
                } == true
            }
        }
    }

    @Test func operationsStartAtOncePollToTheEndAndAreNotRepeated() async throws {
        try await withDeployment([.commit, .commit]) { d in
            let op = try d.coordinator.startResize(.size(3), operationId: "grow-1")
            #expect(op.id == "grow-1" && op.state == "preparing" && op.toRanks == 3)
            // The same absolute target, or the same id, while it runs: the same operation.
            #expect(try d.coordinator.startResize(.size(3)).id == "grow-1")
            #expect(try d.coordinator.startResize(.size(2), operationId: "grow-1").id == "grow-1")
            try await eventually("the operation to commit") { d.coordinator.operation("grow-1")?.state == "committed" }
            let done = try #require(d.coordinator.operation("grow-1"))
            #expect(done.generation == 2 && done.finishedUnix != nil)
            #expect(done.phases.map(\.0) == ["launch", "register", "prepare+commit"])
            // Done: the id answers the finished operation; the same size again changes nothing.
            #expect(try d.coordinator.startResize(.size(2), operationId: "grow-1").state == "committed")
            let again = try d.coordinator.startResize(.size(3))
            #expect(again.state == "committed" && again.generation == 2 && again.id != "grow-1")
            #expect(d.coordinator.generation == 2)
            #expect(d.coordinator.operation("no-such-id") == nil)
        }
    }

    @Test func aPlanNamesTheRetiringRanksWithoutResizing() async throws {
        try await withDeployment([.commit, .commit, .commit]) { d in
            let down = try d.coordinator.plan(.size(2))
            #expect(down == ResizePlan(fromRanks: 3, toRanks: 2, retiringRanks: [2], retiringEngines: ["engine-2"], joining: 0))
            let chosen = try d.coordinator.plan(.remove([0]))
            #expect(chosen.retiringEngines == ["engine-0"] && chosen.toRanks == 2)
            #expect(try d.coordinator.plan(.size(5)).joining == 2)
            #expect(throws: ResizeError.self) { try d.coordinator.plan(.size(0)) }
            #expect(d.coordinator.generation == 1 && !d.coordinator.isResizing)
        }
    }
}
