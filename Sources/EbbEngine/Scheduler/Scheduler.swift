import EbbCore

/// Continuous-batching scheduler of one engine core, modelled on vLLM v1's `Scheduler`:
/// a plain state machine — requests and step results in, ``SchedulerOutput`` out.
///
/// Each step (``schedule()``):
/// 1. Running requests, in running order, each get `min(tokens left, budget)` tokens (a
///    decode token or the next prefill chunk; capped by `longPrefillTokenThreshold`). When
///    blocks run out, the newest running request (largest `priority` number, then latest
///    arrival) is preempted — blocks freed, computed tokens reset to 0, back to the waiting
///    queue — and allocation is retried; if the request itself is the newest, it is the
///    one preempted.
/// 2. If nothing was preempted, waiting requests are admitted in order (priority, then
///    arrival) while budget, `maxNumSeqs` and blocks allow, skipping the tokens whose KV is
///    in the prefix cache; a prompt longer than the remaining budget is chunked.
///
/// After the model ran, ``update(afterStep:sampled:finished:)`` advances computed tokens,
/// appends the sampled tokens, registers newly full blocks in the prefix cache and frees
/// finished requests. Deciding when a request is finished (stop tokens, `maxTokens`) is the
/// output processor's job; the scheduler only stops a request itself when it reaches
/// ``SchedulerConfig/maxTokensPerRequest`` (reason `.length`), so nothing can wedge.
///
/// `schedule()` and `update` alternate. A request that is in flight (scheduled, not yet
/// updated) is neither scheduled again nor preempted by a later `schedule()`.
public struct Scheduler: Sendable {
    public let config: SchedulerConfig
    public private(set) var kvCache: KVCacheManager

    private struct InFlight: Sendable {
        var step: UInt64
        var numTokens: Int
    }

    private struct RequestState: Sendable {
        let id: String
        /// Prompt followed by generated tokens.
        var tokens: [TokenID]
        let numPromptTokens: Int
        let priority: Int
        let arrival: UInt64
        let extraKey: UInt64?
        var status: RequestStatus = .waiting
        var numComputedTokens = 0
        var numCachedTokens = 0
        var numPreemptions = 0
        /// Its next admission re-creates state the model runner has seen (or, for a
        /// migrated request, state that existed on another rank).
        var resumes = false
        var inFlight: InFlight? = nil

        var sortKey: (Int, UInt64) { (priority, arrival) }
    }

    private var requests: [String: RequestState] = [:]
    /// Ids of running requests, in scheduling order.
    private var running: [String] = []
    /// Ids of waiting requests, sorted by (priority, arrival).
    private var waiting: [String] = []
    private var nextArrival: UInt64 = 0
    private var lastStep: UInt64 = 0

    /// Preemptions since start.
    public private(set) var numPreemptions = 0

    public init(config: SchedulerConfig) throws {
        try config.validate()
        self.config = config
        self.kvCache = try KVCacheManager(
            numBlocks: config.numBlocks, blockSize: config.blockSize,
            enablePrefixCaching: config.enablePrefixCaching)
    }

    // MARK: Metrics and inspection

    public var numRunning: Int { running.count }
    /// Waiting requests, including preempted ones.
    public var numWaiting: Int { waiting.count }
    /// Waiting requests that were preempted and wait to resume.
    public var numPreemptedWaiting: Int { waiting.reduce(0) { $0 + (requests[$1]?.status == .preempted ? 1 : 0) } }
    public var numRequests: Int { requests.count }
    public var hasUnfinishedRequests: Bool { !requests.isEmpty }
    /// Fraction of KV blocks in use.
    public var kvCacheUsage: Double { kvCache.usage }
    public var prefixCacheStats: PrefixCacheStats { kvCache.prefixCacheStats }
    /// Number of the latest ``schedule()`` call.
    public var stepCount: UInt64 { lastStep }
    public var runningIds: [String] { running }
    public var waitingIds: [String] { waiting }

    public func contains(_ requestId: String) -> Bool { requests[requestId] != nil }

