import Hummingbird
import NIOCore

/// Hummingbird's basic context plus the connection's channel, so a handler can notice a
/// client that goes away while its (non-streaming) request is still generating.
public struct EbbRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Runs `body` in a task that is cancelled when `channel` closes: cancellation ends the
/// generation streams, and ending them aborts the engine requests.
func cancellingOnClose<T: Sendable>(_ channel: any Channel, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await body() }
    channel.closeFuture.whenComplete { _ in task.cancel() }
    return try await withTaskCancellationHandler {
        try await task.value
    } onCancel: {
        task.cancel()
    }
}
