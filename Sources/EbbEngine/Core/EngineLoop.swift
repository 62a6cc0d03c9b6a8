import EbbCore
import EbbSampling
import Foundation
import Synchronization

/// Drives an `EngineCore` on a thread of its own: steps while there is work, sleeps on a
/// condition when idle (no busy-wait), and hands each request's outputs to its stream.
/// Requests and aborts from any thread are applied between steps.
public final class EngineLoop: EngineClient {
    private struct Shared: ~Copyable {
        var pendingAdds: [(EngineRequest, AsyncStream<EngineEvent>.Continuation)] = []
        var pendingAborts: [String] = []
        var streams: [String: AsyncStream<EngineEvent>.Continuation] = [:]
        var stats = EngineStats()
        var stopped = false
    }

    private let shared = Mutex(Shared())
    private let wake = NSCondition()
    private let coreBox: CoreBox
    public let maxModelLen: Int
    public let vocabSize: Int

    /// The core is only touched by the loop thread after `start`.
    private final class CoreBox: @unchecked Sendable {
        let core: EngineCore
        init(_ core: EngineCore) { self.core = core }
    }

    public init(core: EngineCore) {
        coreBox = CoreBox(core)
        maxModelLen = core.maxModelLen
        vocabSize = core.model.config.vocabSize
        let stats = core.stats
        shared.withLock { $0.stats = stats }
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "ebb-engine-core"
        thread.stackSize = 8 << 20
        thread.start()
    }

    public func stop() {
        shared.withLock { $0.stopped = true }
        signal()
    }

    public var stats: EngineStats { shared.withLock { $0.stats } }

    /// Submits a request; its outputs arrive on the returned stream, which ends after the
    /// finishing output. Cancelling the consumer (ending iteration) aborts the request.
    public func submit(_ request: EngineRequest) -> AsyncStream<EngineEvent> {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream()
        let id = request.id
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.abort(id) }
        }
        shared.withLock { $0.pendingAdds.append((request, continuation)) }
        signal()
        return stream
    }

    public func abort(_ id: String) {
        shared.withLock { $0.pendingAborts.append(id) }
        signal()
    }

    private func signal() {
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    private func run() {
        let core = coreBox.core
        while true {
            let (adds, aborts, stopped) = shared.withLock { s in
                let r = (s.pendingAdds, s.pendingAborts, s.stopped)
                s.pendingAdds = []
                s.pendingAborts = []
                return r
            }
            // Continuations are resumed outside the lock: resuming one can run its consumer's
            // cancellation handler, which calls `abort` and takes the lock (a deadlock seen in
            // the client-disconnect tests).
            if stopped {
                let all = shared.withLock { s in
                    defer { s.streams = [:] }
                    return Array(s.streams.values)
                }
                for c in all { c.yield(.error(EbbError(.internal, "the engine stopped"))); c.finish() }
                return
            }
            for (request, continuation) in adds {
                do {
                    try core.add(request)
                    shared.withLock { $0.streams[request.id] = continuation }
                } catch {
                    let e = error as? EbbError ?? EbbError(.invalidArgument, "\(error)")
                    continuation.yield(.error(e))
                    continuation.finish()
                }
            }
            for id in aborts where core.abort(id) {
                let c = shared.withLock { $0.streams.removeValue(forKey: id) }
                c?.yield(.output(RequestOutput(requestId: id, finishReason: .abort)))
                c?.finish()
            }
            if core.hasWork {
                do {
                    let outputs = try core.step()
                    let stats = core.stats
                    let deliveries = shared.withLock { s in
                        s.stats = stats
                        return outputs.compactMap { out -> (AsyncStream<EngineEvent>.Continuation, RequestOutput)? in
                            guard let c = s.streams[out.requestId] else { return nil }
                            if out.isFinished { s.streams.removeValue(forKey: out.requestId) }
                            return (c, out)
                        }
                    }
                    for (c, out) in deliveries {
                        c.yield(.output(out))
                        if out.isFinished { c.finish() }
                    }
                } catch {
                    // A failed step fails its requests; the engine keeps serving others.
                    let e = error as? EbbError ?? EbbError(.internal, "engine step failed: \(error)")
                    let ids = shared.withLock { Array($0.streams.keys) }
                    for id in ids where core.abort(id) {
                        let c = shared.withLock { $0.streams.removeValue(forKey: id) }
                        c?.yield(.error(e))
                        c?.finish()
                    }
                }
                continue
            }
            let stats = core.stats
            shared.withLock { $0.stats = stats }
            wake.lock()
            let idle = shared.withLock { $0.pendingAdds.isEmpty && $0.pendingAborts.isEmpty && !$0.stopped }
            if idle { wake.wait(until: Date().addingTimeInterval(1)) }
            wake.unlock()
        }
    }
}