    public func snapshot(_ requestId: String) -> RequestSnapshot? {
        guard let r = requests[requestId] else { return nil }
        return RequestSnapshot(
            requestId: r.id, status: r.status, promptTokenIds: Array(r.tokens[0..<r.numPromptTokens]),
            outputTokenIds: Array(r.tokens[r.numPromptTokens...]), priority: r.priority, arrivalIndex: r.arrival,
            numComputedTokens: r.numComputedTokens, numCachedTokens: r.numCachedTokens,
            numPreemptions: r.numPreemptions, cacheExtraKey: r.extraKey,
            blockTable: kvCache.blockTable(for: r.id) ?? [])
    }

    // MARK: Adding and removing requests

    /// Queues a new request. Throws `.invalidArgument` for a duplicate id, an empty or
    /// negative prompt, or one longer than `maxModelLen`; `.resourceExhausted` for one the
    /// whole KV pool could not hold.
    public mutating func addRequest(
        id: String, promptTokenIds: [TokenID], priority: Int = 0, cacheExtraKey: UInt64? = nil
    ) throws {
        try admitCheck(id: id, prompt: promptTokenIds, output: [])
        enqueue(
            RequestState(
                id: id, tokens: promptTokenIds, numPromptTokens: promptTokenIds.count, priority: priority,
                arrival: takeArrival(), extraKey: cacheExtraKey))
    }

    /// ``addRequest(id:promptTokenIds:priority:cacheExtraKey:)`` for `Int` token ids.
    public mutating func addRequest(id: String, promptTokenIds: [Int], priority: Int = 0, cacheExtraKey: UInt64? = nil)
        throws
    {
        try addRequest(
            id: id, promptTokenIds: try Self.narrow(promptTokenIds), priority: priority, cacheExtraKey: cacheExtraKey)
    }

    /// Queues a request moved here from another rank (or re-added after
    /// ``removeForMigration(_:)``): it is admitted as `.resumed` and re-prefills its
    /// prompt and generated tokens, then continues generating. Same checks as
    /// ``addRequest(id:promptTokenIds:priority:cacheExtraKey:)``, on prompt + output.
    public mutating func addResumedRequest(_ request: MigratedRequest) throws {
        try admitCheck(id: request.requestId, prompt: request.promptTokenIds, output: request.outputTokenIds)
        var state = RequestState(
            id: request.requestId, tokens: request.promptTokenIds + request.outputTokenIds,
            numPromptTokens: request.promptTokenIds.count, priority: request.priority, arrival: takeArrival(),
            extraKey: request.cacheExtraKey)
        state.resumes = true
        enqueue(state)
    }

    /// Removes a waiting, running or preempted request and frees its blocks. Returns
    /// whether it was found.
    @discardableResult
    public mutating func abort(_ requestId: String) -> Bool {
        remove(requestId) != nil
    }

    /// Removes a request and returns what another rank needs to resume it. Call it at a
    /// step boundary (after `update`), or the in-flight step's tokens are lost.
    public mutating func removeForMigration(_ requestId: String) -> MigratedRequest? {
        guard let snap = snapshot(requestId) else { return nil }
        remove(requestId)
        return snap.migrated
    }

    /// Removes every request (running first, in running order, then waiting in queue
    /// order) for migration, e.g. when this rank leaves.
    public mutating func drainForMigration() -> [MigratedRequest] {
        let ids = running + waiting
        return ids.compactMap { removeForMigration($0) }
    }

    // MARK: Scheduling

