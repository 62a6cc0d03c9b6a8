import Foundation

/// What `ebb bench serve` runs.
public struct ServeBenchmarkConfig: Sendable, Equatable {
    /// Base URL of the server, e.g. `http://127.0.0.1:8000`.
    public var baseURL: String
    /// Path of the completions endpoint.
    public var endpoint: String
    /// Model name; nil asks `GET /v1/models` and takes the first id.
    public var model: String?
    /// Requests per second of the Poisson arrivals; `.infinity` sends all at once.
    public var requestRate: Double
    public var numPrompts: Int
    public var inputLen: Int
    public var outputLen: Int
    /// At most this many requests in flight; nil for no limit.
    public var maxConcurrency: Int?
    public var seed: UInt64
    /// Prompt token ids are drawn from this range.
    public var tokenIds: Range<Int>
    /// Seconds one request may take, from sending to the end of its stream.
    public var timeout: Double
    /// Percentiles to report besides the median.
    public var percentiles: [Double]

    public init(baseURL: String, endpoint: String = "/v1/completions", model: String? = nil, requestRate: Double = .infinity,
                numPrompts: Int, inputLen: Int, outputLen: Int, maxConcurrency: Int? = nil, seed: UInt64 = 0,
                tokenIds: Range<Int> = 3..<259, timeout: Double = 600, percentiles: [Double] = [99]) {
        self.baseURL = baseURL
        self.endpoint = endpoint
        self.model = model
        self.requestRate = requestRate
        self.numPrompts = numPrompts
        self.inputLen = inputLen
        self.outputLen = outputLen
        self.maxConcurrency = maxConcurrency
        self.seed = seed
        self.tokenIds = tokenIds
        self.timeout = timeout
        self.percentiles = percentiles
    }

    /// Problems with the settings, as messages; empty when the run can start.
    public func validationErrors() -> [String] {
        var errors = [String]()
        if numPrompts < 1 { errors.append("--num-prompts must be at least 1") }
        if inputLen < 1 { errors.append("--input-len must be at least 1") }
        if outputLen < 1 { errors.append("--output-len must be at least 1") }
        if let c = maxConcurrency, c < 1 { errors.append("--max-concurrency must be at least 1") }
        if requestRate.isNaN || requestRate <= 0 { errors.append("--request-rate must be positive or inf") }
        if tokenIds.isEmpty || tokenIds.lowerBound < 0 { errors.append("token id range must be non-empty and non-negative (--min-token-id < --max-token-id)") }
        if !(timeout > 0) || !timeout.isFinite { errors.append("--timeout must be a positive number of seconds") }
        if !endpoint.hasPrefix("/") { errors.append("--endpoint must be a path starting with /") }
        if percentiles.contains(where: { !($0 >= 0 && $0 <= 100) }) { errors.append("percentiles must lie in 0...100") }
        switch Self.parseBaseURL(baseURL) {
        case .success: break
        case .failure(let e): errors.append(e.message)
        }
        return errors
    }

    /// Checks that `url` is an absolute http(s) URL with a host, and drops a trailing `/`.
    public static func parseBaseURL(_ url: String) -> Result<String, BaseURLError> {
        var s = url.trimmingCharacters(in: .whitespaces)
        while s.hasSuffix("/") { s.removeLast() }
        guard let u = URL(string: s), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            return .failure(BaseURLError(message: "--url must be an http:// or https:// URL, got '\(url)'"))
        }
        guard let host = u.host, !host.isEmpty else {
            return .failure(BaseURLError(message: "--url has no host: '\(url)'"))
        }
        return .success(s)
    }

    public struct BaseURLError: Error, Sendable, Equatable { public var message: String }
}
