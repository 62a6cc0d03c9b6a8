import EbbCore
import Testing
@testable import EbbServer

@Suite("Response bodies through JSONValueEncoder")
struct ResponseBodiesTests {
    @Test("declaration order, snake_case keys, nil as null, keys a type leaves out stay out")
    func completionChunk() throws {
        let chunk = Completion(id: "cmpl-1", created: 7, model: "m",
                               choices: [CompletionChoice(index: 0, text: "hi\n\"x\"")])
        #expect(try JSONValueEncoder.encode(chunk).serialized() ==
            #"{"id":"cmpl-1","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":"hi\n\"x\"","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}"#)
        var done = CompletionChoice(index: 1, text: "", finishReason: "stop", stopReason: .int(5))
        done.promptLogprobs = .array([.null])
        let last = Completion(id: "c", created: 1, model: "m", choices: [done], usage: Usage(promptTokens: 3, completionTokens: 2))
        let json = try JSONValueEncoder.encode(last)
        #expect(json["choices"]?.arrayValue?.first?["prompt_logprobs"] == .array([.null]))
        #expect(json["choices"]?.arrayValue?.first?["stop_reason"]?.intValue == 5)
        #expect(json["usage"]?["total_tokens"]?.intValue == 5)
    }

    @Test("a chat chunk names the role only when it has one; nested structs and optional arrays")
    func chatChunk() throws {
        let first = ChatCompletionChunk(id: "x", created: 1, model: "m",
                                        choices: [.init(index: 0, delta: .init(role: "assistant", content: "a"))])
        let later = ChatCompletionChunk(id: "x", created: 1, model: "m", choices: [.init(index: 0, delta: .init(content: "b"))])
        #expect(try JSONValueEncoder.encode(first)["choices"]?.arrayValue?.first?["delta"]?.serialized() == #"{"role":"assistant","content":"a"}"#)
        #expect(try JSONValueEncoder.encode(later)["choices"]?.arrayValue?.first?["delta"]?.serialized() == #"{"content":"b"}"#)
        #expect(try JSONValueEncoder.encode(later)["choices"]?.arrayValue?.first?["stop_reason"] == nil)
        let tokens = TokenizeResult(count: 2, maxModelLen: 64, tokens: [1, 2], tokenStrs: ["a", nil])
        #expect(try JSONValueEncoder.encode(tokens).serialized() == #"{"count":2,"max_model_len":64,"tokens":[1,2],"token_strs":["a",null]}"#)
    }

    @Test("floats keep their short form; an error body has OpenAI's shape")
    func floatsAndErrors() throws {
        struct P: Encodable { var logprob: Float; var weight: Double }
        #expect(try JSONValueEncoder.encode(P(logprob: 0.1, weight: 0.5)).serialized() == #"{"logprob":0.1,"weight":0.5}"#)
        let e = APIError.badRequest("bad", param: "x").json
        #expect(e.serialized() == #"{"error":{"message":"bad","type":"BadRequestError","param":"x","code":400}}"#)
    }
}
