import EbbCore
import EbbModel
import EbbSampling
import EbbTensor
import Foundation

/// One rank's engine: scheduler → model runner → sampling → output processing, as in
/// vLLM's v1 engine core. Not thread-safe: one loop drives it (see `EngineLoop`).
///
/// The engine stops requests on EOS, stop token ids, `max_tokens` and the model length;
/// stop strings are matched on detokenized text by the front end, which then aborts.
public final class EngineCore {
    public let model: CausalLM
    public let config: EngineConfig
    public let maxModelLen: Int
    public let cache: KVCache
    var scheduler: Scheduler
    var states: [String: RequestState] = [:]
    private let sampler = Sampler()

    struct RequestState {
        var request: EngineRequest
        var sampling: SamplingState
        var numCachedPromptTokens: Int?
        var promptLogprobs: [TokenLogprobs?] = []
        var promptLogprobsDelivered = false
        var wantsPromptLogprobs: Bool { request.params.promptLogprobs != nil }
    }

    public init(model: CausalLM, config: EngineConfig = EngineConfig()) throws {
        self.model = model
        self.config = config
        let modelMax = model.config.maxPositionEmbeddings
        let maxLen = config.maxModelLen ?? modelMax
        guard maxLen > 0 else { throw EbbError(.invalidArgument, "max model length must be positive") }
        let perBlock = model.kvCacheBytesPerBlock(blockSize: config.blockSize)
        let budget: Int
        if let bytes = config.kvCacheBytes {
            budget = bytes
        } else if let memory = model.backend.deviceMemory {
            // The weights are loaded: what this engine may still take, less a reserve for
            // activations and decode graphs.
            let reserve = max(1 << 30, memory.total / 20)
            budget = Int(Double(memory.total) * config.gpuMemoryUtilization) - (memory.total - memory.free) - reserve
        } else {
            let available = availableMemoryBytes() ?? (4 << 30)
            budget = min(Int(Double(available) * config.kvCacheFraction), 4 << 30)
        }
        let blocks = budget / max(perBlock, 1)
        guard blocks >= 1 else {
            throw EbbError(.resourceExhausted, "KV cache budget of \(budget) bytes holds no block (one block of \(config.blockSize) tokens takes \(perBlock) bytes)")
        }
        cache = try model.makeKVCache(numBlocks: blocks, blockSize: config.blockSize)
        maxModelLen = min(maxLen, blocks * config.blockSize)
        let schedulerConfig = SchedulerConfig(
            numBlocks: blocks, blockSize: config.blockSize, maxNumBatchedTokens: config.maxNumBatchedTokens,
            maxNumSeqs: config.maxNumSeqs, maxModelLen: maxLen, enablePrefixCaching: config.enablePrefixCaching)
        try schedulerConfig.validate()
        scheduler = try Scheduler(config: schedulerConfig)
        if !config.enforceEager && model.backend.supportsGraphs {
            graphs = DecodeGraphs(model: model, cache: cache, maxBatch: min(config.maxNumSeqs, 256), maxContext: maxModelLen)
        }
    }

    /// Decode steps from captured graphs (GPU backends); nil when eager.
    public private(set) var graphs: DecodeGraphs?
    /// Host ↔ device copies of the decode steps so far (a device backend only): what shows
    /// that a step moves its token ids and logits or arg-maxes, never activations.
    public private(set) var decodeTransfers = DecodeTransfers()

    /// With a fixed-size expert exchange (`ExpertParallelGroup.isFixedSize`), how the ranks
    /// agree on each step's shape before they run it: takes this rank's shape, returns the
    /// element-wise maximum over the ranks (an all-reduce). Set by whoever runs the lockstep.
    public var stepAgreement: ((StepShape) throws -> StepShape)?

    public var hasWork: Bool { scheduler.hasUnfinishedRequests }

