import EbbTensor

/// What differs between architectures: config keys, tensor names and how a decoder layer
/// is assembled. One conforming type per file in this folder.
protocol ArchitectureDefinition {
    static func parseConfig(_ c: ConfigReader) throws -> ModelConfig
    static func makeLayer(_ index: Int, loader: WeightLoader, config: ModelConfig, rope: RotaryEmbedding,
                          placement: ExpertPlacement?) throws -> DecoderLayer
    static func cacheLayout(_ config: ModelConfig) -> KVCache.Layout
    /// Checkpoint tensors this architecture knowingly does not use.
    static func isIgnored(_ tensor: String, config: ModelConfig) -> Bool
}

extension ArchitectureDefinition {
    static func cacheLayout(_ config: ModelConfig) -> KVCache.Layout { StandardAttention.cacheLayout(config) }

    static func isIgnored(_ tensor: String, config: ModelConfig) -> Bool {
        tensor.hasSuffix("rotary_emb.inv_freq")
    }
}

extension Architecture {
    var definition: any ArchitectureDefinition.Type {
        switch self {
        case .qwen3Moe: return Qwen3Moe.self
        case .mixtral: return Mixtral.self
        case .deepseekV3, .deepseekV2: return DeepseekV3.self
        }
    }
}
