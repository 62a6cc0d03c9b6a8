import Foundation
import Testing
import EbbTensor
import EbbTestSupport
@testable import EbbCheckpoint

@Suite struct FixtureCheckpointTests {
    static let expectedCounts: [String: (tensors: Int, files: Int)] = [
        "qwen3-moe-tiny-f32": (174, 1), "qwen3-moe-tiny-bf16": (174, 1),
        "mixtral-tiny-f32": (65, 1), "mixtral-tiny-bf16": (65, 1),
        "deepseek-v3-tiny-f32": (139, 9), "deepseek-v3-tiny-bf16": (139, 4),
    ]

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func opensEveryFixtureCheckpoint(_ name: String) throws {
        let c = try Checkpoint(directory: Fixtures.url(name))
        let expected = try #require(Self.expectedCounts[name])
        #expect(c.tensorNames.count == expected.tensors)
        #expect(c.files.count == expected.files)
        #expect(c.source.hasSuffix(name.hasPrefix("deepseek") ? Checkpoint.indexFileName : Checkpoint.singleFileName))
        let dtype: StorageDType = name.hasSuffix("bf16") ? .bf16 : .f32
        for tensor in c.tensorNames {
            let e = try c.entry(tensor)
            #expect(e.dtype == dtype, "\(tensor)")
            #expect(e.byteRange.count == e.elementCount * dtype.byteSize)
            #expect(!e.shape.isEmpty)
        }
        #expect(try c.entry("model.embed_tokens.weight").shape == [2048, 128])
        #expect(try c.entry("lm_head.weight").shape == [2048, 128])
        #expect(try c.entry("model.norm.weight").shape == [128])
        if name.hasPrefix("deepseek") {
            #expect(try c.entry("model.layers.0.self_attn.q_a_proj.weight").shape == [64, 128])
        } else {
            #expect(try c.entry("model.layers.0.self_attn.q_proj.weight").shape == [128, 128])
        }
        for f in c.files { #expect(f.metadata["format"] == "pt") }
        // Reading everything leaves nothing unused.
        for tensor in c.tensorNames {
            let e = try c.entry(tensor)
            let values = try c.floats(tensor, shape: e.shape)
            #expect(values.count == e.elementCount)
            #expect(values.allSatisfy { $0.isFinite })
        }
        try c.checkAllUsed()
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func readsReferenceFile(_ name: String) throws {
        let f = try SafeTensorsFile(url: Fixtures.url(name).appendingPathComponent("reference.safetensors"))
        let lengths = try f.ints("prompt_lengths")
        #expect(lengths.count == 4)
        let total = lengths.reduce(0, +)
        let ids = try f.ints("input_ids")
        #expect(ids.count == total)
        #expect(try f.entry("input_ids").dtype == .i32)
        #expect(ids.allSatisfy { (0..<2048).contains($0) })
        let logits = try f.entry("logits")
        #expect(logits.dtype == .f32)
        #expect(logits.shape == [total, 2048])
        let values = try f.floats("logits")
        #expect(values.count == total * 2048)
        #expect(values.allSatisfy { $0.isFinite })
        let greedy = try f.entry("greedy_ids")
        #expect(greedy.dtype == .i32 && greedy.shape == [4, 24])
        if name == "qwen3-moe-tiny-f32" {
            #expect(lengths == [8, 22, 11, 52])
            #expect(Array(ids.prefix(5)) == [42, 557, 336, 14, 312])
            #expect(Array(values.prefix(3)) == [1.2752751111984253, -0.2697581946849823, 0.3926214873790741])
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func bf16WideningIsTheBitShift() throws {
        let bf = try Checkpoint(directory: Fixtures.url("qwen3-moe-tiny-bf16"))
        let f32 = try Checkpoint(directory: Fixtures.url("qwen3-moe-tiny-f32"))
        for name in ["lm_head.weight", "model.norm.weight", "model.layers.1.mlp.gate.weight"] {
            let e = try bf.entry(name)
            let widened = try bf.floats(name, shape: e.shape)
            let manual: [Float] = try bf.withRawBytes(name, shape: e.shape) { _, raw in
                (0..<(raw.count / 2)).map { i in
                    let bits = UInt16(raw[2 * i]) | UInt16(raw[2 * i + 1]) << 8
                    return Float(bitPattern: UInt32(bits) << 16)
                }
            }
            #expect(widened.map(\.bitPattern) == manual.map(\.bitPattern))
            // The bf16 checkpoint is the f32 one rounded: each value is within half a bf16 ulp.
            let reference = try f32.floats(name, shape: e.shape)
            #expect(reference.count == widened.count)
            let worst = zip(reference, widened).map { abs($0 - $1) / max(abs($0), 1e-30) }.max() ?? 0
            #expect(worst <= 1.0 / 256)
        }
    }
}
