// MixtralForCausalLM — checked against transformers 5.17 `modeling_mixtral.py`
// (logits of ../shared/fixtures/mixtral-tiny-{f32,bf16} to 1e-4 of max |logit|).
import EbbCheckpoint
import EbbTensor

enum Mixtral: ArchitectureDefinition {
    // MARK: Attention: q/k/v/o projections, neox rope, GQA, no q/k norm.

    static func attentionNames(_ p: String) -> StandardAttention.Names {
        .init(q: p + "self_attn.q_proj.weight", k: p + "self_attn.k_proj.weight",
              v: p + "self_attn.v_proj.weight", o: p + "self_attn.o_proj.weight", qNorm: nil, kNorm: nil)
    }

    // MARK: MLP: every Mixtral layer is sparse; experts are w1 (gate), w3 (up), w2 (down).

    // MARK: MoE block: softmax over all experts, top-k, always renormalized.

    static func moeNames(_ p: String) -> MoENames {
        MoENames(router: p + "block_sparse_moe.gate.weight", correctionBias: nil,
                 expert: { e in (p + "block_sparse_moe.experts.\(e).w1.weight", p + "block_sparse_moe.experts.\(e).w3.weight",
                                 p + "block_sparse_moe.experts.\(e).w2.weight") },
                 shared: nil)
    }

    // MARK: Decoder layer

    static func makeLayer(_ index: Int, loader: WeightLoader, config: ModelConfig, rope: RotaryEmbedding,
                          placement: ExpertPlacement?) throws -> DecoderLayer {
        let p = "model.layers.\(index)."
        let placement = placement ?? ExpertPlacement.single(numExperts: config.moe.numExperts)
        return DecoderLayer(
            inputNorm: try RMSNorm(loader, p + "input_layernorm.weight", size: config.hiddenSize, eps: config.rmsNormEps),
            attention: .standard(try StandardAttention(loader, names: attentionNames(p), config: config, rope: rope)),
            postAttentionNorm: try RMSNorm(loader, p + "post_attention_layernorm.weight", size: config.hiddenSize, eps: config.rmsNormEps),
            feedForward: .moe(try MoEBlock(loader, names: moeNames(p), config: config.moe, hidden: config.hiddenSize, placement: placement)))
    }

    // MARK: Configuration

    static func parseConfig(_ c: ConfigReader) throws -> ModelConfig {
        let base = try ModelConfig.common(c)
        let kvHeads = try c.positiveInt("num_key_value_heads")
        try ModelConfig.checkHeads(c, heads: base.heads, kvHeads: kvHeads)
        let headDim = try ModelConfig.headDim(c, hidden: base.hidden, heads: base.heads)
        let experts = try c.positiveInt("num_local_experts", "num_experts")
        let topK = try c.positiveInt("num_experts_per_tok")
        try ModelConfig.checkTopK(c, topK: topK, experts: experts)
        let inter = try c.positiveInt("intermediate_size")
        return ModelConfig(
            architecture: .mixtral, vocabSize: base.vocab, hiddenSize: base.hidden, numLayers: base.layers,
            numHeads: base.heads, numKVHeads: kvHeads, headDim: headDim, rmsNormEps: base.eps,
            tieWordEmbeddings: base.tie, maxPositionEmbeddings: base.maxPos, eosTokenIds: base.eos, bosTokenId: base.bos,
            intermediateSize: inter,
            moe: MoEConfig(numExperts: experts, topK: topK, intermediateSize: inter,
                           router: RouterConfig(scoring: .softmax, topK: topK, normalize: true),
                           hasCorrectionBias: false, numSharedExperts: 0),
            moeLayers: Array(repeating: true, count: base.layers),
            rope: try ModelConfig.parseRope(c, dimension: headDim, interleaved: false, defaultTheta: 1_000_000),
            mla: nil, attentionScale: 1 / Float(headDim).squareRoot(), qkNorm: false, declaredDType: base.dtype)
    }
}
