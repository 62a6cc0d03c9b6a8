import EbbCheckpoint
import EbbCore
import EbbModel
import EbbTensor
import EbbTestSupport
import Foundation
import Testing

// MARK: - Helpers shared by ConfigTests, LoadErrorTests and ConfigFuzzTests

/// Config editing in tests uses EbbCore's `JSONValue` (which keeps booleans, integers and
/// nulls apart, unlike Foundation's `JSONSerialization` on Linux).
extension JSONValue {
    static func object(at url: URL) throws -> [String: JSONValue] {
        guard let o = try parse(Data(contentsOf: url)).objectValue else {
            throw TestSetupError("\(url.path) is not a JSON object")
        }
        return o
    }

    var data: Data {
        get throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return try encoder.encode(self)
        }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A fresh directory under the system temp folder, removed when released.
final class TempDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-config-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }
    var configURL: URL { file("config.json") }
}

enum ConfigTestSupport {
    /// One backend for these suites (creating one sets OpenBLAS's thread count).
    static let backend = CPUBackend()

    static let publishedConfigNames = [
        "Qwen__Qwen3-30B-A3B", "Qwen__Qwen3-235B-A22B", "deepseek-ai__DeepSeek-V3", "deepseek-ai__DeepSeek-R1",
        "deepseek-ai__DeepSeek-V2-Lite", "mistralai__Mixtral-8x7B-Instruct-v0.1", "openai__gpt-oss-20b",
    ]

    static func publishedConfigURL(_ name: String) -> URL { Fixtures.url("configs/\(name)/config.json") }

    /// Symlinks the weight files of fixture `name` (safetensors and index, not the reference) into `dir`.
    static func linkWeights(of name: String, into dir: URL, except skipped: Set<String> = []) throws {
        let source = Fixtures.url(name)
        let fm = FileManager.default
        for file in try fm.contentsOfDirectory(atPath: source.path).sorted() where !skipped.contains(file) {
            let isWeights = (file.hasSuffix(".safetensors") && file != "reference.safetensors") || file == Checkpoint.indexFileName
            guard isWeights else { continue }
            try fm.createSymbolicLink(at: dir.appendingPathComponent(file), withDestinationURL: source.appendingPathComponent(file))
        }
    }

    /// The first prompt of the fixture's `reference.safetensors`.
    static func firstPrompt(of name: String) throws -> [Int32] {
        let file = try SafeTensorsFile(url: Fixtures.url("\(name)/reference.safetensors"))
        let ids = try file.ints("input_ids")
        let lengths = try file.ints("prompt_lengths")
        guard let n = lengths.first, n > 0, n <= ids.count else { throw TestSetupError("\(name): bad prompt_lengths \(lengths)") }
        return ids[0..<n].map { Int32($0) }
    }

    /// Rewrites a transformers-5 style config (`rope_parameters`, Qwen3 `num_local_experts`,
    /// `dtype`) into the transformers-4 key style.
    static func toStyle4(_ doc: [String: JSONValue]) -> [String: JSONValue] {
        var d = doc
        if let params = d.removeValue(forKey: "rope_parameters")?.objectValue {
            if let theta = params["rope_theta"] { d["rope_theta"] = theta }
            var scaling = params
            scaling["rope_theta"] = nil
            let type = scaling["rope_type"] ?? scaling["type"]
            d["rope_scaling"] = (type == nil || type == .string("default")) ? .null : .object(scaling)
        }
        if d["architectures"] == .array([.string("Qwen3MoeForCausalLM")]), let n = d.removeValue(forKey: "num_local_experts") {
            d["num_experts"] = n
        }
        if let t = d.removeValue(forKey: "dtype") { d["torch_dtype"] = t }
        return d
    }