    public var stats: EngineStats {
        var s = EngineStats()
        s.running = scheduler.numRunning
        s.waiting = scheduler.numWaiting
        s.kvCacheUsage = scheduler.kvCacheUsage
        s.numBlocks = cache.numBlocks
        s.preemptions = scheduler.numPreemptions
        s.prefixCacheQueries = scheduler.prefixCacheStats.queries
        s.prefixCacheHits = scheduler.prefixCacheStats.hits
        s.steps = scheduler.stepCount
        if let ep = model.expertParallel?.stats {
            s.expertExchangeLayerCalls = ep.layerCalls
            s.expertExchangeBytes = ep.bytesSent
            s.expertExchangeSeconds = ep.exchangeSeconds
        }
        return s
    }

    /// Queues a request. Throws for bad parameters or a prompt that cannot fit; nothing
    /// changes then.
    public func add(_ request: EngineRequest) throws {
        guard states[request.id] == nil else { throw EbbError(.invalidArgument, "duplicate request id '\(request.id)'") }
        try request.params.validate(vocabSize: model.config.vocabSize, maxLogprobs: config.maxLogprobs)
        if let bad = request.promptTokenIds.first(where: { $0 < 0 || $0 >= model.config.vocabSize }) {
            throw EbbError(.invalidArgument, "token id \(bad) is outside the vocabulary (0..<\(model.config.vocabSize))")
        }
        guard request.promptTokenIds.count < maxModelLen else {
            throw EbbError(.invalidArgument, "the prompt has \(request.promptTokenIds.count) tokens; this model serves at most \(maxModelLen) tokens in total (prompt and output)")
        }
        // Prompt logprobs need logits at every prompt position, so such a request must not
        // read the prefix cache: a key of its own keeps it from matching others' blocks.
        let extraKey: UInt64? = request.params.promptLogprobs != nil ? UInt64.random(in: 1...UInt64.max) : nil
        try scheduler.addRequest(id: request.id, promptTokenIds: request.promptTokenIds, priority: request.priority,
                                 cacheExtraKey: extraKey)
        let sampling = SamplingState(params: request.params, promptTokenIds: request.promptTokenIds,
                                     eosTokenIds: request.eosTokenIds, choiceIndex: request.choiceIndex)
        states[request.id] = RequestState(request: request, sampling: sampling)
    }

    /// Aborts a request wherever it is; returns whether it was known.
    @discardableResult
    public func abort(_ id: String) -> Bool {
        let known = states.removeValue(forKey: id) != nil
        return scheduler.abort(id) || known
    }

    /// Runs one step and returns the outputs of the requests that produced something or
    /// finished. Returns an empty list when there was nothing to run; with `lockstep`
    /// (expert parallelism) it then still runs a dummy forward, so that this rank enters
    /// every MoE exchange the other ranks enter.
    public func step(lockstep: Bool = false) throws -> [RequestOutput] {
        let plan = scheduler.schedule()
        let ran: RanStep
        do {
            guard let r = try run(plan, lockstep: lockstep) else { return [] }
            ran = r
        } catch {
            // Nothing of the step reached a request: it is scheduled again next step (the
            // engine loop recovers its data plane first when a peer died).
            scheduler.abandon(plan)
            throw error
        }
        return try finish(plan, ran)
    }

    /// Host ↔ device copies of decode steps: totals and the largest step's.
    public struct DecodeTransfers: Sendable, Equatable {
        public var steps = 0
        public var total = HostTransfers()
        public var mostDownloadBytes = 0
        public var mostUploadBytes = 0

        public init() {}

        mutating func add(_ step: HostTransfers) {
            steps += 1
            total += step
            mostDownloadBytes = max(mostDownloadBytes, step.downloadBytes)
            mostUploadBytes = max(mostUploadBytes, step.uploadBytes)
        }

        /// "N decode steps: at most D bytes down and U bytes up a step (… copies in all)".
        public var summary: String {
            "\(steps) decode steps copied at most \(mostDownloadBytes) bytes to the host and \(mostUploadBytes) to the device a step (\(total.downloads) downloads, \(total.uploads) uploads in all)"
        }
    }

