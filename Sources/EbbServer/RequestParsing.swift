import EbbCore
import Foundation

/// Typed reads of a JSON request body; every wrong type or range is a 400 naming the field.
struct BodyReader {
    let fields: [String: JSONValue]

    init(_ body: JSONValue) throws(APIError) {
        guard let object = body.objectValue else {
            throw .badRequest("the request body must be a JSON object, got \(body.kindDescription)")
        }
        fields = object
    }

    func present(_ key: String) -> JSONValue? {
        guard let v = fields[key], !v.isNull else { return nil }
        return v
    }

    func string(_ key: String) throws(APIError) -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v.stringValue else { throw .badRequest("'\(key)' must be a string", param: key) }
        return s
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let v = present(key) else { return nil }
        guard let b = v.boolValue else { throw .badRequest("'\(key)' must be a boolean", param: key) }
        return b
    }

    func int(_ key: String, min: Int? = nil, max: Int? = nil) throws(APIError) -> Int? {
        guard let v = present(key) else { return nil }
        guard let i = v.intValue else { throw .badRequest("'\(key)' must be an integer", param: key) }
        if let min, i < min { throw .badRequest("'\(key)' must be at least \(min), got \(i)", param: key) }
        if let max, i > max { throw .badRequest("'\(key)' must be at most \(max), got \(i)", param: key) }
        return i
    }

    func double(_ key: String) throws(APIError) -> Double? {
        guard let v = present(key) else { return nil }
        guard let d = v.doubleValue, d.isFinite else { throw .badRequest("'\(key)' must be a number", param: key) }
        return d
    }

    /// A string or a list of strings (`stop`).
    func strings(_ key: String) throws(APIError) -> [String] {
        guard let v = present(key) else { return [] }
        if let s = v.stringValue { return [s] }
        guard let list = v.arrayValue else { throw .badRequest("'\(key)' must be a string or a list of strings", param: key) }
        var result = [String]()
        for item in list {
            guard let s = item.stringValue else { throw .badRequest("'\(key)' must be a string or a list of strings", param: key) }
            result.append(s)
        }
        return result
    }

    func ints(_ key: String) throws(APIError) -> [Int] {
        guard let v = present(key) else { return [] }
        guard let list = v.arrayValue else { throw .badRequest("'\(key)' must be a list of integers", param: key) }
        var result = [Int]()
        for item in list {
            guard let i = item.intValue else { throw .badRequest("'\(key)' must be a list of integers", param: key) }
            result.append(i)
        }
        return result
    }
}

/// The options a completion or chat request carries besides its prompt.
struct GenerationOptions {
    var model: String?
    var params: SamplingParams
    var n: Int
    var stream: Bool
    var includeUsage: Bool
    /// Top logprobs per generated token (nil = none).
    var logprobs: Int?
    var echo: Bool
    var returnTokensAsTokenIds: Bool
    /// vLLM's `priority`: lower runs first; FCFS within a priority.
    var priority: Int = 0