    /// Decides the next step. See the type's documentation for the policy.
    public mutating func schedule() -> SchedulerOutput {
        lastStep += 1
        let step = lastStep
        var budget = config.maxNumBatchedTokens
        var entries: [String: ScheduledRequest] = [:]
        var order: [String] = []
        var preempted: [String] = []
        let threshold = config.enableChunkedPrefill ? config.longPrefillTokenThreshold : 0

        // 1. Running requests.
        var idx = 0
        runningLoop: while idx < running.count && budget > 0 {
            let id = running[idx]
            guard let req = requests[id], req.inFlight == nil else {
                idx += 1
                continue
            }
            var numNew = req.tokens.count - req.numComputedTokens
            if threshold > 0 { numNew = min(numNew, threshold) }
            numNew = min(numNew, budget)
            guard numNew > 0 else {
                idx += 1
                continue
            }
            while true {
                if let table = kvCache.allocateSlots(
                    requestId: id, numComputedTokens: req.numComputedTokens, numNewTokens: numNew)
                {
                    entries[id] = entry(req, kind: .running, numNew: numNew, cached: 0, table: table)
                    order.append(id)
                    requests[id]?.inFlight = InFlight(step: step, numTokens: numNew)
                    budget -= numNew
                    idx += 1
                    continue runningLoop
                }
                guard let victimIndex = pickVictim(step: step) else { break runningLoop }
                let victim = running[victimIndex]
                if let e = entries.removeValue(forKey: victim) {
                    budget += e.numTokens
                    order.removeAll { $0 == victim }
                }
                preempt(at: victimIndex)
                preempted.append(victim)
                if victim == id { break runningLoop }
                if victimIndex < idx { idx -= 1 }
            }
        }

        // 2. Waiting requests, unless this step had to preempt.
        if preempted.isEmpty {
            while budget > 0, running.count < config.maxNumSeqs, let id = waiting.first {
                guard let req = requests[id] else {
                    waiting.removeFirst()
                    continue
                }
                let prefix = kvCache.findCachedPrefix(tokens: req.tokens, extraKey: req.extraKey)
                var numNew = req.tokens.count - prefix.numCachedTokens
                if threshold > 0 { numNew = min(numNew, threshold) }
                if !config.enableChunkedPrefill && numNew > budget { break }
                numNew = min(numNew, budget)
                guard numNew > 0,
                    let table = kvCache.allocateSlots(
                        requestId: id, numComputedTokens: 0, numNewTokens: numNew, cachedPrefix: prefix)
                else { break }
                waiting.removeFirst()
                running.append(id)
                let kind: ScheduledRequest.Kind = req.resumes ? .resumed : .new
                let admitted: RequestState? = modify(id) { r in
                    r.status = .running
                    r.resumes = false
                    r.numComputedTokens = prefix.numCachedTokens
                    r.numCachedTokens = prefix.numCachedTokens
                    r.inFlight = InFlight(step: step, numTokens: numNew)
                    return r
                }
                guard let admitted else { continue }
                entries[id] = entry(
                    admitted, kind: kind, numNew: numNew, cached: prefix.numCachedTokens, table: table)
                order.append(id)
                budget -= numNew
            }
        }

        let scheduled = order.compactMap { entries[$0] }
        return SchedulerOutput(
            step: step, scheduled: scheduled, preempted: preempted,
            numScheduledTokens: scheduled.reduce(0) { $0 + $1.numTokens })
    }

    /// Applies the result of the step `output` described: each scheduled request's
    /// computed tokens advance; requests that sampled (`samplesNextToken`) get
    /// `sampled[id]` appended; newly full blocks enter the prefix cache; requests in
    /// `finished` (scheduled or not) are removed and their blocks freed; a request that
    /// reached `maxTokensPerRequest` is finished with `.length`.
    ///
    /// Entries that no longer apply (the request was aborted or migrated meanwhile, or the
    /// output is not the latest step's) are ignored. A request that should have sampled but
    /// has no entry in `sampled` (and is not finished) recomputes its last token next step.
    @discardableResult
    public mutating func update(
        afterStep output: SchedulerOutput, sampled: [String: [TokenID]], finished: [String: FinishReason] = [:]
    ) -> SchedulerUpdate {
        var result = SchedulerUpdate()
        var lengthCapped: [String] = []
        for e in output.scheduled {
            let id = e.requestId
            let applied: Bool? = modify(id) { r in
                guard r.status == .running, let f = r.inFlight, f.step == output.step, f.numTokens == e.numTokens
                else { return false }
                r.inFlight = nil
                r.numComputedTokens += f.numTokens
                if r.numComputedTokens >= r.tokens.count {
                    if let new = sampled[id], !new.isEmpty {
                        r.tokens.append(contentsOf: new)
                        result.appended[id] = new
                    } else if finished[id] == nil {
                        // It should have sampled but got no token: recompute its last
                        // token next step instead of leaving it with nothing to do.
                        r.numComputedTokens = r.tokens.count - 1
                    }
                }
                return true
            }
            guard applied == true, let r = requests[id] else { continue }
            kvCache.cacheFullBlocks(
                requestId: id, tokens: r.tokens, numComputedTokens: r.numComputedTokens, extraKey: r.extraKey)
            if finished[id] == nil && r.tokens.count >= config.maxTokensPerRequest {
                lengthCapped.append(id)
            }
        }
        for id in lengthCapped where remove(id) != nil {
            result.finished.append(FinishedRequest(requestId: id, reason: .length))
        }
        for (id, reason) in finished.sorted(by: { $0.key < $1.key }) where remove(id) != nil {
            result.finished.append(FinishedRequest(requestId: id, reason: reason))
        }
        return result
    }

