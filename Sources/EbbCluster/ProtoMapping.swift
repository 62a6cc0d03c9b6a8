import EbbControl
import EbbCore
import EbbEngine
import EbbSampling

/// Conversions between the engine's values and the control-plane messages. Decoding checks
/// what a peer could get wrong and throws instead of trapping.
enum ProtoMapping {
    static func encode(_ p: SamplingParams) -> Ebb_Control_V1_SamplingParams {
        var m = Ebb_Control_V1_SamplingParams()
        m.n = UInt32(clamping: p.n)
        m.temperature = p.temperature
        m.topP = p.topP
        m.topK = Int32(clamping: p.topK)
        m.minP = p.minP
        m.hasSeed_p = p.seed != nil
        m.seed = p.seed ?? 0
        m.presencePenalty = p.presencePenalty
        m.frequencyPenalty = p.frequencyPenalty
        m.repetitionPenalty = p.repetitionPenalty
        m.maxTokens = p.maxTokens.map { Int64($0) } ?? -1
        m.minTokens = UInt32(clamping: p.minTokens)
        m.stop = p.stop
        m.stopTokenIds = p.stopTokenIds.map { Int32(clamping: $0) }
        m.ignoreEos = p.ignoreEOS
        m.logprobs = p.logprobs.map { Int32(clamping: $0) } ?? -1
        m.promptLogprobs = p.promptLogprobs.map { Int32(clamping: $0) } ?? -1
        m.includeStopStrInOutput = p.includeStopStrInOutput
        m.skipSpecialTokens = p.skipSpecialTokens
        return m
    }

    static func decode(_ m: Ebb_Control_V1_SamplingParams) throws -> SamplingParams {
        var p = SamplingParams()
        p.n = Int(m.n)
        p.temperature = m.temperature
        p.topP = m.topP
        p.topK = Int(m.topK)
        p.minP = m.minP
        p.seed = m.hasSeed_p ? m.seed : nil
        p.presencePenalty = m.presencePenalty
        p.frequencyPenalty = m.frequencyPenalty
        p.repetitionPenalty = m.repetitionPenalty
        guard m.maxTokens >= -1, m.maxTokens <= Int64(Int32.max) else {
            throw EbbError(.invalidArgument, "max_tokens \(m.maxTokens) out of range")
        }
        p.maxTokens = m.maxTokens < 0 ? nil : Int(m.maxTokens)
        p.minTokens = Int(m.minTokens)
        p.stop = m.stop
        p.stopTokenIds = m.stopTokenIds.map { Int($0) }
        p.ignoreEOS = m.ignoreEos
        p.logprobs = m.logprobs < 0 ? nil : Int(m.logprobs)
        p.promptLogprobs = m.promptLogprobs < 0 ? nil : Int(m.promptLogprobs)
        p.includeStopStrInOutput = m.includeStopStrInOutput
        p.skipSpecialTokens = m.skipSpecialTokens
        return p
    }

    static func encode(_ r: EngineRequest, wave: UInt64, generation: UInt64) -> Ebb_Control_V1_AddRequest {
        var m = Ebb_Control_V1_AddRequest()
        m.requestID = r.id
        m.promptTokenIds = r.promptTokenIds.map { Int32(clamping: $0) }
        m.params = encode(r.params)
        m.eosTokenIds = r.eosTokenIds.map { Int32(clamping: $0) }
        m.priority = Int32(clamping: r.priority)
        m.choiceIndex = UInt32(clamping: r.choiceIndex)
        m.arrivalTime = r.arrivalTime
        m.wave = wave
        m.generation = generation
        return m
    }

