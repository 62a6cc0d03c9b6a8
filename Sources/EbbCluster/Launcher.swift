import EbbCore
import Foundation

/// What one engine core needs from the machine it runs on (Ray reserves it as a bundle).
public struct LaunchResources: Sendable, Equatable {
    public var cpus: Int
    public var gpus: Int

    public init(cpus: Int, gpus: Int) {
        self.cpus = cpus
        self.gpus = gpus
    }
}

/// Starts, stops and watches a deployment's engine cores; the cluster code never says where
/// or how. `LocalLauncher` runs them as child processes of `ebb serve`; `RayLauncher` places
/// each on a Ray node in a placement-group bundle of its own, owned by a Ray actor.
public protocol Launcher: Sendable {
    /// Starts engine core `id`: the `ebb` executable with `arguments`, with `environment`
    /// added to the one it inherits. `onExit(id, description)` runs when it ends without
    /// being asked to (never after `stop`, `fence` or `stopAll`).
    func launch(id: String, arguments: [String], environment: [String: String], resources: LaunchResources,
                onExit: @escaping @Sendable (_ id: String, _ description: String) -> Void) throws
    /// Stops one engine core: asks, then kills after `grace`. No `onExit` for it.
    func stop(id: String, grace: Duration)
    /// Kills a lost engine core at once (a hung one cannot come back). No `onExit` for it.
    func fence(id: String)
    /// Stops every engine core (asks, waits up to `grace`, kills what is left).
    func stopAll(grace: Duration)
}

/// Runs `body` on a thread of its own and waits for it without holding a thread of Swift's
/// cooperative pool (a launcher may block for seconds: Ray reserving a placement group).
func onOwnThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}
