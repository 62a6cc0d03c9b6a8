import EbbCore
import EbbEngine
import EbbJinja
import EbbSampling
import EbbTokenizer
import Foundation
import Hummingbird
import NIOCore

extension OpenAIServer {
    /// Renders `messages` with the chat template into token ids.
    func chatPromptIds(_ r: BodyReader) throws -> [Int] {
        guard let template = chatTemplate else {
            throw APIError.badRequest("this model has no chat template; use /v1/completions")
        }
        guard let messages = r.present("messages")?.arrayValue, !messages.isEmpty else {
            throw APIError.badRequest("'messages' must be a non-empty list of messages", param: "messages")
        }
        for (i, m) in messages.enumerated() {
            guard let o = m.objectValue, o["role"]?.stringValue != nil else {
                throw APIError.badRequest("messages[\(i)] must be an object with a string 'role'", param: "messages")
            }
            if let content = o["content"], !content.isNull, content.stringValue == nil, content.arrayValue == nil {
                throw APIError.badRequest("messages[\(i)].content must be a string, a list of parts, or null", param: "messages")
            }
        }
        let addGenerationPrompt = try r.bool("add_generation_prompt") ?? true
        let continueFinal = try r.bool("continue_final_message") ?? false
        var extra = [String: JinjaValue]()
        if let kwargs = r.present("chat_template_kwargs") {
            guard let o = kwargs.objectValue else {
                throw APIError.badRequest("'chat_template_kwargs' must be an object", param: "chat_template_kwargs")
            }
            for (k, v) in o { extra[k] = JinjaValue(v) }
        }
        var tools: [JinjaValue]?
        switch r.present("tools") {
        case nil, .null?: tools = nil
        case .array(let list)?: tools = list.map { JinjaValue($0) }
        default: throw APIError.badRequest("'tools' must be a list", param: "tools")
        }
        // The request's values go to the template as they are (no JSON text round trip).
        let text = try template.render(messages: messages.map { JinjaValue(Self.flattenContent($0)) },
                                       addGenerationPrompt: addGenerationPrompt && !continueFinal, tools: tools,
                                       continueFinalMessage: continueFinal, extraContext: extra)
        // The template already writes any BOS it wants; adding special tokens again would double it.
        return tokenizer.encode(text, addSpecialTokens: false)
    }

    /// A message whose content is a list of text parts gets the parts joined, as vLLM
    /// does for templates that expect string content.
    static func flattenContent(_ message: JSONValue) -> JSONValue {
        guard var o = message.objectValue, let parts = o["content"]?.arrayValue else { return message }
        let texts = parts.compactMap { part -> String? in
            if let s = part.stringValue { return s }
            guard part["type"]?.stringValue == "text" else { return nil }
            return part["text"]?.stringValue
        }
        o["content"] = .string(texts.joined(separator: "\n"))
        return .object(o)
    }

    /// `POST /v1/chat/completions`.
    func chatCompletions(_ body: JSONValue, channel: any Channel) async throws -> Response {
        let r = try BodyReader(body)
        let options = try GenerationOptions.parse(r, chat: true)
        try checkModel(options)
        let ids = try chatPromptIds(r)
        try checkLength(ids, options)
        try validateParams(options)
        let job = GenerationJob(requestId: Self.newId("chatcmpl"), prompts: [ids], options: options,
                                eosTokenIds: eosTokenIds, arrivalTime: Date().timeIntervalSince1970)
        let id = job.requestId, created = Int(Date().timeIntervalSince1970), model = modelName
        if options.stream {
            return streamResponse(job) { [self] event, state in
                var delta = ChatCompletionChunk.Delta(content: event.textDelta)
                if !state.sentRole.contains(event.index) {
                    state.sentRole.insert(event.index)
                    delta.role = "assistant"
                }
                var choice = ChatCompletionChunk.Choice(index: event.index, delta: delta)
                if let n = options.logprobs {
                    choice.logprobs = chatLogprobs(event.logprobs, topN: n, asIds: options.returnTokensAsTokenIds)
                }
                if let reason = event.finishReason {
                    choice.finishReason = reason.rawValue
                    choice.stopReason = stopReasonJSON(event.stopReason)
                }
                return ChatCompletionChunk(id: id, created: created, model: model, choices: [choice])
            } usageChunk: { usage in
                options.includeUsage ? ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: usage) : nil
            }
        }
        return try await respondWhenDone(channel) { [self] in
        let result = try await collect(job)
        let choices = result.choices.map { c in
            ChatCompletion.Choice(index: c.index, message: .init(content: c.text),
                                  logprobs: options.logprobs.map { chatLogprobs(c.logprobs, topN: $0, asIds: options.returnTokensAsTokenIds) } ?? .null,
                                  finishReason: c.finishReason.rawValue, stopReason: stopReasonJSON(c.stopReason))
        }
        return try JSONValueEncoder.encode(ChatCompletion(id: id, created: created, model: model, choices: choices, usage: result.usage))
        }
    }

    /// Chat logprobs: `{"content": [{token, logprob, bytes, top_logprobs: [...]}]}`.
    func chatLogprobs(_ entries: [TokenLogprobs], topN: Int, asIds: Bool) -> JSONValue {
        func item(_ id: Int, _ logprob: Float) -> [String: JSONValue] {
            let bytes = tokenizer.tokenBytes(for: id) ?? Array(tokenText(id, asIds: false).utf8)
            return ["token": .string(tokenText(id, asIds: asIds)), "logprob": .float(max(logprob, -9999)),
                    "bytes": .array(bytes.map { .int(Int($0)) })]
        }
        return .object(["content": .array(entries.map { e in
            var o = item(e.tokenId, e.logprob)
            o["top_logprobs"] = .array(e.top.prefix(topN).map { .object(item($0.tokenId, $0.logprob)) })
            return .object(o)
        })])
    }

    /// `POST /tokenize`: `{"prompt": text}` or `{"messages": [...]}` → token ids.
    func tokenizeRoute(_ body: JSONValue) throws -> Response {
        let r = try BodyReader(body)
        if let m = try r.string("model"), m != modelName {
            throw APIError(.notFound, "The model `\(m)` does not exist.", param: "model")
        }
        let ids: [Int]
        if r.present("messages") != nil {
            ids = try chatPromptIds(r)
        } else if let prompt = try r.string("prompt") {
            ids = tokenizer.encode(prompt)
        } else {
            throw APIError.badRequest("give 'prompt' (a string) or 'messages'", param: "prompt")
        }
        let strings = try r.bool("return_token_strs") == true ? ids.map { tokenizer.token(for: $0) } : nil
        return try Self.json(JSONValueEncoder.encode(TokenizeResult(count: ids.count, maxModelLen: engine.maxModelLen, tokens: ids,
                                                                   tokenStrs: strings)))
    }

    /// `POST /detokenize`: `{"tokens": [ids]}` → `{"prompt": text}`.
    func detokenizeRoute(_ body: JSONValue) throws -> Response {
        let r = try BodyReader(body)
        guard r.present("tokens") != nil else { throw APIError.badRequest("'tokens' is required", param: "tokens") }
        let ids = try r.ints("tokens")
        if let bad = ids.first(where: { $0 < 0 || $0 >= engine.vocabSize }) {
            throw APIError.badRequest("token id \(bad) is outside the vocabulary (0..<\(engine.vocabSize))", param: "tokens")
        }
        return try Self.json(JSONValueEncoder.encode(DetokenizeResult(prompt: tokenizer.decode(ids))))
    }
}
