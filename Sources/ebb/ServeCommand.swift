import ArgumentParser
import EbbCluster
import EbbControl
import EbbCore
import EbbCUDA
import EbbEngine
import EbbModel
import EbbServer
import EbbTensor
import EbbTokenizer
import Foundation

/// `ebb serve`: the OpenAI-compatible server over one engine core in this process, or —
/// with `--data-parallel-size N` > 1 — over N engine-core processes behind a coordinator.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve a model over an OpenAI-compatible HTTP API")

    @OptionGroup var engine: EngineOptions
    @OptionGroup var eplb: EPLBOptions

    @Option(help: "Name clients use for the model (default: the --model value)")
    var servedModelName: String?

    @Option(help: "Address to listen on")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on")
    var port: Int = 8000

    @Option(help: "CPU threads in all (split evenly over the ranks; default: all cores)")
    var threads: Int?

    @Option(help: "Data-parallel ranks, each an engine-core process (1 = one engine in this process)")
    var dataParallelSize: Int = 1

    @Flag(help: "Split the experts over the data-parallel ranks (expert parallelism)")
    var enableExpertParallel = false

    @Option(help: "Seconds to wait for every engine core to load and report ready")
    var engineStartTimeout: Double = 600

    @Flag(help: "Allow resizing the deployment while it serves (POST /scale_elastic_ep); turns on EPLB")
    var enableElasticEp = false

    @Option(help: "Most data-parallel ranks a resize may reach (default: 4 × --data-parallel-size)")
    var maxDataParallelSize: Int?

    @Option(help: "Seconds each resize phase may take before the resize rolls back")
    var scaleTimeout: Double = 60

    @Option(help: "Seconds a rank may send nothing (no heartbeat) before it is declared lost, fenced (killed) and recovered from")
    var rankFailureTimeout: Double = 5

    @Flag(help: "After a rank is lost and the survivors serve, launch a replacement through the scale-up path (needs --enable-elastic-ep)")
    var replaceFailedRanks = false

    @Option(help: ArgumentHelp("GPUs of the ranks, one entry per rank (cuda:0,cuda:1,... ; an entry may repeat so ranks share a GPU). A resize takes the next free entries, then reuses the list cyclically",
                               valueName: "cuda:N,..."))
    var devices: String?

    @Flag(help: "Resize by itself to the load, within --min-data-parallel-size...--max-data-parallel-size (needs --enable-elastic-ep)")
    var autoscale = false

    @Option(help: "Fewest ranks the autoscaler keeps (default: the fewest that hold every expert)")
    var minDataParallelSize: Int?

    @Option(help: "Seconds the autoscaler waits after a resize before the next")
    var autoscaleCooldown: Double = 30

    @Option(help: "Autoscaler target: requests in flight per rank (scale up above it; down below a quarter of it)")
    var autoscaleTargetConcurrency: Double = 8

    @Option(help: "Autoscaler target: p90 time to first token in seconds (scale up above it)")
    var autoscaleTtftTarget: Double?

    @Option(help: "Autoscaler target: p90 time per output token in seconds (scale up above it)")
    var autoscaleTpotTarget: Double?

    @Option(help: "Key clients must send (Authorization: Bearer KEY) on the model routes, as vLLM's --api-key (default: $EBB_API_KEY)")
    var apiKey: String?

    @Option(help: "Key the routes that change the deployment (resizes) require; the --api-key does not open them (default: $EBB_ADMIN_API_KEY)")
    var adminApiKey: String?

    @Option(help: "Who starts the engine cores: local (child processes of this one) or ray (Ray actors, placed by a Ray cluster)")
    var launcher: String = "local"

    @Option(help: "With --launcher ray: the Ray cluster to join (default: auto, the cluster this host belongs to)")
    var rayAddress: String = "auto"

    @Option(help: "With --launcher ray: the Python with Ray installed that runs Ebb's Ray helper")
    var rayPython: String = "python3"

    @Option(help: "With --launcher ray: seconds a rank's placement-group bundle may wait for room before its start fails")
    var rayPlacementTimeout: Double = 60

    @Option(help: "The address engine cores reach the coordinator at (default: 127.0.0.1; with --launcher ray, this node's address as Ray sees it)")
    var advertiseAddress: String?

    @Option(help: "With --launcher ray: the ebb executable on the Ray nodes (default: this executable's path, which must exist on every node)")
    var engineCoreBinary: String?

    @Option(help: "A file holding the deployment's cluster secret (default: a fresh random one); engine cores get it in their environment")
    var clusterSecretFile: String?

    /// The keys from the flags, else the environment.
    var accessKeys: AccessKeys {
        let env = ProcessInfo.processInfo.environment
        return AccessKeys(apiKey: apiKey ?? env["EBB_API_KEY"], adminKey: adminApiKey ?? env["EBB_ADMIN_API_KEY"])
    }

    func run() async throws {
        guard (1...65535).contains(port), dataParallelSize >= 1, dataParallelSize <= 256, engineStartTimeout > 0 else {
            FileHandle.standardError.write(Data("error: --port must be in 1...65535 and --data-parallel-size in 1...256\n".utf8))
            throw ExitCode(1)
        }
        do {
            guard rankFailureTimeout >= 0.5, rankFailureTimeout <= 3600 else {
                throw EbbError(.invalidArgument, "--rank-failure-timeout must be in 0.5...3600 seconds")
            }
            if replaceFailedRanks && !enableElasticEp {
                throw EbbError(.invalidArgument, "--replace-failed-ranks needs --enable-elastic-ep (replacements join through the scale-up path)")
            }
            if enableElasticEp && !enableExpertParallel {
                throw EbbError(.invalidArgument, "--enable-elastic-ep resizes an expert-parallel deployment: it needs --enable-expert-parallel")
            }
            if let m = maxDataParallelSize, m < dataParallelSize || m > 256 {
                throw EbbError(.invalidArgument, "--max-data-parallel-size must be in --data-parallel-size...256")
            }
            if devices != nil && dataParallelSize == 1 && !enableElasticEp {
                throw EbbError(.invalidArgument, "--devices places the ranks of a multi-rank deployment; use --device for one engine")
            }
            guard scaleTimeout > 0 else { throw EbbError(.invalidArgument, "--scale-timeout must be positive") }
            if autoscale && !enableElasticEp {
                throw EbbError(.invalidArgument, "--autoscale resizes the deployment: it needs --enable-elastic-ep")
            }
            guard autoscaleCooldown >= 0, autoscaleCooldown <= 86_400, (autoscaleTtftTarget ?? 1) > 0, (autoscaleTpotTarget ?? 1) > 0,
                  autoscaleTargetConcurrency > 0, autoscaleTargetConcurrency <= 100_000 else {
                throw EbbError(.invalidArgument, "--autoscale-cooldown must be in 0...86400 seconds and the targets positive")
            }
            if let m = minDataParallelSize, m < 1 || m > (maxDataParallelSize ?? 256) {
                throw EbbError(.invalidArgument, "--min-data-parallel-size must be in 1...--max-data-parallel-size")
            }
            if try eplb.config(implied: enableElasticEp) != nil && !enableElasticEp && (dataParallelSize < 2 || !enableExpertParallel) {
                throw EbbError(.invalidArgument, "--enable-eplb balances experts over expert-parallel ranks: it needs --data-parallel-size ≥ 2 and --enable-expert-parallel")
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
            throw ExitCode(1)
        }
        if dataParallelSize == 1 && !enableElasticEp {
            try await runSingle()
        } else {
            try await runCluster()
        }
    }

    private func runSingle() async throws {
        let server: OpenAIServer
        let loop: EngineLoop
        let model = engine.model
        do {
            let config = try engine.engineConfig()
            let backend = try makeBackend(device: engine.device, threads: threads, dtype: engine.dtype)
            let loaded = try LoadedModel.load(model, weights: engine.weights, backend: backend, needTokenizer: true)
            guard let tokenizer = loaded.tokenizer else { throw EbbError(.invalidArgument, "no tokenizer") }
            let template = try loadChatTemplate(model)
            let core = try EngineCore(model: loaded.model, config: config)
            loop = EngineLoop(core: core)
            server = OpenAIServer(engine: loop, tokenizer: tokenizer, chatTemplate: template,
                                  modelName: servedModelName ?? model, eosTokenIds: loaded.eosTokenIds, keys: accessKeys)
            let stats = core.stats
            log("model \(loaded.name): \(loaded.model.config.architecture.rawValue), \(String(format: "%.1f", Double(loaded.model.weightBytes) / 1e6)) MB of weights on \(backend.summary)")
            log("KV cache: \(stats.numBlocks) blocks of \(config.blockSize) tokens; max model length \(core.maxModelLen); prefix caching \(config.enablePrefixCaching ? "on" : "off")"
                + "; decode graphs \(core.graphs.map { "on (batches up to \($0.maxBatch))" } ?? "off")")
        } catch {
            FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
            throw ExitCode(1)
        }
        loop.start()
        defer { loop.stop() }
        try await server.run(host: host, port: port) { [host] bound in
            log("serving on http://\(host):\(bound) (OpenAI API: /v1/completions, /v1/chat/completions)")
        }
    }

    private func runCluster() async throws {
        let model = engine.model
        let ranks = dataParallelSize
        let server: OpenAIServer
        let deployment: LocalDeployment
        do {
            _ = try engine.engineConfig()
            guard let tokenizer = try LoadedModel.loadTokenizer(model, needed: true,
                                                                bytesIfMissing: engine.weights.loadFormat == .dummy) else {
                throw EbbError(.invalidArgument, "no tokenizer")
            }
            let config = try LoadedModel.loadConfig(model, weights: engine.weights)
            let template = try loadChatTemplate(model)
            let totalThreads = threads ?? ProcessInfo.processInfo.activeProcessorCount
            let eplbArguments = eplb.arguments(implied: enableElasticEp)
            // One placement rule for start-up, resizes and recovery, checked before any
            // engine core starts.
            if enableExpertParallel, let eplbConfig = try eplb.config(implied: enableElasticEp) {
                _ = try eplbConfig.initialPlacement(numLayers: config.moeLayers.filter { $0 }.count,
                                                    numExperts: config.moe.numExperts, ranks: ranks)
            }
            var elastic: ElasticSettings?
            if enableElasticEp {
                elastic = ElasticSettings(maxRanks: maxDataParallelSize ?? min(256, 4 * ranks),
                                          phaseTimeout: .milliseconds(Int64(scaleTimeout * 1000)),
                                          fault: FaultInjection.fromEnvironment)
                elastic?.replaceFailedRanks = replaceFailedRanks
            }
            var gpus: GPUPool?
            if let list = devices {
                let indices = try list.split(separator: ",").map { entry -> Int in
                    guard let i = try cudaDeviceIndex(String(entry).trimmingCharacters(in: .whitespaces)) else {
                        throw EbbError(.invalidArgument, "--devices lists CUDA devices (cuda:N), not '\(entry)'")
                    }
                    return i
                }
                let count = CUDABackend.deviceCount()
                if let bad = indices.first(where: { $0 >= count }) {
                    throw EbbError(.invalidArgument, "--devices names cuda:\(bad); this host has \(count) CUDA device(s)")
                }
                guard indices.count >= ranks else {
                    throw EbbError(.invalidArgument, "--devices lists \(indices.count) device(s) for \(ranks) ranks (one entry per rank; repeat an entry to share a GPU)")
                }
                gpus = try GPUPool(devices: indices)
            } else if let first = try cudaDeviceIndex(engine.device) {
                let count = CUDABackend.deviceCount()
                guard first + ranks <= count else {
                    throw EbbError(.invalidArgument, "--device \(engine.device) with \(ranks) ranks needs GPUs \(first)..<\(first + ranks); this host has \(count)")
                }
                gpus = GPUPool(first: first, count: count)
            }
            let secret = try clusterSecretFile.map { try ClusterSecret.read(file: $0) } ?? .generate()
            var placement: (any Launcher)?
            var advertise = advertiseAddress ?? "127.0.0.1"
            var gpusPerRank = 0
            switch launcher {
            case "local":
                break
            case "ray":
                if gpus != nil {
                    // Ray hands each rank its GPU (CUDA_VISIBLE_DEVICES): every rank uses cuda:0 of its own view.
                    guard devices == nil else { throw EbbError(.invalidArgument, "--devices places ranks on this host; with --launcher ray, Ray places them (use --device cuda)") }
                    gpus = nil
                    gpusPerRank = 1
                }
                guard rayPlacementTimeout > 0, rayPlacementTimeout <= 86_400 else {
                    throw EbbError(.invalidArgument, "--ray-placement-timeout must be in (0, 86400] seconds")
                }
                let ray = try RayLauncher(address: rayAddress, python: rayPython,
                                          executable: engineCoreBinary ?? LocalLauncher.currentExecutable().path,
                                          placementTimeout: .milliseconds(Int64(rayPlacementTimeout * 1000)), log: log)
                placement = ray
                advertise = advertiseAddress ?? ray.driverAddress
            default:
                throw EbbError(.invalidArgument, "--launcher must be local or ray, not '\(launcher)'")
            }
            deployment = try await LocalDeployment.start(
                ranks: ranks, expertParallel: enableExpertParallel, threadsPerRank: max(1, totalThreads / ranks),
                engineArguments: engine.arguments + eplbArguments + (gpusPerRank > 0 ? ["--device", "cuda:0"] : []),
                startTimeout: .milliseconds(Int64(engineStartTimeout * 1000)),
                launcher: placement, advertiseHost: advertise, secret: secret, gpusPerRank: gpusPerRank,
                onFailure: { _ in Foundation.exit(1) },  // serve cannot go on: the error is logged, the engine cores are stopped
                elastic: elastic, gpus: gpus, rankFailureTimeout: .milliseconds(Int64(rankFailureTimeout * 1000)), log: log)
            var scaling: CoordinatorScaling?
            if let elastic {
                scaling = CoordinatorScaling(coordinator: deployment.coordinator, autoscaler: nil, maxRanks: elastic.maxRanks)
                if autoscale {
                    let floor = deployment.coordinator.minimumRanks
                    let minimum = minDataParallelSize ?? floor
                    guard minimum >= floor else {
                        throw EbbError(.invalidArgument, "--min-data-parallel-size \(minimum) is below \(floor), the fewest ranks that hold every expert")
                    }
                    let config = AutoscalePolicy.Config(minRanks: minimum, maxRanks: elastic.maxRanks,
                                                        cooldown: .milliseconds(Int64(autoscaleCooldown * 1000)),
                                                        targetConcurrency: autoscaleTargetConcurrency, ttftTarget: autoscaleTtftTarget, tpotTarget: autoscaleTpotTarget)
                    let autoscaler = Autoscaler(coordinator: deployment.coordinator, config: config, floor: floor, log: log)
                    autoscaler.start()
                    scaling?.autoscaler = autoscaler
                    log("autoscaler on: \(minimum)...\(elastic.maxRanks) ranks, cooldown \(autoscaleCooldown) s")
                }
                let timeline = TimelineRecorder(coordinator: deployment.coordinator, autoscaler: scaling?.autoscaler)
                timeline.start()
                scaling?.timeline = timeline
            }
            server = OpenAIServer(engine: deployment.coordinator, tokenizer: tokenizer, chatTemplate: template,
                                  modelName: servedModelName ?? model,
                                  eosTokenIds: LoadedModel.eosTokenIds(config: config, tokenizer: tokenizer),
                                  scaling: scaling, keys: accessKeys)
            log("model \(model): \(config.architecture.rawValue) on \(ranks) data-parallel ranks\(enableExpertParallel ? " with expert parallelism" : ""); max model length \(deployment.coordinator.maxModelLen)")
        } catch {
            FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
            throw ExitCode(1)
        }
        defer { deployment.stop(reason: "serve is stopping") }
        try await server.run(host: host, port: port) { [host] bound in
            log("serving on http://\(host):\(bound) (OpenAI API: /v1/completions, /v1/chat/completions)")
        }
    }
}