    /// The reverse: transformers-4 keys into transformers-5 keys.
    static func toStyle5(_ doc: [String: JSONValue]) -> [String: JSONValue] {
        var d = doc
        var params: [String: JSONValue] = ["rope_type": .string("default")]
        if let scaling = d.removeValue(forKey: "rope_scaling")?.objectValue {
            params = scaling
            if let type = params.removeValue(forKey: "type") { params["rope_type"] = type }
        }
        if let theta = d.removeValue(forKey: "rope_theta") { params["rope_theta"] = theta }
        d["rope_parameters"] = .object(params)
        if d["architectures"] == .array([.string("Qwen3MoeForCausalLM")]), let n = d.removeValue(forKey: "num_experts") {
            d["num_local_experts"] = n
        }
        if let t = d.removeValue(forKey: "torch_dtype") { d["dtype"] = t }
        return d
    }

    /// q LoRA rank, kv LoRA rank, qk nope, qk rope and v head dims (nil without MLA).
    static func mlaFields(_ mla: MLAConfig?) -> [Int?]? {
        mla.map { [$0.qLoraRank, $0.kvLoraRank, $0.qkNopeHeadDim, $0.qkRopeHeadDim, $0.vHeadDim] }
    }

    static func isClose(_ a: Float, _ b: Double, relative: Double = 1e-6) -> Bool {
        abs(Double(a) - b) <= relative * abs(b)
    }
}

// MARK: - Published configs (transformers-4 keys) and the style-4 ↔ style-5 rewrite

