import EbbCluster
import EbbCore
import Testing

/// The autoscaler's policy against the built-in traces in the simulator, and the simulator's
/// inputs.
struct AutoscaleSimulationTests {
    func simulate(_ trace: AutoscaleSimulation.Trace) -> AutoscaleSimulation.Result {
        let profile = AutoscaleSimulation.Profile()
        let config = AutoscalePolicy.Config(minRanks: 1, maxRanks: 16, cooldown: .seconds(30), ttftTarget: profile.ttftTarget)
        return AutoscaleSimulation(profile: profile, config: config).run(trace)
    }

    @Test(arguments: ["diurnal", "burst"])
    func builtInTracesMeetTheTargetWithFewerRankHoursThanTheStaticPeak(name: String) {
        let r = simulate(name == "diurnal" ? .diurnal() : .burst())
        #expect(r.attainment >= 0.99, "\(r.summary)")
        #expect(r.rankSeconds < 0.8 * r.staticRankSeconds, "\(r.summary)")
        #expect(r.points.count == 7200)
        // It resized both ways, never outside its bounds.
        #expect(r.decisions.contains { if case .scale(let n) = $0.action { return n > 1 } else { return false } })
        #expect(r.points.allSatisfy { (1...16).contains($0.ranks) })
    }

    @Test func csvTracesAndProfilesAreCheckedStrictly() throws {
        let t = try AutoscaleSimulation.Trace.parseCSV("seconds,rps\n0,2\n3,10\n5,0\n", name: "t.csv")
        #expect(t.rates == [2, 2, 2, 10, 10, 0])
        #expect(throws: EbbError.self) { try AutoscaleSimulation.Trace.parseCSV("0,2\n1,x\n", name: "bad") }
        #expect(throws: EbbError.self) { try AutoscaleSimulation.Trace.parseCSV("5,2\n1,3\n", name: "backwards") }
        #expect(throws: EbbError.self) { try AutoscaleSimulation.Trace.parseCSV("", name: "empty") }
        let p = try AutoscaleSimulation.Profile.parse(.object(["concurrency": .number(16), "service_seconds": .number(4)]))
        #expect(p.rankRate == 4)
        #expect(throws: EbbError.self) { try AutoscaleSimulation.Profile.parse(.object(["concurency": .number(16)])) }
        #expect(throws: EbbError.self) { try AutoscaleSimulation.Profile.parse(.object(["concurrency": .number(-1)])) }
    }
}
