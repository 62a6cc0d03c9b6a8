import EbbCore
import Testing

@testable import EbbEngine

@Suite struct SchedulerBasicsTests {
    @Test func tokenBudgetIsSharedAndNeverExceeded() throws {
        var s = try makeScheduler(budget: 128)
        for (i, id) in ["a", "b", "c"].enumerated() { try s.addRequest(id: id, promptTokenIds: prompt(100, from: 1000 * i)) }
        let (o1, _) = runStep(&s)
        #expect(o1.scheduled.map(\.requestId) == ["a", "b"])
        #expect(o1.scheduled.map(\.numTokens) == [100, 28])
        #expect(o1.numScheduledTokens == 128)
        #expect(o1.scheduled.map(\.kind) == [.new, .new])
        #expect(o1.scheduled.map(\.samplesNextToken) == [true, false])
        let (o2, _) = runStep(&s)
        #expect(o2.scheduled.map(\.requestId) == ["a", "b", "c"])
        #expect(o2.scheduled.map(\.numTokens) == [1, 72, 55])
        #expect(o2.scheduled.map(\.kind) == [.running, .running, .new])
        #expect(o2.numScheduledTokens == 128)
        expectConsistent(s)
    }

    @Test func maxNumSeqsLimitsRunningRequests() throws {
        var s = try makeScheduler(maxNumSeqs: 2)
        for i in 0..<4 { try s.addRequest(id: "r\(i)", promptTokenIds: prompt(10)) }
        let (o1, _) = runStep(&s)
        #expect(o1.scheduled.map(\.requestId) == ["r0", "r1"])
        #expect(s.numRunning == 2 && s.numWaiting == 2)
        let (o2, u2) = runStep(&s, finish: ["r0": .stop])
        #expect(o2.scheduled.map(\.requestId) == ["r0", "r1"])
        #expect(u2.finished == [FinishedRequest(requestId: "r0", reason: .stop)])
        let (o3, _) = runStep(&s)
        #expect(o3.scheduled.map(\.requestId) == ["r1", "r2"])
        #expect(o3.scheduled.map(\.kind) == [.running, .new])
        expectConsistent(s)
    }

    @Test func chunkedPrefillOverSeveralSteps() throws {
        var s = try makeScheduler(budget: 32)
        let p = prompt(100)
        try s.addRequest(id: "a", promptTokenIds: p)
        var previousTable: [Int32] = []
        var starts: [Int] = []
        for step in 0..<4 {
            let (o, u) = runStep(&s)
            let r = try #require(o.request("a"))
            starts.append(r.startPosition)
            #expect(r.tokenIds == Array(p[r.startPosition..<(r.startPosition + r.numTokens)]))
            #expect(r.blockTable.count == (r.startPosition + r.numTokens + 15) / 16)
            #expect(Array(r.blockTable.prefix(previousTable.count)) == previousTable)
            #expect(r.kind == (step == 0 ? .new : .running))
            #expect(r.isPrefill)
            #expect(r.samplesNextToken == (step == 3))
            #expect(r.isLastPrefillChunk == (step == 3))
            #expect(u.appended["a"] == (step == 3 ? [fakeSample(100)] : nil))
            let slots = r.slotMapping(blockSize: 16)
            #expect(slots.count == r.numTokens)
            #expect(slots.first == Int(r.blockTable[r.startPosition / 16]) * 16 + r.startPosition % 16)
            previousTable = r.blockTable
        }
        #expect(starts == [0, 32, 64, 96])
        let (o5, _) = runStep(&s)
        let d = try #require(o5.request("a"))
        #expect(d.isDecode && d.samplesNextToken && !d.isLastPrefillChunk)
        #expect(d.tokenIds == [fakeSample(100)] && d.startPosition == 100)
        #expect(d.blockTable.count == 7 && Array(d.blockTable.prefix(7)) == previousTable)
        #expect(s.snapshot("a")?.outputTokenIds == [fakeSample(100), fakeSample(101)])
        expectConsistent(s)
    }

    @Test func decodesComeFirstThenAPrefillChunk() throws {
        var s = try makeScheduler(budget: 20)
        try s.addRequest(id: "a", promptTokenIds: prompt(5))
        try s.addRequest(id: "b", promptTokenIds: prompt(50, from: 500))
        let (o1, _) = runStep(&s)
        #expect(o1.scheduled.map(\.numTokens) == [5, 15])
        let (o2, _) = runStep(&s)
        #expect(o2.scheduled.map(\.requestId) == ["a", "b"])
        #expect(o2.scheduled[0].isDecode && o2.scheduled[0].startPosition == 5)
        #expect(o2.scheduled[1].isPrefill && o2.scheduled[1].startPosition == 15 && o2.scheduled[1].numTokens == 19)
        #expect(o2.numScheduledTokens == 20)
        expectConsistent(s)
    }

