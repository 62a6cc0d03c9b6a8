import EbbCheckpoint
import EbbCore
import EbbModel
import EbbTensor
import EbbTestSupport
import Foundation
import Testing

/// SplitMix64: a small seeded generator so every fuzz case can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Randomly mutated configs: `ModelConfig.parse` either succeeds with sane sizes or throws a
/// `CheckpointError`. No model is built (absurd sizes would allocate).
@Suite struct ConfigFuzzTests {
    static let casesPerConfig = 150

    /// Fixture configs (transformers-5 keys) and published ones (transformers-4 keys).
    static func baseConfigs() throws -> [(name: String, text: Data, doc: [String: JSONValue])] {
        let urls = Fixtures.checkpointNames.map { Fixtures.url("\($0)/config.json") }
            + ConfigTestSupport.publishedConfigNames.map(ConfigTestSupport.publishedConfigURL)
        return try urls.map { url in
            let text = try Data(contentsOf: url)
            guard case .object(let doc) = try JSONValue.parse(text) else { throw TestSetupError("\(url.path) is not an object") }
            return (url.deletingLastPathComponent().lastPathComponent, text, doc)
        }
    }

    // MARK: Random values

    static let interestingNumbers: [Double] = [
        0, -0.0, 1, 2, 3, -1, -2, -128, 0.5, 1.5, 127.9, 1e-300, 5e-324, 1e-7,
        2_147_483_647, 2_147_483_648, 2_147_483_649, 4_294_967_296, 9_007_199_254_740_992, 1e15, 9e15, 1e16, 1e19,
        -2_147_483_648, -9e15, 1e300, -1e300, Double.greatestFiniteMagnitude, -Double.greatestFiniteMagnitude,
    ]
    /// The subset tried at every numeric key by `extremeNumbersEverywhere`.
    static let extremeNumbers: [Double] = [0, -1, 0.5, 1e-300, 65537, 2_147_483_648, 1e16, 1e300]
    static let interestingStrings = [
        "", "abc", "128", "1e6", "null", "true", "yarn", "default", "linear", "dynamic", "sigmoid", "softmax",
        "greedy", "noaux_tc", "group_limited_greedy", "Qwen3MoeForCausalLM", "MixtralForCausalLM",
        "DeepseekV3ForCausalLM", "DeepseekV2ForCausalLM", "deepseek_v2", "bfloat16", "\u{0}", "é😀", String(repeating: "x", count: 300),
    ]
    static let keyPool = [
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
        "num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok", "n_group", "topk_group",
        "rope_type", "type", "factor", "rope_theta", "original_max_position_embeddings", "mscale", "mscale_all_dim",
        "beta_fast", "beta_slow", "attention_factor", "truncate", "architectures", "x",
    ]

