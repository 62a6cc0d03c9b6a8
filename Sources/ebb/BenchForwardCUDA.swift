import EbbCore
import EbbCUDA
import EbbModel
import EbbTensor
import Foundation

/// `ebb bench forward --device cuda`: prefill and decode step times on one GPU, timed
/// with CUDA events (decode steps replayed from a CUDA graph per batch size), against the
/// floors the hardware sets: bytes that must be read over the copy bandwidth, FLOPs over
/// the bf16 matrix rate.
struct CUDAForwardBench {
    let loaded: LoadedModel
    let backend: CUDABackend
    let prefillTokens: Int
    let context: Int
    let batchSizes: [Int]
    let repeats: Int
    let useGraphs: Bool
    /// Also print where the time goes per kernel (eager runs bracketed by events).
    let profile: Bool
    /// Measured on this H200 (docs/benchmarks.md): device-to-device copy, bf16 GEMM.
    let bandwidth: Double
    let matmulRate: Double

    func run() throws {
        let lm = loaded.model
        let config = lm.config
        let cost = ModelCost(config: config)
        let blockSize = 16
        let maxBatch = max(batchSizes.max() ?? 1, 1)
        let blocksPerSeq = (max(context, prefillTokens / maxBatch + 1) + blockSize - 1) / blockSize
        let blocksForPrefill = (prefillTokens + blockSize - 1) / blockSize
        let numBlocks = max(blocksPerSeq * maxBatch, blocksForPrefill)
        let cache = try lm.makeKVCache(numBlocks: numBlocks, blockSize: blockSize)
        // Random (non-zero) history in the whole cache: decode reads `context` of it.
        for (i, t) in (cache.keys + cache.values.compactMap { $0 }).enumerated() {
            try backend.fillUniform(t, seed: 0xC0FFEE &+ UInt64(i), bound: 1)
        }
        try backend.synchronizeChecked()
        var rng = SystemRandomNumberGenerator()
        func randomTokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32.random(in: 0..<Int32(config.vocabSize), using: &rng) } }

        print("model: \(loaded.name)  (\(config.architecture.rawValue), \(config.numLayers) layers, hidden \(config.hiddenSize), "
              + "\(config.moe.numExperts) experts top-\(config.moe.topK))")
        print("device: \(backend.summary); kernels: \(backend.kernelOrigin)")
        print(String(format: "weights: %.2f GB on the device; KV cache %.2f GB (%d blocks of %d)", Double(lm.weightBytes) / 1e9,
                     Double(cache.numBlocks * lm.kvCacheBytesPerBlock(blockSize: blockSize)) / 1e9, cache.numBlocks, blockSize))
        print(String(format: "floors: %.2f TB/s copy bandwidth, %.0f TFLOP/s bf16 GEMM", bandwidth / 1e12, matmulRate / 1e12))
        print("")
        print(row(["phase", "batch", "context", "ms/step", "tokens/s", "floor ms", "limit", "ratio", "timing"]))
        print(row(Array(repeating: "---", count: 9)))

        // Prefill: one sequence of prefillTokens; events around each forward.
        let table = (0..<blocksForPrefill).map { Int32($0) }
        var prefillTimes = [Double]()
        for i in 0...(repeats + 1) {
            let batch = try lm.makeBatch([SequenceInput(tokens: randomTokens(prefillTokens), cachedTokens: 0, blockTable: table)], cache: cache)
            let ms = try backend.timeMilliseconds { _ = try lm.forward(batch, cache: cache) }
            if i > 1 { prefillTimes.append(ms) }
        }
        let prefillMs = median(prefillTimes)
        let pf = cost.prefill(tokens: prefillTokens)
        let pfCompute = pf.flops / matmulRate * 1e3, pfMemory = pf.bytes / bandwidth * 1e3
        let pfFloor = max(pfCompute, pfMemory)
        print(row(["prefill", "1", "\(prefillTokens)", f2(prefillMs), f1(Double(prefillTokens) / prefillMs * 1e3), f3(pfFloor),
                   pfCompute >= pfMemory ? "compute" : "memory", f2(prefillMs / pfFloor) + "×", "events, median of \(repeats)"]))

        for b in batchSizes {
            let inputs = (0..<b).map { s in
                SequenceInput(tokens: randomTokens(1), cachedTokens: context - 1,
                              blockTable: (0..<blocksPerSeq).map { Int32(s * blocksPerSeq + $0) })
            }
            let batch = try lm.makeBatch(inputs, cache: cache)
            var graph: CUDAGraph?
            var how = "events, eager"
            if useGraphs {
                _ = try lm.forward(batch, cache: cache)  // warm-up outside the capture (cuBLAS heuristics, lazy loads)
                try backend.synchronizeChecked()
                do {
                    graph = try backend.captureGraph { _ = try lm.forward(batch, cache: cache) }
                    how = "CUDA graph"
                } catch {
                    how = "events, eager (graph capture failed: \(describe(error)))"
                }
            }
            var times = [Double]()
            for i in 0...(repeats + 2) {
                let ms = try backend.timeMilliseconds {
                    if let graph { try graph.launch() } else { _ = try lm.forward(batch, cache: cache) }
                }
                if i > 2 { times.append(ms) }
            }
            let stepMs = median(times)
            let step = cost.decode(batch: b, context: context)
            let memoryFloor = step.bytes / bandwidth * 1e3, computeFloor = step.flops / matmulRate * 1e3
            let floor = max(memoryFloor, computeFloor)
            print(row(["decode", "\(b)", "\(context)", f2(stepMs), f1(Double(b) / stepMs * 1e3), f3(floor),
                       memoryFloor >= computeFloor ? "memory" : "compute", f2(stepMs / floor) + "×", how + ", median of \(repeats)"]))
        }
        if profile {
            let prefill = try lm.makeBatch([SequenceInput(tokens: randomTokens(prefillTokens), cachedTokens: 0, blockTable: table)], cache: cache)
            try profileRun("prefill \(prefillTokens) tokens", lm: lm, batch: prefill, cache: cache)
            for b in Set([1, maxBatch]).sorted() {
                let inputs = (0..<b).map { s in
                    SequenceInput(tokens: randomTokens(1), cachedTokens: context - 1,
                                  blockTable: (0..<blocksPerSeq).map { Int32(s * blocksPerSeq + $0) })
                }
                try profileRun("decode batch \(b)", lm: lm, batch: try lm.makeBatch(inputs, cache: cache), cache: cache)
            }
        }
        print("")
        print("decode floor = (dense weights + expected distinct experts hit + lm_head + KV read) / bandwidth; "
              + "prefill floor = max(FLOPs / GEMM rate, all weights read once / bandwidth). Random token ids; random KV history.")
        try backend.checkErrors()
    }

    /// One eager forward with per-kernel events; prints the largest shares.
    private func profileRun(_ label: String, lm: CausalLM, batch: ForwardBatch, cache: KVCache) throws {
        _ = try lm.forward(batch, cache: cache)
        try backend.synchronizeChecked()
        backend.startProfiling()
        _ = try lm.forward(batch, cache: cache)
        let times = try backend.stopProfiling()
        let total = times.reduce(0) { $0 + $1.milliseconds }
        print("")
        print("profile, \(label): \(f2(total)) ms in kernels (eager; events around each launch)")
        for t in times.prefix(12) {
            print("  \(t.name): \(f3(t.milliseconds)) ms, \(t.launches) launches (\(String(format: "%.0f", t.milliseconds / total * 100))%)")
        }
    }

    private func row(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |" }
    private func f1(_ v: Double) -> String { String(format: "%.1f", v) }
    private func f2(_ v: Double) -> String { String(format: "%.2f", v) }
    private func f3(_ v: Double) -> String { String(format: "%.3f", v) }
}

