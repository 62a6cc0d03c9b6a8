import EbbCore
import Testing

@testable import EbbEngine

struct RandomCase: Sendable, CustomTestStringConvertible {
    var seed: UInt64
    var prefixCaching: Bool
    var chunked: Bool
    var threshold: Int
    var testDescription: String {
        "seed \(seed) caching \(prefixCaching) chunked \(chunked) threshold \(threshold)"
    }
}

/// Drives a small scheduler through many random add/abort/schedule/update cycles against
/// a shadow model, including a fake paged KV cache that records which token was written
/// at which position in each slot: every token a request attends to (positions before
/// its start) must be in its block table's slots, whether computed by itself or reused
/// from the prefix cache. Checks run as plain conditions (one `Issue` per distinct
/// failure) so the loop stays fast in debug builds.
@Suite struct RandomizedSchedulerTests {
    static let cases: [RandomCase] = [
        RandomCase(seed: 1, prefixCaching: true, chunked: true, threshold: 0),
        RandomCase(seed: 2, prefixCaching: false, chunked: true, threshold: 0),
        RandomCase(seed: 3, prefixCaching: true, chunked: false, threshold: 0),
        RandomCase(seed: 4, prefixCaching: true, chunked: true, threshold: 6),
        RandomCase(seed: 5, prefixCaching: true, chunked: true, threshold: 0),
    ]