    /// Takes back the scheduling of `output` after its step failed before producing
    /// anything (a peer of an expert-parallel step died): its requests are scheduled again
    /// next step. Their computed tokens never advanced; the blocks they hold stay theirs.
    public mutating func abandon(_ output: SchedulerOutput) {
        for e in output.scheduled {
            _ = modify(e.requestId) { r in
                if r.inFlight?.step == output.step { r.inFlight = nil }
            }
        }
    }

    /// ``update(afterStep:sampled:finished:)`` for `Int` token ids (ids outside `Int32`
    /// are dropped).
    @discardableResult
    public mutating func update(
        afterStep output: SchedulerOutput, sampled: [String: [Int]], finished: [String: FinishReason] = [:]
    ) -> SchedulerUpdate {
        update(
            afterStep: output, sampled: sampled.mapValues { $0.compactMap { TokenID(exactly: $0) } },
            finished: finished)
    }

    /// Forgets all cached prefixes (e.g. after new weights); only while no request holds
    /// blocks.
    public mutating func resetPrefixCache() -> Bool { kvCache.resetPrefixCache() }

    // MARK: Invariants

    /// Describes every broken invariant (empty when consistent); for tests and debugging.
    public func invariantViolations() -> [String] {
        var problems = kvCache.invariantViolations()
        if running.count > config.maxNumSeqs { problems.append("\(running.count) running > maxNumSeqs") }
        if Set(running).count != running.count { problems.append("request running twice") }
        if Set(waiting).count != waiting.count { problems.append("request waiting twice") }
        if !Set(running).isDisjoint(with: waiting) { problems.append("request both running and waiting") }
        if running.count + waiting.count != requests.count {
            problems.append("running \(running.count) + waiting \(waiting.count) != requests \(requests.count)")
        }
        for id in running {
            guard let r = requests[id] else {
                problems.append("running \(id) unknown")
                continue
            }
            if r.status != .running { problems.append("running \(id) has status \(r.status)") }
            if r.numComputedTokens > r.tokens.count { problems.append("\(id) computed more tokens than it has") }
            let covered = r.numComputedTokens + (r.inFlight?.numTokens ?? 0)
            let table = kvCache.blockTable(for: id) ?? []
            if table.count * config.blockSize < covered {
                problems.append("\(id) block table (\(table.count) blocks) does not cover \(covered) tokens")
            }
            if table.count > kvCache.blocksNeeded(forTokens: max(covered, 1)) {
                problems.append("\(id) holds more blocks than it needs")
            }
        }
        for id in waiting {
            guard let r = requests[id] else {
                problems.append("waiting \(id) unknown")
                continue
            }
            if r.status == .running { problems.append("waiting \(id) has status running") }
            if r.numComputedTokens != 0 || r.inFlight != nil { problems.append("waiting \(id) has computed tokens") }
            if kvCache.blockTable(for: id) != nil { problems.append("waiting \(id) holds blocks") }
        }
        for (a, b) in zip(waiting, waiting.dropFirst()) {
            if let x = requests[a], let y = requests[b], x.sortKey > y.sortKey {
                problems.append("waiting queue out of order at \(a), \(b)")
            }
        }
        for id in kvCache.requestIds where requests[id]?.status != .running {
            problems.append("\(id) holds blocks but is not running")
        }
        return problems
    }

    // MARK: Private