    @Test func longPrefillThresholdCapsEachRequest() throws {
        var s = try makeScheduler(budget: 100, threshold: 8)
        try s.addRequest(id: "a", promptTokenIds: prompt(30))
        try s.addRequest(id: "b", promptTokenIds: prompt(30, from: 100))
        let (o, _) = runStep(&s)
        #expect(o.scheduled.map(\.numTokens) == [8, 8])
    }

    @Test func withoutChunkedPrefillAPromptWaitsForRoom() throws {
        var s = try makeScheduler(budget: 64, maxModelLen: 64, chunked: false)
        try s.addRequest(id: "a", promptTokenIds: prompt(40))
        try s.addRequest(id: "b", promptTokenIds: prompt(40, from: 100))
        let (o1, _) = runStep(&s)
        #expect(o1.scheduled.map(\.requestId) == ["a"])
        let (o2, _) = runStep(&s)
        #expect(o2.scheduled.map(\.numTokens) == [1, 40])
        #expect(throws: EbbError.self) {
            try Scheduler(config: SchedulerConfig(numBlocks: 8, maxNumBatchedTokens: 32, maxModelLen: 64, enableChunkedPrefill: false))
        }
    }

    @Test func priorityOrdersTheWaitingQueue() throws {
        var s = try makeScheduler(maxNumSeqs: 1)
        try s.addRequest(id: "low", promptTokenIds: prompt(4), priority: 5)
        try s.addRequest(id: "high", promptTokenIds: prompt(4), priority: 0)
        try s.addRequest(id: "high2", promptTokenIds: prompt(4), priority: 0)
        #expect(s.waitingIds == ["high", "high2", "low"])
        let (o, _) = runStep(&s)
        #expect(o.scheduled.map(\.requestId) == ["high"])
    }

    @Test func rejectsRequestsThatCanNeverRun() throws {
        var s = try makeScheduler(numBlocks: 8, blockSize: 4, maxModelLen: 64)
        #expect(s.config.maxTokensPerRequest == 32)
        let tooLong = #expect(throws: EbbError.self) { try s.addRequest(id: "x", promptTokenIds: prompt(65)) }
        #expect(tooLong?.code == .invalidArgument)
        let tooBig = #expect(throws: EbbError.self) { try s.addRequest(id: "x", promptTokenIds: prompt(33)) }
        #expect(tooBig?.code == .resourceExhausted)
        let empty = #expect(throws: EbbError.self) { try s.addRequest(id: "x", promptTokenIds: [TokenID]()) }
        #expect(empty?.code == .invalidArgument)
        #expect(throws: EbbError.self) { try s.addRequest(id: "x", promptTokenIds: [1, -2] as [TokenID]) }
        #expect(throws: EbbError.self) { try s.addRequest(id: "x", promptTokenIds: [1, Int(Int32.max) + 1]) }
        #expect(s.numRequests == 0)
        try s.addRequest(id: "x", promptTokenIds: prompt(32))
        let dup = #expect(throws: EbbError.self) { try s.addRequest(id: "x", promptTokenIds: prompt(3)) }
        #expect(dup?.code == .invalidArgument)
        // The one that fits exactly runs, samples once and is stopped for length.
        let (o, u) = runStep(&s)
        #expect(o.scheduled.map(\.numTokens) == [32])
        #expect(u.finished == [FinishedRequest(requestId: "x", reason: .length)])
        #expect(s.numRequests == 0 && s.kvCache.freeBlocks == 8)
    }

    @Test func schedulerStopsARequestAtMaxModelLen() throws {
        var s = try makeScheduler(maxModelLen: 10)
        try s.addRequest(id: "a", promptTokenIds: prompt(8))
        let (_, u1) = runStep(&s)
        #expect(u1.finished.isEmpty)
        let (_, u2) = runStep(&s)
        #expect(u2.finished == [FinishedRequest(requestId: "a", reason: .length)])
        #expect(u2.appended["a"] == [fakeSample(9)])
        #expect(!s.hasUnfinishedRequests && s.kvCache.usedBlocks == 0)
    }

    @Test func staleOrRepeatedUpdatesAreIgnored() throws {
        var s = try makeScheduler()
        try s.addRequest(id: "a", promptTokenIds: prompt(8))
        let o = s.schedule()
        s.update(afterStep: o, sampled: ["a": [7]])
        s.update(afterStep: o, sampled: ["a": [8]])
        #expect(s.snapshot("a")?.outputTokenIds == [7])
        #expect(s.snapshot("a")?.numComputedTokens == 8)
        // A second schedule() before update does not schedule an in-flight request again.
        let o2 = s.schedule()
        #expect(o2.scheduled.map(\.requestId) == ["a"])
        let again = s.schedule()
        #expect(again.isEmpty)
        s.update(afterStep: o2, sampled: ["a": [9]])
        #expect(s.snapshot("a")?.outputTokenIds == [7, 9])
        expectConsistent(s)
    }

    @Test func aMissingSampleRecomputesTheLastToken() throws {
        var s = try makeScheduler()
        try s.addRequest(id: "a", promptTokenIds: prompt(8))
        let o1 = s.schedule()
        s.update(afterStep: o1, sampled: [String: [TokenID]]())
        #expect(s.snapshot("a")?.numComputedTokens == 7)
        let o2 = s.schedule()
        let r = try #require(o2.request("a"))
        #expect(r.startPosition == 7 && r.tokenIds == [8] && r.samplesNextToken)
        s.update(afterStep: o2, sampled: ["a": [5]])
        #expect(s.snapshot("a")?.outputTokenIds == [5])
        expectConsistent(s)
    }
}

