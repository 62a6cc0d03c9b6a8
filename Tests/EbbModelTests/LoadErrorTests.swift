import EbbCheckpoint
import EbbCore
import EbbModel
import EbbTensor
import EbbTestSupport
import Foundation
import Testing

/// Broken checkpoints and configs loaded through `CausalLM.load`: each must throw the right
/// `CheckpointError` naming the file and the tensor or key — never crash.
@Suite struct LoadErrorTests {
    static let base = "qwen3-moe-tiny-f32"
    static let backend = ConfigTestSupport.backend

    // MARK: Helpers

    /// The error `CausalLM.load` throws for `dir`, recording an issue if it loads or throws
    /// something other than a `CheckpointError`.
    static func loadError(_ dir: URL, sourceLocation: SourceLocation = #_sourceLocation) -> CheckpointError? {
        do {
            _ = try CausalLM.load(directory: dir, backend: backend)
            Issue.record("\(dir.path) loaded without an error", sourceLocation: sourceLocation)
        } catch let error as CheckpointError {
            return error
        } catch {
            Issue.record("expected a CheckpointError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    /// The fixture's tensors as writable copies, in header order.
    static func tensors(of name: String = base, file: String = Checkpoint.singleFileName) throws -> [WritableTensor] {
        let f = try SafeTensorsFile(url: Fixtures.url("\(name)/\(file)"))
        return try f.orderedNames.map { tensorName in
            let e = try f.entry(tensorName)
            return WritableTensor(name: e.name, dtype: e.dtype, shape: e.shape, data: Array(f.rawBytes(e)))
        }
    }

    /// A directory with the fixture's config and `model.safetensors` written from `tensors`.
    static func checkpoint(_ tensors: [WritableTensor], config name: String = base) throws -> TempDirectory {
        let dir = try TempDirectory()
        try FileManager.default.copyItem(at: Fixtures.url("\(name)/config.json"), to: dir.configURL)
        try SafeTensorsWriter.write(tensors, to: dir.file(Checkpoint.singleFileName))
        return dir
    }

    /// A directory with the fixture's config and `model.safetensors` given as raw bytes.
    static func checkpoint(bytes: [UInt8], config name: String = base) throws -> TempDirectory {
        let dir = try TempDirectory()
        try FileManager.default.copyItem(at: Fixtures.url("\(name)/config.json"), to: dir.configURL)
        try Data(bytes).write(to: dir.file(Checkpoint.singleFileName))
        return dir
    }

    /// The fixture's weights (linked) with its config edited by `edit`.
    static func editedConfig(_ name: String = base, _ edit: (inout [String: JSONValue]) -> Void) throws -> TempDirectory {
        var doc = try JSONValue.object(at: Fixtures.url("\(name)/config.json"))
        edit(&doc)
        let dir = try TempDirectory()
        try JSONValue.object(doc).data.write(to: dir.configURL)
        try ConfigTestSupport.linkWeights(of: name, into: dir.url)
        return dir
    }

    /// Rewrites the header text of a safetensors image (the data stays where it is relative
    /// to the header's end), re-padding it to a multiple of 8 bytes.
    static func rewriteHeader(_ image: [UInt8], _ transform: (String) -> String) throws -> [UInt8] {
        guard image.count >= 8 else { throw TestSetupError("image too short") }
        var n = 0
        for k in 0..<8 { n |= Int(image[k]) << (8 * k) }
        guard let header = String(bytes: image[8..<(8 + n)], encoding: .utf8) else { throw TestSetupError("header not UTF-8") }
        let edited = transform(header)
        guard edited != header else { throw TestSetupError("header edit changed nothing") }
        var bytes = Array(edited.utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        var out = (0..<8).map { UInt8(truncatingIfNeeded: bytes.count >> (8 * $0)) }
        out += bytes
        out += image[(8 + n)...]
        return out
    }

    static func expectNames(_ error: CheckpointError, _ parts: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        let message = "\(error)"
        for part in parts {
            #expect(message.contains(part), "message '\(message)' does not name '\(part)'", sourceLocation: sourceLocation)
        }
    }

    // MARK: Tensors

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func unmodifiedCopyLoads() throws {
        // The helpers themselves: a faithful copy loads.
        let dir = try Self.checkpoint(try Self.tensors())
        _ = try CausalLM.load(directory: dir.url, backend: Self.backend)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func missingTensor() throws {
        let removed = "model.layers.1.self_attn.k_proj.weight"
        let all = try Self.tensors()
        #expect(all.contains { $0.name == removed })
        let dir = try Self.checkpoint(all.filter { $0.name != removed })
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        #expect(error == .missingTensor(file: file, tensor: removed))
        Self.expectNames(error, file, removed)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func missingTensorInShard() throws {
        // A DeepSeek shard rewritten without one tensor that the index still maps to it.
        let name = "deepseek-v3-tiny-f32"
        let index = try JSONValue.object(at: Fixtures.url("\(name)/\(Checkpoint.indexFileName)"))
        let removed = "model.layers.1.mlp.gate.weight"
        guard case .string(let shard)? = index["weight_map"]?.objectValue?[removed] else {
            throw TestSetupError("\(removed) not in the index")
        }
        let dir = try TempDirectory()
        try FileManager.default.copyItem(at: Fixtures.url("\(name)/config.json"), to: dir.configURL)
        try ConfigTestSupport.linkWeights(of: name, into: dir.url, except: [shard])
        try SafeTensorsWriter.write(try Self.tensors(of: name, file: shard).filter { $0.name != removed }, to: dir.file(shard))
        guard let error = Self.loadError(dir.url) else { return }
        #expect(error == .missingTensor(file: dir.file(shard).path, tensor: removed))
        Self.expectNames(error, dir.file(shard).path, removed)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func unexpectedTensor() throws {
        let extra = "model.layers.0.mlp.surprise.weight"
        let dir = try Self.checkpoint(try Self.tensors() + [.f32(name: extra, shape: [4], values: [1, 2, 3, 4])])
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        #expect(error == .unexpectedTensor(file: file, tensor: extra))
        Self.expectNames(error, file, extra)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func shapeMismatch() throws {
        let target = "model.norm.weight"
        let tensors = try Self.tensors().map { t -> WritableTensor in
            guard t.name == target else { return t }
            return WritableTensor(name: t.name, dtype: t.dtype, shape: [64], data: Array(t.data.prefix(64 * 4)))
        }
        let dir = try Self.checkpoint(tensors)
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        #expect(error == .shapeMismatch(file: file, tensor: target, expected: [128], found: [64]))
        Self.expectNames(error, file, target)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func transposedExpertWeight() throws {
        // Same bytes, dimensions swapped: the element count matches but the shape does not.
        let target = "model.layers.2.mlp.experts.5.down_proj.weight"
        var original: [Int] = []
        let tensors = try Self.tensors().map { t -> WritableTensor in
            guard t.name == target else { return t }
            original = t.shape
            return WritableTensor(name: t.name, dtype: t.dtype, shape: t.shape.reversed(), data: t.data)
        }
        #expect(original == [128, 64])
        let dir = try Self.checkpoint(tensors)
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        #expect(error == .shapeMismatch(file: file, tensor: target, expected: original, found: original.reversed()))
        Self.expectNames(error, file, target)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func unknownDTypeInHeader() throws {
        let image = try SafeTensorsWriter.serialize(try Self.tensors())
        let patched = try Self.rewriteHeader(image) {
            $0.replacingOccurrences(of: "\"model.norm.weight\":{\"dtype\":\"F32\"", with: "\"model.norm.weight\":{\"dtype\":\"Q8X\"")
        }
        let dir = try Self.checkpoint(bytes: patched)
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        #expect(error == .unknownDType(file: file, tensor: "model.norm.weight", dtype: "Q8X"))
        Self.expectNames(error, file, "model.norm.weight", "Q8X")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func integerWeights() throws {
        // A valid safetensors dtype that weights cannot have.
        let target = "model.layers.0.input_layernorm.weight"
        let tensors = try Self.tensors().map { t -> WritableTensor in
            guard t.name == target else { return t }
            return WritableTensor(name: t.name, dtype: .i32, shape: t.shape, data: t.data)
        }
        let dir = try Self.checkpoint(tensors)
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        guard case let .unknownDType(errorFile, tensor, dtype) = error else {
            Issue.record("expected .unknownDType, got \(error)")
            return
        }
        #expect(errorFile == file)
        #expect(tensor == target)
        #expect(dtype.contains("I32"))
        Self.expectNames(error, file, target)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func truncatedFile() throws {
        let image = try SafeTensorsWriter.serialize(try Self.tensors())
        let dir = try Self.checkpoint(bytes: Array(image.prefix(image.count * 6 / 10)))
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        guard case let .offsetsOutOfRange(errorFile, tensor, _) = error else {
            Issue.record("expected .offsetsOutOfRange, got \(error)")
            return
        }
        #expect(errorFile == file)
        #expect(tensor.hasPrefix("model.") || tensor == "lm_head.weight")
        Self.expectNames(error, file, tensor)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: [0, 5, 8, 40])
    func truncatedInHeader(length: Int) throws {
        let image = try SafeTensorsWriter.serialize(try Self.tensors())
        let dir = try Self.checkpoint(bytes: Array(image.prefix(length)))
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        guard case .corruptHeader(file, _) = error else {
            Issue.record("expected .corruptHeader naming \(file), got \(error)")
            return
        }
        Self.expectNames(error, file)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func corruptHeader() throws {
        var image = try SafeTensorsWriter.serialize(try Self.tensors())
        #expect(image[8] == UInt8(ascii: "{") && image[9] == UInt8(ascii: "\""))
        image[9] = UInt8(ascii: "#")
        let dir = try Self.checkpoint(bytes: image)
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        guard case .corruptHeader(file, _) = error else {
            Issue.record("expected .corruptHeader naming \(file), got \(error)")
            return
        }
        Self.expectNames(error, file)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func absurdHeaderLength() throws {
        var image = try SafeTensorsWriter.serialize(try Self.tensors())
        for k in 0..<8 { image[k] = 0xFF }
        let dir = try Self.checkpoint(bytes: image)
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        guard case .corruptHeader(file, _) = error else {
            Issue.record("expected .corruptHeader naming \(file), got \(error)")
            return
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func offsetsOutsideFile() throws {
        let tensors = try Self.tensors()
        let image = try SafeTensorsWriter.serialize(tensors)
        // The writer sorts by name; move the last tensor's range 1 MB past the end.
        let last = tensors.map(\.name).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.last ?? ""
        let dataSize = tensors.reduce(0) { $0 + $1.data.count }
        let lastSize = tensors.first { $0.name == last }?.data.count ?? 0
        let patched = try Self.rewriteHeader(image) {
            $0.replacingOccurrences(of: "\"data_offsets\":[\(dataSize - lastSize),\(dataSize)]",
                                    with: "\"data_offsets\":[\(dataSize - lastSize + 1_000_000),\(dataSize + 1_000_000)]")
        }
        let dir = try Self.checkpoint(bytes: patched)
        let file = dir.file(Checkpoint.singleFileName).path
        guard let error = Self.loadError(dir.url) else { return }
        guard case .offsetsOutOfRange(file, last, _) = error else {
            Issue.record("expected .offsetsOutOfRange naming \(file) and \(last), got \(error)")
            return
        }
        Self.expectNames(error, file, last)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func weightsMissingAltogether() throws {
        let dir = try TempDirectory()
        try FileManager.default.copyItem(at: Fixtures.url("\(Self.base)/config.json"), to: dir.configURL)
        guard let error = Self.loadError(dir.url) else { return }
        guard case .io(dir.url.path, _) = error else {
            Issue.record("expected .io naming \(dir.url.path), got \(error)")
            return
        }
    }

    // MARK: Config keys

    /// Loads `base` with an edited config and expects `.missingConfigKey(key)` or
    /// `.invalidConfig(key)` naming config.json.
    static func expectConfigError(_ name: String = base, missing: Bool, key: String,
                                  sourceLocation: SourceLocation = #_sourceLocation,
                                  _ edit: (inout [String: JSONValue]) -> Void) throws {
        let dir = try editedConfig(name, edit)
        let file = dir.configURL.path
        guard let error = loadError(dir.url, sourceLocation: sourceLocation) else { return }
        switch (error, missing) {
        case let (.missingConfigKey(f, k), true), let (.invalidConfig(f, k, _), false):
            #expect(f == file, sourceLocation: sourceLocation)
            #expect(k == key, "error \(error)", sourceLocation: sourceLocation)
        default:
            Issue.record("expected \(missing ? "missingConfigKey" : "invalidConfig") for '\(key)', got \(error)", sourceLocation: sourceLocation)
        }
        expectNames(error, file, key, sourceLocation: sourceLocation)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func missingHiddenSize(name: String) throws {
        try Self.expectConfigError(name, missing: true, key: "hidden_size") { $0["hidden_size"] = nil }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func missingArchitectures(name: String) throws {
        try Self.expectConfigError(name, missing: true, key: "architectures") { $0["architectures"] = nil }
        try Self.expectConfigError(name, missing: true, key: "architectures") { $0["architectures"] = .null }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func otherMissingKeys() throws {
        try Self.expectConfigError(missing: true, key: "num_experts_per_tok") { $0["num_experts_per_tok"] = nil }
        try Self.expectConfigError(missing: true, key: "moe_intermediate_size") { $0["moe_intermediate_size"] = nil }
        try Self.expectConfigError(missing: true, key: "num_key_value_heads") { $0["num_key_value_heads"] = nil }
        try Self.expectConfigError("mixtral-tiny-f32", missing: true, key: "num_local_experts' or 'num_experts") { $0["num_local_experts"] = nil }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: true, key: "kv_lora_rank") { $0["kv_lora_rank"] = nil }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: true, key: "n_routed_experts") { $0["n_routed_experts"] = .null }
        // DeepSeek's first layer is dense, so intermediate_size is needed.
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: true, key: "intermediate_size") { $0["intermediate_size"] = nil }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func wrongTypes() throws {
        try Self.expectConfigError(missing: false, key: "hidden_size") { $0["hidden_size"] = .string("128") }
        try Self.expectConfigError(missing: false, key: "num_hidden_layers") { $0["num_hidden_layers"] = .bool(true) }
        try Self.expectConfigError(missing: false, key: "vocab_size") { $0["vocab_size"] = .number(2048.5) }
        try Self.expectConfigError(missing: false, key: "num_attention_heads") { $0["num_attention_heads"] = .array([.number(4)]) }
        try Self.expectConfigError(missing: false, key: "rms_norm_eps") { $0["rms_norm_eps"] = .string("1e-6") }
        try Self.expectConfigError(missing: false, key: "tie_word_embeddings") { $0["tie_word_embeddings"] = .number(0) }
        try Self.expectConfigError(missing: false, key: "norm_topk_prob") { $0["norm_topk_prob"] = .string("true") }
        try Self.expectConfigError(missing: false, key: "eos_token_id") { $0["eos_token_id"] = .string("</s>") }
        try Self.expectConfigError(missing: false, key: "mlp_only_layers") { $0["mlp_only_layers"] = .array([.string("0")]) }
        try Self.expectConfigError(missing: false, key: "rope_parameters") { $0["rope_parameters"] = .string("fast") }
        try Self.expectConfigError(missing: false, key: "rope_theta") {
            $0["rope_parameters"] = .object(["rope_type": .string("default"), "rope_theta": .bool(true)])
        }
        try Self.expectConfigError(missing: false, key: "rope_scaling.rope_type") {
            $0["rope_parameters"] = .object(["rope_type": .string("dynamic"), "rope_theta": .number(10000), "factor": .number(2)])
        }
        try Self.expectConfigError(missing: false, key: "architectures") { $0["architectures"] = .string("Qwen3MoeForCausalLM") }
        try Self.expectConfigError(missing: false, key: "architectures") { $0["architectures"] = .array([]) }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "scoring_func") { $0["scoring_func"] = .string("relu") }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "topk_method") { $0["topk_method"] = .string("random") }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "q_lora_rank") { $0["q_lora_rank"] = .string("64") }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func badValues() throws {
        try Self.expectConfigError(missing: false, key: "hidden_size") { $0["hidden_size"] = .number(-128) }
        try Self.expectConfigError(missing: false, key: "vocab_size") { $0["vocab_size"] = .number(0) }
        try Self.expectConfigError(missing: false, key: "num_hidden_layers") { $0["num_hidden_layers"] = .number(-3) }
        try Self.expectConfigError(missing: false, key: "num_attention_heads") { $0["num_attention_heads"] = .number(0) }
        try Self.expectConfigError(missing: false, key: "num_key_value_heads") { $0["num_key_value_heads"] = .number(0) }
        try Self.expectConfigError(missing: false, key: "num_key_value_heads") { $0["num_key_value_heads"] = .number(3) }
        try Self.expectConfigError(missing: false, key: "num_experts_per_tok") { $0["num_experts_per_tok"] = .number(17) }
        try Self.expectConfigError(missing: false, key: "num_experts_per_tok") { $0["num_experts_per_tok"] = .number(0) }
        try Self.expectConfigError(missing: false, key: "head_dim") { $0["head_dim"] = .number(-32) }
        try Self.expectConfigError(missing: false, key: "rms_norm_eps") { $0["rms_norm_eps"] = .number(-1e-6) }
        try Self.expectConfigError(missing: false, key: "hidden_size") { $0["hidden_size"] = .number(1e12) }
        try Self.expectConfigError(missing: false, key: "decoder_sparse_step") { $0["decoder_sparse_step"] = .number(0) }
        try Self.expectConfigError(missing: false, key: "rope_theta") {
            $0["rope_parameters"] = .object(["rope_type": .string("default"), "rope_theta": .number(0.5)])
        }
        try Self.expectConfigError(missing: false, key: "rope_scaling.factor") {
            $0["rope_parameters"] = .object(["rope_type": .string("yarn"), "rope_theta": .number(10000), "factor": .number(0.5)])
        }
        try Self.expectConfigError("mixtral-tiny-f32", missing: false, key: "num_experts_per_tok") { $0["num_experts_per_tok"] = .number(9) }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "num_experts_per_tok") { $0["num_experts_per_tok"] = .number(17) }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "n_group") { $0["n_group"] = .number(3) }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "n_group") { $0["topk_group"] = .number(5) }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "q_lora_rank") { $0["q_lora_rank"] = .number(0) }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "qk_rope_head_dim") { $0["qk_rope_head_dim"] = .number(15) }
        try Self.expectConfigError("deepseek-v3-tiny-f32", missing: false, key: "moe_layer_freq") { $0["moe_layer_freq"] = .number(0) }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func unsupportedArchitecture() throws {
        let dir = try Self.editedConfig { $0["architectures"] = .array([.string("GptOssForCausalLM")]) }
        guard let error = Self.loadError(dir.url) else { return }
        #expect(error == .unsupportedArchitecture(file: dir.configURL.path, architecture: "GptOssForCausalLM",
                                                  supported: ModelConfig.supportedArchitectures))
        Self.expectNames(error, dir.configURL.path, "GptOssForCausalLM", "Qwen3MoeForCausalLM")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func configMissing() throws {
        let dir = try TempDirectory()
        try ConfigTestSupport.linkWeights(of: Self.base, into: dir.url)
        guard let error = Self.loadError(dir.url) else { return }
        guard case .io(dir.configURL.path, _) = error else {
            Issue.record("expected .io naming \(dir.configURL.path), got \(error)")
            return
        }
        Self.expectNames(error, "config.json")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: ["", "not json", "{\"architectures\": [\"Qwen3MoeForCausalLM\"], ", "[1, 2, 3]", "null", "\"config\"", "{} {}", "\u{FEFF}\u{FFFE}"])
    func configNotJSONOrNotAnObject(text: String) throws {
        let dir = try TempDirectory()
        try ConfigTestSupport.linkWeights(of: Self.base, into: dir.url)
        try Data(text.utf8).write(to: dir.configURL)
        guard let error = Self.loadError(dir.url) else { return }
        guard case .invalidConfig(dir.configURL.path, "<document>", _) = error else {
            Issue.record("expected .invalidConfig(<document>) naming \(dir.configURL.path), got \(error)")
            return
        }
        Self.expectNames(error, dir.configURL.path)
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func configIsADirectory() throws {
        let dir = try TempDirectory()
        try ConfigTestSupport.linkWeights(of: Self.base, into: dir.url)
        try FileManager.default.createDirectory(at: dir.configURL, withIntermediateDirectories: false)
        guard let error = Self.loadError(dir.url) else { return }
        guard case .io(dir.configURL.path, _) = error else {
            Issue.record("expected .io naming \(dir.configURL.path), got \(error)")
            return
        }
    }

    // MARK: Config and weights disagree

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func configSizesDisagreeWithWeights() throws {
        do {
            let dir = try Self.editedConfig { $0["hidden_size"] = .number(256) }
            if let error = Self.loadError(dir.url) {
                #expect(error == .shapeMismatch(file: dir.file(Checkpoint.singleFileName).path, tensor: "model.embed_tokens.weight",
                                                expected: [2048, 256], found: [2048, 128]))
            }
        }
        do {
            let dir = try Self.editedConfig { $0["num_hidden_layers"] = .number(4) }
            if let error = Self.loadError(dir.url) {
                guard case let .missingTensor(file, tensor) = error else {
                    Issue.record("expected .missingTensor, got \(error)")
                    return
                }
                #expect(file == dir.file(Checkpoint.singleFileName).path)
                #expect(tensor.hasPrefix("model.layers.3."))
            }
        }
        do {
            let dir = try Self.editedConfig { $0["num_hidden_layers"] = .number(2) }
            if let error = Self.loadError(dir.url) {
                guard case let .unexpectedTensor(_, tensor) = error else {
                    Issue.record("expected .unexpectedTensor, got \(error)")
                    return
                }
                #expect(tensor.hasPrefix("model.layers.2."))
            }
        }
        do {
            // The router is loaded first and has one row per expert.
            let dir = try Self.editedConfig { $0["num_local_experts"] = .number(8) }
            if let error = Self.loadError(dir.url) {
                #expect(error == .shapeMismatch(file: dir.file(Checkpoint.singleFileName).path, tensor: "model.layers.0.mlp.gate.weight",
                                                expected: [8, 128], found: [16, 128]))
            }
        }
        do {
            let dir = try Self.editedConfig("deepseek-v3-tiny-f32") { $0["q_lora_rank"] = .null }
            if let error = Self.loadError(dir.url) {
                guard case let .missingTensor(_, tensor) = error else {
                    Issue.record("expected .missingTensor, got \(error)")
                    return
                }
                #expect(tensor == "model.layers.0.self_attn.q_proj.weight")
            }
        }
    }
}