@Suite struct ConfigTests {
    static func published(_ name: String) throws -> ModelConfig {
        try ModelConfig.load(directory: Fixtures.url("configs/\(name)"))
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func everyPublishedConfigIsCovered() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.url("configs").path)
            .filter { FileManager.default.fileExists(atPath: ConfigTestSupport.publishedConfigURL($0).path) }
        #expect(Set(names) == Set(ConfigTestSupport.publishedConfigNames), "configs/ holds \(names.sorted())")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func qwen3_30B_A3B() throws {
        let c = try Self.published("Qwen__Qwen3-30B-A3B")
        #expect(c.architecture == .qwen3Moe)
        #expect(c.vocabSize == 151_936)
        #expect(c.hiddenSize == 2048)
        #expect(c.numLayers == 48)
        #expect(c.numHeads == 32)
        #expect(c.numKVHeads == 4)
        #expect(c.headDim == 128)
        #expect(c.moe.numExperts == 128)
        #expect(c.moe.topK == 8)
        #expect(c.moe.intermediateSize == 768)
        #expect(c.moe.router == RouterConfig(scoring: .softmax, topK: 8, normalize: true))
        #expect(!c.moe.hasCorrectionBias)
        #expect(c.moe.numSharedExperts == 0)
        #expect(c.moeLayers == Array(repeating: true, count: 48))
        #expect(c.rope == RopeParameters(theta: 1_000_000, dimension: 128, kind: .standard, interleaved: false))
        #expect(c.mla == nil)
        #expect(c.qkNorm)
        #expect(c.rmsNormEps == Float(1e-6))
        #expect(!c.tieWordEmbeddings)
        #expect(c.maxPositionEmbeddings == 40960)
        #expect(c.eosTokenIds == [151_645])
        #expect(c.bosTokenId == 151_643)
        #expect(c.declaredDType == "bfloat16")
        #expect(ConfigTestSupport.isClose(c.attentionScale, 1 / 128.0.squareRoot()))
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func qwen3_235B_A22B() throws {
        let c = try Self.published("Qwen__Qwen3-235B-A22B")
        #expect(c.architecture == .qwen3Moe)
        #expect(c.hiddenSize == 4096)
        #expect(c.numLayers == 94)
        #expect(c.numHeads == 64)
        #expect(c.numKVHeads == 4)
        #expect(c.headDim == 128)
        #expect(c.moe.numExperts == 128)
        #expect(c.moe.topK == 8)
        #expect(c.moe.intermediateSize == 1536)
        #expect(c.numMoELayers == 94)
        #expect(c.rope.theta == 1_000_000)
        #expect(c.rope.kind == .standard)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: ["deepseek-ai__DeepSeek-V3", "deepseek-ai__DeepSeek-R1"])
    func deepseekV3(name: String) throws {
        let c = try Self.published(name)
        #expect(c.architecture == .deepseekV3)
        #expect(c.vocabSize == 129_280)
        #expect(c.hiddenSize == 7168)
        #expect(c.numLayers == 61)
        #expect(c.numHeads == 128)
        #expect(c.numKVHeads == 128)
        #expect(c.intermediateSize == 18432)
        #expect(c.moe.numExperts == 256)
        #expect(c.moe.topK == 8)
        #expect(c.moe.intermediateSize == 2048)
        #expect(c.moe.hasCorrectionBias)
        #expect(c.moe.numSharedExperts == 1)
        let r = c.moe.router
        #expect(r.scoring == .sigmoid)
        #expect(r.topK == 8)
        #expect(r.normalize)
        #expect(r.numGroups == 8)
        #expect(r.topKGroups == 4)
        #expect(r.groupScoreTopTwo)
        #expect(r.scalingFactor == 2.5)
        #expect(ConfigTestSupport.mlaFields(c.mla) == [1536, 512, 128, 64, 128])
        #expect(c.mla?.qkHeadDim == 192)
        #expect(c.headDim == 64)
        // The first 3 layers are dense.
        #expect(c.moeLayers == (0..<61).map { $0 >= 3 })
        #expect(c.numMoELayers == 58)
        let yarn = RopeParameters.Yarn(factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1,
                                       mscale: 1, mscaleAllDim: 1, attentionFactor: nil, truncate: true)
        #expect(c.rope == RopeParameters(theta: 10000, dimension: 64, kind: .yarn(yarn), interleaved: true))
        // mscale == mscale_all_dim: cos/sin are not scaled; the softmax scale carries mscale².
        #expect(c.rope.inverseFrequencies().attentionFactor == 1)
        let m = 0.1 * log(40.0) + 1
        #expect(ConfigTestSupport.isClose(c.attentionScale, (1 / 192.0.squareRoot()) * m * m),
                "attention scale \(c.attentionScale)")
        #expect(c.maxPositionEmbeddings == 163_840)
        #expect(c.eosTokenIds == [1])
        #expect(c.bosTokenId == 0)
        #expect(!c.qkNorm)
        #expect(c.declaredDType == "bfloat16")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func deepseekV2Lite() throws {
        let c = try Self.published("deepseek-ai__DeepSeek-V2-Lite")
        #expect(c.architecture == .deepseekV2)
        #expect(c.vocabSize == 102_400)
        #expect(c.hiddenSize == 2048)
        #expect(c.numLayers == 27)
        #expect(c.numHeads == 16)
        #expect(c.intermediateSize == 10944)
        #expect(c.moe.numExperts == 64)
        #expect(c.moe.topK == 6)
        #expect(c.moe.intermediateSize == 1408)
        #expect(!c.moe.hasCorrectionBias)
        #expect(c.moe.numSharedExperts == 2)
        let r = c.moe.router
        #expect(r.scoring == .softmax)
        #expect(!r.normalize)
        #expect(r.numGroups == 1)
        #expect(r.topKGroups == 1)
        #expect(!r.groupScoreTopTwo)
        #expect(r.scalingFactor == 1)
        #expect(ConfigTestSupport.mlaFields(c.mla) == [nil, 512, 128, 64, 128])
        #expect(c.moeLayers == (0..<27).map { $0 >= 1 })
        guard case .yarn(let y) = c.rope.kind else {
            Issue.record("expected YaRN rope, got \(c.rope.kind)")
            return
        }
        #expect(y.factor == 40)
        #expect(y.originalMaxPositionEmbeddings == 4096)
        #expect(y.mscale == 0.707)
        #expect(y.mscaleAllDim == 0.707)
        #expect(c.rope.interleaved)
        #expect(c.rope.theta == 10000)
        let m = 0.1 * 0.707 * log(40.0) + 1
        #expect(ConfigTestSupport.isClose(c.attentionScale, (1 / 192.0.squareRoot()) * m * m),
                "attention scale \(c.attentionScale)")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func mixtral8x7B() throws {
        let c = try Self.published("mistralai__Mixtral-8x7B-Instruct-v0.1")
        #expect(c.architecture == .mixtral)
        #expect(c.vocabSize == 32000)
        #expect(c.hiddenSize == 4096)
        #expect(c.numLayers == 32)
        #expect(c.numHeads == 32)
        #expect(c.numKVHeads == 8)
        #expect(c.headDim == 4096 / 32)
        #expect(c.moe.numExperts == 8)
        #expect(c.moe.topK == 2)
        #expect(c.moe.intermediateSize == 14336)
        #expect(c.intermediateSize == 14336)
        #expect(c.moe.router == RouterConfig(scoring: .softmax, topK: 2, normalize: true))
        #expect(c.moeLayers == Array(repeating: true, count: 32))
        #expect(c.rope == RopeParameters(theta: 1_000_000, dimension: 128, kind: .standard, interleaved: false))
        #expect(c.rmsNormEps == Float(1e-5))
        #expect(c.maxPositionEmbeddings == 32768)
        #expect(c.eosTokenIds == [2])
        #expect(c.bosTokenId == 1)
        #expect(!c.qkNorm)
        #expect(ConfigTestSupport.isClose(c.attentionScale, 1 / 128.0.squareRoot()))
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func gptOssIsUnsupported() throws {
        let url = ConfigTestSupport.publishedConfigURL("openai__gpt-oss-20b")
        do {
            let c = try ModelConfig.load(directory: url.deletingLastPathComponent())
            Issue.record("gpt-oss parsed as \(c.architecture)")
        } catch let error as CheckpointError {
            guard case let .unsupportedArchitecture(file, architecture, supported) = error else {
                Issue.record("expected .unsupportedArchitecture, got \(error)")
                return
            }
            #expect(file == url.path)
            #expect(architecture == "GptOssForCausalLM")
            #expect(Set(supported) == Set(Architecture.allCases.map(\.rawValue)))
            #expect("\(error)".contains("GptOssForCausalLM"))
            #expect("\(error)".contains(url.path))
        }
    }

    /// The embedded config still passes the (stricter) checks.
    @Test func builtinConfigParses() throws {
        for name in BuiltinModels.names {
            let c = try BuiltinModels.resolve(BuiltinModels.prefix + name).config
            #expect(c.numLayers > 0 && c.headDim > 0 && c.moe.numExperts > 0, "\(name)")
        }
    }

    /// The tiny fixtures' configs (transformers-5 keys) parse to what their files say.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func fixtureConfigParses(name: String) throws {
        let c = try ModelConfig.load(directory: Fixtures.url(name))
        #expect(c.vocabSize == 2048)
        #expect(c.hiddenSize == 128)
        #expect(c.eosTokenIds == [2])
        #expect(c.bosTokenId == nil)
        #expect(c.declaredDType == (name.hasSuffix("bf16") ? "bfloat16" : "float32"))
        switch c.architecture {
        case .qwen3Moe:
            #expect(name.hasPrefix("qwen3"))
            #expect(c.moe.numExperts == 16)  // from num_local_experts
            #expect(c.moe.topK == 4)
            #expect(c.numKVHeads == 2)
            #expect(c.headDim == 32)
            #expect(c.rope == RopeParameters(theta: 1_000_000, dimension: 32))
        case .mixtral:
            #expect(name.hasPrefix("mixtral"))
            #expect(c.moe.numExperts == 8)
            #expect(c.moe.topK == 2)
            #expect(c.rope == RopeParameters(theta: 1_000_000, dimension: 32))
        case .deepseekV3:
            #expect(name.hasPrefix("deepseek"))
            #expect(c.moe.numExperts == 16)
            #expect(c.moe.router.numGroups == 4)
            #expect(c.moe.router.topKGroups == 2)
            #expect(ConfigTestSupport.mlaFields(c.mla) == [64, 32, 32, 16, 32])
            #expect(c.moeLayers == [false, true, true])
            #expect(c.rope == RopeParameters(theta: 10000, dimension: 16, kind: .standard, interleaved: true))
            #expect(ConfigTestSupport.isClose(c.attentionScale, 1 / 48.0.squareRoot()))
        case .deepseekV2:
            Issue.record("\(name) parsed as DeepSeek-V2")
        }
    }