    /// Reads the sampling fields shared by both endpoints (vLLM's extra fields included).
    static func parse(_ r: BodyReader, chat: Bool) throws(APIError) -> GenerationOptions {
        var p = SamplingParams()
        let maxCompletionTokens = try r.int("max_completion_tokens", min: 1, max: 1 << 30)
        let maxTokens = try r.int("max_tokens", min: 1, max: 1 << 30)
        // OpenAI's and vLLM's default: 16 tokens for completions, the rest of the context for chat.
        p.maxTokens = maxCompletionTokens ?? maxTokens ?? (chat ? nil : 16)
        if let v = try r.double("temperature") { p.temperature = v }
        if let v = try r.double("top_p") { p.topP = v }
        if let v = try r.int("top_k", min: -1, max: 1 << 30) { p.topK = v }
        if let v = try r.double("min_p") { p.minP = v }
        if let v = try r.int("seed") { p.seed = UInt64(bitPattern: Int64(v)) }
        if let v = try r.double("presence_penalty") { p.presencePenalty = v }
        if let v = try r.double("frequency_penalty") { p.frequencyPenalty = v }
        if let v = try r.double("repetition_penalty") { p.repetitionPenalty = v }
        p.stop = try r.strings("stop")
        p.stopTokenIds = try r.ints("stop_token_ids")
        if let v = try r.bool("ignore_eos") { p.ignoreEOS = v }
        if let v = try r.int("min_tokens", min: 0, max: 1 << 30) { p.minTokens = v }
        if let v = try r.bool("skip_special_tokens") { p.skipSpecialTokens = v }
        if let v = try r.bool("include_stop_str_in_output") { p.includeStopStrInOutput = v }
        let n = try r.int("n", min: 1, max: 128) ?? 1
        var logprobs: Int?
        if chat {
            if try r.bool("logprobs") == true {
                logprobs = try r.int("top_logprobs", min: 0, max: SamplingParams.defaultMaxLogprobs) ?? 0
            } else if r.present("top_logprobs") != nil {
                throw .badRequest("'top_logprobs' needs 'logprobs': true", param: "top_logprobs")
            }
        } else {
            logprobs = try r.int("logprobs", min: 0, max: SamplingParams.defaultMaxLogprobs)
        }
        p.logprobs = logprobs
        if let v = try r.int("prompt_logprobs", min: 0, max: SamplingParams.defaultMaxLogprobs) { p.promptLogprobs = v }
        let echo = chat ? false : (try r.bool("echo") ?? false)
        if echo, let lp = logprobs, p.promptLogprobs == nil { p.promptLogprobs = lp }
        let stream = try r.bool("stream") ?? false
        var includeUsage = false
        if let options = r.present("stream_options") {
            guard let o = options.objectValue else { throw .badRequest("'stream_options' must be an object", param: "stream_options") }
            if let value = o["include_usage"], !value.isNull {
                guard let b = value.boolValue else {
                    throw .badRequest("'stream_options.include_usage' must be a boolean", param: "stream_options")
                }
                includeUsage = b
            }
        }
        p.n = n
        let priority = try r.int("priority", min: -(1 << 30), max: 1 << 30) ?? 0
        var options = GenerationOptions(model: try r.string("model"), params: p, n: n, stream: stream, includeUsage: includeUsage,
                                 logprobs: logprobs, echo: echo,
                                 returnTokensAsTokenIds: try r.bool("return_tokens_as_token_ids") ?? false)
        options.priority = priority
        return options
    }
}

/// A completion prompt: text, or token ids.
enum PromptInput {
    case text(String)
    case tokens([Int])

    /// `prompt` as a string, a list of strings, a list of ids, or a list of id lists.
    static func parse(_ r: BodyReader) throws(APIError) -> [PromptInput] {
        guard let v = r.present("prompt") else { throw .badRequest("'prompt' is required", param: "prompt") }
        if let s = v.stringValue { return [.text(s)] }
        guard let list = v.arrayValue, !list.isEmpty else {
            throw .badRequest("'prompt' must be a string, a list of strings, a list of token ids or a list of token-id lists", param: "prompt")
        }
        if list.allSatisfy({ $0.stringValue != nil }) { return list.compactMap(\.stringValue).map(PromptInput.text) }
        if list.allSatisfy({ $0.intValue != nil }) { return [.tokens(list.compactMap(\.intValue))] }
        var prompts = [PromptInput]()
        for item in list {
            guard let inner = item.arrayValue, !inner.isEmpty, inner.allSatisfy({ $0.intValue != nil }) else {
                throw .badRequest("'prompt' must be a string, a list of strings, a list of token ids or a list of token-id lists", param: "prompt")
            }
            prompts.append(.tokens(inner.compactMap(\.intValue)))
        }
        return prompts
    }
}
