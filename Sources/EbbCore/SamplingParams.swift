/// Why a sequence stopped generating (OpenAI's `finish_reason`).
public enum FinishReason: String, Sendable, Codable, Equatable {
    /// End of sequence, a stop token id, or a stop string.
    case stop
    /// `maxTokens` reached, or the model's context length.
    case length
    /// Cancelled by the client or the system.
    case abort
}

/// Per-request sampling parameters, modelled on vLLM's `SamplingParams`.
///
/// Defaults match vLLM except `maxTokens`, which is `nil` ("until the context is full")
/// rather than 16; the API layer applies the OpenAI defaults it wants.
///
/// Codable uses the Swift property names as keys (camelCase). Decoding accepts any subset
/// of the keys: a missing key takes the default below. The HTTP layer maps OpenAI's
/// snake_case fields onto this type itself.
public struct SamplingParams: Sendable, Equatable, Codable {
    /// Number of output sequences (choices) for the prompt.
    public var n: Int
    /// Softmax temperature. `0` (anything below 1e-5) means greedy.
    public var temperature: Double
    /// Nucleus sampling: keep the smallest set of tokens whose cumulative probability is ≥ `topP`. `1` = off.
    public var topP: Double
    /// Keep the `topK` most likely tokens. `0` or `-1` = off.
    public var topK: Int
    /// Drop tokens whose probability is below `minP` × the top token's probability. `0` = off.
    public var minP: Double
    /// Seed for this request's random stream; `nil` draws one from the system RNG.
    public var seed: UInt64?
    /// Subtracted once from the logit of every token that already appears in the output.
    public var presencePenalty: Double
    /// Subtracted from a token's logit once per occurrence in the output.
    public var frequencyPenalty: Double
    /// Tokens seen in the prompt or output: positive logits divided by it, negative multiplied. `1` = off.
    public var repetitionPenalty: Double
    /// Maximum number of generated tokens; `nil` = until the context length.
    public var maxTokens: Int?
    /// EOS and `stopTokenIds` cannot end the output before this many tokens.
    public var minTokens: Int
    /// Strings that stop generation; the stop string itself is not returned unless `includeStopStrInOutput`.
    public var stop: [String]
    /// Token ids that stop generation (in addition to EOS).
    public var stopTokenIds: [Int]
    /// Keep generating after EOS.
    public var ignoreEOS: Bool
    /// Number of top log-probabilities returned per generated token (`0` = only the sampled token's); `nil` = none.
    public var logprobs: Int?
    /// Number of top log-probabilities returned per prompt token; `nil` = none.
    public var promptLogprobs: Int?
    /// Keep a matched stop string in the returned text.
    public var includeStopStrInOutput: Bool
    /// Drop special tokens when detokenizing.
    public var skipSpecialTokens: Bool

    /// The default cap on `logprobs` / `promptLogprobs` (vLLM's `max_logprobs`).
    public static let defaultMaxLogprobs = 20
    /// Temperatures below this are greedy (vLLM's `_SAMPLING_EPS`).
    public static let greedyEpsilon = 1e-5

