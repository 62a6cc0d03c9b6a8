import Foundation
import Testing
import EbbTensor

/// Expected values printed by `scripts/yarn_reference.py` (repository root) (it calls
/// `transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS["yarn"]` with `DeepseekV3Config`
/// and `GptOssConfig` built from the published config.json rope settings).
/// Versions as printed by the script:
enum HFYarnReference {
    // transformers 5.24.0, torch 2.15.0+cu132
    // deepseekV3
    static let deepseekV3AttentionFactor: Double = 1.0
    static let deepseekV3: [Float] = [
        1.000000000e+00, 7.498942018e-01, 5.623413324e-01, 4.216965139e-01,
        3.162277639e-01, 2.371373624e-01, 1.778279394e-01, 1.333521456e-01,
        1.000000015e-01, 7.498941571e-02, 5.623412877e-02, 3.900692612e-02,
        2.687936090e-02, 1.837814413e-02, 1.244795602e-02, 8.334509097e-03,
        5.500000436e-03, 3.561997321e-03, 2.249365207e-03, 1.370513462e-03,
        7.905694074e-04, 4.149904125e-04, 1.778279402e-04, 3.333803397e-05,
        2.499999937e-05, 1.874735426e-05, 1.405853254e-05, 1.054241238e-05,
        7.905694474e-06, 5.928434348e-06, 4.445698323e-06, 3.333803534e-06,
    ]
    // gptOss
    static let gptOssAttentionFactor: Double = 1.3465735902799727
    static let gptOss: [Float] = [
        1.000000000e+00, 6.890442967e-01, 4.747820497e-01, 3.271458745e-01,
        2.254180014e-01, 1.553229839e-01, 1.070244238e-01, 7.374456525e-02,
        5.081327260e-02, 3.170569614e-02, 1.933499984e-02, 1.159204915e-02,
        6.794959307e-03, 3.860359080e-03, 2.093792660e-03, 1.052602194e-03,
        4.564839182e-04, 1.293186942e-04, 3.830881178e-05, 2.639646846e-05,
        1.818833698e-05, 1.253256960e-05, 8.635495760e-06, 5.950239483e-06,
        4.099978469e-06, 2.825066758e-06, 1.946596285e-06, 1.341290954e-06,
        9.242089618e-07, 6.368209142e-07, 4.387978549e-07, 3.023511397e-07,
    ]
    // mscaleRatio
    static let mscaleRatioAttentionFactor: Double = 1.1557219901962608
    static let mscaleRatio: [Float] = [
        1.000000000e+00, 7.498942018e-01, 5.623413324e-01, 4.216965139e-01,
        3.162277639e-01, 2.371373624e-01, 1.778279394e-01, 1.333521456e-01,
        1.000000015e-01, 7.498941571e-02, 5.623412877e-02, 3.900692612e-02,
        2.687936090e-02, 1.837814413e-02, 1.244795602e-02, 8.334509097e-03,
        5.500000436e-03, 3.561997321e-03, 2.249365207e-03, 1.370513462e-03,
        7.905694074e-04, 4.149904125e-04, 1.778279402e-04, 3.333803397e-05,
        2.499999937e-05, 1.874735426e-05, 1.405853254e-05, 1.054241238e-05,
        7.905694474e-06, 5.928434348e-06, 4.445698323e-06, 3.333803534e-06,
    ]
}

@Suite struct RotaryTests {
    @Test(arguments: [(10000.0, 64), (1_000_000.0, 128), (500_000.0, 6), (10000.0, 2)])
    func defaultInverseFrequencies(_ theta: Double, _ dim: Int) {
        let (values, factor) = RopeParameters(theta: theta, dimension: dim).inverseFrequencies()
        // numpy: 1.0 / theta ** (np.arange(0, dim, 2) / dim)
        let expected = stride(from: 0, to: dim, by: 2).map { 1 / pow(theta, Double($0) / Double(dim)) }
        #expect(factor == 1)
        expectClose(values, expected, atol: 0, rtol: 1e-6)
    }

