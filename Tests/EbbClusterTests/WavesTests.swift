import EbbCluster
import EbbEngine
import Testing

/// The wave state machines: ranks pause together and the coordinator starts each wave once.
struct WavesTests {
    @Test func firstDispatchStartsWaveOne() {
        var c = CoordinatorWaves()
        #expect(c.paused)
        #expect(c.dispatch() == 1)
        #expect(c.dispatch() == nil, "a running wave is not started again")
        c.idle(wave: 1)
        #expect(c.paused)
        #expect(c.dispatch() == 2)
    }

    @Test func staleIdleIsIgnored() {
        var c = CoordinatorWaves()
        _ = c.dispatch()
        c.idle(wave: 1)
        _ = c.dispatch()  // wave 2 runs
        c.idle(wave: 1)   // a late report of the old wave
        #expect(!c.paused)
        #expect(c.wave == 2)
    }

    @Test func wakeRequestStartsTheNextWaveOnce() {
        var c = CoordinatorWaves()
        _ = c.dispatch()
        // The rank paused at wave 1 before the coordinator heard of it.
        #expect(c.wakeRequested(wave: 2) == 2)
        #expect(c.wakeRequested(wave: 2) == nil, "a second rank asking for the same wave")
        #expect(c.dispatch() == nil)
    }

    @Test func engineReportsIdleThenWakesOnStart() {
        var e = EngineWaves()
        #expect(e.paused)
        e.startWave(1)
        #expect(!e.paused)
        #expect(e.synced(anyWork: true) == .none)
        #expect(e.synced(anyWork: false) == .reportIdle(wave: 1))
        #expect(e.paused)
        // A request sent during wave 1 reaches the paused rank: ask for wave 2.
        #expect(e.requestArrived(sentInWave: 1) == .requestWake(wave: 2))
        e.startWave(2)
        #expect(!e.paused && e.wave == 2)
        // A request of the current wave while running needs nothing.
        #expect(e.requestArrived(sentInWave: 2) == .none)
        // A stale start does not unpause a later pause.
        _ = e.synced(anyWork: false)
        e.startWave(1)
        #expect(e.paused)
    }

    /// Simulates the race of a request with the idle decision over many interleavings: the
    /// ranks never stay paused with work.
    @Test func noRankSleepsWithWork() {
        for ordering in 0..<4 {
            var c = CoordinatorWaves()
            var ranks = [EngineWaves(), EngineWaves()]
            var wave = c.dispatch()!
            for i in ranks.indices { ranks[i].startWave(wave) }
            // Both ranks find no work: they pause at `wave`.
            for i in ranks.indices { _ = ranks[i].synced(anyWork: false) }
            // The coordinator dispatches before or after hearing of the idle.
            if ordering & 1 == 0 { c.idle(wave: wave) }
            let started = c.dispatch()
            let sentIn = c.wave
            if ordering & 1 == 1 { c.idle(wave: wave) }
            if let started { for i in ranks.indices { ranks[i].startWave(started) } }
            let action = ranks[0].requestArrived(sentInWave: sentIn)
            if case .requestWake(let w) = action, let s = c.wakeRequested(wave: w) {
                for i in ranks.indices { ranks[i].startWave(s) }
            }
            wave = c.wave
            #expect(!ranks[0].paused && !ranks[1].paused, "ordering \(ordering): the rank holding work sleeps")
            #expect(ranks[0].wave == ranks[1].wave)
        }
    }
}

struct LoadBalancerTests {
    func load(live: Int, running: Int = 0, waiting: Int = 0, kv: Double = 0, accepting: Bool = true) -> LoadBalancer.RankLoad {
        var s = EngineStats()
        s.running = running
        s.waiting = waiting
        s.kvCacheUsage = kv
        return LoadBalancer.RankLoad(accepting: accepting, live: live, reported: s)
    }

    @Test func picksTheLeastLoadedRank() {
        let b = LoadBalancer()
        #expect(b.choose([load(live: 3, running: 3), load(live: 1, running: 1), load(live: 2, running: 2)]) == 1)
        // Waiting requests weigh more than running ones.
        #expect(b.choose([load(live: 4, running: 4), load(live: 2, running: 0, waiting: 2)]) == 0)
        // Ties: lower KV use, then lower rank.
        #expect(b.choose([load(live: 1, running: 1, kv: 0.5), load(live: 1, running: 1, kv: 0.1)]) == 1)
        #expect(b.choose([load(live: 0), load(live: 0)]) == 0)
    }

    @Test func skipsRanksThatDoNotAccept() {
        let b = LoadBalancer()
        #expect(b.choose([load(live: 0, accepting: false), load(live: 9, running: 9)]) == 1)
        #expect(b.choose([load(live: 0, accepting: false)]) == nil)
        #expect(b.choose([]) == nil)
    }

    @Test func requestsNotYetReportedCountAsWaiting() {
        // Rank 0 reported nothing running but holds 3 live requests the coordinator sent.
        let b = LoadBalancer()
        #expect(b.choose([load(live: 3), load(live: 1, running: 1)]) == 1)
    }
}
