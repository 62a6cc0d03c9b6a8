import EbbCore
import Synchronization

/// Which GPU each engine core of a local deployment uses. Two forms:
///
/// - a range (`--device cuda:N`): every engine gets a device of its own, the lowest free
///   index from `N`; a resize beyond the host's GPUs fails with "no free GPU";
/// - a list (`--devices cuda:0,cuda:0,…`, one entry per rank): an engine takes the first
///   entry no running engine holds; when every entry is held, entries are reused cyclically
///   (the k-th engine beyond the list takes entry k mod the list's length). Entries may
///   repeat: ranks then share a GPU, for development and tests on one device (NCCL connects
///   them over its socket transport; see `needsDistinctHostID`).
///
/// An engine's entry is free again once its process has exited.
public final class GPUPool: Sendable {
    /// The devices engines take, in order.
    public let devices: [Int]
    private let cyclic: Bool
    private let state = Mutex<(held: [String: Int], overflow: Int)>(([:], 0))

    /// GPUs `first ..< count` of this host, one engine each.
    public init(first: Int, count: Int) {
        devices = Array(first..<max(first, count))
        cyclic = false
    }

    /// An explicit list of device indices (entries may repeat), reused cyclically.
    public init(devices: [Int]) throws {
        guard !devices.isEmpty, devices.allSatisfy({ $0 >= 0 }) else {
            throw EbbError(.invalidArgument, "--devices needs at least one cuda:N entry")
        }
        self.devices = devices
        cyclic = true
    }

    /// Whether ranks share a GPU: NCCL then needs a distinct `NCCL_HOSTID` per rank (it
    /// refuses two ranks of one host on one device), which makes it use sockets.
    public var needsDistinctHostID: Bool { cyclic && (Set(devices).count < devices.count || devices.count == 1) }

    /// The device for `engine` (the same one if it already has one).
    public func acquire(_ engine: String) throws -> Int {
        try state.withLock { s in
            if let at = s.held[engine] { return devices[at] }
            let used = Set(s.held.values)
            let at: Int
            if let free = devices.indices.first(where: { !used.contains($0) }) {
                at = free
            } else if cyclic {
                at = s.overflow % devices.count
                s.overflow += 1
            } else {
                throw EbbError(.resourceExhausted, "no free GPU for engine core \(engine): GPUs \(devices.first ?? 0)..<\((devices.last ?? -1) + 1) of this host are all in use")
            }
            s.held[engine] = at
            return devices[at]
        }
    }

    public func release(_ engine: String) {
        _ = state.withLock { $0.held.removeValue(forKey: engine) }
    }
}
