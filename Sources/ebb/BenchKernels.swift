import ArgumentParser
import EbbCore
import EbbCUDA
import EbbTensor
import Foundation

/// `ebb bench kernels`: the CUDA kernels one at a time on the shapes of the Qwen3-30B-A3B
/// and DeepSeek-V3 benchmarks (random bf16 data), each timed with CUDA events over many
/// launches, against the floor the hardware sets (bytes over the copy bandwidth, FLOPs over
/// the bf16 GEMM rate). The kernel-level view beside `bench forward`'s whole steps.
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernels",
                                                    abstract: "Time the CUDA kernels one at a time on benchmark shapes.")

    @Option(help: "CUDA device index")
    var device = 0

    @Option(help: "Timed repeats per kernel (the median is printed)")
    var repeats = 20

    @OptionGroup var floors: GPUFloorOptions

    func run() throws {
        try runReportingErrors {
            guard repeats > 0 else { throw EbbError(.invalidArgument, "--repeats must be positive") }
            let cuda = try CUDABackend(device: device, computeDType: .bf16)
            try KernelBench(backend: cuda, repeats: repeats, bandwidth: floors.bandwidth, matmulRate: floors.matmulRate).run()
        }
    }
}

struct KernelBench {
    let backend: CUDABackend
    let repeats: Int
    let bandwidth: Double
    let matmulRate: Double

    private func random(_ shape: [Int], _ seed: UInt64, bound: Float = 1) throws -> Tensor {
        let t = try backend.empty(shape, dtype: .bf16)
        try backend.fillUniform(t, seed: seed, bound: bound)
        return t
    }

    private func ints(_ values: [Int32]) throws -> Tensor {
        try values.withUnsafeBytes { try backend.upload($0, sourceDType: .i32, shape: [values.count], dtype: .i32) }
    }

    /// Median time of `body` (µs a call; `inner` calls between two events), printed with
    /// its floor.
    private func time(_ op: String, _ shape: String, bytes: Double, flops: Double, inner: Int = 10,
                      _ body: () throws -> Void) throws {
        for _ in 0..<2 { try body() }
        try backend.synchronizeChecked()
        var times = [Double]()
        for _ in 0..<repeats {
            times.append(try backend.timeMilliseconds { for _ in 0..<inner { try body() } } * 1000 / Double(inner))
        }
        try backend.checkErrors()
        let us = times.sorted()[times.count / 2]
        let floor = max(bytes / bandwidth, flops / matmulRate) * 1e6
        let rate = flops > 0 ? String(format: "%.0f TFLOP/s", flops / us / 1e6) : "-"
        print("| \(op) | \(shape) | \(String(format: "%.1f", us)) | \(String(format: "%.2f", bytes / us / 1e6)) | \(rate) | "
              + "\(String(format: "%.1f", floor)) | \(String(format: "%.2f", us / max(floor, 1e-9)))× |")
    }

