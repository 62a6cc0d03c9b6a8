import EbbCheckpoint
import EbbTensor
import Foundation

/// The architectures Ebb implements, by the `architectures` name in `config.json`.
public enum Architecture: String, Sendable, CaseIterable {
    case qwen3Moe = "Qwen3MoeForCausalLM"
    case mixtral = "MixtralForCausalLM"
    case deepseekV3 = "DeepseekV3ForCausalLM"
    case deepseekV2 = "DeepseekV2ForCausalLM"
}

/// Routed experts of an MoE layer.
public struct MoEConfig: Sendable, Equatable {
    public var numExperts: Int
    public var topK: Int
    public var intermediateSize: Int
    public var router: RouterConfig
    /// DeepSeek: adds `e_score_correction_bias` to the scores used for choosing.
    public var hasCorrectionBias: Bool
    /// DeepSeek shared experts: one MLP of `numSharedExperts × intermediateSize`.
    public var numSharedExperts: Int
}

/// DeepSeek multi-head latent attention.
public struct MLAConfig: Sendable, Equatable {
    public var qLoraRank: Int?
    public var kvLoraRank: Int
    public var qkNopeHeadDim: Int
    public var qkRopeHeadDim: Int
    public var vHeadDim: Int
    public var qkHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }
}

/// Everything the model code needs from `config.json`, normalized over the transformers-4
/// (`rope_theta`, `rope_scaling`, `num_experts`) and transformers-5 (`rope_parameters`,
/// `num_local_experts`) key styles.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    /// Per-head query/key size for standard attention (DeepSeek: the rope head dim).
    public var headDim: Int
    public var rmsNormEps: Float
    public var tieWordEmbeddings: Bool
    public var maxPositionEmbeddings: Int
    public var eosTokenIds: [Int]
    public var bosTokenId: Int?
    /// Intermediate size of dense (non-MoE) MLP layers.
    public var intermediateSize: Int
    public var moe: MoEConfig
    /// Whether each layer's MLP is an MoE block.
    public var moeLayers: [Bool]
    public var rope: RopeParameters
    public var mla: MLAConfig?
    /// Softmax scale of attention (includes DeepSeek's YaRN mscale²).
    public var attentionScale: Float
    /// Qwen3: RMSNorm on each query and key head.
    public var qkNorm: Bool
    /// The dtype named in the config (`dtype` or `torch_dtype`), if any.
    public var declaredDType: String?

    public var numMoELayers: Int { moeLayers.filter { $0 }.count }

    public static let supportedArchitectures = Architecture.allCases.map(\.rawValue)

    /// Reads `DIR/config.json`.
    public static func load(directory: URL) throws -> ModelConfig {
        let url = directory.appendingPathComponent("config.json")
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw CheckpointError.io(file: url.path, reason: "cannot read config.json (\(error.localizedDescription))")
        }
        return try parse(data, file: url.path)
    }

    public static func parse(_ data: Data, file: String = "config.json") throws -> ModelConfig {
        let c = try ConfigReader(file: file, data: data)
        let names: [String]
        if let list = c.values["architectures"]?.arrayValue {
            names = list.compactMap(\.stringValue)
        } else {
            names = []
        }
        guard let name = names.first else {
            if c.has("architectures") {
                throw CheckpointError.invalidConfig(file: file, key: "architectures", reason: "expected a list with one architecture name")
            }
            throw CheckpointError.missingConfigKey(file: file, key: "architectures")
        }
        guard let architecture = Architecture(rawValue: name) else {
            throw CheckpointError.unsupportedArchitecture(file: file, architecture: name, supported: supportedArchitectures)
        }
        return try architecture.definition.parseConfig(c)
    }

    // MARK: Shared pieces

    /// Rope theta and scaling from `rope_parameters` (style 5) or `rope_theta` +
    /// `rope_scaling` (style 4).
    static func parseRope(_ c: ConfigReader, dimension: Int, interleaved: Bool, defaultTheta: Double) throws -> RopeParameters {
        let params = try c.object("rope_parameters")
        let scaling = try c.object("rope_scaling")
        let theta = try params?.optionalDouble("rope_theta") ?? c.optionalDouble("rope_theta") ?? defaultTheta
        guard theta > 1, Float(theta).isFinite else {
            throw CheckpointError.invalidConfig(file: c.file, key: "rope_theta", reason: "must be greater than 1 (and finite in f32), found \(theta)")
        }
        // Style 5 keeps the scaling keys inside rope_parameters; style 4 in rope_scaling.
        let source = scaling ?? params
        var kind = RopeParameters.Kind.standard
        if let s = source {
            let type = try s.string("rope_type") ?? s.string("type") ?? "default"
            switch type {
            case "default":
                kind = .standard
            case "linear":
                let factor = try s.double("factor")
                guard factor > 0 else {
                    throw CheckpointError.invalidConfig(file: c.file, key: "rope_scaling.factor", reason: "linear factor must be positive, found \(factor)")
                }
                kind = .linear(factor: factor)
            case "yarn":
                let factor = try s.double("factor")
                guard factor >= 1 else {
                    throw CheckpointError.invalidConfig(file: c.file, key: "rope_scaling.factor", reason: "YaRN factor must be ≥ 1, found \(factor)")
                }
                let maxPositions = try c.has("max_position_embeddings") ? c.positiveInt("max_position_embeddings") : 4096
                let original = try s.has("original_max_position_embeddings") ? s.positiveInt("original_max_position_embeddings") : nil
                kind = .yarn(.init(
                    factor: factor,
                    originalMaxPositionEmbeddings: original ?? maxPositions,
                    betaFast: try s.double("beta_fast", default: 32),
                    betaSlow: try s.double("beta_slow", default: 1),
                    mscale: try s.optionalDouble("mscale"),
                    mscaleAllDim: try s.optionalDouble("mscale_all_dim"),
                    attentionFactor: try s.optionalDouble("attention_factor"),
                    truncate: try s.bool("truncate", default: true)))
            default:
                throw CheckpointError.invalidConfig(file: c.file, key: "rope_scaling.rope_type",
                                                    reason: "unsupported rope type '\(type)' (supported: default, linear, yarn)")
            }
        }
        return RopeParameters(theta: theta, dimension: dimension, kind: kind, interleaved: interleaved)
    }

    static func checkHeads(_ c: ConfigReader, heads: Int, kvHeads: Int) throws {
        guard heads % kvHeads == 0 else {
            throw CheckpointError.invalidConfig(file: c.file, key: "num_key_value_heads",
                                                reason: "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
    }

    /// Qwen3 / Mixtral per-head size: `head_dim`, else hidden / heads; rope needs it even.
    static func headDim(_ c: ConfigReader, hidden: Int, heads: Int) throws -> Int {
        let headDim = try c.has("head_dim") ? c.positiveInt("head_dim") : hidden / heads
        guard headDim > 0, headDim % 2 == 0 else {
            throw CheckpointError.invalidConfig(file: c.file, key: "head_dim",
                                                reason: "must be positive and even, found \(headDim)\(c.has("head_dim") ? "" : " (hidden_size / num_attention_heads)")")
        }
        return headDim
    }

    /// Layer counts above this are rejected (the per-layer tables are built while parsing).
    static let maxLayers = 1 << 16

    static func checkTopK(_ c: ConfigReader, topK: Int, experts: Int) throws {
        guard topK <= experts else {
            throw CheckpointError.invalidConfig(file: c.file, key: "num_experts_per_tok",
                                                reason: "\(topK) is more than the \(experts) experts")
        }
    }

    static func common(_ c: ConfigReader) throws -> (vocab: Int, hidden: Int, layers: Int, heads: Int, eps: Float,
                                                      tie: Bool, maxPos: Int, eos: [Int], bos: Int?, dtype: String?) {
        let eps = try c.double("rms_norm_eps", default: 1e-6)
        guard eps > 0, Float(eps) > 0, Float(eps).isFinite else {
            throw CheckpointError.invalidConfig(file: c.file, key: "rms_norm_eps", reason: "must be positive (and in f32 range), found \(eps)")
        }
        let vocab = try c.positiveInt("vocab_size"), hidden = try c.positiveInt("hidden_size")
        let layers = try c.positiveInt("num_hidden_layers")
        guard layers <= maxLayers else {
            throw CheckpointError.invalidConfig(file: c.file, key: "num_hidden_layers", reason: "too large: \(layers) (at most \(maxLayers))")
        }
        return (vocab, hidden, layers,
                try c.positiveInt("num_attention_heads"), Float(eps), try c.bool("tie_word_embeddings", default: false),
                try c.has("max_position_embeddings") ? c.positiveInt("max_position_embeddings") : 4096, try c.intList("eos_token_id"),
                try c.optionalInt("bos_token_id"), try c.string("dtype") ?? c.string("torch_dtype"))
    }
}
