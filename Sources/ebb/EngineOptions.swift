import ArgumentParser
import EbbCore
import EbbEngine

/// The engine-core options `serve` takes and hands on to each `engine-core` it starts.
struct EngineOptions: ParsableArguments {
    @Option(help: "Checkpoint directory or builtin:tiny-moe")
    var model: String = "builtin:tiny-moe"

    @OptionGroup var weights: WeightOptions

    @Option(help: "KV-cache memory per rank, e.g. 512MiB or 2GiB (default: a fraction of available memory)")
    var kvCacheMemory: String?

    @Option(help: "Fraction of available memory for each rank's KV cache when --kv-cache-memory is not given")
    var kvCacheFraction: Double = 0.05

    @Option(help: "Tokens per KV-cache block")
    var blockSize: Int = 16

    @Option(help: "Token budget of one engine step")
    var maxNumBatchedTokens: Int = 2048

    @Option(help: "Most requests running at once (per rank)")
    var maxNumSeqs: Int = 256

    @Option(help: "Longest prompt + output (default: the model's max_position_embeddings)")
    var maxModelLen: Int?

    @Flag(help: "Turn automatic prefix caching off")
    var noPrefixCaching = false

    @Option(help: "cpu, cuda or cuda:N (with several ranks, cuda gives each rank a GPU of its own)")
    var device: String = "cpu"

    @Option(help: "Compute dtype on CUDA: bf16 or f32 (the CPU computes in f32)")
    var dtype: String = "bf16"

    @Option(help: "On a GPU: fraction of its memory each engine may use in all (weights, KV cache, activations)")
    var gpuMemoryUtilization: Double = 0.9

    @Flag(help: "Run every step eagerly (no CUDA graphs for decode steps)")
    var enforceEager = false

    func engineConfig() throws -> EngineConfig {
        let memory = try kvCacheMemory.map(parseBytes)
        guard blockSize > 0, maxNumBatchedTokens > 0, maxNumSeqs > 0, (maxModelLen ?? 1) > 0,
              kvCacheFraction > 0, kvCacheFraction <= 1, gpuMemoryUtilization > 0, gpuMemoryUtilization <= 1 else {
            throw EbbError(.invalidArgument, "sizes must be positive and --kv-cache-fraction and --gpu-memory-utilization in (0, 1]")
        }
        return EngineConfig(blockSize: blockSize, kvCacheBytes: memory, kvCacheFraction: kvCacheFraction,
                            maxNumBatchedTokens: maxNumBatchedTokens, maxNumSeqs: maxNumSeqs,
                            maxModelLen: maxModelLen, enablePrefixCaching: !noPrefixCaching,
                            gpuMemoryUtilization: gpuMemoryUtilization, enforceEager: enforceEager)
    }

    /// The same options as command-line arguments (all but `--device`, which a deployment
    /// chooses per rank).
    var arguments: [String] {
        var a = ["--model", model, "--kv-cache-fraction", "\(kvCacheFraction)", "--block-size", "\(blockSize)",
                 "--max-num-batched-tokens", "\(maxNumBatchedTokens)", "--max-num-seqs", "\(maxNumSeqs)",
                 "--dtype", dtype, "--gpu-memory-utilization", "\(gpuMemoryUtilization)"]
        a += weights.arguments
        if enforceEager { a.append("--enforce-eager") }
        if let kvCacheMemory { a += ["--kv-cache-memory", kvCacheMemory] }
        if let maxModelLen { a += ["--max-model-len", "\(maxModelLen)"] }
        if noPrefixCaching { a.append("--no-prefix-caching") }
        return a
    }
}
