import ArgumentParser
import EbbCluster
import EbbControl
import EbbCore
import EbbEngine
import EbbTensor
import Foundation

/// `ebb engine-core`: one data-parallel rank, started by `ebb serve` (internal).
struct EngineCoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-core", abstract: "Run one engine core of a deployment (started by `ebb serve`)",
        shouldDisplay: false)

    @OptionGroup var engine: EngineOptions
    @OptionGroup var eplb: EPLBOptions

    @Option(help: "The coordinator's control-plane address, HOST:PORT")
    var coordinator: String

    @Option(help: "This engine core's data-parallel rank")
    var rank: Int

    @Option(help: "Number of data-parallel ranks")
    var worldSize: Int

    @Option(help: "Deployment generation this engine core joins")
    var generation: UInt64 = 1

    @Option(help: "Identity the coordinator expects")
    var engineId: String

    @Flag(help: "Split experts over the ranks (expert parallelism)")
    var enableExpertParallel = false

    @Flag(help: "Join a running deployment: weights come from its ranks, not from disk")
    var join = false

    @Option(help: "CPU threads of this rank")
    var threads: Int?

    @Option(help: "Data-plane operation timeout in seconds")
    var dataPlaneTimeout: Double = 120

    func run() async throws {
        let rank = self.rank
        let log: @Sendable (String) -> Void = { message in
            FileHandle.standardError.write(Data("[ebb rank \(rank)] \(message)\n".utf8))
        }
        ParentWatch.start(log: log)
        // A joiner's `register` fault (tests): exit, or wait, before saying hello.
        let fault = FaultInjection.fromEnvironment
        if join, let action = fault?.action(at: "register", generation: generation) {
            switch action {
            case .fail:
                log("injected fault at scale.register: exiting before saying hello")
                throw ExitCode(3)
            case .pause(let d):
                log("injected pause at scale.register: \(d) before saying hello")
                try await Task.sleep(for: d)
            }
        }
        let address: ControlAddress
        let config: EngineConfig
        let eplbConfig: EPLBConfig?
        let secret: ClusterSecret?
        do {
            address = try ControlAddress(parsing: coordinator)
            secret = try ClusterSecret.fromEnvironment()
            config = try engine.engineConfig()
            eplbConfig = try eplb.config()
            guard worldSize >= 1, rank >= 0, rank < worldSize, dataPlaneTimeout > 0 else {
                throw EbbError(.invalidArgument, "--rank must be in 0..<--world-size and the timeout positive")
            }
        } catch {
            log("error: \(describe(error))")
            throw ExitCode(2)
        }
        let backend: any Backend
        do {
            backend = try makeBackend(device: engine.device, threads: threads, dtype: engine.dtype)
        } catch {
            log("error: \(describe(error))")
            throw ExitCode(2)
        }
        let identity = EngineCoreIdentity(engineId: engineId, rank: rank, worldSize: worldSize, generation: generation,
                                          expertParallel: enableExpertParallel, device: backend.summary, eplb: eplbConfig,
                                          joining: join)
        let spec = engine.model
        let weights = engine.weights
        let shell = EngineCoreShell(identity: identity, coordinator: address, backend: backend,
                                    dataPlaneTimeout: .milliseconds(Int64(dataPlaneTimeout * 1000)),
                                    restoreSource: { try LoadedModel.weightSource(spec, weights: weights) }, faults: fault,
                                    secret: secret, log: log) { setup, wrap in
            let loaded = try LoadedModel.load(spec, weights: weights, backend: backend, needTokenizer: false, expertParallel: setup,
                                              wrapWeights: wrap)
            let core = try EngineCore(model: loaded.model, config: config)
            log("loaded \(String(format: "%.1f", Double(loaded.model.weightBytes) / 1e6)) MB of weights; KV cache \(core.cache.numBlocks) blocks")
            return core
        }
        let code = await shell.run()
        if code != 0 { throw ExitCode(code) }
    }
}