    func run() throws {
        let b = backend
        print("device: \(b.summary); kernels: \(b.kernelOrigin)")
        print(String(format: "floors: %.2f TB/s copy bandwidth, %.0f TFLOP/s bf16 GEMM; median of %d", bandwidth / 1e12,
                     matmulRate / 1e12, repeats))
        print("")
        print("| kernel | shape | µs | TB/s | compute | floor µs | ratio |")
        print("|---|---|---|---|---|---|---|")
        let hidden = 2048, inter = 768, experts = 128
        let x = try random([8, 4096], 1)

        // Dense GEMMs of a decode step (gemv_rows for up to 8 rows), and cuBLAS's rate.
        for (name, n, k) in [("qkv", 5120, 2048), ("o_proj", 2048, 4096), ("lm_head", 151_936, 2048)] {
            let w = try random([n, k], 2)
            for m in [1, 8] {
                let out = try b.empty([m, n], dtype: name == "lm_head" ? .f32 : .bf16)
                try time("dense GEMV (\(name))", "M=\(m) N=\(n) K=\(k)", bytes: Double(n * k * 2), flops: 0) {
                    b.gemm(MatrixOperand(x.reshaped([8, 4096]).columnSlice(0..<k).rowSlice(0..<m)), MatrixOperand(w, transposed: true),
                           MatrixOperand(out), m: m, n: n, k: k, batch: 1, alpha: 1, beta: 0)
                }
            }
        }
        let big = try random([4096, 4096], 3), bigOut = try b.empty([4096, 4096], dtype: .bf16)
        try time("cuBLAS GEMM (reference)", "4096³", bytes: 3 * 4096 * 4096 * 2, flops: 2 * pow(4096, 3), inner: 2) {
            b.gemm(MatrixOperand(big), MatrixOperand(big, transposed: true), MatrixOperand(bigOut), m: 4096, n: 4096, k: 4096,
                   batch: 1, alpha: 1, beta: 0)
        }

        // Grouped expert GEMMs: decode (GEMV) and prefill (tensor cores) shapes.
        let gateUp = try random([experts, 2 * inter, hidden], 4, bound: 0.03)
        let down = try random([experts, hidden, inter], 5, bound: 0.03)
        let tokens = 2048, topK = 8
        let source = try random([tokens, hidden], 6)
        for rowsPerExpert in [1, 2] {
            let hit = rowsPerExpert == 1 ? 8 : experts
            let rows = hit * rowsPerExpert
            var offsets = [Int32](repeating: 0, count: experts + 1)
            for e in 0..<experts { offsets[e + 1] = offsets[e] + Int32((e % (experts / hit) == 0) ? rowsPerExpert : 0) }
            let off = try ints(offsets)
            let index = try ints((0..<rows).map { Int32($0 % tokens) })
            let h = try b.empty([rows, 2 * inter], dtype: .bf16), y = try b.empty([rows, hidden], dtype: .bf16)
            let shape = "\(rows) rows, \(hit) experts"
            try time("grouped GEMV gate_up (row index)", shape + ", N=\(2 * inter) K=\(hidden)",
                     bytes: Double(hit * 2 * inter * hidden * 2), flops: 0) {
                b.groupedLinear(source, rowIndex: index, weights: gateUp, offsets: off, out: h)
            }
            try time("grouped GEMV SiLU·mul + down", shape + ", N=\(hidden) K=\(inter)", bytes: Double(hit * hidden * inter * 2), flops: 0) {
                b.groupedSwiGLULinear(h, weights: down, offsets: off, out: y)
            }
        }
        let pairs = tokens * topK
        var generator = SystemRandomNumberGenerator()
        let slots = try ints((0..<pairs).map { _ in Int32.random(in: 0..<Int32(experts), using: &generator) })
        let weights = try b.empty([pairs], dtype: .f32)
        b.fill(weights, value: 0.125)
        let tokenIndex = try b.empty([pairs], dtype: .i32), sorted = try b.empty([pairs], dtype: .f32)
        let offsets = try b.empty([experts + 1], dtype: .i32)
        try time("groupBySlot (stable sort)", "\(pairs) pairs, \(experts) slots", bytes: Double(pairs * 16), flops: 0) {
            b.groupBySlot(slots, weights: weights, pairsPerToken: topK, numSlots: experts, tokenIndex: tokenIndex,
                          sortedWeights: sorted, offsets: offsets)
        }
        let h = try b.empty([pairs, 2 * inter], dtype: .bf16), y = try b.empty([pairs, hidden], dtype: .bf16)
        try time("grouped MMA gate_up (row index)", "\(pairs) rows, N=\(2 * inter) K=\(hidden)",
                 bytes: Double(experts * 2 * inter * hidden * 2 + pairs * (hidden + 2 * inter) * 2),
                 flops: 2 * Double(pairs * 2 * inter * hidden), inner: 2) {
            b.groupedLinear(source, rowIndex: tokenIndex, weights: gateUp, offsets: offsets, out: h)
        }
        try time("SiLU·mul + grouped MMA down", "\(pairs) rows, N=\(hidden) K=\(inter)",
                 bytes: Double(experts * hidden * inter * 2 + pairs * (hidden + 2 * inter) * 2),
                 flops: 2 * Double(pairs * hidden * inter), inner: 2) {
            b.groupedSwiGLULinear(h, weights: down, offsets: offsets, out: y)
        }
        let combined = try b.empty([tokens, hidden], dtype: .bf16)
        try time("scatterAddWeighted", "\(pairs) rows → \(tokens) × \(hidden)",
                 bytes: Double(pairs * hidden * 2 + 2 * tokens * hidden * 2), flops: 0, inner: 2) {
            b.scatterAddWeighted(y, rowIndex: tokenIndex, weight: sorted, out: combined)
        }

        try attention(tokens: tokens)
        try b.synchronizeChecked()
    }

