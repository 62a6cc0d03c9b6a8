import ArgumentParser
import EbbCore
import EbbEngine
import EbbModel
import EbbTensor
import Foundation

/// `ebb bench engine`: the engine core alone (scheduler, model, sampling; no HTTP) on any
/// device, with synthetic requests: for each batch size, that many requests of
/// `--input-len` random tokens generating `--output-len` tokens each, started together.
/// Reports the decode-phase step time and tokens/s (once every request has its first
/// token), with decode graphs and, with `--compare-eager`, without.
struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine",
        abstract: "Engine-core decode tokens/s at several batch sizes (graphs vs eager on a GPU)")

    @Option(help: "Checkpoint directory or builtin:tiny-moe")
    var model: String = "builtin:tiny-moe"

    @OptionGroup var deviceOptions: DeviceModelOptions

    @Option(parsing: .upToNextOption, help: "Concurrent requests per run")
    var batchSizes: [Int] = [1, 8, 32]

    @Option(help: "Prompt tokens per request")
    var inputLen: Int = 128

    @Option(help: "Generated tokens per request")
    var outputLen: Int = 64

    @Option(help: "KV-cache memory, e.g. 4GiB (default: from the device's free memory, or 256MiB on the CPU)")
    var kvCacheMemory: String?

    @Flag(help: "Also run each batch size with --enforce-eager")
    var compareEager = false

    @Option(help: "CPU threads (default: all cores)")
    var threads: Int?

    func run() throws {
        try runReportingErrors {
            guard inputLen > 0, outputLen > 1, batchSizes.allSatisfy({ $0 > 0 }) else {
                throw EbbError(.invalidArgument, "--input-len, --output-len (> 1) and batch sizes must be positive")
            }
            let backend = try deviceOptions.backend(threads: threads)
            let loaded = try deviceOptions.load(model, backend: backend, needTokenizer: false)
            let lm = loaded.model
            var kvBytes = try kvCacheMemory.map(parseBytes)
            if kvBytes == nil && backend.deviceMemory == nil { kvBytes = 256 << 20 }
            let maxBatch = batchSizes.max() ?? 1
            print("model: \(loaded.name)  (\(lm.config.architecture.rawValue), \(lm.config.numLayers) layers, hidden \(lm.config.hiddenSize), "
                  + "\(lm.config.moe.numExperts) experts top-\(lm.config.moe.topK))")
            print("device: \(backend.summary)")
            print("requests: \(inputLen) random prompt tokens, \(outputLen) generated (ignore_eos), all started together")
            print("")
            print("| mode | batch | decode ms/step (median) | decode tokens/s | steps | prefill s | graphs captured | replays |")
            print("|---|---|---|---|---|---|---|---|")
            for eager in compareEager ? [false, true] : [false] {
                let config = EngineConfig(kvCacheBytes: kvBytes, maxNumBatchedTokens: max(8192, inputLen),
                                          maxNumSeqs: max(maxBatch, 1), maxModelLen: inputLen + outputLen + 16,
                                          enablePrefixCaching: false, enforceEager: eager)
                let core = try EngineCore(model: lm, config: config)
                for b in batchSizes {
                    let r = try runOnce(core, batch: b)
                    let graphs = core.graphs
                    print("| \(eager ? "eager" : (graphs == nil ? "eager (no graphs here)" : "graphs")) | \(b) | "
                          + String(format: "%.3f | %.1f | %d | %.3f", r.medianStepMs, r.tokensPerSecond, r.decodeSteps, r.prefillSeconds)
                          + " | \(graphs?.count ?? 0) | \(graphs?.replays ?? 0) |")
                }
            }
            try backend.checkErrors()
        }
    }

    struct Result {
        var medianStepMs: Double
        var tokensPerSecond: Double
        var decodeSteps: Int
        var prefillSeconds: Double
    }

    private func runOnce(_ core: EngineCore, batch: Int) throws -> Result {
        let vocab = core.model.config.vocabSize
        var rng = SystemRandomNumberGenerator()
        let params = SamplingParams(temperature: 0, maxTokens: outputLen, ignoreEOS: true)
        let tag = UInt64.random(in: 0...UInt64.max, using: &rng)
        for i in 0..<batch {
            let prompt = (0..<inputLen).map { _ in Int.random(in: 0..<vocab, using: &rng) }
            try core.add(EngineRequest(id: "bench-\(tag)-\(i)", promptTokenIds: prompt, params: params, eosTokenIds: []))
        }
        let clock = ContinuousClock()
        let start = clock.now
        var started = Set<String>()
        var prefillEnd: ContinuousClock.Instant?
        var stepTimes = [Double](), decodeTokens = 0
        var decodeTime = Duration.zero
        while core.hasWork {
            let t0 = clock.now
            let outputs = try core.step()
            let elapsed = clock.now - t0
            if prefillEnd != nil {
                stepTimes.append(elapsed.seconds * 1e3)
                decodeTime += elapsed
                decodeTokens += outputs.reduce(0) { $0 + $1.newTokenIds.count }
            }
            for o in outputs where !o.newTokenIds.isEmpty { started.insert(o.requestId) }
            if prefillEnd == nil && started.count == batch { prefillEnd = clock.now }
        }
        stepTimes.sort()
        let median = stepTimes.isEmpty ? 0 : stepTimes[stepTimes.count / 2]
        return Result(medianStepMs: median, tokensPerSecond: decodeTime.seconds > 0 ? Double(decodeTokens) / decodeTime.seconds : 0,
                      decodeSteps: stepTimes.count, prefillSeconds: ((prefillEnd ?? clock.now) - start).seconds)
    }
}
