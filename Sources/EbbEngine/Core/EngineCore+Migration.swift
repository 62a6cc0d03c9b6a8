import EbbCore
import EbbSampling

/// A request taken out of one engine core to continue on another: the request as it came,
/// the tokens generated so far, and the sampler's random state, so that the next token is
/// the one the first core would have drawn.
public struct ExportedRequest: Sendable, Equatable {
    public var request: EngineRequest
    public var outputTokenIds: [Int]
    public var rng: SamplingRNG

    public init(request: EngineRequest, outputTokenIds: [Int], rng: SamplingRNG) {
        self.request = request
        self.outputTokenIds = outputTokenIds
        self.rng = rng
    }
}

extension EngineRequest: Equatable {
    public static func == (a: EngineRequest, b: EngineRequest) -> Bool {
        a.id == b.id && a.promptTokenIds == b.promptTokenIds && a.params == b.params && a.eosTokenIds == b.eosTokenIds
            && a.priority == b.priority && a.choiceIndex == b.choiceIndex
    }
}

extension EngineCore {
    /// Removes every unfinished request (running first) with what it generated so far. Its
    /// KV blocks are freed; the request continues elsewhere with `addResumed`.
    public func exportAllForMigration() -> [ExportedRequest] {
        let migrated = scheduler.drainForMigration()
        var out: [ExportedRequest] = []
        for m in migrated {
            guard let state = states.removeValue(forKey: m.requestId) else { continue }
            out.append(ExportedRequest(request: state.request, outputTokenIds: state.sampling.outputTokenIds,
                                       rng: state.sampling.rng))
        }
        return out
    }

    /// Continues a request exported by another core: re-prefills prompt + generated tokens
    /// and goes on generating. Throws (changing nothing) for a request this core cannot take.
    public func addResumed(_ e: ExportedRequest) throws {
        let request = e.request
        guard states[request.id] == nil else { throw EbbError(.invalidArgument, "duplicate request id '\(request.id)'") }
        try request.params.validate(vocabSize: model.config.vocabSize, maxLogprobs: config.maxLogprobs)
        let all = request.promptTokenIds + e.outputTokenIds
        if let bad = all.first(where: { $0 < 0 || $0 >= model.config.vocabSize }) {
            throw EbbError(.invalidArgument, "token id \(bad) is outside the vocabulary (0..<\(model.config.vocabSize))")
        }
        guard all.count < maxModelLen else {
            throw EbbError(.invalidArgument, "the resumed request has \(all.count) tokens; this engine serves at most \(maxModelLen)")
        }
        try scheduler.addResumedRequest(MigratedRequest(requestId: request.id,
                                                        promptTokenIds: request.promptTokenIds.map { TokenID($0) },
                                                        outputTokenIds: e.outputTokenIds.map { TokenID($0) },
                                                        priority: request.priority, cacheExtraKey: nil))
        let sampling = SamplingState(params: request.params, promptTokenIds: request.promptTokenIds,
                                     outputTokenIds: e.outputTokenIds, eosTokenIds: request.eosTokenIds,
                                     choiceIndex: request.choiceIndex, rng: e.rng)
        var state = RequestState(request: request, sampling: sampling)
        state.numCachedPromptTokens = 0
        state.promptLogprobsDelivered = true  // delivered by the first core
        states[request.id] = state
    }
}