    /// Rewriting a fixture's config into transformers-4 keys changes neither the parsed
    /// config nor a single logit.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func style4RewriteGivesSameModel(name: String) throws {
        let original = try JSONValue.object(at: Fixtures.url("\(name)/config.json"))
        let rewritten = ConfigTestSupport.toStyle4(original)
        #expect(rewritten["rope_parameters"] == nil)
        #expect(rewritten["dtype"] == nil)
        #expect(rewritten["rope_theta"] != nil)
        #expect(rewritten["rope_scaling"] == .null)
        #expect(rewritten["torch_dtype"] != nil)
        if name.hasPrefix("qwen3") {
            #expect(rewritten["num_local_experts"] == nil)
            #expect(rewritten["num_experts"] != nil)
        }

        let dir = try TempDirectory()
        try JSONValue.object(rewritten).data.write(to: dir.configURL)
        try ConfigTestSupport.linkWeights(of: name, into: dir.url)

        let configA = try ModelConfig.load(directory: Fixtures.url(name))
        let configB = try ModelConfig.load(directory: dir.url)
        #expect(configA == configB)

        let backend = ConfigTestSupport.backend
        let prompt = try ConfigTestSupport.firstPrompt(of: name)
        let modelA = try CausalLM.load(directory: Fixtures.url(name), backend: backend)
        let modelB = try CausalLM.load(directory: dir.url, backend: backend)
        let logitsA = try SequenceRunner(model: modelA, maxTokens: 64).logits(prompt: prompt)
        let logitsB = try SequenceRunner(model: modelB, maxTokens: 64).logits(prompt: prompt)
        #expect(logitsA.count == prompt.count * configA.vocabSize)
        #expect(logitsA.allSatisfy { $0.isFinite })
        #expect(logitsA == logitsB, "\(name): logits differ between the original and the style-4 config")
    }

    /// The published (transformers-4) configs rewritten into transformers-5 keys parse the
    /// same, YaRN included.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: ConfigTestSupport.publishedConfigNames.filter { $0 != "openai__gpt-oss-20b" })
    func publishedStyle5RewriteParsesTheSame(name: String) throws {
        let url = ConfigTestSupport.publishedConfigURL(name)
        let original = try JSONValue.object(at: url)
        let style5 = ConfigTestSupport.toStyle5(original)
        #expect(style5["rope_theta"] == nil)
        #expect(style5["rope_scaling"] == nil)
        let a = try ModelConfig.parse(Data(contentsOf: url), file: url.path)
        let b = try ModelConfig.parse(JSONValue.object(style5).data, file: url.path)
        #expect(a == b)
        // And back again.
        let c = try ModelConfig.parse(JSONValue.object(ConfigTestSupport.toStyle4(style5)).data, file: url.path)
        #expect(a == c)
    }

    /// Style-5 `rope_parameters` wins over stray style-4 keys only for what it holds; a
    /// config holding both styles with the same values parses the same.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func bothStylesTogether() throws {
        let url = ConfigTestSupport.publishedConfigURL("deepseek-ai__DeepSeek-V3")
        var doc = try JSONValue.object(at: url)
        let a = try ModelConfig.parse(JSONValue.object(doc).data)
        doc["rope_parameters"] = ConfigTestSupport.toStyle5(doc)["rope_parameters"]
        let b = try ModelConfig.parse(JSONValue.object(doc).data)
        #expect(a == b)
    }
}
