import EbbComm
import EbbCore
import EbbCUDA
import EbbTensor

/// Moves weight tensors between the ranks of a transfer group (dense weights to joiners,
/// experts for resizes and EPLB), device to device where it can. Sends and receives are
/// matched per peer pair in the order they are issued; both ends use tensors of the same
/// element count. They may return before the data moved: `finish` waits for all of it.
public protocol WeightChannel: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// "nccl" or "host".
    var transport: String { get }
    /// The backend to stage received tensors with (on a GPU its transfer lane).
    var backend: any Backend { get }
    func send(_ tensor: Tensor, to peer: Int) throws
    /// Receives into `tensor`; `what` names it in errors.
    func recv(into tensor: Tensor, from peer: Int, what: String) throws
    /// Waits until everything sent and received has moved; throws if the group broke.
    func finish() throws
    func close()
    /// Fails the operations in progress and later ones at once (from any thread).
    func abort(reason: String)
}

/// The host path: download, send over the host group (Gloo, or in-process in tests), upload.
/// Converts between dtypes on the way (values travel as f32).
public final class HostWeightChannel: WeightChannel, @unchecked Sendable {
    public let communicator: any Communicator
    public let backend: any Backend
    /// Whether `close` closes the host group too (else it belongs to the caller).
    let ownsCommunicator: Bool
    static let tag: UInt32 = 7

    public init(_ communicator: any Communicator, backend: any Backend, ownsCommunicator: Bool = false) {
        self.communicator = communicator
        self.backend = backend
        self.ownsCommunicator = ownsCommunicator
    }

    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    public var transport: String { "host" }

    public func send(_ tensor: Tensor, to peer: Int) throws {
        let values = backend.downloadFloats(tensor)
        try backend.checkErrors()
        try communicator.send(values, to: peer, tag: Self.tag)
    }

    public func recv(into tensor: Tensor, from peer: Int, what: String) throws {
        let values: [Float] = try communicator.recv(from: peer, tag: Self.tag)
        guard values.count == tensor.count else {
            throw EbbError(.io, "weights from rank \(peer): \(what) came with \(values.count) values, expected \(tensor.count)")
        }
        values.withUnsafeBytes { backend.copy(from: $0, sourceDType: .f32, into: tensor) }
    }

    public func finish() throws {
        backend.synchronize()
        try backend.checkErrors()
    }

    public func abort(reason: String) { communicator.abort(reason: reason) }

    public func close() {
        if ownsCommunicator { communicator.close() }
    }
}

/// The GPU path: NCCL send/recv between device buffers on the backend's transfer lane (its
/// own stream and communicator), so serving goes on while weights move. The hung-peer watch
/// runs from the first operation to `finish`.
public final class NCCLWeightChannel: WeightChannel, @unchecked Sendable {
    public let nccl: NCCLCommunicator

    public init(_ nccl: NCCLCommunicator) { self.nccl = nccl }

    public var rank: Int { nccl.rank }
    public var size: Int { nccl.size }
    public var transport: String { "nccl" }
    public var backend: any Backend { nccl.backend }

    public func send(_ tensor: Tensor, to peer: Int) throws {
        nccl.expectProgress()
        try nccl.send(tensor, to: peer)
    }

    public func recv(into tensor: Tensor, from peer: Int, what: String) throws {
        nccl.expectProgress()
        try nccl.recv(into: tensor, from: peer)
    }

    public func finish() throws {
        nccl.backend.synchronize()
        try nccl.backend.checkErrors()
        try nccl.checkHealth()
    }

    public func close() { nccl.close() }

    public func abort(reason: String) { nccl.abort(reason: reason) }
}

extension DataPlane {
    /// The weight channel of a transfer group: NCCL on the transfer lane for a GPU rank (when
    /// NCCL loads), else `host` itself. `host` is the rank's host transfer group (same members);
    /// `name` tells apart the channels of one generation in the rendezvous store. With `owning`
    /// the channel takes `host` over: it is closed with the channel, or at once when NCCL
    /// carries the tensors.
    public static func weightChannel(_ name: String, host: any Communicator, owning: Bool = false, backend: any Backend,
                                     store: any KeyValueStore, timeout: Duration) throws -> any WeightChannel {
        let lane = try backend.transferLane()
        if let cuda = lane as? CUDABackend, NCCLCommunicator.version != nil {
            let nccl = try NCCLCommunicator(rank: host.rank, size: host.size, generation: host.generation, members: host.members,
                                            store: store, storePrefix: "ebb/gen\(host.generation)/nccl-\(name)",
                                            backend: cuda, timeout: timeout)
            if owning { host.close() }
            return NCCLWeightChannel(nccl)
        }
        return HostWeightChannel(host, backend: lane, ownsCommunicator: owning)
    }
}