/// Bytes and FLOPs of a forward step from a config (bf16 weights and KV).
struct ModelCost {
    let config: ModelConfig

    /// Parameters of one layer's attention.
    var attentionParams: Double {
        let h = Double(config.hiddenSize), heads = Double(config.numHeads)
        if let mla = config.mla {
            let qk = Double(mla.qkHeadDim), l = Double(mla.kvLoraRank), r = Double(mla.qkRopeHeadDim)
            let q = mla.qLoraRank.map { Double($0) * h + heads * qk * Double($0) } ?? heads * qk * h
            return q + (l + r) * h + heads * Double(mla.qkNopeHeadDim + mla.vHeadDim) * l + h * heads * Double(mla.vHeadDim)
        }
        let d = Double(config.headDim), kv = Double(config.numKVHeads)
        return 2 * heads * d * h + 2 * kv * d * h
    }

    var expertParams: Double { 3 * Double(config.hiddenSize) * Double(config.moe.intermediateSize) }
    var denseMLPParams: Double { 3 * Double(config.hiddenSize) * Double(config.intermediateSize) }
    var moeLayers: Double { Double(config.moeLayers.filter { $0 }.count) }
    var denseLayers: Double { Double(config.numLayers) - moeLayers }
    /// Router and shared experts of one MoE layer.
    var moeFixedParams: Double {
        Double(config.moe.numExperts * config.hiddenSize) + Double(config.moe.numSharedExperts) * expertParams
    }
    var lmHeadParams: Double { Double(config.vocabSize * config.hiddenSize) }