@Suite struct PreemptionTests {
    /// Two 8-token prompts in a 6-block pool of 4-token blocks: both fit until each needs
    /// a fourth block (position 12).
    func twoRequestsUntilPreemption(prefixCaching: Bool) throws -> (Scheduler, SchedulerOutput) {
        var s = try makeScheduler(numBlocks: 6, blockSize: 4, budget: 64, prefixCaching: prefixCaching)
        try s.addRequest(id: "a", promptTokenIds: prompt(8))
        try s.addRequest(id: "b", promptTokenIds: prompt(8, from: 100))
        for _ in 0..<5 {
            let (o, _) = runStep(&s)
            #expect(o.preempted.isEmpty && o.scheduled.count == 2)
            expectConsistent(s)
        }
        #expect(s.kvCache.freeBlocks == 0)
        let (o6, _) = runStep(&s)
        return (s, o6)
    }

    @Test(arguments: [false, true])
    func newestRunningRequestIsPreemptedAndResumes(prefixCaching: Bool) throws {
        var (s, o6) = try twoRequestsUntilPreemption(prefixCaching: prefixCaching)
        #expect(o6.preempted == ["b"])
        #expect(o6.scheduled.map(\.requestId) == ["a"])
        #expect(s.numPreemptions == 1 && s.numPreemptedWaiting == 1)
        let b = try #require(s.snapshot("b"))
        #expect(b.status == .preempted && b.numComputedTokens == 0 && b.blockTable.isEmpty)
        #expect(b.outputTokenIds == (8..<13).map { fakeSample($0) })
        #expect(s.kvCache.usedBlocks == 4)
        expectConsistent(s)

        // b cannot come back while a holds 4 blocks; a finishes.
        let (o7, _) = runStep(&s, finish: ["a": .stop])
        #expect(o7.scheduled.map(\.requestId) == ["a"])
        let (o8, u8) = runStep(&s)
        let r = try #require(o8.request("b"))
        let all = b.promptTokenIds + b.outputTokenIds
        #expect(r.kind == .resumed && r.numTotalTokens == 13 && r.samplesNextToken)
        #expect(r.startPosition == r.numCachedTokens)
        #expect(r.tokenIds == Array(all[r.startPosition...]))
        if prefixCaching {
            // b's first three blocks were cached before preemption; a's extra block
            // evicted the least recently freed one (b's third block).
            #expect(r.numCachedTokens == 8)
        } else {
            #expect(r.numCachedTokens == 0 && r.tokenIds == all)
        }
        #expect(u8.appended["b"] == [fakeSample(13)])
        let (o9, _) = runStep(&s)
        let d = try #require(o9.request("b"))
        #expect(d.kind == .running && d.isDecode && d.startPosition == 13 && d.tokenIds == [fakeSample(13)])
        #expect(s.snapshot("b")?.outputTokenIds == (8..<15).map { fakeSample($0) })
        expectConsistent(s)
    }

