@testable import EbbCluster
import EbbControl
import EbbCore
import EbbEngine
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import Testing

/// The coordinator's control-plane server against misbehaving peers: wrong generations,
/// out-of-order and unknown messages, garbage bytes. Each is rejected or logged and dropped;
/// the coordinator keeps serving.
@Suite(.serialized)
struct ControlPlaneRobustnessTests {
    final class Logs: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ s: String) { lines.withLock { $0.append(s) } }
        func contains(_ s: String) -> Bool { lines.withLock { $0.contains { $0.contains(s) } } }
    }

    /// Runs `body` against a coordinator for one rank ("engine-0", generation 1) served on loopback.
    func withCoordinator(_ body: @Sendable (Coordinator, Int, Logs) async throws -> Void) async throws {
        let logs = Logs()
        let coordinator = Coordinator(generation: 1, engineIds: ["engine-0"], log: { logs.append($0) },
                                      onFailure: { logs.append("FAILURE: \($0.message)") })
        try await withLoopbackControlPlane(coordinator) { port in
            try await body(coordinator, port, logs)
            coordinator.shutdown(reason: "test over")
        }
    }

    /// Opens a Connect stream, writes `messages`, and returns the coordinator's first message.
    func session(port: Int, _ messages: [ControlEngineMessage], hold: Duration = .milliseconds(300))
        async throws -> ControlCoordinatorMessage? {
        try await withGRPCClient(transport: try controlClientTransport(ControlAddress(host: "127.0.0.1", port: port))) { client in
            let service = ControlCoordinatorService.Client(wrapping: client)
            return try await service.connect(requestProducer: { writer in
                for m in messages { try await writer.write(m) }
                try await Task.sleep(for: hold)
            }, onResponse: { response in
                var it = response.messages.makeAsyncIterator()
                let first = try await it.next()
                // Keep the stream open until the coordinator has read what we wrote.
                try await Task.sleep(for: hold)
                return first
            })
        }
    }

    static func hello(rank: UInt32 = 0, generation: UInt64 = 1, id: String = "engine-0") -> ControlEngineMessage {
        .with { $0.hello = .with { h in h.engineID = id; h.rank = rank; h.generation = generation; h.pid = 1 } }
    }

    func isRejected(_ m: ControlCoordinatorMessage?) -> Bool {
        if case .rejected? = m?.kind { return true }
        return false
    }

    @Test func badHellosAreRejected() async throws {
        try await withCoordinator { coordinator, port, logs in
            let wrongGeneration = try await session(port: port, [Self.hello(generation: 7)])
            #expect(isRejected(wrongGeneration))
            #expect(logs.contains("generation 7 is not the current generation 1"))
            let wrongRank = try await session(port: port, [Self.hello(rank: 5)])
            #expect(isRejected(wrongRank))
            let wrongId = try await session(port: port, [Self.hello(id: "impostor")])
            #expect(isRejected(wrongId))
            let notHello: ControlEngineMessage = .with { $0.heartbeat = .with { h in h.rank = 0; h.generation = 1 } }
            let noHello = try await session(port: port, [notHello])
            #expect(isRejected(noHello))
            #expect(logs.contains("first message is not a hello"))
            #expect(coordinator.failed == nil, "rejections do not fail the deployment")
        }
    }

    @Test func outOfOrderAndUnknownMessagesAreLoggedAndDropped() async throws {
        try await withCoordinator { coordinator, port, logs in
            let unknownOutput: ControlEngineMessage = .with {
                $0.outputs = .with { o in
                    o.rank = 0
                    o.generation = 1
                    o.outputs = [.with { r in r.requestID = "nobody-asked"; r.newTokenIds = [1] }]
                }
            }
            let wrongGeneration: ControlEngineMessage = .with { $0.outputs = .with { o in o.rank = 0; o.generation = 9 } }
            let wrongRank: ControlEngineMessage = .with { $0.ready = .with { r in r.rank = 3; r.generation = 1 } }
            let empty = ControlEngineMessage()
            let ready: ControlEngineMessage = .with {
                $0.ready = .with { r in r.rank = 0; r.generation = 1; r.maxModelLen = 128; r.vocabSize = 50 }
            }
            let first = try await session(port: port, [Self.hello(), unknownOutput, wrongGeneration, wrongRank, empty,
                                                       Self.hello(), ready])
            guard case .welcome(let w)? = first?.kind else {
                Issue.record("expected a welcome, got \(String(describing: first))")
                return
            }
            #expect(w.rank == 0 && w.generation == 1 && w.worldSize == 1)
            #expect(logs.contains("output for unknown request 'nobody-asked'"))
            #expect(logs.contains("outputs for rank 0 generation 9"))
            #expect(logs.contains("ready for rank 3"))
            #expect(logs.contains("an empty or unknown message"))
            #expect(logs.contains("a second hello"))
            // The valid ready after all that still counted (the rank is gone once the session
            // ends, its limits stay known).
            #expect(coordinator.maxModelLen == 128)
        }
    }

    @Test func waitingForAnAbandonedGenerationFailsAtOnce() async throws {
        #expect(RendezvousTable.generation(of: "ebb/gen12/transfer/rank0") == 12)
        #expect(RendezvousTable.generation(of: "ebb/gen3") == 3)
        #expect(RendezvousTable.generation(of: "other/key") == nil)
        try await withCoordinator { coordinator, port, _ in
            let table = coordinator.rendezvous
            try table.set("ebb/gen2/a", [1])
            table.abandon(generation: 3)
            #expect(await table.get("ebb/gen2/a", timeout: .seconds(1)) == .found([1]))
            #expect(await table.get("ebb/gen3/b", timeout: .seconds(30)) == .abandoned(3))
            #expect(await table.get("ebb/gen4/b", timeout: .milliseconds(50)) == .missing)
            // Over the control plane: an engine waiting in the rendezvous gets an error at once.
            let outcome: String = try await withGRPCClient(transport: try controlClientTransport(ControlAddress(host: "127.0.0.1", port: port))) { client in
                let service = ControlCoordinatorService.Client(wrapping: client)
                do {
                    _ = try await service.storeGet(.with { $0.key = "ebb/gen3/transfer/x"; $0.timeoutMs = 30_000 })
                    return "no error"
                } catch let e as RPCError {
                    return "\(e.code): \(e.message)"
                }
            }
            #expect(outcome.contains("abandoned"))
        }
    }

    @Test func garbageBytesDoNotTakeTheServerDown() async throws {
        try await withCoordinator { coordinator, port, logs in
            for payload in [Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) },
                            Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 4, 9, 9, 9, 9, 9, 9, 1, 2, 3]] {
                try Self.sendRaw(payload, port: port)
            }
            // Still serving: a proper hello is welcomed.
            let first = try await session(port: port, [Self.hello()])
            guard case .welcome? = first?.kind else {
                Issue.record("no welcome after garbage: \(String(describing: first))")
                return
            }
            #expect(coordinator.failed == nil || coordinator.failed?.message.contains("disconnected") == true)
        }
    }

    /// Writes bytes to a TCP connection and closes it.
    static func sendRaw(_ bytes: [UInt8], port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EbbError(.io, "socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw EbbError(.io, "connect failed") }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        usleep(50_000)
    }
}
