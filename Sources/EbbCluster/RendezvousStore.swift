import EbbComm
import EbbControl
import EbbCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// The coordinator's side of the rendezvous store: keys and values in memory. Communicator
/// generations use their own key prefixes (`ebb/gen<g>…`, see `GlooCommunicator`). A
/// generation that will never form (a rolled-back resize, a recovery attempt that included
/// a rank found lost since) is abandoned: waiting for any of its keys fails at once, so
/// survivors blocked in its rendezvous are released instead of waiting out the timeout.
final class RendezvousTable: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: [UInt8]] = [:]
    private var abandoned: Set<UInt64> = []

    enum Lookup: Equatable {
        case found([UInt8])
        case missing
        /// The key's generation was abandoned.
        case abandoned(UInt64)
    }
    static let maxKeyBytes = 1024
    static let maxValueBytes = 1 << 20

    func set(_ key: String, _ value: [UInt8]) throws {
        guard !key.isEmpty, key.utf8.count <= Self.maxKeyBytes, value.count <= Self.maxValueBytes else {
            throw EbbError(.invalidArgument, "store: key of \(key.utf8.count) bytes / value of \(value.count) bytes is out of bounds")
        }
        lock.withLock { values[key] = value }
    }

    func value(_ key: String) -> [UInt8]? { lock.withLock { values[key] } }

    /// Keys of generation `g` will never all come.
    func abandon(generation g: UInt64) { lock.withLock { _ = abandoned.insert(g) } }

    /// The generation a key belongs to (`ebb/gen<g>` or `ebb/gen<g>/…`).
    static func generation(of key: String) -> UInt64? {
        guard key.hasPrefix("ebb/gen") else { return nil }
        return UInt64(key.dropFirst("ebb/gen".count).prefix { $0.isNumber })
    }

    /// Waits up to `timeout` for `key` (polling: rendezvous is rare and short).
    func get(_ key: String, timeout: Duration) async -> Lookup {
        let end = ContinuousClock.now + timeout
        let g = Self.generation(of: key)
        while true {
            let (value, gone) = lock.withLock { (values[key], g.map { abandoned.contains($0) } ?? false) }
            if let value { return .found(value) }
            if gone, let g { return .abandoned(g) }
            if ContinuousClock.now >= end { return .missing }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// An engine core's view of the coordinator's rendezvous store, through the control plane.
/// Blocking (Gloo's rendezvous calls it from the engine thread).
final class ControlPlaneStore: KeyValueStore, @unchecked Sendable {
    private let client: ControlCoordinatorService.Client<HTTP2ClientTransport.Posix>

    init(client: ControlCoordinatorService.Client<HTTP2ClientTransport.Posix>) {
        self.client = client
    }

    func set(_ key: String, _ value: [UInt8]) throws {
        var request = Ebb_Control_V1_StoreSetRequest()
        request.key = key
        request.value = Data(value)
        let client = self.client
        let message = request
        _ = try blocking { _ = try await client.storeSet(message) }
    }

    func get(_ key: String, timeout: Duration) throws -> [UInt8] {
        let client = self.client
        let end = ContinuousClock.now + timeout
        while true {
            let left = end - ContinuousClock.now
            var request = Ebb_Control_V1_StoreGetRequest()
            request.key = key
            request.timeoutMs = UInt32(max(1, min(left, .seconds(5)).components.seconds * 1000 + 1))
            let message = request
            let response = try blocking { try await client.storeGet(message) }
            if response.found { return [UInt8](response.value) }
            if ContinuousClock.now >= end {
                throw EbbError(.io, "key-value store: timed out after \(timeout) waiting for key '\(key)' at the coordinator")
            }
        }
    }

    /// Runs an async call from a plain thread and waits for it.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        switch box.result {
        case .success(let v): return v
        case .failure(let e as EbbError): throw e
        case .failure(let e): throw EbbError(.io, "control plane: \(e)")
        case nil: throw EbbError(.internal, "control plane call returned nothing")
        }
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
