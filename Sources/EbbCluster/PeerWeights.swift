import EbbComm
import EbbCore
import EbbEngine
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
    /// How a reply names the tensor's dtype (its index here).
    static let dtypes: [DType] = [.f32, .bf16, .f16, .i32]
}

/// A joining rank's weights: dense tensors asked for by name from a running rank (the name
/// and the answer's size over the host group, the values over the weight channel: NCCL
/// between GPUs), not read from disk; routed experts left zero, to be filled by the expert
/// transfer before the switch. Records what it loaded, so this rank can serve later joiners.
public final class PeerWeights: WeightSource, @unchecked Sendable {
    let communicator: any Communicator
    let channel: any WeightChannel
    let server: Int
    public private(set) var bytesReceived = 0

    public init(communicator: any Communicator, channel: any WeightChannel, server: Int) {
        self.communicator = communicator
        self.channel = channel
        self.server = server
    }

    public var name: String { "rank \(server) of generation \(communicator.generation)" }

    public func load(_ name: String, shape: [Int], into destination: Tensor, backend: any Backend) throws {
        if isRoutedExpertTensor(name) {
            backend.fill(destination, value: 0)
            return
        }
        try communicator.send(Array(name.utf8), to: server, tag: DenseWeightTags.request)
        let header: [Int64] = try communicator.recv(from: server, tag: DenseWeightTags.reply)
        guard header.count == 2, header[0] == Int64(destination.count), destination.count == shape.reduce(1, *) else {
            throw EbbError(.io, "weights from rank \(server): '\(name)' has \(header.first.map(String.init) ?? "no") values there, expected \(destination.count)")
        }
        let dtype = DenseWeightTags.dtypes.indices.contains(Int(header[1])) ? DenseWeightTags.dtypes[Int(header[1])] : nil
        guard channel.transport == "host" || dtype == destination.dtype else {
            throw EbbError(.io, "weights from rank \(server): '\(name)' is \(dtype?.rawValue ?? "of an unknown type") there, \(destination.dtype) here")
        }
        try channel.recv(into: destination, from: server, what: "'\(name)'")
        bytesReceived += destination.count * destination.dtype.byteSize
    }

    /// Waits for every tensor asked for, then tells the server this rank has everything.
    public func finish() throws {
        try channel.finish()
        try communicator.send([UInt8](), to: server, tag: DenseWeightTags.request)
    }

    public func checkAllUsed(ignoring: @Sendable (String) -> Bool) throws {}
}

/// A running rank's side: answers one joining rank's requests for dense tensors by name
/// until it says it is done. Unknown names get a zero-size answer (the joiner then fails
/// clearly).
struct DenseWeightServer {
    let communicator: any Communicator
    let channel: any WeightChannel
    let weights: RecordingWeights

    /// Returns the bytes sent.
    func serve(peer: Int) throws -> Int {
        var bytes = 0
        while true {
            let request: [UInt8] = try communicator.recv(from: peer, tag: DenseWeightTags.request)
            if request.isEmpty {
                try channel.finish()
                return bytes
            }
            let name = String(decoding: request, as: UTF8.self)
            guard let tensor = weights.tensor(name) else {
                try communicator.send([Int64(-1), -1], to: peer, tag: DenseWeightTags.reply)
                continue
            }
            let code = DenseWeightTags.dtypes.firstIndex(of: tensor.dtype) ?? -1
            try communicator.send([Int64(tensor.count), Int64(code)], to: peer, tag: DenseWeightTags.reply)
            try channel.send(tensor, to: peer)
            bytes += tensor.count * tensor.dtype.byteSize
        }
    }
}
