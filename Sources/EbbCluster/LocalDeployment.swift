import EbbControl
import EbbCore
import Foundation
import GRPCCore
import Synchronization
import GRPCNIOTransportHTTP2

/// Resizing settings of a local deployment.
public struct ElasticSettings: Sendable {
    public var maxRanks: Int
    public var phaseTimeout: Duration
    /// Launch a replacement for each lost rank once the survivors serve.
    public var replaceFailedRanks = false
    /// A fault a test injects (`EBB_FAULT`, see `FaultInjection`).
    public var fault: FaultInjection?

    public init(maxRanks: Int, phaseTimeout: Duration = .seconds(60), fault: FaultInjection? = nil) {
        self.maxRanks = maxRanks
        self.phaseTimeout = phaseTimeout
        self.fault = fault
    }
}

/// A deployment: the coordinator's control-plane server on `advertiseHost` (loopback by
/// default), and one engine-core process per rank started by a `Launcher` — child processes
/// of this one (`LocalLauncher`, the default) or Ray actors on a cluster (`RayLauncher`).
/// Every control-plane call must carry the deployment's `ClusterSecret`. A rank that exits or stops
/// answering is lost: the coordinator recovers on the others (elastic EP, or plain data
/// parallelism), or fails the deployment when it cannot — then every child is stopped and
/// `onFailure` runs.
public final class LocalDeployment: Sendable {
    public let coordinator: Coordinator
    public let launcher: any Launcher
    private let grpcServer: GRPCServer<HTTP2ServerTransport.Posix>
    private let monitor: Task<Void, Never>
    private let log: @Sendable (String) -> Void
    /// Whether a healing task runs (one at a time).
    private let healing = Mutex(false)

    private init(coordinator: Coordinator, launcher: any Launcher, grpcServer: GRPCServer<HTTP2ServerTransport.Posix>,
                 monitor: Task<Void, Never>, log: @escaping @Sendable (String) -> Void) {
        self.log = log
        self.coordinator = coordinator
        self.launcher = launcher
        self.grpcServer = grpcServer
        self.monitor = monitor
    }