    /// Prefill attention (Qwen3 and DeepSeek-V3 head shapes) and decode attention.
    private func attention(tokens: Int) throws {
        let b = backend
        let blockSize = 16, blocks = tokens / blockSize
        func metadata(_ queries: [Int], context: [Int], tables: [[Int32]]) throws -> AttentionMetadata {
            var starts: [Int32] = [0], contextStart: [Int32] = [0], slots = [Int32]()
            for (s, q) in queries.enumerated() {
                starts.append(starts[s] + Int32(q))
                contextStart.append(contextStart[s] + Int32(context[s]))
                for p in (context[s] - q)..<context[s] { slots.append(tables[s][p / blockSize] * Int32(blockSize) + Int32(p % blockSize)) }
            }
            let width = tables.map(\.count).max() ?? 1
            let flat = tables.flatMap { $0 + [Int32](repeating: 0, count: width - $0.count) }
            return AttentionMetadata(slotMapping: try ints(slots), queryStart: try ints(starts), contextLengths: try ints(context.map { Int32($0) }),
                                     blockTables: try ints(flat).reshaped([tables.count, width]), blockSize: blockSize,
                                     numSequences: queries.count, numTokens: slots.count, maxContextLength: context.max() ?? 0,
                                     contextStart: try ints(contextStart), totalContext: Int(contextStart[contextStart.count - 1]))
        }
        let causalPairs = Double(tokens) * Double(tokens + 1) / 2
        let prefill = try metadata([tokens], context: [tokens], tables: [(0..<blocks).map { Int32($0) }])
        let kc = try random([blocks, blockSize, 4, 128], 7), vc = try random([blocks, blockSize, 4, 128], 8)
        let q = try random([tokens, 32, 128], 9), out = try b.empty([tokens, 32, 128], dtype: .bf16)
        try time("flash prefill (Qwen3: 32/4 heads, D 128)", "\(tokens) tokens, causal", bytes: 0,
                 flops: causalPairs * 32 * 128 * 4, inner: 2) {
            b.pagedAttention(query: q, keyCache: kc, valueCache: vc, metadata: prefill, scale: 0.088, out: out)
        }
        let latentCache = try random([blocks, blockSize, 576], 10)
        let context = try b.empty([tokens, 576], dtype: .bf16)
        try time("gatherContext (MLA latent rows)", "\(tokens) × 576", bytes: Double(2 * tokens * 576 * 2), flops: 0) {
            b.gatherContext(latentCache, metadata: prefill, out: context)
        }
        let kv = try random([tokens, 128 * 256], 11), mq = try random([tokens, 128, 192], 12)
        let mout = try b.empty([tokens, 128, 128], dtype: .bf16)
        try time("expanded MLA prefill (V3: 128 heads, 192/128)", "\(tokens) tokens, causal", bytes: 0,
                 flops: causalPairs * 128 * (192 + 128) * 2, inner: 2) {
            b.expandedLatentAttention(query: mq, keyValues: kv, ropeKeys: context.columnSlice(512..<576), nopeDim: 128, valueDim: 128,
                                      metadata: prefill, scale: 0.07, out: mout)
        }
        for batch in [8, 64] {
            // Each sequence its own blocks (no history shared through L2).
            let ctx = 1024, per = ctx / blockSize
            let dk = try random([batch * per, blockSize, 4, 128], 13), dv = try random([batch * per, blockSize, 4, 128], 14)
            let tables = (0..<batch).map { s in (0..<per).map { Int32(s * per + $0) } }
            let decode = try metadata([Int](repeating: 1, count: batch), context: [Int](repeating: ctx, count: batch), tables: tables)
            let dq = try random([batch, 32, 128], 15), dout = try b.empty([batch, 32, 128], dtype: .bf16)
            try time("decode attention (Qwen3)", "batch \(batch), context \(ctx)", bytes: Double(batch * ctx * 4 * 128 * 2 * 2), flops: 0) {
                b.pagedAttention(query: dq, keyCache: dk, valueCache: dv, metadata: decode, scale: 0.088, out: dout)
            }
        }
    }
}
