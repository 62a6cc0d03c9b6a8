import Testing
@testable import EbbBench

@Suite struct CompletionStreamTests {
    func chunk(_ text: String, finish: String? = nil) -> SSEEvent {
        let f = finish.map { "\"\($0)\"" } ?? "null"
        return SSEEvent(data: "{\"id\":\"c\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"\(text)\",\"finish_reason\":\(f)}],\"usage\":null}")
    }

    @Test func timesTokensAndUsesUsage() {
        var t = CompletionStreamTimer()
        t.consume(chunk("a"), at: 0.5)
        t.consume(chunk(""), at: 0.75)  // a token whose text is held back
        t.consume(chunk("b"), at: 1.0)
        t.consume(chunk("", finish: "length"), at: 1.1)  // only ends the choice
        t.consume(SSEEvent(data: "{\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3,\"total_tokens\":7}}"), at: 1.2)
        t.consume(SSEEvent(data: "[DONE]"), at: 1.25)
        let r = t.result(promptTokens: 4, latency: 1.5)
        #expect(r.success)
        #expect(r.error == nil)
        #expect(r.ttft == 0.5)
        #expect(r.itl == [0.25, 0.25])
        #expect(r.outputTokens == 3)
        #expect(r.tpot == (1.5 - 0.5) / 2)
        #expect(t.text == "ab")
    }

    @Test func countsChunksWithoutUsage() {
        var t = CompletionStreamTimer()
        t.consume(chunk("x"), at: 0.1)
        t.consume(chunk("y", finish: "length"), at: 0.2)
        t.consume(SSEEvent(data: "[DONE]"), at: 0.2)
        let r = t.result(promptTokens: 1, latency: 0.3)
        #expect(r.success && r.outputTokens == 2)
    }

    @Test func chatDeltas() {
        var t = CompletionStreamTimer()
        t.consume(SSEEvent(data: "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}"), at: 0.1)
        t.consume(SSEEvent(data: "{\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}"), at: 0.2)
        t.consume(SSEEvent(data: "[DONE]"), at: 0.3)
        let r = t.result(promptTokens: 1, latency: 0.3)
        #expect(r.success && r.ttft == 0.2 && r.outputTokens == 1)
    }

    @Test func failures() {
        var missingDone = CompletionStreamTimer()
        missingDone.consume(chunk("a"), at: 0.1)
        #expect(missingDone.result(promptTokens: 1, latency: 1).error == "stream ended without data: [DONE]")

        var noTokens = CompletionStreamTimer()
        noTokens.consume(SSEEvent(data: "[DONE]"), at: 0.1)
        #expect(noTokens.result(promptTokens: 1, latency: 1).error == "stream carried no tokens")

        var malformed = CompletionStreamTimer()
        malformed.consume(SSEEvent(data: "{\"choices\": [tru"), at: 0.1)
        malformed.consume(SSEEvent(data: "[DONE]"), at: 0.2)
        let m = malformed.result(promptTokens: 1, latency: 1)
        #expect(!m.success && (m.error ?? "").hasPrefix("malformed stream chunk"))

        var serverError = CompletionStreamTimer()
        serverError.consume(chunk("a"), at: 0.1)
        serverError.consume(SSEEvent(data: "{\"error\":{\"message\":\"engine died\",\"code\":500}}"), at: 0.2)
        serverError.consume(SSEEvent(data: "[DONE]"), at: 0.3)
        #expect(serverError.result(promptTokens: 1, latency: 1).error == "server error in stream: engine died")
    }

    @Test func requestBodyCarriesTheOpenAIFields() throws {
        let body = try ServeBenchmark.requestBody(model: "m", prompt: [3, 4], maxTokens: 5)
        let text = String(decoding: body, as: UTF8.self)
        for needle in ["\"model\":\"m\"", "\"prompt\":[3,4]", "\"max_tokens\":5", "\"ignore_eos\":true", "\"stream\":true",
                       "\"include_usage\":true", "\"temperature\":0"] {
            #expect(text.contains(needle), "\(needle) in \(text)")
        }
    }
}
