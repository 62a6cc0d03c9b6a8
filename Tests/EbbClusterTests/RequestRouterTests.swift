@testable import EbbCluster
import EbbCore
import EbbEngine
import Testing

/// The coordinator's request table: tracking, streamed tokens, moves and ends.
struct RequestRouterTests {
    func request(_ id: String) -> EngineRequest {
        EngineRequest(id: id, promptTokenIds: [1], params: SamplingParams(), eosTokenIds: [])
    }

    func output(_ id: String, _ tokens: [Int], finished: Bool = false) -> EngineEvent {
        .output(RequestOutput(requestId: id, newTokenIds: tokens, finishReason: finished ? .length : nil))
    }

    @Test func tracksStreamedTokensMovesAndForgetsFinishedRequests() {
        var router = RequestRouter()
        let (_, c) = AsyncStream<EngineEvent>.makeStream()
        let added = router.track(request("a"), continuation: c, on: "engine-1")
        let duplicate = router.track(request("a"), continuation: c, on: "engine-0")
        #expect(added && !duplicate, "ids are unique")
        #expect(router.liveCount(on: "engine-1") == 1)
        let first = router.deliver(output("a", [5, 6]), for: "a", from: "engine-1")
        #expect(first?.done == false)
        let stray = router.deliver(output("a", [7]), for: "a", from: "engine-0")
        #expect(stray == nil, "only the rank that runs it")
        #expect(router.tracked("a")?.generated == [5, 6])
        router.move("a", to: "engine-2")
        #expect(router.liveCount(on: "engine-1") == 0 && router.liveCount(on: "engine-2") == 1)
        #expect(router.assignedCount(to: "engine-1") == 1 && router.assignedCount(to: "engine-2") == 1)
        #expect(router.requests(on: "engine-2").map(\.id) == ["a"])
        let last = router.deliver(output("a", [7], finished: true), for: "a", from: "engine-2")
        #expect(last?.done == true)
        #expect(router.tracked("a") == nil && router.liveCount(on: "engine-2") == 0)
    }

    @Test func anErrorEndsTheRequestAndRemoveAllEmptiesTheTable() {
        var router = RequestRouter()
        let (_, c) = AsyncStream<EngineEvent>.makeStream()
        _ = router.track(request("a"), continuation: c, on: "engine-0")
        _ = router.track(request("b"), continuation: c, on: "engine-0")
        let failed = router.deliver(.error(EbbError(.internal, "boom")), for: "a", from: "engine-0")
        #expect(failed?.done == true)
        let rest = router.removeAll()
        #expect(rest.map(\.request.id) == ["b"])
        #expect(router.liveCount(on: "engine-0") == 0)
    }
}