    @Test func linearScalingDividesByFactor() {
        let (values, factor) = RopeParameters(theta: 10000, dimension: 32, kind: .linear(factor: 8)).inverseFrequencies()
        let expected = stride(from: 0, to: 32, by: 2).map { 1 / pow(10000, Double($0) / 32) / 8 }
        #expect(factor == 1)
        expectClose(values, expected, atol: 0, rtol: 1e-6)
    }

    private func check(_ p: RopeParameters, _ expected: [Float], _ expectedFactor: Double,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        let (values, factor) = p.inverseFrequencies()
        #expect(values.count == expected.count, sourceLocation: sourceLocation)
        expectClose(values, expected.map(Double.init), atol: 0, rtol: 1e-6, "inv_freq", sourceLocation: sourceLocation)
        #expect(abs(Double(factor) - expectedFactor) <= 1e-6 * expectedFactor,
                "attention factor \(factor) vs \(expectedFactor)", sourceLocation: sourceLocation)
    }

    /// DeepSeek-V3: theta 10000, qk_rope_head_dim 64, factor 40, original 4096,
    /// beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 1 (layout does not matter).
    @Test(arguments: [false, true])
    func yarnDeepSeekV3MatchesTransformers(_ interleaved: Bool) {
        let p = RopeParameters(theta: 10000, dimension: 64,
                               kind: .yarn(.init(factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1,
                                                 mscale: 1, mscaleAllDim: 1)),
                               interleaved: interleaved)
        check(p, HFYarnReference.deepseekV3, HFYarnReference.deepseekV3AttentionFactor)
    }

    /// gpt-oss: theta 150000, head_dim 64, factor 32, original 4096, truncate false, no
    /// mscale (attention factor 0.1·ln 32 + 1).
    @Test func yarnGptOssMatchesTransformers() {
        let p = RopeParameters(theta: 150_000, dimension: 64,
                               kind: .yarn(.init(factor: 32, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1,
                                                 truncate: false)))
        check(p, HFYarnReference.gptOss, HFYarnReference.gptOssAttentionFactor)
        #expect(abs(HFYarnReference.gptOssAttentionFactor - (0.1 * log(32) + 1)) < 1e-12)
    }

    /// mscale ≠ mscale_all_dim: attention factor is the ratio of the two corrections.
    @Test func yarnMscaleRatioMatchesTransformers() {
        let p = RopeParameters(theta: 10000, dimension: 64,
                               kind: .yarn(.init(factor: 40, originalMaxPositionEmbeddings: 4096, mscale: 1, mscaleAllDim: 0.5)))
        check(p, HFYarnReference.mscaleRatio, HFYarnReference.mscaleRatioAttentionFactor)
    }

    /// An explicit attention_factor wins over the mscale formula.
    @Test func yarnExplicitAttentionFactor() {
        let p = RopeParameters(theta: 10000, dimension: 64,
                               kind: .yarn(.init(factor: 40, originalMaxPositionEmbeddings: 4096, mscale: 1, mscaleAllDim: 0.5,
                                                 attentionFactor: 0.75)))
        let (values, factor) = p.inverseFrequencies()
        #expect(factor == 0.75)
        expectClose(values, HFYarnReference.mscaleRatio.map(Double.init), atol: 0, rtol: 1e-6)
    }

    @Test func rotaryEmbeddingUploadsFrequencies() throws {
        let backend = makeBackend()
        let p = RopeParameters(theta: 150_000, dimension: 64,
                               kind: .yarn(.init(factor: 32, originalMaxPositionEmbeddings: 4096, truncate: false)))
        let rotary = try RotaryEmbedding(parameters: p, backend: backend)
        #expect(rotary.inverseFrequencies.shape == [32])
        #expect(backend.downloadFloats(rotary.inverseFrequencies) == p.inverseFrequencies().values)
        #expect(rotary.attentionFactor == p.inverseFrequencies().attentionFactor)
    }
}
