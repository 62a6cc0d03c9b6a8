import Foundation
import Testing
import EbbCore

@Suite struct SamplingParamsTests {
    @Test func defaultsMatchVLLM() throws {
        let p = SamplingParams()
        #expect(p.n == 1 && p.temperature == 1 && p.topP == 1 && p.topK == 0 && p.minP == 0)
        #expect(p.seed == nil && p.presencePenalty == 0 && p.frequencyPenalty == 0 && p.repetitionPenalty == 1)
        #expect(p.maxTokens == nil && p.minTokens == 0 && p.stop.isEmpty && p.stopTokenIds.isEmpty)
        #expect(!p.ignoreEOS && p.logprobs == nil && p.promptLogprobs == nil)
        #expect(!p.includeStopStrInOutput && p.skipSpecialTokens)
        #expect(!p.isGreedy && p.effectiveTopK == nil)
        #expect(SamplingParams(temperature: 0).isGreedy)
        #expect(SamplingParams(topK: -1).effectiveTopK == nil)
        #expect(SamplingParams(topK: 7).effectiveTopK == 7)
        try p.validate(vocabSize: 100)
    }

    @Test func validEdgeValuesPass() throws {
        try SamplingParams(n: 4, temperature: 0, topP: 1, topK: -1, minP: 1, presencePenalty: -2,
                           frequencyPenalty: 2, repetitionPenalty: 0.01, maxTokens: 1, minTokens: 1,
                           stop: ["x"], stopTokenIds: [0, 99], logprobs: 20, promptLogprobs: 0).validate(vocabSize: 100)
        try SamplingParams(topP: 1e-9, topK: 1).validate(vocabSize: nil)
        try SamplingParams(logprobs: 50).validate(vocabSize: nil, maxLogprobs: 50)
    }

    static let bad: [(SamplingParams, String)] = [
        (SamplingParams(n: 0), "n:"),
        (SamplingParams(temperature: -0.1), "temperature:"),
        (SamplingParams(temperature: .nan), "temperature:"),
        (SamplingParams(temperature: .infinity), "temperature:"),
        (SamplingParams(topP: 0), "top_p:"),
        (SamplingParams(topP: 1.01), "top_p:"),
        (SamplingParams(topP: .nan), "top_p:"),
        (SamplingParams(topK: -2), "top_k:"),
        (SamplingParams(minP: -0.01), "min_p:"),
        (SamplingParams(minP: 1.5), "min_p:"),
        (SamplingParams(minP: .nan), "min_p:"),
        (SamplingParams(presencePenalty: 2.5), "presence_penalty:"),
        (SamplingParams(presencePenalty: -2.01), "presence_penalty:"),
        (SamplingParams(presencePenalty: .infinity), "presence_penalty:"),
        (SamplingParams(frequencyPenalty: -3), "frequency_penalty:"),
        (SamplingParams(frequencyPenalty: .nan), "frequency_penalty:"),
        (SamplingParams(repetitionPenalty: 0), "repetition_penalty:"),
        (SamplingParams(repetitionPenalty: -1), "repetition_penalty:"),
        (SamplingParams(repetitionPenalty: .infinity), "repetition_penalty:"),
        (SamplingParams(maxTokens: 0), "max_tokens:"),
        (SamplingParams(minTokens: -1), "min_tokens:"),
        (SamplingParams(maxTokens: 3, minTokens: 4), "min_tokens:"),
        (SamplingParams(stop: ["ok", ""]), "stop:"),
        (SamplingParams(stopTokenIds: [-1]), "stop_token_ids:"),
        (SamplingParams(stopTokenIds: [100]), "stop_token_ids:"),
        (SamplingParams(logprobs: -1), "logprobs:"),
        (SamplingParams(logprobs: 21), "logprobs:"),
        (SamplingParams(promptLogprobs: -1), "prompt_logprobs:"),
        (SamplingParams(promptLogprobs: 21), "prompt_logprobs:"),
    ]

    @Test(arguments: 0..<bad.count)
    func invalidFieldIsRejected(_ i: Int) {
        let (params, prefix) = Self.bad[i]
        do {
            try params.validate(vocabSize: 100)
            Issue.record("expected \(prefix) to be rejected")
        } catch let e as EbbError {
            #expect(e.code == .invalidArgument)
            #expect(e.message.hasPrefix(prefix), "\(e.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func stopTokenIdsUncheckedWithoutVocab() throws {
        try SamplingParams(stopTokenIds: [1_000_000]).validate(vocabSize: nil)
    }

    @Test func codableRoundTripAndPartialDecode() throws {
        let p = SamplingParams(n: 2, temperature: 0.3, topP: 0.9, topK: 40, minP: 0.05, seed: 7,
                               presencePenalty: 0.5, frequencyPenalty: -0.5, repetitionPenalty: 1.1,
                               maxTokens: 64, minTokens: 2, stop: ["\n\n"], stopTokenIds: [5],
                               ignoreEOS: true, logprobs: 3, promptLogprobs: 1,
                               includeStopStrInOutput: true, skipSpecialTokens: false)
        let data = try JSONEncoder().encode(p)
        #expect(try JSONDecoder().decode(SamplingParams.self, from: data) == p)

        let partial = try JSONDecoder().decode(SamplingParams.self, from: Data(#"{"temperature":0,"seed":3}"#.utf8))
        var expected = SamplingParams(temperature: 0)
        expected.seed = 3
        #expect(partial == expected)
        #expect(try JSONDecoder().decode(SamplingParams.self, from: Data("{}".utf8)) == SamplingParams())
    }

    @Test func finishReasonRawValues() throws {
        #expect(FinishReason.stop.rawValue == "stop")
        #expect(FinishReason.length.rawValue == "length")
        #expect(FinishReason.abort.rawValue == "abort")
        let data = try JSONEncoder().encode([FinishReason.length])
        #expect(String(decoding: data, as: UTF8.self) == #"["length"]"#)
    }
}
