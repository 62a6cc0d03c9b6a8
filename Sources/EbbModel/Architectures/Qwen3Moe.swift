// Qwen3MoeForCausalLM — checked against transformers 5.17 `modeling_qwen3_moe.py`
// (logits of ../shared/fixtures/qwen3-moe-tiny-{f32,bf16} to 1e-4 of max |logit|).
import EbbCheckpoint
import EbbTensor

enum Qwen3Moe: ArchitectureDefinition {
    // MARK: Attention: q/k/v/o projections, RMSNorm on each q and k head, neox rope, GQA.

    static func attentionNames(_ p: String) -> StandardAttention.Names {
        .init(q: p + "self_attn.q_proj.weight", k: p + "self_attn.k_proj.weight",
              v: p + "self_attn.v_proj.weight", o: p + "self_attn.o_proj.weight",
              qNorm: p + "self_attn.q_norm.weight", kNorm: p + "self_attn.k_norm.weight")
    }

    // MARK: MLP (layers in `mlp_only_layers` or off the sparse step)

    static func denseMLP(_ loader: WeightLoader, _ p: String, _ config: ModelConfig) throws -> DenseMLP {
        try DenseMLP(loader, gate: p + "mlp.gate_proj.weight", up: p + "mlp.up_proj.weight",
                     down: p + "mlp.down_proj.weight", hidden: config.hiddenSize, intermediate: config.intermediateSize)
    }

    // MARK: MoE block: softmax router, top-k, optional renormalization (`norm_topk_prob`).

    static func moeNames(_ p: String) -> MoENames {
        MoENames(router: p + "mlp.gate.weight", correctionBias: nil,
                 expert: { e in (p + "mlp.experts.\(e).gate_proj.weight", p + "mlp.experts.\(e).up_proj.weight",
                                 p + "mlp.experts.\(e).down_proj.weight") },
                 shared: nil)
    }

    // MARK: Decoder layer

    static func makeLayer(_ index: Int, loader: WeightLoader, config: ModelConfig, rope: RotaryEmbedding,
                          placement: ExpertPlacement?) throws -> DecoderLayer {
        let p = "model.layers.\(index)."
        let ff: FeedForward
        if config.moeLayers[index] {
            let placement = placement ?? ExpertPlacement.single(numExperts: config.moe.numExperts)
            ff = .moe(try MoEBlock(loader, names: moeNames(p), config: config.moe, hidden: config.hiddenSize, placement: placement))
        } else {
            ff = .dense(try denseMLP(loader, p, config))
        }
        return DecoderLayer(
            inputNorm: try RMSNorm(loader, p + "input_layernorm.weight", size: config.hiddenSize, eps: config.rmsNormEps),
            attention: .standard(try StandardAttention(loader, names: attentionNames(p), config: config, rope: rope)),
            postAttentionNorm: try RMSNorm(loader, p + "post_attention_layernorm.weight", size: config.hiddenSize, eps: config.rmsNormEps),
            feedForward: ff)
    }

    // MARK: Configuration

    static func parseConfig(_ c: ConfigReader) throws -> ModelConfig {
        let base = try ModelConfig.common(c)
        let kvHeads = try c.positiveInt("num_key_value_heads")
        try ModelConfig.checkHeads(c, heads: base.heads, kvHeads: kvHeads)
        let headDim = try ModelConfig.headDim(c, hidden: base.hidden, heads: base.heads)
        let experts = try c.positiveInt("num_experts", "num_local_experts")
        let topK = try c.positiveInt("num_experts_per_tok")
        try ModelConfig.checkTopK(c, topK: topK, experts: experts)
        let sparseStep = try c.int("decoder_sparse_step", default: 1)
        guard sparseStep >= 1 else {
            throw CheckpointError.invalidConfig(file: c.file, key: "decoder_sparse_step", reason: "must be at least 1, found \(sparseStep)")
        }
        let mlpOnly = Set(try c.intList("mlp_only_layers"))
        let moeLayers = (0..<base.layers).map { i in !mlpOnly.contains(i) && (i + 1) % sparseStep == 0 }
        let anyDense = moeLayers.contains(false)
        return ModelConfig(
            architecture: .qwen3Moe, vocabSize: base.vocab, hiddenSize: base.hidden, numLayers: base.layers,
            numHeads: base.heads, numKVHeads: kvHeads, headDim: headDim, rmsNormEps: base.eps,
            tieWordEmbeddings: base.tie, maxPositionEmbeddings: base.maxPos, eosTokenIds: base.eos, bosTokenId: base.bos,
            intermediateSize: anyDense || c.has("intermediate_size") ? try c.positiveInt("intermediate_size") : 0,
            moe: MoEConfig(numExperts: experts, topK: topK, intermediateSize: try c.positiveInt("moe_intermediate_size"),
                           router: RouterConfig(scoring: .softmax, topK: topK, normalize: try c.bool("norm_topk_prob", default: false)),
                           hasCorrectionBias: false, numSharedExperts: 0),
            moeLayers: moeLayers,
            rope: try ModelConfig.parseRope(c, dimension: headDim, interleaved: false, defaultTheta: 10000),
            mla: nil, attentionScale: 1 / Float(headDim).squareRoot(), qkNorm: true, declaredDType: base.dtype)
    }
}