    /// A step's forward pass as the host sees it: arg-maxes (plain greedy) or logits.
    private struct RanStep {
        var logitRanges: [Range<Int>]
        var onlyArgmax: Bool
        var host: [Float]
        var argmax: [Int32]
    }

    /// The forward pass of `plan` (nil when the plan is empty); changes no request.
    private func run(_ plan: SchedulerOutput, lockstep: Bool) throws -> RanStep? {
        let inputs = plan.scheduled.map { s in
            SequenceInput(tokens: s.tokenIds, cachedTokens: s.startPosition, blockTable: s.blockTable,
                          allLogits: s.isPrefill && (states[s.requestId]?.wantsPromptLogprobs ?? false))
        }
        // A fixed-size exchange: agree on the rows every rank exchanges (a decode step's
        // batch bucket, so that graphs match across ranks, else the most tokens of any rank).
        var minimumBatch = 1
        if lockstep, let group = model.expertParallel, group.isFixedSize {
            guard let agree = stepAgreement else {
                throw EbbError(.internal, "a fixed-size expert exchange needs a step agreement")
            }
            let global = try agree(StepShape(inputs))
            if global.nonDecode == 0 {
                minimumBatch = DecodeGraphs.batchBucket(global.decodeBatch)
                group.stepTokens = minimumBatch
            } else {
                group.stepTokens = global.tokens
            }
        }
        model.expertParallel?.expectProgress()
        guard !plan.isEmpty else {
            if lockstep {
                try model.dummyForward()
                model.backend.synchronize()
                try model.backend.checkErrors()
            }
            try model.expertParallel?.checkHealth()
            return nil
        }
        let transfersBefore = model.backend.hostTransfers
        defer {
            if let transfersBefore, let after = model.backend.hostTransfers, plan.scheduled.allSatisfy({ !$0.isPrefill }) {
                decodeTransfers.add(after.since(transfersBefore))
            }
        }
        let logits: Tensor, logitRanges: [Range<Int>]
        if let replayed = try graphs?.run(inputs, minimumBatch: minimumBatch) {
            (logits, logitRanges) = replayed
        } else {
            let batch = try model.makeBatch(inputs, cache: cache)
            logits = try model.forward(batch, cache: cache)
            logitRanges = batch.logitRanges
        }
        // Plain greedy rows need only their arg-max: taken on the device, B ints come back
        // instead of B × vocab floats (and no host pass over the vocabulary).
        let onlyArgmax = plan.scheduled.allSatisfy { s in
            guard let state = states[s.requestId] else { return true }
            return !(state.wantsPromptLogprobs && s.isPrefill) && Sampler.isPlainGreedy(state.sampling)
        }
        var host = [Float](), argmax = [Int32]()
        if onlyArgmax {
            let ids = try model.backend.empty([logits.rows], dtype: .i32)
            model.backend.argmax(logits, out: ids)
            argmax = model.backend.downloadInts(ids)
        } else {
            host = model.backend.downloadFloats(logits)
        }
        try model.backend.checkErrors()
        try model.expertParallel?.checkHealth()
        return RanStep(logitRanges: logitRanges, onlyArgmax: onlyArgmax, host: host, argmax: argmax)
    }

