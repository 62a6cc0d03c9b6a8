import ArgumentParser
import EbbCUDA
import EbbCore
import EbbModel
import EbbTensor
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks that print tables",
                                                    subcommands: [BenchForward.self, BenchKernels.self, BenchEngine.self, BenchServe.self, BenchChaos.self])
}

/// `ebb bench forward`: prefill and decode throughput of the model runner alone, and the
/// share of time in GEMMs.
struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forward",
        abstract: "Prefill tokens/s and decode tokens/s at several batch sizes, with the GEMM share of time")

    @Option(help: "Checkpoint directory or builtin:tiny-moe")
    var model: String = "builtin:tiny-moe"

    @Option(help: "Prompt length for the prefill measurement and the context of decode")
    var promptLength: Int = 128

    @Option(parsing: .upToNextOption, help: "Decode batch sizes")
    var batchSizes: [Int] = [1, 8, 32]

    @Option(help: "Timed decode steps per batch size")
    var decodeSteps: Int = 16

    @Option(help: "Timed prefill repeats")
    var prefillRepeats: Int = 3

    @Option(help: "CPU threads (default: all cores)")
    var threads: Int?

    @OptionGroup var deviceOptions: DeviceModelOptions

    @Option(help: "Decode context length on a GPU (default: --prompt-length)")
    var context: Int?

    @Flag(help: "On a GPU, time decode steps eagerly instead of replaying CUDA graphs")
    var noGraphs = false

    @Flag(help: "On a GPU, also print device time per kernel for a prefill and decode steps")
    var profile = false

    @OptionGroup var floors: GPUFloorOptions

    func run() throws {
        try runReportingErrors {
            guard promptLength > 0, decodeSteps > 0, prefillRepeats > 0, batchSizes.allSatisfy({ $0 > 0 }) else {
                throw EbbError(.invalidArgument, "lengths, steps, repeats and batch sizes must be positive")
            }
            if deviceOptions.device.lowercased() != "cpu" {
                let backend = try deviceOptions.backend(threads: threads)
                guard let cuda = backend as? CUDABackend else { throw EbbError(.invalidArgument, "unknown device") }
                let loaded = try deviceOptions.load(model, backend: cuda, needTokenizer: false)
                try CUDAForwardBench(loaded: loaded, backend: cuda, prefillTokens: promptLength, context: context ?? promptLength,
                                     batchSizes: batchSizes, repeats: decodeSteps, useGraphs: !noGraphs, profile: profile,
                                     bandwidth: floors.bandwidth, matmulRate: floors.matmulRate).run()
                return
            }
            let profiler = ProfilingBackend(CPUBackend(threads: threads))
            let loaded = try deviceOptions.load(model, backend: profiler, needTokenizer: false)
            let lm = loaded.model
            let vocab = lm.config.vocabSize
            let blockSize = 16
            let blocksPerSeq = (promptLength + decodeSteps + 2 + blockSize - 1) / blockSize
            let maxBatch = batchSizes.max() ?? 1
            let cache = try lm.makeKVCache(numBlocks: blocksPerSeq * maxBatch, blockSize: blockSize)
            var rng = SystemRandomNumberGenerator()
            func randomTokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32.random(in: 0..<Int32(vocab), using: &rng) } }
            func table(_ s: Int) -> [Int32] { (0..<blocksPerSeq).map { Int32(s * blocksPerSeq + $0) } }

            print("model: \(loaded.name)  (\(lm.config.architecture.rawValue), \(lm.config.numLayers) layers, hidden \(lm.config.hiddenSize), \(lm.config.moe.numExperts) experts top-\(lm.config.moe.topK))")
            print("device: \(profiler.base.summary)  weights: \(String(format: "%.1f", Double(lm.weightBytes) / 1e6)) MB")
            print("")
            print(row(["phase", "batch", "tokens/step", "ms/step", "tokens/s", "GEMM share"]))
            print(row(Array(repeating: "---", count: 6)))

            // Prefill: one sequence of promptLength tokens; warm up once.
            var prefillTimes = [Double]()
            var gemmShare = [Double]()
            for i in 0...prefillRepeats {
                let batch = try lm.makeBatch([SequenceInput(tokens: randomTokens(promptLength), cachedTokens: 0, blockTable: table(0))], cache: cache)
                profiler.reset()
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = profiler.base.downloadFloats(try lm.forward(batch, cache: cache))
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                if i > 0 {
                    prefillTimes.append(dt)
                    gemmShare.append((profiler.seconds()[.gemm] ?? 0) / dt)
                }
            }
            let prefill = median(prefillTimes)
            print(row(["prefill", "1", "\(promptLength)", ms(prefill), rate(Double(promptLength) / prefill), pct(median(gemmShare))]))

            for b in batchSizes {
                // Fill every sequence's cache with a prompt, then time single-token steps.
                let prompts = (0..<b).map { s in SequenceInput(tokens: randomTokens(promptLength), cachedTokens: 0, blockTable: table(s)) }
                _ = try lm.forward(try lm.makeBatch(prompts, cache: cache), cache: cache)
                var times = [Double](), shares = [Double]()
                for step in 0...decodeSteps {
                    let inputs = (0..<b).map { s in
                        SequenceInput(tokens: randomTokens(1), cachedTokens: promptLength + step, blockTable: table(s))
                    }
                    let batch = try lm.makeBatch(inputs, cache: cache)
                    profiler.reset()
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = profiler.base.downloadFloats(try lm.forward(batch, cache: cache))
                    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    if step > 0 {
                        times.append(dt)
                        shares.append((profiler.seconds()[.gemm] ?? 0) / dt)
                    }
                }
                let step = median(times)
                print(row(["decode", "\(b)", "\(b)", ms(step), rate(Double(b) / step), pct(median(shares))]))
            }
            print("")
            print("median of \(prefillRepeats) prefills and \(decodeSteps) decode steps after one warm-up each; context \(promptLength) tokens; random token ids")
        }
    }

    private func row(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |" }
    private func ms(_ s: Double) -> String { String(format: "%.2f", s * 1000) }
    private func rate(_ r: Double) -> String { String(format: "%.1f", r) }
    private func pct(_ f: Double) -> String { String(format: "%.0f%%", f * 100) }
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The hardware rates GPU benchmarks print their floors against (measured on the H200:
/// `docs/benchmarks.md`).
struct GPUFloorOptions: ParsableArguments {
    @Option(help: "Copy bandwidth (bytes/s) for the GPU floors")
    var bandwidth: Double = 4.3e12

    @Option(help: "bf16 GEMM rate (FLOP/s) for the GPU floors")
    var matmulRate: Double = 790e12
}