    static func decode(_ m: Ebb_Control_V1_AddRequest) throws -> EngineRequest {
        guard !m.requestID.isEmpty else { throw EbbError(.invalidArgument, "request without an id") }
        guard m.hasParams else { throw EbbError(.invalidArgument, "request \(m.requestID) has no sampling parameters") }
        return EngineRequest(id: m.requestID, promptTokenIds: m.promptTokenIds.map { Int($0) },
                             params: try decode(m.params), eosTokenIds: m.eosTokenIds.map { Int($0) },
                             priority: Int(m.priority), choiceIndex: Int(m.choiceIndex), arrivalTime: m.arrivalTime)
    }

    static func encode(_ l: TokenLogprobs) -> Ebb_Control_V1_TokenLogprobs {
        var m = Ebb_Control_V1_TokenLogprobs()
        m.tokenID = Int32(clamping: l.tokenId)
        m.logprob = l.logprob
        m.rank = UInt32(clamping: l.rank)
        m.top = l.top.map { t in
            var x = Ebb_Control_V1_TopLogprob()
            x.tokenID = Int32(clamping: t.tokenId)
            x.logprob = t.logprob
            return x
        }
        return m
    }

    static func decode(_ m: Ebb_Control_V1_TokenLogprobs) -> TokenLogprobs {
        TokenLogprobs(tokenId: Int(m.tokenID), logprob: m.logprob, rank: Int(m.rank),
                      top: m.top.map { TopLogprob(tokenId: Int($0.tokenID), logprob: $0.logprob) })
    }

    static func encode(_ reason: FinishReason?) -> Ebb_Control_V1_FinishReason {
        switch reason {
        case nil: return .none
        case .stop: return .stop
        case .length: return .length
        case .abort: return .abort
        }
    }

    static func decode(_ reason: Ebb_Control_V1_FinishReason) throws -> FinishReason? {
        switch reason {
        case .none: return nil
        case .stop: return .stop
        case .length: return .length
        case .abort: return .abort
        case .UNRECOGNIZED(let v): throw EbbError(.invalidArgument, "unknown finish reason \(v)")
        }
    }

    static func encode(_ o: RequestOutput) -> Ebb_Control_V1_RequestOutput {
        var m = Ebb_Control_V1_RequestOutput()
        m.requestID = o.requestId
        m.newTokenIds = o.newTokenIds.map { Int32(clamping: $0) }
        m.logprobs = o.logprobs.map(encode)
        if let p = o.promptLogprobs {
            m.hasPromptLogprobs_p = true
            m.promptLogprobs = p.map { entry in
                var x = Ebb_Control_V1_PromptLogprob()
                if let entry {
                    x.present = true
                    x.value = encode(entry)
                }
                return x
            }
        }
        m.finishReason = encode(o.finishReason)
        m.numCachedPromptTokens = o.numCachedPromptTokens.map { Int32(clamping: $0) } ?? -1
        return m
    }

    static func encodeError(_ id: String, _ error: EbbError) -> Ebb_Control_V1_RequestOutput {
        var m = Ebb_Control_V1_RequestOutput()
        m.requestID = id
        m.error = error.message
        m.errorCode = error.code.rawValue
        return m
    }

    /// The engine event an output message stands for.
    static func decode(_ m: Ebb_Control_V1_RequestOutput) throws -> EngineEvent {
        if !m.error.isEmpty {
            let code = EbbError.Code(rawValue: m.errorCode) ?? .internal
            return .error(EbbError(code, m.error))
        }
        var o = RequestOutput(requestId: m.requestID)
        o.newTokenIds = m.newTokenIds.map { Int($0) }
        o.logprobs = m.logprobs.map(decode)
        if m.hasPromptLogprobs_p {
            o.promptLogprobs = m.promptLogprobs.map { $0.present ? decode($0.value) : nil }
        }
        o.finishReason = try decode(m.finishReason)
        o.numCachedPromptTokens = m.numCachedPromptTokens >= 0 ? Int(m.numCachedPromptTokens) : nil
        return .output(o)
    }