    /// Starts `ranks` engine cores (`ebb engine-core` with `engineArguments` plus their
    /// identity) and waits until all are ready.
    /// With `elastic`, the deployment can be resized (`coordinator.resize`): joining engine
    /// cores are launched here the same way.
    public static func start(ranks: Int, expertParallel: Bool, threadsPerRank: Int, engineArguments: [String],
                             startTimeout: Duration, generation: UInt64 = 1,
                             launcher: (any Launcher)? = nil, advertiseHost: String = "127.0.0.1",
                             secret: ClusterSecret = .generate(), gpusPerRank: Int = 0,
                             onFailure: @escaping @Sendable (EbbError) -> Void = { _ in }, elastic: ElasticSettings? = nil,
                             gpus: GPUPool? = nil,
                             rankFailureTimeout: Duration = .seconds(5),
                             log: @escaping @Sendable (String) -> Void) async throws -> LocalDeployment {
        let engineIds = (0..<ranks).map { "engine-\($0)" }
        let launcher = launcher ?? LocalLauncher(executable: LocalLauncher.currentExecutable(), log: log)
        let coordinator = Coordinator(generation: generation, engineIds: engineIds, heartbeatTimeout: rankFailureTimeout,
                                      expertParallel: expertParallel, log: log) { error in
            log("fatal: \(error.message); stopping every engine core")
            launcher.stopAll(grace: .seconds(2))
            onFailure(error)
        }
        let transport = controlServerTransport(host: advertiseHost, port: 0)
        let grpcServer = GRPCServer(transport: transport, services: [ControlPlaneService(coordinator: coordinator)],
                                    interceptors: [ClusterSecretCheck(secret)])
        Task {
            do { try await grpcServer.serve() } catch { log("control-plane server stopped: \(error)") }
        }
        let address = try await transport.listeningAddress
        guard let port = address.ipv4?.port else {
            throw EbbError(.io, "the control-plane server has no IPv4 address (\(address))")
        }
        log("control plane listening on \(advertiseHost):\(port)")
        let monitor = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                coordinator.checkLiveness()
            }
        }
        let deployment = LocalDeployment(coordinator: coordinator, launcher: launcher, grpcServer: grpcServer, monitor: monitor,
                                         log: log)
        let launch: @Sendable (String, Int, Int, UInt64, [String], [String: String]) throws -> Void = { id, rank, size, gen, extra, env in
            var args = ["engine-core"] + engineArguments
            args += ["--coordinator", "\(advertiseHost):\(port)", "--rank", "\(rank)", "--world-size", "\(size)",
                     "--generation", "\(gen)", "--engine-id", id, "--threads", "\(threadsPerRank)"] + extra
            if expertParallel { args.append("--enable-expert-parallel") }
            var env = env
            env[ClusterSecret.environmentVariable] = secret.value
            var resources = LaunchResources(cpus: threadsPerRank, gpus: gpusPerRank)
            if let gpus {
                resources.gpus = 1
                args += ["--device", "cuda:\(try gpus.acquire(id))"]
                if gpus.needsDistinctHostID { env["NCCL_HOSTID"] = "ebb-\(id)" }
            }
            do {
                try launcher.launch(id: id, arguments: args, environment: env, resources: resources) { id, description in
                    gpus?.release(id)
                    coordinator.engineExited(id, description: description)
                }
            } catch {
                gpus?.release(id)
                throw error
            }
        }
        if let elastic {
            coordinator.enableElastic(ElasticHooks(
                maxRanks: elastic.maxRanks, phaseTimeout: elastic.phaseTimeout,
                launch: { id, rank, size, gen, kvBytes in
                    // Joiners size their KV cache from what the running ranks report.
                    try launch(id, rank, size, gen, ["--join", "--kv-cache-memory", "\(max(kvBytes, 1))"], [:])
                },
                stop: { id in launcher.stop(id: id, grace: .seconds(3)) },
                fault: elastic.fault))
        }
        let fence: @Sendable (String) -> Void = { id in
            launcher.fence(id: id)
            gpus?.release(id)
        }
        var heal: (@Sendable () -> Void)?
        if elastic?.replaceFailedRanks == true {
            heal = {
                deployment.heal(to: ranks, startTimeout: startTimeout) { id, rank, size, g in try launch(id, rank, size, g, [], [:]) }
            }
        }
        coordinator.setRecoveryHooks(fence: fence, afterRecovery: heal, timeout: elastic?.phaseTimeout ?? .seconds(60))
        do {
            for rank in 0..<ranks {
                try launch(engineIds[rank], rank, ranks, generation, [], [:])
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

    /// Brings the deployment back to `size` ranks after a loss (`--replace-failed-ranks`)
    /// through the scale-up path — or, with no rank left to copy weights from, as a new
    /// generation that loads the checkpoint (`launchInitial` starts its ranks): one healing
    /// task at a time; a failed attempt is tried again after 1, 2, 4, 8 s, and given up after
    /// 5 failures in a row (the status says so).
    public func heal(to size: Int, startTimeout: Duration,
                     launchInitial: @escaping @Sendable (_ engineId: String, _ rank: Int, _ size: Int, _ generation: UInt64) throws -> Void) {
        let start = healing.withLock { running -> Bool in
            if running { return false }
            running = true
            return true
        }
        guard start else { return }
        Task {
            defer { healing.withLock { $0 = false } }
            var delay = Duration.seconds(1)
            for attempt in 1...5 {
                let now = coordinator.worldSize
                guard now < size, coordinator.failed == nil else { return }
                do {
                    if now == 0 {
                        let started = ContinuousClock.now
                        let (g, ids) = try coordinator.restartFromCheckpoint(size: size)
                        log("no rank is left to copy weights from: starting \(size) new ranks at generation \(g) from the checkpoint")
                        do {
                            for (rank, id) in ids.enumerated() { try launchInitial(id, rank, size, g) }
                        } catch {
                            coordinator.abandonRestart()
                            throw error
                        }
                        try await coordinator.waitUntilRestarted(timeout: startTimeout)
                        log("serving again on \(size) new ranks at generation \(g), \(String(format: "%.2f", (ContinuousClock.now - started).seconds)) s after the restart began")
                    } else {
                        let event = try await coordinator.resize(.size(size))
                        log("replaced lost ranks: \(event.fromRanks) → \(event.toRanks) ranks in \(String(format: "%.2f", event.totalSeconds)) s")
                    }
                } catch {
                    let message = (error as? ResizeError)?.message ?? "\(error)"
                    log("replacing lost ranks failed (attempt \(attempt) of 5): \(message); trying again in \(delay)")
                    try? await Task.sleep(for: delay)
                    delay *= 2
                }
            }
        }
    }

    /// Stops the engine cores (asking first, then signals) and the control plane.
    public func stop(reason: String) {
        monitor.cancel()
        coordinator.shutdown(reason: reason)
        launcher.stopAll(grace: .seconds(5))
        grpcServer.beginGracefulShutdown()
    }
}
