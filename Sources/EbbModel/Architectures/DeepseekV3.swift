// DeepseekV3ForCausalLM (and DeepseekV2ForCausalLM, which differs only in its routing
// defaults) — checked against transformers 5.17 `modeling_deepseek_v3.py`
// (logits of ../shared/fixtures/deepseek-v3-tiny-{f32,bf16} to 1e-4 of max |logit|).
import EbbCheckpoint
import EbbTensor

enum DeepseekV3: ArchitectureDefinition {
    // MARK: Attention: MLA with optional q LoRA, interleaved rope, latent KV cache.

    static func attentionNames(_ p: String, qLora: Bool) -> LatentAttention.Names {
        let a = p + "self_attn."
        return .init(qA: qLora ? a + "q_a_proj.weight" : nil, qANorm: qLora ? a + "q_a_layernorm.weight" : nil,
                     qB: qLora ? a + "q_b_proj.weight" : nil, q: qLora ? nil : a + "q_proj.weight",
                     kvA: a + "kv_a_proj_with_mqa.weight", kvANorm: a + "kv_a_layernorm.weight",
                     kvB: a + "kv_b_proj.weight", o: a + "o_proj.weight")
    }

    static func cacheLayout(_ config: ModelConfig) -> KVCache.Layout {
        guard let mla = config.mla else { return StandardAttention.cacheLayout(config) }
        return LatentAttention.cacheLayout(mla)
    }

    // MARK: MLP: the first `first_k_dense_replace` layers are dense.

    static func denseMLP(_ loader: WeightLoader, _ p: String, _ config: ModelConfig) throws -> DenseMLP {
        try DenseMLP(loader, gate: p + "mlp.gate_proj.weight", up: p + "mlp.up_proj.weight",
                     down: p + "mlp.down_proj.weight", hidden: config.hiddenSize, intermediate: config.intermediateSize)
    }

    // MARK: MoE block: sigmoid scores + correction bias for choosing, group-limited top-k,
    // weights from the unbiased scores, renormalized, × routed_scaling_factor; shared experts.

    static func moeNames(_ p: String, config: ModelConfig) -> MoENames {
        MoENames(router: p + "mlp.gate.weight",
                 correctionBias: config.moe.hasCorrectionBias ? p + "mlp.gate.e_score_correction_bias" : nil,
                 expert: { e in (p + "mlp.experts.\(e).gate_proj.weight", p + "mlp.experts.\(e).up_proj.weight",
                                 p + "mlp.experts.\(e).down_proj.weight") },
                 shared: (p + "mlp.shared_experts.gate_proj.weight", p + "mlp.shared_experts.up_proj.weight",
                          p + "mlp.shared_experts.down_proj.weight"))
    }

    // MARK: Decoder layer

    static func makeLayer(_ index: Int, loader: WeightLoader, config: ModelConfig, rope: RotaryEmbedding,
                          placement: ExpertPlacement?) throws -> DecoderLayer {
        let p = "model.layers.\(index)."
        guard let mla = config.mla else { preconditionFailure("DeepSeek config without MLA") }
        let ff: FeedForward
        if config.moeLayers[index] {
            let placement = placement ?? ExpertPlacement.single(numExperts: config.moe.numExperts)
            ff = .moe(try MoEBlock(loader, names: moeNames(p, config: config), config: config.moe,
                                   hidden: config.hiddenSize, placement: placement))
        } else {
            ff = .dense(try denseMLP(loader, p, config))
        }
        return DecoderLayer(
            inputNorm: try RMSNorm(loader, p + "input_layernorm.weight", size: config.hiddenSize, eps: config.rmsNormEps),
            attention: .latent(try LatentAttention(loader, names: attentionNames(p, qLora: mla.qLoraRank != nil),
                                                   config: config, mla: mla, rope: rope)),
            postAttentionNorm: try RMSNorm(loader, p + "post_attention_layernorm.weight", size: config.hiddenSize, eps: config.rmsNormEps),
            feedForward: ff)
    }

    /// Multi-token-prediction layers (`model.layers.N…` for N ≥ num_hidden_layers) are not
    /// used for plain decoding.
    static func isIgnored(_ tensor: String, config: ModelConfig) -> Bool {
        if tensor.hasSuffix("rotary_emb.inv_freq") { return true }
        let prefix = "model.layers."
        guard tensor.hasPrefix(prefix) else { return false }
        let rest = tensor.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let index = Int(rest[rest.startIndex..<dot]) else { return false }
        return index >= config.numLayers
    }

    // MARK: Configuration