func log(_ message: String) {
    FileHandle.standardError.write(Data("[ebb] \(message)\n".utf8))
}

/// The chat template of a checkpoint directory; the builtin model uses ChatML.
func loadChatTemplate(_ model: String) throws -> ChatTemplate? {
    if model.hasPrefix("builtin:") {
        return try ChatTemplate(source: builtinChatML, specialTokens: ["eos_token": "<|im_end|>"])
    }
    let dir = URL(fileURLWithPath: model, isDirectory: true)
    let config = dir.appendingPathComponent("tokenizer_config.json").path
    let jinja = dir.appendingPathComponent("chat_template.jinja").path
    guard FileManager.default.fileExists(atPath: config) || FileManager.default.fileExists(atPath: jinja) else { return nil }
    do {
        return try ChatTemplate.load(directory: dir)
    } catch let e as EbbError where e.code == .template && e.message.hasPrefix("no chat template in") {
        return nil
    }
}

let builtinChatML = """
{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
"""

/// "512MiB", "2GiB", "1.5GB", "1000000" → bytes.
func parseBytes(_ text: String) throws -> Int {
    let kib = 1024.0
    let units: [(String, Double)] = [("KiB", kib), ("MiB", kib * kib), ("GiB", kib * kib * kib), ("TiB", kib * kib * kib * kib),
                                     ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
                                     ("K", kib), ("M", kib * kib), ("G", kib * kib * kib), ("B", 1)]
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
        if let v = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v > 0, v * factor < 1e15 {
            return Int(v * factor)
        }
    }
    if let v = Int(trimmed), v > 0 { return v }
    throw EbbError(.invalidArgument, "'\(text)' is not a size (examples: 512MiB, 2GiB, 1000000)")
}