    static func encode(_ s: EngineStats) -> Ebb_Control_V1_Load {
        var m = Ebb_Control_V1_Load()
        m.waiting = UInt32(clamping: s.waiting)
        m.running = UInt32(clamping: s.running)
        m.kvCacheUsage = s.kvCacheUsage
        m.steps = s.steps
        m.preemptions = UInt64(clamping: s.preemptions)
        m.prefixCacheQueries = UInt64(clamping: s.prefixCacheQueries)
        m.prefixCacheHits = UInt64(clamping: s.prefixCacheHits)
        m.numBlocks = UInt32(clamping: s.numBlocks)
        m.expertExchangeLayerCalls = UInt64(clamping: s.expertExchangeLayerCalls)
        m.expertExchangeBytes = UInt64(clamping: s.expertExchangeBytes)
        m.expertExchangeSeconds = s.expertExchangeSeconds
        m.eplbRearrangements = UInt64(clamping: s.eplb.rearrangements)
        m.eplbSkipped = UInt64(clamping: s.eplb.skipped)
        m.eplbLastTransferSeconds = s.eplb.lastTransferSeconds
        m.eplbLastCommitSeconds = s.eplb.lastCommitSeconds
        m.eplbBytesSent = UInt64(clamping: s.eplb.bytesSent)
        m.eplbLayerBalancedness = s.eplb.layerBalancedness
        m.eplbSlotLayers = UInt32(clamping: s.eplb.slotLoad.count)
        m.eplbSlotLoad = s.eplb.slotLoad.flatMap { $0.map { Float($0) } }
        m.eplbSlotExpert = s.eplb.slotExperts.flatMap { $0.map { UInt32(clamping: $0) } }
        return m
    }

    /// The most slot-load cells a heartbeat may carry (1,024 layers × 1,024 slots); more
    /// is a malformed message and the heat map is dropped.
    static let maxSlotCells = 1 << 20

    static func decode(_ m: Ebb_Control_V1_Load) -> EngineStats {
        var s = EngineStats()
        s.waiting = Int(m.waiting)
        s.running = Int(m.running)
        s.kvCacheUsage = m.kvCacheUsage.isFinite ? min(max(m.kvCacheUsage, 0), 1) : 0
        s.steps = m.steps
        s.preemptions = Int(clamping: m.preemptions)
        s.prefixCacheQueries = Int(clamping: m.prefixCacheQueries)
        s.prefixCacheHits = Int(clamping: m.prefixCacheHits)
        s.numBlocks = Int(m.numBlocks)
        s.expertExchangeLayerCalls = Int(clamping: m.expertExchangeLayerCalls)
        s.expertExchangeBytes = Int(clamping: m.expertExchangeBytes)
        s.expertExchangeSeconds = finite(m.expertExchangeSeconds)
        s.eplb.rearrangements = Int(clamping: m.eplbRearrangements)
        s.eplb.skipped = Int(clamping: m.eplbSkipped)
        s.eplb.lastTransferSeconds = finite(m.eplbLastTransferSeconds)
        s.eplb.lastCommitSeconds = finite(m.eplbLastCommitSeconds)
        s.eplb.bytesSent = Int(clamping: m.eplbBytesSent)
        s.eplb.layerBalancedness = m.eplbLayerBalancedness.prefix(4096).map { min(1, finite($0)) }
        let layers = Int(m.eplbSlotLayers)
        if layers > 0, m.eplbSlotLoad.count <= maxSlotCells, m.eplbSlotLoad.count % layers == 0,
           m.eplbSlotExpert.count == m.eplbSlotLoad.count {
            let slots = m.eplbSlotLoad.count / layers
            s.eplb.slotLoad = (0..<layers).map { l in m.eplbSlotLoad[l * slots..<(l + 1) * slots].map { finite(Double($0)) } }
            s.eplb.slotExperts = (0..<layers).map { l in m.eplbSlotExpert[l * slots..<(l + 1) * slots].map { Int($0) } }
        }
        return s
    }

    private static func finite(_ x: Double) -> Double { x.isFinite ? max(0, x) : 0 }
}