    static func parseConfig(_ c: ConfigReader) throws -> ModelConfig {
        let isV3 = try c.string("model_type") != "deepseek_v2" && !(c.values["architectures"]?.arrayValue?.first?.stringValue == Architecture.deepseekV2.rawValue)
        let base = try ModelConfig.common(c)
        let kvHeads = try c.has("num_key_value_heads") ? c.positiveInt("num_key_value_heads") : base.heads
        let qLora = try c.has("q_lora_rank") ? c.positiveInt("q_lora_rank") : nil
        let mla = MLAConfig(qLoraRank: qLora, kvLoraRank: try c.positiveInt("kv_lora_rank"),
                            qkNopeHeadDim: try c.positiveInt("qk_nope_head_dim"), qkRopeHeadDim: try c.positiveInt("qk_rope_head_dim"),
                            vHeadDim: try c.positiveInt("v_head_dim"))
        guard mla.qkRopeHeadDim % 2 == 0 else {
            throw CheckpointError.invalidConfig(file: c.file, key: "qk_rope_head_dim", reason: "must be even, found \(mla.qkRopeHeadDim)")
        }
        let experts = try c.positiveInt("n_routed_experts")
        let topK = try c.positiveInt("num_experts_per_tok")
        try ModelConfig.checkTopK(c, topK: topK, experts: experts)
        let firstDense = try c.int("first_k_dense_replace", default: 0)
        let frequency = try c.int("moe_layer_freq", default: 1)
        guard frequency >= 1, firstDense >= 0 else {
            throw CheckpointError.invalidConfig(file: c.file, key: "moe_layer_freq", reason: "must be ≥ 1 (and first_k_dense_replace ≥ 0)")
        }
        let moeLayers = (0..<base.layers).map { $0 >= firstDense && $0 % frequency == 0 }
        let scoringName = try c.string("scoring_func") ?? (isV3 ? "sigmoid" : "softmax")
        guard let scoring = RouterConfig.Scoring(rawValue: scoringName) else {
            throw CheckpointError.invalidConfig(file: c.file, key: "scoring_func", reason: "expected 'sigmoid' or 'softmax', found '\(scoringName)'")
        }
        let method = try c.string("topk_method") ?? (isV3 ? "noaux_tc" : "greedy")
        guard ["noaux_tc", "greedy", "group_limited_greedy"].contains(method) else {
            throw CheckpointError.invalidConfig(file: c.file, key: "topk_method", reason: "unsupported '\(method)' (supported: noaux_tc, greedy, group_limited_greedy)")
        }
        var groups = try c.int("n_group", default: 1)
        var topKGroups = try c.int("topk_group", default: groups)
        if method == "greedy" {
            groups = 1
            topKGroups = 1
        }
        guard groups >= 1, experts % groups == 0, topKGroups >= 1, topKGroups <= groups,
              topK <= topKGroups * (experts / groups) else {
            throw CheckpointError.invalidConfig(file: c.file, key: "n_group",
                                                reason: "\(groups) groups with topk_group \(topKGroups) cannot route \(topK) of \(experts) experts")
        }
        let rope = try ModelConfig.parseRope(c, dimension: mla.qkRopeHeadDim, interleaved: try c.bool("rope_interleave", default: true),
                                             defaultTheta: 10000)
        var scale = 1 / Float(mla.qkHeadDim).squareRoot()
        if case .yarn(let y) = rope.kind, let mAll = y.mscaleAllDim, mAll != 0 {
            let m = Float(RopeParameters.yarnMscale(y.factor, mAll))
            scale *= m * m
            guard scale.isFinite, scale > 0 else {
                throw CheckpointError.invalidConfig(file: c.file, key: "rope_scaling.mscale_all_dim",
                                                    reason: "gives attention scale \(scale) (mscale_all_dim \(mAll), factor \(y.factor))")
            }
        }
        let scaling = try c.double("routed_scaling_factor", default: isV3 ? 2.5 : 1)
        guard Float(scaling).isFinite else {
            throw CheckpointError.invalidConfig(file: c.file, key: "routed_scaling_factor", reason: "out of f32 range: \(scaling)")
        }
        let shared = try c.int("n_shared_experts", default: 0)
        guard shared >= 0, shared <= 1 << 16 else {
            throw CheckpointError.invalidConfig(file: c.file, key: "n_shared_experts", reason: "must be between 0 and \(1 << 16), found \(shared)")
        }
        let router = RouterConfig(scoring: scoring, topK: topK,
                                  normalize: try c.bool("norm_topk_prob", default: isV3),
                                  numGroups: groups, topKGroups: topKGroups,
                                  groupScoreTopTwo: method == "noaux_tc",
                                  scalingFactor: Float(scaling))
        return ModelConfig(
            architecture: isV3 ? .deepseekV3 : .deepseekV2, vocabSize: base.vocab, hiddenSize: base.hidden,
            numLayers: base.layers, numHeads: base.heads, numKVHeads: kvHeads, headDim: mla.qkRopeHeadDim,
            rmsNormEps: base.eps, tieWordEmbeddings: base.tie, maxPositionEmbeddings: base.maxPos,
            eosTokenIds: base.eos, bosTokenId: base.bos,
            intermediateSize: moeLayers.contains(false) || c.has("intermediate_size") ? try c.positiveInt("intermediate_size") : 0,
            moe: MoEConfig(numExperts: experts, topK: topK, intermediateSize: try c.positiveInt("moe_intermediate_size"),
                           router: router, hasCorrectionBias: method == "noaux_tc",
                           numSharedExperts: shared),
            moeLayers: moeLayers, rope: rope, mla: mla, attentionScale: scale, qkNorm: false, declaredDType: base.dtype)
    }
}
