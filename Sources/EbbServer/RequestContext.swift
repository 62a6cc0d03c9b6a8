import EbbCore
import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Hummingbird's basic context plus the connection's channel, so a handler can notice a
/// client that goes away while its request is still generating.
public struct EbbRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

extension OpenAIServer {
    /// How long a non-streaming request may run before its response starts with
    /// heartbeat whitespace.
    static let heartbeatInterval: Duration = .seconds(1)

    /// Answers a non-streaming request. A quick one gets an ordinary response (with the
    /// right status on error). A slow one gets its 200 headers after a second and then a
    /// space every second until the JSON is ready — leading whitespace is valid JSON —
    /// because a write is the only way to notice, while the server applies read
    /// backpressure, that the client went away; then the generation is cancelled, which
    /// aborts its engine requests and frees their KV blocks. An error after the headers
    /// went out is written as OpenAI's error object.
    func respondWhenDone(_ channel: any Channel, _ work: @escaping @Sendable () async throws -> JSONValue) async throws -> Response {
        let outcome = Outcome()
        let task = Task {
            do { outcome.set(.success(try await work())) } catch { outcome.set(.failure(error)) }
        }
        channel.closeFuture.whenComplete { _ in task.cancel() }
        if let done = await outcome.wait(upTo: Self.heartbeatInterval) {
            return Self.json(try done.get())
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let body = ResponseBody { writer in
            while true {
                if let done = await outcome.wait(upTo: Self.heartbeatInterval) {
                    let value: JSONValue
                    switch done {
                    case .success(let v): value = v
                    case .failure(let error): value = APIError.from(error).json
                    }
                    try await writer.write(ByteBuffer(string: value.serialized()))
                    try await writer.finish(nil)
                    return
                }
                do {
                    try await writer.write(ByteBuffer(string: " "))
                } catch {
                    task.cancel()
                    throw error
                }
            }
        }
        return Response(status: .ok, headers: headers, body: body)
    }

}

/// The result of a background piece of work, readable without awaiting the work itself.
final class Outcome: Sendable {
    private let value = Mutex<Result<JSONValue, any Error>?>(nil)

    func set(_ result: Result<JSONValue, any Error>) { value.withLock { $0 = result } }

    /// The result if it arrives within `limit` (checked every 10 ms), else nil.
    func wait(upTo limit: Duration) async -> Result<JSONValue, any Error>? {
        let deadline = ContinuousClock.now + limit
        while true {
            if let r = value.withLock({ $0 }) { return r }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