    static func randomNumber(_ rng: inout SplitMix64) -> Double {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return interestingNumbers.randomElement(using: &rng) ?? 0
        case 1: return Double(Int.random(in: -5000...5000, using: &rng))
        case 2: return Double.random(in: -1e6...1e6, using: &rng)
        default: return Double(Int.random(in: 1...300_000, using: &rng))
        }
    }

    static func randomValue(_ rng: inout SplitMix64, depth: Int = 0) -> JSONValue {
        let kinds = depth >= 3 ? 5 : 8
        switch Int.random(in: 0..<kinds, using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2, 3: return .number(randomNumber(&rng))
        case 4: return .string(interestingStrings.randomElement(using: &rng) ?? "")
        case 5, 6:
            let n = Int.random(in: 0...3, using: &rng)
            return .array((0..<n).map { _ in randomValue(&rng, depth: depth + 1) })
        default:
            let n = Int.random(in: 0...3, using: &rng)
            var o: [String: JSONValue] = [:]
            for _ in 0..<n { o[keyPool.randomElement(using: &rng) ?? "x"] = randomValue(&rng, depth: depth + 1) }
            return .object(o)
        }
    }

    // MARK: Mutations

    /// Deletes or replaces a random key, at the top level or inside a nested object.
    static func mutate(_ doc: inout [String: JSONValue], _ rng: inout SplitMix64) {
        let nested = doc.keys.filter { doc[$0]?.objectValue != nil }.sorted()
        if let key = nested.randomElement(using: &rng), Int.random(in: 0..<4, using: &rng) == 0,
           var inner = doc[key]?.objectValue {
            mutate(&inner, &rng)
            doc[key] = .object(inner)
            return
        }
        let keys = doc.keys.sorted()
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1, 2:
            if let key = keys.randomElement(using: &rng) { doc[key] = nil }
        case 3:
            doc[keyPool.randomElement(using: &rng) ?? "x"] = randomValue(&rng)
        case 4:
            // A plausible but extreme size for a size key.
            let sizeKeys = keys.filter { if case .number = doc[$0] { return true } else { return false } }
            if let key = sizeKeys.randomElement(using: &rng) { doc[key] = .number(interestingNumbers.randomElement(using: &rng) ?? 0) }
        default:
            if let key = keys.randomElement(using: &rng) { doc[key] = randomValue(&rng) }
        }
    }

    /// Byte-level damage to the JSON text.
    static func damage(_ text: Data, _ rng: inout SplitMix64) -> Data {
        var bytes = [UInt8](text)
        guard !bytes.isEmpty else { return text }
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
        case 1:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            }
        case 2:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] = UInt8.random(in: 0...255, using: &rng)
            }
        default:
            let i = Int.random(in: 0...bytes.count, using: &rng)
            let insert = Array("{[\"]}:,0-e.\\".utf8)
            bytes.insert(contentsOf: (0..<Int.random(in: 1...3, using: &rng)).map { _ in insert.randomElement(using: &rng) ?? 0 }, at: i)
        }
        return Data(bytes)
    }

    // MARK: Invariants of a parsed config

    static func violations(_ c: ModelConfig) -> [String] {
        var v: [String] = []
        func positive(_ name: String, _ x: Int) { if x <= 0 { v.append("\(name) = \(x)") } }
        positive("vocabSize", c.vocabSize)
        positive("hiddenSize", c.hiddenSize)
        positive("numLayers", c.numLayers)
        positive("numHeads", c.numHeads)
        positive("numKVHeads", c.numKVHeads)
        positive("headDim", c.headDim)
        positive("maxPositionEmbeddings", c.maxPositionEmbeddings)
        positive("moe.numExperts", c.moe.numExperts)
        positive("moe.topK", c.moe.topK)
        positive("moe.intermediateSize", c.moe.intermediateSize)
        positive("rope.dimension", c.rope.dimension)
        if c.rope.dimension % 2 != 0 { v.append("odd rope dimension \(c.rope.dimension)") }
        if c.moe.numSharedExperts < 0 { v.append("numSharedExperts = \(c.moe.numSharedExperts)") }
        if c.intermediateSize < 0 || (c.moeLayers.contains(false) && c.intermediateSize <= 0) {
            v.append("intermediateSize = \(c.intermediateSize)")
        }
        if c.moe.topK > c.moe.numExperts { v.append("topK \(c.moe.topK) > experts \(c.moe.numExperts)") }
        if c.moe.router.topK != c.moe.topK { v.append("router topK \(c.moe.router.topK) ≠ \(c.moe.topK)") }
        let r = c.moe.router
        if r.numGroups < 1 || r.topKGroups < 1 || r.topKGroups > r.numGroups || c.moe.numExperts % r.numGroups != 0 {
            v.append("groups \(r.numGroups)/\(r.topKGroups)")
        }
        if c.mla == nil, c.numHeads % c.numKVHeads != 0 { v.append("heads \(c.numHeads) % kv \(c.numKVHeads) ≠ 0") }
        if let mla = c.mla {
            positive("mla.kvLoraRank", mla.kvLoraRank)
            positive("mla.qkNopeHeadDim", mla.qkNopeHeadDim)
            positive("mla.qkRopeHeadDim", mla.qkRopeHeadDim)
            positive("mla.vHeadDim", mla.vHeadDim)
            if let q = mla.qLoraRank { positive("mla.qLoraRank", q) }
        }
        if c.moeLayers.count != c.numLayers { v.append("moeLayers.count \(c.moeLayers.count) ≠ numLayers \(c.numLayers)") }
        if !(c.attentionScale.isFinite && c.attentionScale > 0) { v.append("attentionScale = \(c.attentionScale)") }
        if !(c.rmsNormEps.isFinite && c.rmsNormEps > 0) { v.append("rmsNormEps = \(c.rmsNormEps)") }
        if !(c.rope.theta.isFinite && c.rope.theta > 1) { v.append("rope.theta = \(c.rope.theta)") }
        if case .yarn(let y) = c.rope.kind {
            if !(y.factor >= 1) { v.append("yarn factor \(y.factor)") }
            positive("yarn.originalMaxPositionEmbeddings", y.originalMaxPositionEmbeddings)
        }
        if case .linear(let f) = c.rope.kind, !(f > 0 && f.isFinite) { v.append("linear factor \(f)") }
        return v
    }

    /// Parses `data`; returns a description of what went wrong (nil when it parsed sanely
    /// or threw a `CheckpointError`).
    static func check(_ data: Data, counts: inout (parsed: Int, rejected: Int)) -> String? {
        do {
            let c = try ModelConfig.parse(data, file: "fuzz/config.json")
            counts.parsed += 1
            let v = violations(c)
            return v.isEmpty ? nil : "parsed with \(v.joined(separator: "; "))"
        } catch let error as CheckpointError {
            counts.rejected += 1
            if !"\(error)".contains("fuzz/config.json") { return "error does not name the file: \(error)" }
            return nil
        } catch {
            return "threw \(type(of: error)), not a CheckpointError: \(error)"
        }
    }

    static func describe(_ data: Data) -> String {
        let s = String(decoding: data.prefix(600), as: UTF8.self)
        return data.count > 600 ? s + "…" : s
    }

    // MARK: Tests

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func unmutatedConfigsParseSanely() throws {
        for base in try Self.baseConfigs() {
            var counts = (parsed: 0, rejected: 0)
            #expect(Self.check(base.text, counts: &counts) == nil, "\(base.name)")
            // gpt-oss is the one unsupported architecture.
            #expect(counts.parsed == (base.name == "openai__gpt-oss-20b" ? 0 : 1), "\(base.name)")
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func mutatedConfigs() throws {
        var failures: [String] = []
        var counts = (parsed: 0, rejected: 0)
        for (b, base) in try Self.baseConfigs().enumerated() {
            for i in 0..<Self.casesPerConfig {
                var rng = SplitMix64(seed: UInt64(b) << 32 | UInt64(i))
                var doc = base.doc
                for _ in 0..<Int.random(in: 1...3, using: &rng) { Self.mutate(&doc, &rng) }
                let text = try JSONValue.object(doc).data
                if let problem = Self.check(text, counts: &counts) {
                    failures.append("\(base.name) case \(i): \(problem)\n  \(Self.describe(text))")
                }
            }
        }
        print("mutated configs: \(counts.parsed) parsed, \(counts.rejected) rejected, \(failures.count) failures")
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5).joined(separator: "\n"))")
        // The mutations must exercise both outcomes.
        #expect(counts.parsed > 100)
        #expect(counts.rejected > 100)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func damagedText() throws {
        var failures: [String] = []
        var counts = (parsed: 0, rejected: 0)
        for (b, base) in try Self.baseConfigs().enumerated() {
            for i in 0..<Self.casesPerConfig {
                var rng = SplitMix64(seed: 0xDA_0000_0000 | UInt64(b) << 24 | UInt64(i))
                var text = base.text
                for _ in 0..<Int.random(in: 1...2, using: &rng) { text = Self.damage(text, &rng) }
                if let problem = Self.check(text, counts: &counts) {
                    failures.append("\(base.name) case \(i): \(problem)\n  \(Self.describe(text))")
                }
            }
        }
        print("damaged configs: \(counts.parsed) parsed, \(counts.rejected) rejected, \(failures.count) failures")
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5).joined(separator: "\n"))")
        #expect(counts.rejected > 100)
    }

    /// Every numeric key of every config set to each extreme number in turn.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func extremeNumbersEverywhere() throws {
        var failures: [String] = []
        var counts = (parsed: 0, rejected: 0)
        for base in try Self.baseConfigs() {
            var paths: [(String, String?)] = []
            for (key, value) in base.doc {
                if case .number = value { paths.append((key, nil)) }
                for (inner, v) in value.objectValue ?? [:] { if case .number = v { paths.append((key, inner)) } }
            }
            for (key, inner) in paths.sorted(by: { "\($0)" < "\($1)" }) {
                for x in Self.extremeNumbers {
                    var doc = base.doc
                    if let inner, var o = doc[key]?.objectValue {
                        o[inner] = .number(x)
                        doc[key] = .object(o)
                    } else {
                        doc[key] = .number(x)
                    }
                    let text = try JSONValue.object(doc).data
                    if let problem = Self.check(text, counts: &counts) {
                        failures.append("\(base.name) \(key)\(inner.map { ".\($0)" } ?? "") = \(x): \(problem)")
                    }
                }
            }
        }
        print("extreme numbers: \(counts.parsed) parsed, \(counts.rejected) rejected, \(failures.count) failures")
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(8).joined(separator: "\n"))")
    }

    @Test func randomBytes() {
        var failures: [String] = []
        var counts = (parsed: 0, rejected: 0)
        var rng = SplitMix64(seed: 0xB17E5)
        for _ in 0..<300 {
            let n = Int.random(in: 0...64, using: &rng)
            let data = Data((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) })
            if let problem = Self.check(data, counts: &counts) { failures.append(problem) }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(counts.parsed == 0)
    }

    /// Deeply nested values must be rejected or ignored, not overflow the stack.
    @Test(arguments: [100, 10_000, 200_000])
    func deepNesting(depth: Int) {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let value = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
            let text = "{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"extra\":\(value),\"hidden_size\":\(value)}"
            var counts = (parsed: 0, rejected: 0)
            #expect(Self.check(Data(text.utf8), counts: &counts) == nil)
            #expect(counts.rejected == 1)
        }
    }

    // MARK: What the fuzzing found (each parsed before, or hung)

    static func expectRejected(_ name: String, key: String, sourceLocation: SourceLocation = #_sourceLocation,
                               _ edit: (inout [String: JSONValue]) -> Void) throws {
        let url = name.contains("__") ? ConfigTestSupport.publishedConfigURL(name) : Fixtures.url("\(name)/config.json")
        var doc = try JSONValue.object(at: url)
        edit(&doc)
        do {
            let c = try ModelConfig.parse(JSONValue.object(doc).data, file: "fuzz/config.json")
            Issue.record("parsed (\(violations(c))), expected '\(key)' to be rejected", sourceLocation: sourceLocation)
        } catch let error as CheckpointError {
            guard case .invalidConfig("fuzz/config.json", key, _) = error else {
                Issue.record("expected .invalidConfig for '\(key)', got \(error)", sourceLocation: sourceLocation)
                return
            }
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func fuzzFindings() throws {
        let qwen = "qwen3-moe-tiny-f32", deepseek = "deepseek-v3-tiny-f32", v3 = "deepseek-ai__DeepSeek-V3"
        // 2^31 layers: a 2 GB per-layer table built while parsing (seconds to minutes per config).
        try Self.expectRejected(qwen, key: "num_hidden_layers") { $0["num_hidden_layers"] = .number(2_147_483_648) }
        try Self.expectRejected(deepseek, key: "num_hidden_layers") { $0["num_hidden_layers"] = .number(65537) }
        // Sizes that were read without a positivity check.
        try Self.expectRejected(deepseek, key: "num_key_value_heads") { $0["num_key_value_heads"] = .number(0) }
        try Self.expectRejected(deepseek, key: "num_key_value_heads") { $0["num_key_value_heads"] = .number(-4) }
        try Self.expectRejected(deepseek, key: "n_shared_experts") { $0["n_shared_experts"] = .number(-1) }
        try Self.expectRejected(deepseek, key: "n_shared_experts") { $0["n_shared_experts"] = .number(1e15) }
        try Self.expectRejected(deepseek, key: "q_lora_rank") { $0["q_lora_rank"] = .number(1e12) }
        try Self.expectRejected(qwen, key: "max_position_embeddings") { $0["max_position_embeddings"] = .number(-1) }
        try Self.expectRejected(v3, key: "original_max_position_embeddings") {
            guard var s = $0["rope_scaling"]?.objectValue else { return }
            s["original_max_position_embeddings"] = .number(0)
            $0["rope_scaling"] = .object(s)
        }
        try Self.expectRejected(qwen, key: "intermediate_size") { $0["intermediate_size"] = .number(-5) }
        try Self.expectRejected(deepseek, key: "intermediate_size") { $0["intermediate_size"] = .number(0) }
        // head_dim from hidden / heads can be 0; rope needs an even head_dim.
        try Self.expectRejected(qwen, key: "head_dim") {
            $0["head_dim"] = nil
            $0["num_attention_heads"] = .number(256)
            $0["num_key_value_heads"] = .number(256)
        }
        try Self.expectRejected("mixtral-tiny-f32", key: "head_dim") { $0["head_dim"] = .number(33) }
        // Values finite in f64 that are zero or infinite in f32.
        try Self.expectRejected(qwen, key: "rms_norm_eps") { $0["rms_norm_eps"] = .number(1e-300) }
        try Self.expectRejected(qwen, key: "rms_norm_eps") { $0["rms_norm_eps"] = .number(1e300) }
        try Self.expectRejected(qwen, key: "rope_theta") {
            $0["rope_parameters"] = .object(["rope_type": .string("default"), "rope_theta": .number(1e300)])
        }
        try Self.expectRejected(qwen, key: "rope_scaling.factor") {
            $0["rope_parameters"] = .object(["rope_type": .string("linear"), "rope_theta": .number(10000), "factor": .number(0)])
        }
        try Self.expectRejected(v3, key: "rope_scaling.mscale_all_dim") {
            guard var s = $0["rope_scaling"]?.objectValue else { return }
            s["mscale_all_dim"] = .number(1e300)
            $0["rope_scaling"] = .object(s)
        }
        try Self.expectRejected(v3, key: "routed_scaling_factor") { $0["routed_scaling_factor"] = .number(1e300) }
    }
}
