import EbbComm
import EbbCore
import EbbCUDA
import EbbModel
import EbbTensor

/// Picks the transport of a rank's expert exchange from its device, so cluster and engine
/// code never name one: NCCL on device buffers for a GPU rank (fixed sizes, graph-capturable),
/// else the variable all-to-all of the rank's host group (Gloo between processes, the
/// in-process communicator in tests). The host group itself (step votes, placements, weight
/// transfers) is built by the caller; tiny control collectives stay there.
public enum DataPlane {
    /// What a generation's expert exchange runs on.
    public struct Exchange {
        public let exchange: any ExpertExchange
        /// The NCCL group under it, if any (close it after releasing graphs that captured it).
        public let nccl: NCCLCommunicator?
        public var transport: String { nccl != nil ? "nccl" : "host" }
    }

    /// The expert exchange of rank `rank` of `size` in `generation` on `backend`. `host` is
    /// the rank's host group for the same members; `store` the rendezvous store.
    public static func expertExchange(host: any Communicator, backend: any Backend, store: any KeyValueStore,
                                      timeout: Duration) throws -> Exchange {
        if let cuda = backend as? CUDABackend, NCCLCommunicator.version != nil {
            let nccl = try NCCLCommunicator(rank: host.rank, size: host.size, generation: host.generation, members: host.members,
                                            store: store, storePrefix: "ebb/gen\(host.generation)/nccl-experts",
                                            backend: cuda, timeout: timeout)
            return Exchange(exchange: NCCLExpertExchange(nccl), nccl: nccl)
        }
        return Exchange(exchange: CommunicatorExchange(host), nccl: nil)
    }
}

/// The fixed-size expert exchange over NCCL (device buffers, the backend's stream).
public final class NCCLExpertExchange: DeviceExpertExchange {
    public let nccl: NCCLCommunicator
    public init(_ nccl: NCCLCommunicator) { self.nccl = nccl }
    public var rank: Int { nccl.rank }
    public var size: Int { nccl.size }
    public func allToAllV(_ input: UnsafeRawBufferPointer, sendCounts: [Int],
                          into output: UnsafeMutableRawBufferPointer, recvCounts: [Int], elementSize: Int) throws {
        throw EbbError(.unsupported, "the NCCL expert exchange moves device tensors with fixed sizes, not host buffers")
    }
    public func allGather(_ input: Tensor, into output: Tensor) throws { try nccl.allGather(input, into: output) }
    public func allToAll(_ input: Tensor, into output: Tensor) throws { try nccl.allToAll(input, into: output) }
    public func expectProgress() { nccl.expectProgress() }
    public func checkHealth() throws { try nccl.checkHealth() }
}