    public init(
        n: Int = 1,
        temperature: Double = 1.0,
        topP: Double = 1.0,
        topK: Int = 0,
        minP: Double = 0.0,
        seed: UInt64? = nil,
        presencePenalty: Double = 0.0,
        frequencyPenalty: Double = 0.0,
        repetitionPenalty: Double = 1.0,
        maxTokens: Int? = nil,
        minTokens: Int = 0,
        stop: [String] = [],
        stopTokenIds: [Int] = [],
        ignoreEOS: Bool = false,
        logprobs: Int? = nil,
        promptLogprobs: Int? = nil,
        includeStopStrInOutput: Bool = false,
        skipSpecialTokens: Bool = true
    ) {
        self.n = n
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.minP = minP
        self.seed = seed
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.repetitionPenalty = repetitionPenalty
        self.maxTokens = maxTokens
        self.minTokens = minTokens
        self.stop = stop
        self.stopTokenIds = stopTokenIds
        self.ignoreEOS = ignoreEOS
        self.logprobs = logprobs
        self.promptLogprobs = promptLogprobs
        self.includeStopStrInOutput = includeStopStrInOutput
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Greedy (argmax) decoding: `temperature` below `greedyEpsilon`.
    public var isGreedy: Bool { temperature < Self.greedyEpsilon }

    /// `topK` as a count, or `nil` when off (`0`, `-1`).
    public var effectiveTopK: Int? { topK >= 1 ? topK : nil }

    /// Checks every field against vLLM's ranges.
    ///
    /// - Parameters:
    ///   - vocabSize: when given, `stopTokenIds` must lie in `0..<vocabSize`.
    ///   - maxLogprobs: the largest `logprobs` / `promptLogprobs` accepted.
    /// - Throws: `EbbError(.invalidArgument, "<field>: <reason>")` for the first bad field.
    public func validate(vocabSize: Int? = nil, maxLogprobs: Int = SamplingParams.defaultMaxLogprobs) throws {
        func bad(_ field: String, _ reason: String) -> EbbError {
            EbbError(.invalidArgument, "\(field): \(reason)")
        }
        if n < 1 { throw bad("n", "must be at least 1, got \(n)") }
        if !temperature.isFinite { throw bad("temperature", "must be finite, got \(temperature)") }
        if temperature < 0 { throw bad("temperature", "must be non-negative, got \(temperature)") }
        if !topP.isFinite { throw bad("top_p", "must be finite, got \(topP)") }
        if !(topP > 0 && topP <= 1) { throw bad("top_p", "must be in (0, 1], got \(topP)") }
        if topK < -1 { throw bad("top_k", "must be -1 or 0 (disabled) or at least 1, got \(topK)") }
        if !minP.isFinite { throw bad("min_p", "must be finite, got \(minP)") }
        if !(minP >= 0 && minP <= 1) { throw bad("min_p", "must be in [0, 1], got \(minP)") }
        if !presencePenalty.isFinite { throw bad("presence_penalty", "must be finite, got \(presencePenalty)") }
        if !(presencePenalty >= -2 && presencePenalty <= 2) {
            throw bad("presence_penalty", "must be in [-2, 2], got \(presencePenalty)")
        }
        if !frequencyPenalty.isFinite { throw bad("frequency_penalty", "must be finite, got \(frequencyPenalty)") }
        if !(frequencyPenalty >= -2 && frequencyPenalty <= 2) {
            throw bad("frequency_penalty", "must be in [-2, 2], got \(frequencyPenalty)")
        }
        if !repetitionPenalty.isFinite { throw bad("repetition_penalty", "must be finite, got \(repetitionPenalty)") }
        if !(repetitionPenalty > 0) {
            throw bad("repetition_penalty", "must be greater than zero, got \(repetitionPenalty)")
        }
        if let maxTokens, maxTokens < 1 { throw bad("max_tokens", "must be at least 1, got \(maxTokens)") }
        if minTokens < 0 { throw bad("min_tokens", "must be non-negative, got \(minTokens)") }
        if let maxTokens, minTokens > maxTokens {
            throw bad("min_tokens", "must be less than or equal to max_tokens=\(maxTokens), got \(minTokens)")
        }
        for s in stop where s.isEmpty { throw bad("stop", "cannot contain an empty string") }
        for id in stopTokenIds {
            if id < 0 { throw bad("stop_token_ids", "must be non-negative, got \(id)") }
            if let vocabSize, id >= vocabSize {
                throw bad("stop_token_ids", "token id \(id) is out of vocabulary (size \(vocabSize))")
            }
        }
        if let logprobs {
            if logprobs < 0 { throw bad("logprobs", "must be non-negative, got \(logprobs)") }
            if logprobs > maxLogprobs { throw bad("logprobs", "must be at most \(maxLogprobs), got \(logprobs)") }
        }
        if let promptLogprobs {
            if promptLogprobs < 0 { throw bad("prompt_logprobs", "must be non-negative, got \(promptLogprobs)") }
            if promptLogprobs > maxLogprobs {
                throw bad("prompt_logprobs", "must be at most \(maxLogprobs), got \(promptLogprobs)")
            }
        }
    }

    // MARK: Codable with defaults for missing keys

    private enum CodingKeys: String, CodingKey {
        case n, temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty, repetitionPenalty
        case maxTokens, minTokens, stop, stopTokenIds, ignoreEOS, logprobs, promptLogprobs
        case includeStopStrInOutput, skipSpecialTokens
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SamplingParams()
        n = try c.decodeIfPresent(Int.self, forKey: .n) ?? d.n
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature) ?? d.temperature
        topP = try c.decodeIfPresent(Double.self, forKey: .topP) ?? d.topP
        topK = try c.decodeIfPresent(Int.self, forKey: .topK) ?? d.topK
        minP = try c.decodeIfPresent(Double.self, forKey: .minP) ?? d.minP
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty) ?? d.presencePenalty
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty) ?? d.frequencyPenalty
        repetitionPenalty = try c.decodeIfPresent(Double.self, forKey: .repetitionPenalty) ?? d.repetitionPenalty
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        minTokens = try c.decodeIfPresent(Int.self, forKey: .minTokens) ?? d.minTokens
        stop = try c.decodeIfPresent([String].self, forKey: .stop) ?? d.stop
        stopTokenIds = try c.decodeIfPresent([Int].self, forKey: .stopTokenIds) ?? d.stopTokenIds
        ignoreEOS = try c.decodeIfPresent(Bool.self, forKey: .ignoreEOS) ?? d.ignoreEOS
        logprobs = try c.decodeIfPresent(Int.self, forKey: .logprobs)
        promptLogprobs = try c.decodeIfPresent(Int.self, forKey: .promptLogprobs)
        includeStopStrInOutput =
            try c.decodeIfPresent(Bool.self, forKey: .includeStopStrInOutput) ?? d.includeStopStrInOutput
        skipSpecialTokens = try c.decodeIfPresent(Bool.self, forKey: .skipSpecialTokens) ?? d.skipSpecialTokens
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(n, forKey: .n)
        try c.encode(temperature, forKey: .temperature)
        try c.encode(topP, forKey: .topP)
        try c.encode(topK, forKey: .topK)
        try c.encode(minP, forKey: .minP)
        try c.encodeIfPresent(seed, forKey: .seed)
        try c.encode(presencePenalty, forKey: .presencePenalty)
        try c.encode(frequencyPenalty, forKey: .frequencyPenalty)
        try c.encode(repetitionPenalty, forKey: .repetitionPenalty)
        try c.encodeIfPresent(maxTokens, forKey: .maxTokens)
        try c.encode(minTokens, forKey: .minTokens)
        try c.encode(stop, forKey: .stop)
        try c.encode(stopTokenIds, forKey: .stopTokenIds)
        try c.encode(ignoreEOS, forKey: .ignoreEOS)
        try c.encodeIfPresent(logprobs, forKey: .logprobs)
        try c.encodeIfPresent(promptLogprobs, forKey: .promptLogprobs)
        try c.encode(includeStopStrInOutput, forKey: .includeStopStrInOutput)
        try c.encode(skipSpecialTokens, forKey: .skipSpecialTokens)
    }
}