    @Test func lowerPriorityIsPreemptedEvenIfAlreadyScheduled() throws {
        var s = try makeScheduler(numBlocks: 6, blockSize: 4, budget: 64)
        try s.addRequest(id: "x", promptTokenIds: prompt(8), priority: 5)
        runStep(&s)
        try s.addRequest(id: "y", promptTokenIds: prompt(11, from: 100), priority: 0)
        let (o2, _) = runStep(&s)  // x decodes at 8 (3rd block), y prefills 11 (3 blocks)
        #expect(o2.scheduled.map(\.requestId) == ["x", "y"] && s.kvCache.freeBlocks == 0)
        runStep(&s)  // x at 9, y at 11
        let o4 = s.schedule()  // x at 10 fits; y at 12 needs a block
        #expect(o4.preempted == ["x"])
        #expect(o4.scheduled.map(\.requestId) == ["y"])
        #expect(o4.numScheduledTokens == 1)
        #expect(s.snapshot("x")?.status == .preempted)
        expectConsistent(s)
    }

    @Test func abortWaitingRunningAndPreemptedFreesEverything() throws {
        var (s, _) = try twoRequestsUntilPreemption(prefixCaching: true)
        try s.addRequest(id: "c", promptTokenIds: prompt(10, from: 300))
        #expect(s.snapshot("a")?.status == .running)
        #expect(s.snapshot("b")?.status == .preempted)
        #expect(s.snapshot("c")?.status == .waiting)
        let abortedC = s.abort("c")
        #expect(abortedC)
        let abortedB = s.abort("b")
        #expect(abortedB)
        expectConsistent(s)
        // Abort a running request while its step is in flight: the late update is ignored.
        let o = s.schedule()
        #expect(o.scheduled.map(\.requestId) == ["a"])
        let abortedA = s.abort("a")
        #expect(abortedA)
        let u = s.update(afterStep: o, sampled: ["a": [1]])
        #expect(u.appended.isEmpty && u.finished.isEmpty)
        let abortedTwice = s.abort("a"), abortedUnknown = s.abort("nope")
        #expect(!abortedTwice && !abortedUnknown)
        #expect(s.kvCache.freeBlocks == 6 && s.kvCache.usedBlocks == 0 && s.numRequests == 0)
        expectConsistent(s)
    }
}

@Suite struct SchedulerPrefixCacheTests {
    @Test func secondRequestReusesWholeCachedBlocks() throws {
        var s = try makeScheduler()
        let p = prompt(40)
        try s.addRequest(id: "a", promptTokenIds: p)
        runStep(&s)
        try s.addRequest(id: "b", promptTokenIds: p)
        try s.addRequest(id: "c", promptTokenIds: Array(p.prefix(32)))
        try s.addRequest(id: "d", promptTokenIds: Array(p.prefix(16)))
        let (o, _) = runStep(&s)
        let a = try #require(o.request("a")), b = try #require(o.request("b"))
        let c = try #require(o.request("c")), d = try #require(o.request("d"))
        #expect(b.numCachedTokens == 32 && b.startPosition == 32 && b.tokenIds == Array(p[32...]))
        #expect(Array(b.blockTable.prefix(2)) == Array(a.blockTable.prefix(2)))
        #expect(b.blockTable[2] != a.blockTable[2])
        // Never the whole prompt: 32 tokens → at most 31 → one block.
        #expect(c.numCachedTokens == 16 && c.tokenIds == Array(p[16..<32]))
        #expect(d.numCachedTokens == 0 && d.numTokens == 16)
        #expect(s.kvCache.pool.refCount(a.blockTable[0]) == 3)  // a, b, c (d computes its own)
        #expect(s.prefixCacheStats.queries == 40 + 40 + 32 + 16)
        #expect(s.prefixCacheStats.hits == 32 + 16)
        expectConsistent(s)
    }

    @Test func hitsAfterTheFirstRequestFinished() throws {
        var s = try makeScheduler()
        let p = prompt(40)
        try s.addRequest(id: "a", promptTokenIds: p)
        runStep(&s)
        runStep(&s)  // a decodes: 41 computed, its output is in the sequence too
        runStep(&s, finish: ["a": .stop])
        #expect(s.kvCache.usedBlocks == 0 && s.kvCache.freeBlocks == 64)
        #expect(s.kvCache.pool.numCachedBlocks == 2)
        try s.addRequest(id: "b", promptTokenIds: p + [9])
        let (o, _) = runStep(&s)
        #expect(o.request("b")?.numCachedTokens == 32)
        // Generated tokens are part of the hashes: a's 48-token block holds its outputs.
        var s2 = try makeScheduler()
        try s2.addRequest(id: "a", promptTokenIds: prompt(14))
        for _ in 0..<4 { runStep(&s2) }  // 14 + 4 sampled; 17 computed → 1 full block
        let generated = try #require(s2.snapshot("a"))
        _ = s2.abort("a")
        try s2.addRequest(id: "b", promptTokenIds: generated.promptTokenIds + generated.outputTokenIds)
        let ob = s2.schedule()
        #expect(ob.request("b")?.numCachedTokens == 16)
    }

