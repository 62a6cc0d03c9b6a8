import EbbCore
import EbbTensor
import Foundation

/// Models embedded in the binary: random weights from a fixed seed and a config written
/// here, so `ebb serve` and `ebb generate` work with no download. Their tokenizer is the
/// byte-level one (`Tokenizer.byteLevel()`: 3 special tokens + 256 bytes).
public enum BuiltinModels {
    public static let prefix = "builtin:"

    /// `builtin:tiny-moe`: a Qwen3-MoE-shaped model with 16 experts (top-4) in 4 layers.
    public static let tinyMoEConfig = """
    {
      "architectures": ["Qwen3MoeForCausalLM"],
      "model_type": "qwen3_moe",
      "vocab_size": 320,
      "hidden_size": 256,
      "num_hidden_layers": 4,
      "num_attention_heads": 4,
      "num_key_value_heads": 2,
      "head_dim": 64,
      "intermediate_size": 512,
      "moe_intermediate_size": 128,
      "num_experts": 16,
      "num_experts_per_tok": 4,
      "norm_topk_prob": true,
      "decoder_sparse_step": 1,
      "mlp_only_layers": [],
      "rms_norm_eps": 1e-6,
      "rope_theta": 1000000.0,
      "rope_scaling": null,
      "max_position_embeddings": 4096,
      "tie_word_embeddings": false,
      "eos_token_id": 2,
      "bos_token_id": null,
      "torch_dtype": "float32"
    }
    """

    public static let names = ["tiny-moe"]

    public static func isBuiltin(_ model: String) -> Bool { model.hasPrefix(prefix) }

    /// The config and weights of `builtin:NAME`.
    public static func resolve(_ model: String) throws -> (config: ModelConfig, weights: any WeightSource) {
        let name = String(model.dropFirst(prefix.count))
        switch name {
        case "tiny-moe":
            let config = try ModelConfig.parse(Data(tinyMoEConfig.utf8), file: "builtin:tiny-moe/config.json")
            // Larger-than-default init so the random model's logits are not flat.
            return (config, RandomWeights(seed: 0xEBB, scale: 0.08, name: model))
        default:
            throw EbbError(.invalidArgument, "unknown builtin model '\(model)' (available: \(names.map { prefix + $0 }.joined(separator: ", ")))")
        }
    }
}