    @Test(arguments: cases)
    func randomCyclesKeepInvariants(_ c: RandomCase) throws {
        var rng = SeededRNG(seed: c.seed)
        let blockSize = 4
        let numBlocks = 24
        let maxModelLen = 64
        let budget = c.chunked ? 24 : 64
        let maxNumSeqs = 6
        var s = try Scheduler(
            config: SchedulerConfig(
                numBlocks: numBlocks, blockSize: blockSize, maxNumBatchedTokens: budget, maxNumSeqs: maxNumSeqs,
                maxModelLen: maxModelLen, enablePrefixCaching: c.prefixCaching, enableChunkedPrefill: c.chunked,
                longPrefillTokenThreshold: c.threshold))
        let limit = s.config.maxTokensPerRequest

        var failures: [String] = []
        func fail(_ message: @autoclosure () -> String) {
            if failures.count < 20 { failures.append(message()) }
        }

        // Shared prefixes so that prompts hit the prefix cache.
        let bases: [[TokenID]] = (0..<3).map { _ in (0..<40).map { _ in TokenID.random(in: 1...50, using: &rng) } }
        var tokens: [String: [TokenID]] = [:]  // shadow: prompt + generated
        var computed: [String: Int] = [:]
        var maxOutput: [String: Int] = [:]
        var promptLen: [String: Int] = [:]
        struct Slot: Equatable {
            var token: TokenID
            var position: Int
        }
        var kv = [Slot?](repeating: nil, count: numBlocks * blockSize)
        var nextId = 0
        var finishedCount = 0
        var rejectedCount = 0
        var resumedCount = 0
        var abortedInFlight = 0

        func check(_ tag: String) {
            let problems = s.invariantViolations()
            if !problems.isEmpty { fail("\(tag): \(problems)") }
            if s.kvCache.freeBlocks + s.kvCache.usedBlocks != numBlocks { fail("\(tag): free + used != total") }
            if s.numRequests != tokens.count { fail("\(tag): scheduler has \(s.numRequests), shadow \(tokens.count)") }
            if s.numRequests == 0 && s.kvCache.freeBlocks != numBlocks { fail("\(tag): leaked blocks") }
        }

        let addingSteps = 1500
        var step = 0
        while step < addingSteps || !tokens.isEmpty {
            step += 1
            if step > addingSteps + 5000 {
                fail("did not drain: \(tokens.count) requests left, running \(s.runningIds), waiting \(s.waitingIds)")
                break
            }
            // Add requests.
            if step <= addingSteps && Int.random(in: 0..<4, using: &rng) == 0 {
                let id = "r\(nextId)"
                nextId += 1
                let n = Int.random(in: 1...70, using: &rng)
                var p: [TokenID]
                if Bool.random(using: &rng) {
                    let base = bases[Int.random(in: 0..<bases.count, using: &rng)]
                    p = Array(base.prefix(min(n, Int.random(in: 0...base.count, using: &rng))))
                    while p.count < n { p.append(TokenID.random(in: 1...50, using: &rng)) }
                } else {
                    p = (0..<n).map { _ in TokenID.random(in: 1...50, using: &rng) }
                }
                do {
                    try s.addRequest(id: id, promptTokenIds: p, priority: Int.random(in: 0...2, using: &rng))
                    if n > limit { fail("accepted a \(n)-token prompt over the limit \(limit)") }
                    tokens[id] = p
                    computed[id] = 0
                    promptLen[id] = n
                    maxOutput[id] = Int.random(in: 1...20, using: &rng)
                } catch {
                    rejectedCount += 1
                    if n <= limit { fail("rejected a \(n)-token prompt: \(error)") }
                }
            }
            // Abort a random request, and an unknown one.
            if Int.random(in: 0..<12, using: &rng) == 0, let victim = tokens.keys.sorted().randomElement(using: &rng) {
                if !s.abort(victim) { fail("abort of \(victim) failed") }
                tokens[victim] = nil
                computed[victim] = nil
            }
            if s.abort("unknown") { fail("abort of an unknown id succeeded") }
            check("step \(step) before schedule")

            let out = s.schedule()
            if out.numScheduledTokens > budget { fail("step \(step): \(out.numScheduledTokens) tokens > budget") }
            if out.numScheduledTokens != out.scheduled.reduce(0, { $0 + $1.numTokens }) {
                fail("step \(step): numScheduledTokens is not the sum")
            }
            if out.scheduled.count > maxNumSeqs { fail("step \(step): too many sequences") }
            if Set(out.scheduled.map(\.requestId)).count != out.scheduled.count { fail("step \(step): duplicate ids") }
            for id in out.preempted {
                if tokens[id] == nil || s.snapshot(id)?.status != .preempted { fail("bad preemption of \(id)") }
                computed[id] = 0
            }
            for r in out.scheduled {
                let id = r.requestId
                guard let t = tokens[id], let done = computed[id] else {
                    fail("scheduled unknown request \(id)")
                    continue
                }
                let end = r.startPosition + r.numTokens
                if !(r.numTokens > 0 && end <= t.count) { fail("\(id): bad range \(r.startPosition)+\(r.numTokens)") }
                if r.numTotalTokens != t.count || r.numPromptTokens != promptLen[id] { fail("\(id): bad counts") }
                if r.samplesNextToken != (end == t.count) { fail("\(id): samplesNextToken wrong") }
                if end <= t.count && r.tokenIds != Array(t[r.startPosition..<end]) { fail("\(id): wrong tokens") }
                if r.blockTable.count * blockSize < end { fail("\(id): block table too short") }
                if Set(r.blockTable).count != r.blockTable.count { fail("\(id): block twice in table") }
                if c.threshold > 0 && r.numTokens > c.threshold { fail("\(id): chunk over threshold") }
                switch r.kind {
                case .running:
                    if r.startPosition != done || r.numCachedTokens != 0 { fail("\(id): start \(r.startPosition) != \(done)") }
                case .new, .resumed:
                    if r.kind == .resumed { resumedCount += 1 }
                    if done != 0 { fail("\(id): admitted with computed tokens") }
                    if r.startPosition != r.numCachedTokens || r.numCachedTokens % blockSize != 0
                        || r.numCachedTokens >= t.count
                    {
                        fail("\(id): bad cached tokens \(r.numCachedTokens)")
                    }
                    if !c.prefixCaching && r.numCachedTokens != 0 { fail("\(id): cache hit with caching off") }
                    computed[id] = r.startPosition
                }
                // Everything before the start must already be in the KV cache.
                for p in 0..<min(r.startPosition, t.count) {
                    let slot = Int(r.blockTable[p / blockSize]) * blockSize + p % blockSize
                    if kv[slot] != Slot(token: t[p], position: p) {
                        fail("\(id): KV of position \(p) missing at step \(step)")
                        break
                    }
                }
            }
            check("step \(step) after schedule")

            // The "model" writes the KV of every scheduled token.
            for r in out.scheduled {
                for (i, tok) in r.tokenIds.enumerated() {
                    let p = r.startPosition + i
                    kv[Int(r.blockTable[p / blockSize]) * blockSize + p % blockSize] = Slot(token: tok, position: p)
                }
            }
            // Sometimes a request is aborted while its step is in flight.
            if Int.random(in: 0..<20, using: &rng) == 0, let r = out.scheduled.randomElement(using: &rng) {
                if !s.abort(r.requestId) { fail("in-flight abort failed") }
                tokens[r.requestId] = nil
                computed[r.requestId] = nil
                abortedInFlight += 1
            }
            var sampled: [String: [TokenID]] = [:]
            var finish: [String: FinishReason] = [:]
            for r in out.scheduled where r.samplesNextToken && tokens[r.requestId] != nil {
                sampled[r.requestId] = [TokenID.random(in: 1...50, using: &rng)]
                let outputs = r.numTotalTokens + 1 - (promptLen[r.requestId] ?? 0)
                if outputs >= (maxOutput[r.requestId] ?? 1) { finish[r.requestId] = .stop }
            }
            // Occasionally finish a request that was not scheduled (e.g. a stop string).
            if Int.random(in: 0..<30, using: &rng) == 0, let id = tokens.keys.sorted().randomElement(using: &rng) {
                finish[id] = .abort
            }
            let upd = s.update(afterStep: out, sampled: sampled, finished: finish)
            var expectedFinished = Set(finish.keys.filter { tokens[$0] != nil })
            for r in out.scheduled where tokens[r.requestId] != nil {
                computed[r.requestId, default: 0] += r.numTokens
                if let new = sampled[r.requestId] {
                    if upd.appended[r.requestId] != new { fail("\(r.requestId): sampled tokens not appended") }
                    tokens[r.requestId, default: []].append(contentsOf: new)
                }
                if let t = tokens[r.requestId], t.count >= limit { expectedFinished.insert(r.requestId) }
            }
            if Set(upd.finished.map(\.requestId)) != expectedFinished {
                fail("step \(step): finished \(upd.finished) expected \(expectedFinished)")
            }
            for f in upd.finished {
                if finish[f.requestId] == nil && f.reason != .length { fail("\(f.requestId): unexpected reason") }
                tokens[f.requestId] = nil
                computed[f.requestId] = nil
                finishedCount += 1
            }
            for (id, n) in computed where s.snapshot(id)?.numComputedTokens != n {
                fail("\(id): computed \(s.snapshot(id)?.numComputedTokens ?? -1) != shadow \(n)")
            }
            check("step \(step) after update")
        }
        for f in failures { Issue.record(Comment(rawValue: f)) }
        // Everything drained (nothing wedged) and every block came back.
        #expect(tokens.isEmpty && s.numRequests == 0)
        #expect(s.kvCache.freeBlocks == numBlocks)
        // The run exercised the interesting paths.
        #expect(finishedCount > 100)
        #expect(rejectedCount > 0)
        #expect(s.numPreemptions > 0 && resumedCount > 0)
        #expect(abortedInFlight > 0)
        if c.prefixCaching { #expect(s.prefixCacheStats.hits > 0) }
    }
}
