/// What one benchmark request measured. Times are in seconds.
public struct RequestResult: Sendable, Equatable {
    public var success: Bool
    /// Prompt length in tokens.
    public var promptTokens: Int
    /// Generated tokens: the server's `usage.completion_tokens` when it sent one, else the
    /// number of content chunks.
    public var outputTokens: Int
    /// Time from sending the request to the first content chunk.
    public var ttft: Double
    /// Gaps between successive content chunks.
    public var itl: [Double]
    /// Time from sending the request to the end of the response.
    public var latency: Double
    /// Why the request failed; nil on success.
    public var error: String?

    public init(success: Bool, promptTokens: Int, outputTokens: Int, ttft: Double, itl: [Double], latency: Double, error: String?) {
        self.success = success
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.ttft = ttft
        self.itl = itl
        self.latency = latency
        self.error = error
    }

    public static func failure(promptTokens: Int, latency: Double, error: String) -> RequestResult {
        RequestResult(success: false, promptTokens: promptTokens, outputTokens: 0, ttft: 0, itl: [], latency: latency, error: error)
    }

    /// Time per output token after the first: (latency − TTFT) / (tokens − 1); nil for
    /// fewer than two tokens.
    public var tpot: Double? {
        outputTokens > 1 ? (latency - ttft) / Double(outputTokens - 1) : nil
    }
}
