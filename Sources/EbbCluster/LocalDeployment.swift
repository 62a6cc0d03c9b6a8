import EbbControl
import EbbCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// A deployment on this host: the coordinator's control-plane server on loopback, and one
/// engine-core child process per rank started by `LocalLauncher`. A rank that exits or stops
/// answering fails the deployment: the error names the rank, every child is stopped and the
/// process exits non-zero (recovering from it is the elastic issues' job).
public final class LocalDeployment: Sendable {
    public let coordinator: Coordinator
    public let launcher: LocalLauncher
    private let grpcServer: GRPCServer<HTTP2ServerTransport.Posix>
    private let monitor: Task<Void, Never>

    private init(coordinator: Coordinator, launcher: LocalLauncher, grpcServer: GRPCServer<HTTP2ServerTransport.Posix>,
                 monitor: Task<Void, Never>) {
        self.coordinator = coordinator
        self.launcher = launcher
        self.grpcServer = grpcServer
        self.monitor = monitor
    }

    /// Starts `ranks` engine cores (`ebb engine-core` with `engineArguments` plus their
    /// identity) and waits until all are ready.
    public static func start(ranks: Int, expertParallel: Bool, threadsPerRank: Int, engineArguments: [String],
                             startTimeout: Duration, generation: UInt64 = 1,
                             executable: URL = LocalLauncher.currentExecutable(),
                             exitOnFailure: Bool = true,
                             log: @escaping @Sendable (String) -> Void) async throws -> LocalDeployment {
        let engineIds = (0..<ranks).map { "engine-\($0)" }
        let launcher = LocalLauncher(executable: executable, log: log)
        let coordinator = Coordinator(generation: generation, engineIds: engineIds, log: log) { error in
            log("fatal: \(error.message); stopping every engine core")
            launcher.stopAll(grace: .seconds(2))
            if exitOnFailure { exit(1) }
        }
        let transport = controlServerTransport(host: "127.0.0.1", port: 0)
        let grpcServer = GRPCServer(transport: transport, services: [coordinator])
        Task {
            do { try await grpcServer.serve() } catch { log("control-plane server stopped: \(error)") }
        }
        let address = try await transport.listeningAddress
        guard let port = address.ipv4?.port else {
            throw EbbError(.io, "the control-plane server has no IPv4 address (\(address))")
        }
        log("control plane listening on 127.0.0.1:\(port)")
        let monitor = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(500))
                coordinator.checkLiveness()
            }
        }
        let deployment = LocalDeployment(coordinator: coordinator, launcher: launcher, grpcServer: grpcServer, monitor: monitor)
        do {
            for rank in 0..<ranks {
                var args = ["engine-core"] + engineArguments
                args += ["--coordinator", "127.0.0.1:\(port)", "--rank", "\(rank)", "--world-size", "\(ranks)",
                         "--generation", "\(generation)", "--engine-id", engineIds[rank], "--threads", "\(threadsPerRank)"]
                if expertParallel { args.append("--enable-expert-parallel") }
                try launcher.launch(rank: rank, arguments: args) { rank, pid, status in
                    coordinator.fail(EbbError(.io, "engine core rank \(rank) (pid \(pid)) exited with status \(status)"))
                }
            }
            try await coordinator.waitUntilReady(timeout: startTimeout)
        } catch {
            deployment.stop(reason: "start-up failed")
            throw error
        }
        for (rank, ready) in coordinator.readyReports.enumerated() {
            guard let ready else { continue }
            log("rank \(rank) ready: \(ready.device); \(String(format: "%.1f", Double(ready.weightBytes) / 1e6)) MB of weights; KV cache \(ready.kvNumBlocks) blocks of \(ready.kvBlockSize) tokens (\(String(format: "%.1f", Double(ready.kvCacheBytes) / 1e6)) MB)")
        }
        return deployment
    }

    /// Stops the engine cores (asking first, then signals) and the control plane.
    public func stop(reason: String) {
        monitor.cancel()
        coordinator.shutdown(reason: reason)
        launcher.stopAll(grace: .seconds(5))
        grpcServer.beginGracefulShutdown()
    }
}
