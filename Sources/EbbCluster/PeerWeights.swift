import EbbComm
import EbbCore
import EbbModel
import EbbTensor
import Foundation

/// Remembers where every weight tensor was loaded to, so that this rank can later hand its
/// dense weights to a rank that joins (see `DenseWeightServer`).
public final class RecordingWeights: WeightSource, @unchecked Sendable {
    public let base: any WeightSource
    private let lock = NSLock()
    private var tensors: [String: Tensor] = [:]

    public init(_ base: any WeightSource) { self.base = base }

    public var name: String { base.name }

    public func load(_ name: String, shape: [Int], into destination: Tensor, backend: any Backend) throws {
        try base.load(name, shape: shape, into: destination, backend: backend)
        lock.withLock { tensors[name] = destination }
    }

    public func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws { try base.checkAllUsed(ignoring: ignoring) }
    public func check(_ name: String, shape: [Int]) throws { try base.check(name, shape: shape) }

    /// The tensor loaded under `name`, if any.
    public func tensor(_ name: String) -> Tensor? { lock.withLock { tensors[name] } }
}

/// Names of routed-expert tensors (all three architectures name them `….experts.N.…`;
/// shared experts are `shared_experts`). Joining ranks get these from the expert transfer.
func isRoutedExpertTensor(_ name: String) -> Bool { name.contains(".experts.") }

/// Tags of the dense-weight protocol on the transfer communicator.
enum DenseWeightTags {
    static let request: UInt32 = 11
    static let reply: UInt32 = 12
}

/// A joining rank's weights: dense tensors asked for by name from a running rank over the
/// data plane (not read from disk); routed experts left zero, to be filled by the expert
/// transfer before the switch. Records what it loaded, so this rank can serve later joiners.
public final class PeerWeights: WeightSource, @unchecked Sendable {
    let communicator: any Communicator
    let server: Int
    public private(set) var bytesReceived = 0

    public init(communicator: any Communicator, server: Int) {
        self.communicator = communicator
        self.server = server
    }

    public var name: String { "rank \(server) of generation \(communicator.generation)" }

    public func load(_ name: String, shape: [Int], into destination: Tensor, backend: any Backend) throws {
        if isRoutedExpertTensor(name) {
            backend.fill(destination, value: 0)
            return
        }
        try communicator.send(Array(name.utf8), to: server, tag: DenseWeightTags.request)
        let values: [Float] = try communicator.recv(from: server, tag: DenseWeightTags.reply)
        guard values.count == destination.count, values.count == shape.reduce(1, *) else {
            throw EbbError(.io, "weights from rank \(server): '\(name)' came with \(values.count) values, expected \(destination.count)")
        }
        values.withUnsafeBytes { backend.copy(from: $0, sourceDType: .f32, into: destination) }
        bytesReceived += values.count * 4
    }

    /// Tells the server this rank has everything.
    public func finish() throws {
        try communicator.send([UInt8](), to: server, tag: DenseWeightTags.request)
    }

    public func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws {}
}

/// A running rank's side: answers one joining rank's requests for dense tensors by name
/// until it says it is done. Unknown names get an empty reply (the joiner then fails clearly).
struct DenseWeightServer {
    let communicator: any Communicator
    let weights: RecordingWeights
    let backend: any Backend

    /// Returns the bytes sent.
    func serve(peer: Int) throws -> Int {
        var bytes = 0
        while true {
            let request: [UInt8] = try communicator.recv(from: peer, tag: DenseWeightTags.request)
            if request.isEmpty { return bytes }
            let name = String(decoding: request, as: UTF8.self)
            let values = weights.tensor(name).map { backend.downloadFloats($0) } ?? []
            try communicator.send(values, to: peer, tag: DenseWeightTags.reply)
            bytes += values.count * 4
        }
    }
}