    /// KV bytes per token over all layers.
    var kvBytesPerToken: Double {
        if let mla = config.mla { return Double(config.numLayers * (mla.kvLoraRank + mla.qkRopeHeadDim) * 2) }
        return Double(config.numLayers * config.numKVHeads * config.headDim * 2 * 2)
    }

    /// Expected distinct experts hit by `tokens` tokens choosing k of E uniformly.
    func expertsHit(tokens: Int) -> Double {
        let e = Double(config.moe.numExperts), k = Double(config.moe.topK)
        return e * (1 - pow(1 - k / e, Double(tokens)))
    }

    /// Attention FLOPs of `queries` new tokens over `keysPerQuery` keys each, all layers.
    func attentionFlops(pairs: Double) -> Double {
        let heads = Double(config.numHeads)
        if let mla = config.mla {
            return 2 * heads * Double(2 * mla.kvLoraRank + mla.qkRopeHeadDim) * pairs * Double(config.numLayers)
        }
        return 2 * heads * Double(2 * config.headDim) * pairs * Double(config.numLayers)
    }

    func decode(batch: Int, context: Int) -> (bytes: Double, flops: Double) {
        let dense = Double(config.numLayers) * attentionParams + denseLayers * denseMLPParams + moeLayers * moeFixedParams + lmHeadParams
        let experts = moeLayers * expertsHit(tokens: batch) * expertParams
        let embedding = Double(batch * config.hiddenSize)
        let bytes = 2 * (dense + experts + embedding) + Double(batch * context) * kvBytesPerToken
        let active = Double(config.numLayers) * attentionParams + denseLayers * denseMLPParams
            + moeLayers * (moeFixedParams + Double(config.moe.topK) * expertParams) + lmHeadParams
        let flops = 2 * Double(batch) * active + attentionFlops(pairs: Double(batch * context))
        return (bytes, flops)
    }

    func prefill(tokens: Int) -> (bytes: Double, flops: Double) {
        let active = Double(config.numLayers) * attentionParams + denseLayers * denseMLPParams
            + moeLayers * (moeFixedParams + Double(config.moe.topK) * expertParams)
        let flops = 2 * Double(tokens) * active + 2 * lmHeadParams + attentionFlops(pairs: Double(tokens) * Double(tokens + 1) / 2)
        let weights = Double(config.numLayers) * attentionParams + denseLayers * denseMLPParams
            + moeLayers * (moeFixedParams + expertsHit(tokens: tokens) * expertParams) + lmHeadParams
        return (2 * weights + Double(tokens) * kvBytesPerToken, flops)
    }
}
