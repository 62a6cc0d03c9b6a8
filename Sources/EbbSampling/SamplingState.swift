import EbbCore

/// What the sampler needs to know about one request choice between steps.
///
/// One value per choice (a request with `n` = 3 has three). It holds the parameters, the
/// prompt and the output so far (for penalties and `minTokens`), the token counts the
/// penalties use (kept incrementally, so a step costs O(distinct tokens), not O(length)),
/// and the choice's own random generator.
///
/// `Sampler.sample` appends the token it returns; use `append(_:)` only for tokens that
/// did not come from this sampler (for example when a moved request is rebuilt from its
/// prompt and generated tokens — pass them as `outputTokenIds` at init instead where you can).
public struct SamplingState: Sendable, Equatable {
    public let params: SamplingParams
    /// EOS token ids of the model (generation_config may list several).
    public let eosTokenIds: [Int]
    public let promptTokenIds: [Int]
    public private(set) var outputTokenIds: [Int]
    /// This choice's generator; one draw per sampled token.
    public var rng: SamplingRNG

    /// Occurrences of each token in the output.
    public private(set) var outputCounts: [Int: Int]
    /// Distinct prompt tokens; filled only when the repetition penalty is on.
    public private(set) var promptTokenSet: Set<Int>

    /// - Parameters:
    ///   - choiceIndex: which of the `n` choices this is; selects the random stream.
    ///   - rng: an explicit generator (e.g. carried over from another rank); by default one
    ///     derived from `params.seed` and `choiceIndex`, or from the system RNG if unseeded.
    public init(
        params: SamplingParams,
        promptTokenIds: [Int],
        outputTokenIds: [Int] = [],
        eosTokenIds: [Int] = [],
        choiceIndex: Int = 0,
        rng: SamplingRNG? = nil
    ) {
        self.params = params
        self.eosTokenIds = eosTokenIds
        self.promptTokenIds = promptTokenIds
        self.outputTokenIds = []
        self.rng = rng ?? SamplingRNG.forRequest(seed: params.seed, choiceIndex: choiceIndex)
        self.outputCounts = [:]
        self.promptTokenSet = params.repetitionPenalty != 1 ? Set(promptTokenIds) : []
        self.outputTokenIds.reserveCapacity(outputTokenIds.count)
        for t in outputTokenIds { append(t) }
    }

    /// The `params.n` choice states of one request. Choice `i` uses stream `i` of one seed:
    /// `params.seed`, or for an unseeded request a single seed drawn from the system RNG.
    public static func choices(
        params: SamplingParams, promptTokenIds: [Int], eosTokenIds: [Int] = []
    ) -> [SamplingState] {
        var system = SystemRandomNumberGenerator()
        let seed = params.seed ?? system.next()
        return (0..<max(1, params.n)).map { i in
            SamplingState(
                params: params, promptTokenIds: promptTokenIds, eosTokenIds: eosTokenIds,
                rng: SamplingRNG(seed: seed, stream: UInt64(i)))
        }
    }

    /// Records a generated token (does not touch the generator).
    public mutating func append(_ tokenId: Int) {
        outputTokenIds.append(tokenId)
        outputCounts[tokenId, default: 0] += 1
    }

    /// Token ids masked while fewer than `minTokens` tokens have been generated:
    /// `stopTokenIds`, plus the EOS ids unless `ignoreEOS`.
    public var minTokensMaskedIds: [Int] {
        params.ignoreEOS ? params.stopTokenIds : params.stopTokenIds + eosTokenIds
    }
}