    /// Samples from a finished forward pass and applies the step to the scheduler.
    private func finish(_ plan: SchedulerOutput, _ ran: RanStep) throws -> [RequestOutput] {
        let vocab = model.config.vocabSize
        let logitRanges = ran.logitRanges, onlyArgmax = ran.onlyArgmax, host = ran.host, argmax = ran.argmax
        var sampled = [String: [Int]]()
        var finished = [String: FinishReason]()
        var outputs = [String: RequestOutput]()
        try host.withUnsafeBufferPointer { all in
            for (i, s) in plan.scheduled.enumerated() {
                guard var state = states[s.requestId] else { continue }
                let rows = logitRanges[i]
                if state.numCachedPromptTokens == nil { state.numCachedPromptTokens = s.numCachedTokens }
                if state.wantsPromptLogprobs && s.isPrefill && s.startPosition < s.numPromptTokens {
                    collectPromptLogprobs(&state, scheduled: s, rows: rows, logits: all, vocab: vocab)
                }
                guard s.samplesNextToken, let last = rows.last else {
                    states[s.requestId] = state
                    continue
                }
                let sample: SampleOutput
                if onlyArgmax {
                    sample = sampler.accept(argmax: Int(argmax[last]), state: &state.sampling)
                } else {
                    let row = UnsafeBufferPointer(rebasing: all[(last * vocab)..<((last + 1) * vocab)])
                    sample = try sampler.sample(logits: row, state: &state.sampling)
                }
                var out = RequestOutput(requestId: s.requestId, newTokenIds: [sample.tokenId],
                                        logprobs: sample.logprobs.map { [$0] } ?? [],
                                        numCachedPromptTokens: state.numCachedPromptTokens)
                if state.wantsPromptLogprobs && !state.promptLogprobsDelivered {
                    out.promptLogprobs = state.promptLogprobs
                    state.promptLogprobsDelivered = true
                }
                sampled[s.requestId] = [sample.tokenId]
                if let reason = stopReason(state, token: sample.tokenId, totalTokens: s.numTotalTokens + 1) {
                    finished[s.requestId] = reason
                    out.finishReason = reason
                }
                outputs[s.requestId] = out
                states[s.requestId] = state
            }
        }
        let update = scheduler.update(afterStep: plan, sampled: sampled, finished: finished)
        for f in update.finished {
            states.removeValue(forKey: f.requestId)
            if outputs[f.requestId] == nil { outputs[f.requestId] = RequestOutput(requestId: f.requestId) }
            outputs[f.requestId]?.finishReason = f.reason
        }
        return plan.scheduled.compactMap { outputs[$0.requestId] }
    }

    /// EOS and stop token ids (after `min_tokens`), `max_tokens`, and the model length.
    private func stopReason(_ state: RequestState, token: Int, totalTokens: Int) -> FinishReason? {
        let params = state.request.params
        let generated = state.sampling.outputTokenIds.count
        if generated >= params.minTokens {
            if !params.ignoreEOS && state.request.eosTokenIds.contains(token) { return .stop }
            if params.stopTokenIds.contains(token) { return .stop }
        }
        if let max = params.maxTokens, generated >= max { return .length }
        if totalTokens >= maxModelLen { return .length }
        return nil
    }

    /// Logprob of each next prompt token from a prefill chunk's logits.
    private func collectPromptLogprobs(_ state: inout RequestState, scheduled s: ScheduledRequest, rows: Range<Int>,
                                       logits: UnsafeBufferPointer<Float>, vocab: Int) {
        let prompt = state.request.promptTokenIds
        let topN = state.request.params.promptLogprobs ?? 0
        if state.promptLogprobs.isEmpty { state.promptLogprobs = [nil] }
        // Positions before startPosition came from the prefix cache: no logits for them.
        while state.promptLogprobs.count < s.startPosition + 1 && state.promptLogprobs.count < prompt.count {
            state.promptLogprobs.append(nil)
        }
        for (j, row) in rows.enumerated() {
            let position = s.startPosition + j
            let next = position + 1
            guard next < prompt.count else { break }
            let values = UnsafeBufferPointer(rebasing: logits[(row * vocab)..<((row + 1) * vocab)])
            let lp = Sampler.logprobs(row: values, tokenId: prompt[next], topN: topN)
            if state.promptLogprobs.count == next { state.promptLogprobs.append(lp) } else if next < state.promptLogprobs.count {
                state.promptLogprobs[next] = lp
            }
        }
    }
}