    private static func narrow(_ ids: [Int]) throws -> [TokenID] {
        var out: [TokenID] = []
        out.reserveCapacity(ids.count)
        for (i, t) in ids.enumerated() {
            guard let v = TokenID(exactly: t) else {
                throw EbbError(.invalidArgument, "token id \(t) at index \(i) does not fit in Int32")
            }
            out.append(v)
        }
        return out
    }

    private func admitCheck(id: String, prompt: [TokenID], output: [TokenID]) throws {
        guard requests[id] == nil else {
            throw EbbError(.invalidArgument, "request id '\(id)' is already in the scheduler")
        }
        guard !prompt.isEmpty else { throw EbbError(.invalidArgument, "request '\(id)' has an empty prompt") }
        if let bad = prompt.firstIndex(where: { $0 < 0 }) ?? output.firstIndex(where: { $0 < 0 }) {
            throw EbbError(.invalidArgument, "request '\(id)' has a negative token id at index \(bad)")
        }
        let n = prompt.count + output.count
        let what = output.isEmpty ? "prompt" : "prompt plus generated tokens"
        guard n <= config.maxModelLen else {
            throw EbbError(
                .invalidArgument,
                "request '\(id)': \(what) has \(n) tokens, more than the model's maximum length \(config.maxModelLen)")
        }
        guard kvCache.blocksNeeded(forTokens: n) <= config.numBlocks else {
            throw EbbError(
                .resourceExhausted,
                "request '\(id)': \(what) has \(n) tokens, more than the whole KV cache holds (\(config.numBlocks) blocks of \(config.blockSize) tokens)"
            )
        }
    }

    private mutating func takeArrival() -> UInt64 {
        defer { nextArrival += 1 }
        return nextArrival
    }

    private mutating func enqueue(_ state: RequestState) {
        requests[state.id] = state
        insertWaiting(state.id, key: state.sortKey)
    }

    /// Inserts after every waiting request that sorts before or equal to `key`.
    private mutating func insertWaiting(_ id: String, key: (Int, UInt64)) {
        var lo = 0
        var hi = waiting.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if let other = requests[waiting[mid]], other.sortKey <= key { lo = mid + 1 } else { hi = mid }
        }
        waiting.insert(id, at: lo)
    }

    private mutating func modify<R>(_ id: String, _ body: (inout RequestState) -> R) -> R? {
        guard let i = requests.index(forKey: id) else { return nil }
        return body(&requests.values[i])
    }

    private func entry(_ r: RequestState, kind: ScheduledRequest.Kind, numNew: Int, cached: Int, table: [Int32])
        -> ScheduledRequest
    {
        let start = r.numComputedTokens
        return ScheduledRequest(
            requestId: r.id, kind: kind, tokenIds: Array(r.tokens[start..<(start + numNew)]), startPosition: start,
            blockTable: table, numCachedTokens: cached, numPromptTokens: r.numPromptTokens,
            numTotalTokens: r.tokens.count, samplesNextToken: start + numNew == r.tokens.count)
    }

    /// Index in `running` of the request to preempt: largest (priority, arrival) among
    /// those not in flight from an earlier step.
    private func pickVictim(step: UInt64) -> Int? {
        var best: Int? = nil
        var bestKey: (Int, UInt64)? = nil
        for (i, id) in running.enumerated() {
            guard let r = requests[id] else { continue }
            if let f = r.inFlight, f.step != step { continue }
            if bestKey.map({ r.sortKey > $0 }) ?? true {
                best = i
                bestKey = r.sortKey
            }
        }
        return best
    }

    private mutating func preempt(at index: Int) {
        let id = running.remove(at: index)
        kvCache.free(requestId: id)
        let key: (Int, UInt64)? = modify(id) { r in
            r.status = .preempted
            r.numComputedTokens = 0
            r.numCachedTokens = 0
            r.inFlight = nil
            r.resumes = true
            r.numPreemptions += 1
            return r.sortKey
        }
        numPreemptions += 1
        if let key { insertWaiting(id, key: key) }
    }

    @discardableResult
    private mutating func remove(_ id: String) -> RequestState? {
        guard let r = requests.removeValue(forKey: id) else { return nil }
        if r.status == .running {
            running.removeAll { $0 == id }
        } else {
            waiting.removeAll { $0 == id }
        }
        kvCache.free(requestId: id)
        return r
    }
}
