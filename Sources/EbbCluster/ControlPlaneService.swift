import EbbControl
import EbbCore
import Foundation
import GRPCCore

/// The engine cores' gRPC service: each engine's Connect stream (hello → welcome, then
/// messages both ways until one side goes) and the rendezvous store the data-plane groups
/// form through. It turns streams into calls on the coordinator: `register`, `handle`,
/// `disconnected`. A connection whose first message is not an acceptable hello is answered
/// with `rejected` and closed; it never reaches the coordinator's state.
public final class ControlPlaneService: ControlCoordinatorService.SimpleServiceProtocol, Sendable {
    public let coordinator: Coordinator
    var store: RendezvousTable { coordinator.rendezvous }

    public init(coordinator: Coordinator) {
        self.coordinator = coordinator
    }

    public func connect(request: RPCAsyncSequence<ControlEngineMessage, any Error>,
                        response: RPCWriter<ControlCoordinatorMessage>, context: ServerContext) async throws {
        let log = coordinator.log
        var inbound = request.makeAsyncIterator()
        let first: ControlEngineMessage?
        do {
            first = try await inbound.next()
        } catch {
            log("control plane: a connection failed before its hello: \(error)")
            return
        }
        guard let first, case .hello(let hello)? = first.kind else {
            log("control plane: rejected a connection whose first message is not a hello")
            try? await response.write(.with { $0.rejected = .with { $0.reason = "the first message must be a hello" } })
            return
        }
        let (outbound, continuation) = AsyncStream<ControlCoordinatorMessage>.makeStream()
        let registered = coordinator.register(hello, continuation)
        guard case .success(let worldSize) = registered else {
            if case .failure(let reason) = registered {
                log("control plane: rejected hello from '\(hello.engineID)' (rank \(hello.rank), generation \(hello.generation)): \(reason.message)")
                try? await response.write(.with { $0.rejected = .with { $0.reason = reason.message } })
            }
            return
        }
        let engine = hello.engineID
        log("engine core \(engine) (rank \(hello.rank), generation \(hello.generation)) connected (pid \(hello.pid), \(hello.device)) in a world of \(worldSize)")
        coordinator.resizeEvent(.connected(engine))
        var streamError: (any Error)?
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await m in outbound {
                    do { try await response.write(m) } catch { break }
                }
            }
            do {
                while let m = try await inbound.next() { coordinator.handle(m, from: engine) }
            } catch {
                streamError = error
            }
            continuation.finish()
            await group.waitForAll()
        }
        coordinator.disconnected(engine, error: streamError)
    }

    public func storeSet(request: Ebb_Control_V1_StoreSetRequest, context: ServerContext) async throws -> Ebb_Control_V1_StoreSetResponse {
        do {
            try store.set(request.key, [UInt8](request.value))
        } catch let e as EbbError {
            throw RPCError(code: .invalidArgument, message: e.message)
        }
        return Ebb_Control_V1_StoreSetResponse()
    }

    public func storeGet(request: Ebb_Control_V1_StoreGetRequest, context: ServerContext) async throws -> Ebb_Control_V1_StoreGetResponse {
        let timeout = Duration.milliseconds(Int64(min(request.timeoutMs, 30_000)))
        var out = Ebb_Control_V1_StoreGetResponse()
        switch await store.get(request.key, timeout: timeout) {
        case .found(let v):
            out.found = true
            out.value = Data(v)
        case .missing:
            break
        case .abandoned(let g):
            throw RPCError(code: .aborted, message: "generation \(g) was abandoned (a rank it needs was lost, or its resize rolled back)")
        }
        return out
    }
}
