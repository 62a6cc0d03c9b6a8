import EbbCore
import Synchronization

/// Which GPU each engine core of a local deployment uses: every engine gets a device of
/// its own, the lowest free index from `first`; an engine's device is free again once
/// its process has exited.
public final class GPUPool: Sendable {
    public let first: Int
    public let count: Int
    private let held = Mutex<[String: Int]>([:])

    /// GPUs `first ..< count` of this host.
    public init(first: Int, count: Int) {
        self.first = first
        self.count = count
    }

    /// The device for `engine` (the same one if it already has one).
    public func acquire(_ engine: String) throws -> Int {
        try held.withLock { held in
            if let d = held[engine] { return d }
            let used = Set(held.values)
            guard let free = (first..<max(first, count)).first(where: { !used.contains($0) }) else {
                throw EbbError(.resourceExhausted, "no free GPU for engine core \(engine): GPUs \(first)..<\(count) of this host are all in use")
            }
            held[engine] = free
            return free
        }
    }

    public func release(_ engine: String) {
        _ = held.withLock { $0.removeValue(forKey: engine) }
    }
}