    @Test func leastRecentlyFreedCachedBlocksAreEvictedFirst() throws {
        var s = try makeScheduler(numBlocks: 4, blockSize: 4, budget: 64)
        let pa = prompt(5, from: 1), pb = prompt(5, from: 100)
        try s.addRequest(id: "a", promptTokenIds: pa)
        try s.addRequest(id: "b", promptTokenIds: pb)
        runStep(&s, finish: ["a": .stop])  // a's full block freed first
        runStep(&s, finish: ["b": .stop])  // then b's
        #expect(s.kvCache.findCachedPrefix(tokens: pa).numCachedTokens == 4)
        #expect(s.kvCache.findCachedPrefix(tokens: pb).numCachedTokens == 4)
        // Needs 3 of the 4 blocks: the two partial blocks, then a's cached block.
        try s.addRequest(id: "c", promptTokenIds: prompt(9, from: 200))
        let (o, _) = runStep(&s)
        #expect(o.request("c")?.blockTable.count == 3)
        #expect(s.kvCache.findCachedPrefix(tokens: pa).numCachedTokens == 0)
        #expect(s.kvCache.findCachedPrefix(tokens: pb).numCachedTokens == 4)
        #expect(s.kvCache.pool.numEvictions == 1)
        expectConsistent(s)
    }

    @Test func disabledPrefixCachingComputesEverything() throws {
        var s = try makeScheduler(prefixCaching: false)
        let p = prompt(40)
        try s.addRequest(id: "a", promptTokenIds: p)
        runStep(&s, finish: ["a": .stop])
        try s.addRequest(id: "b", promptTokenIds: p)
        let (o, _) = runStep(&s)
        #expect(o.request("b")?.numCachedTokens == 0 && o.request("b")?.numTokens == 40)
        #expect(s.prefixCacheStats == PrefixCacheStats())
    }

    @Test func extraKeySeparatesCaches() throws {
        var s = try makeScheduler()
        let p = prompt(40)
        try s.addRequest(id: "a", promptTokenIds: p, cacheExtraKey: 1)
        runStep(&s)
        try s.addRequest(id: "b", promptTokenIds: p, cacheExtraKey: 2)
        try s.addRequest(id: "c", promptTokenIds: p, cacheExtraKey: 1)
        let (o, _) = runStep(&s)
        #expect(o.request("b")?.numCachedTokens == 0)
        #expect(o.request("c")?.numCachedTokens == 32)
    }
}

@Suite struct MigrationTests {
    @Test func removedRequestResumesOnAnotherScheduler() throws {
        var s1 = try makeScheduler()
        try s1.addRequest(id: "a", promptTokenIds: prompt(20), priority: 3, cacheExtraKey: 9)
        for _ in 0..<3 { runStep(&s1) }
        let mResult = s1.removeForMigration("a")
        let m = try #require(mResult)
        #expect(m.promptTokenIds == prompt(20) && m.outputTokenIds == (20..<23).map { fakeSample($0) })
        #expect(m.priority == 3 && m.cacheExtraKey == 9)
        #expect(s1.numRequests == 0 && s1.kvCache.usedBlocks == 0)
        let removedTwice = s1.removeForMigration("a")
        #expect(removedTwice == nil)

        var s2 = try makeScheduler()
        try s2.addResumedRequest(m)
        #expect(s2.snapshot("a")?.status == .waiting)
        let (o, u) = runStep(&s2)
        let r = try #require(o.request("a"))
        #expect(r.kind == .resumed && r.startPosition == 0 && r.tokenIds == m.promptTokenIds + m.outputTokenIds)
        #expect(r.numPromptTokens == 20 && r.samplesNextToken)
        #expect(u.appended["a"] == [fakeSample(23)])
        expectConsistent(s2)
    }

    @Test func drainRemovesEverything() throws {
        var s = try makeScheduler(maxNumSeqs: 1)
        try s.addRequest(id: "a", promptTokenIds: prompt(4))
        try s.addRequest(id: "b", promptTokenIds: prompt(4))
        runStep(&s)
        let all = s.drainForMigration()
        #expect(all.map(\.requestId) == ["a", "b"])
        #expect(all[0].outputTokenIds.count == 1 && all[1].outputTokenIds.isEmpty)
        #expect(s.numRequests == 0 && s.kvCache.freeBlocks == s.config.numBlocks)
    }
}
