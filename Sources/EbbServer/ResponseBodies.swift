import EbbCore

// The bodies of the OpenAI routes' answers, in the shape vLLM writes them. They become
// JSON through `JSONValueEncoder` (declaration order, snake_case keys, nil as null).
// Logprobs keep their `JSONValue` form: their keys are token texts and ids.

struct Usage: Encodable, Sendable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int

    init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = promptTokens + completionTokens
    }
}

/// `/v1/completions`: the response (`object` "text_completion") and each streamed chunk
/// (the same shape; `usage` null but in the last chunk with `stream_options.include_usage`).
struct Completion: Encodable, Sendable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [CompletionChoice]
    var usage: Usage?
}

struct CompletionChoice: Encodable, Sendable {
    var index: Int
    var text: String
    var logprobs: JSONValue = .null
    var finishReason: String?
    var stopReason: JSONValue = .null
    /// Present only when the request asked for `prompt_logprobs`.
    var promptLogprobs: JSONValue?

    private enum CodingKeys: CodingKey { case index, text, logprobs, finishReason, stopReason, promptLogprobs }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encodeIfPresent(finishReason, forKey: .finishReason)
        try c.encode(stopReason, forKey: .stopReason)
        if let promptLogprobs { try c.encode(promptLogprobs, forKey: .promptLogprobs) }
    }
}

/// `/v1/chat/completions` without streaming.
struct ChatCompletion: Encodable, Sendable {
    struct Message: Encodable, Sendable {
        var role = "assistant"
        var content: String
    }

    struct Choice: Encodable, Sendable {
        var index: Int
        var message: Message
        var logprobs: JSONValue = .null
        var finishReason: String
        var stopReason: JSONValue = .null
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
}

/// One streamed chunk of `/v1/chat/completions` (`usage` as in `Completion`).
struct ChatCompletionChunk: Encodable, Sendable {
    /// The new text, and the role in a choice's first chunk only.
    struct Delta: Encodable, Sendable {
        var role: String?
        var content: String

        private enum CodingKeys: CodingKey { case role, content }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            if let role { try c.encode(role, forKey: .role) }
            try c.encode(content, forKey: .content)
        }
    }

    struct Choice: Encodable, Sendable {
        var index: Int
        var delta: Delta
        var logprobs: JSONValue = .null
        var finishReason: String?
        /// Present in a choice's last chunk only.
        var stopReason: JSONValue?

        private enum CodingKeys: CodingKey { case index, delta, logprobs, finishReason, stopReason }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(logprobs, forKey: .logprobs)
            try c.encodeIfPresent(finishReason, forKey: .finishReason)
            if let stopReason { try c.encode(stopReason, forKey: .stopReason) }
        }
    }

    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
}

/// `POST /tokenize`.
struct TokenizeResult: Encodable, Sendable {
    var count: Int
    var maxModelLen: Int
    var tokens: [Int]
    /// Present only with `return_token_strs`.
    var tokenStrs: [String?]?

    private enum CodingKeys: CodingKey { case count, maxModelLen, tokens, tokenStrs }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count)
        try c.encode(maxModelLen, forKey: .maxModelLen)
        try c.encode(tokens, forKey: .tokens)
        if let tokenStrs { try c.encode(tokenStrs, forKey: .tokenStrs) }
    }
}

/// `POST /detokenize`.
struct DetokenizeResult: Encodable, Sendable {
    var prompt: String
}

/// `GET /v1/models`: the one served model.
struct ModelList: Encodable, Sendable {
    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "ebb"
        var root: String
        var maxModelLen: Int
    }

    var object = "list"
    var data: [Model]
}

/// An error in OpenAI's shape: `{"error": {message, type, param, code}}`.
struct ErrorBody: Encodable, Sendable {
    struct Detail: Encodable, Sendable {
        var message: String
        var type: String
        var param: String?
        var code: Int
    }

    var error: Detail
}
