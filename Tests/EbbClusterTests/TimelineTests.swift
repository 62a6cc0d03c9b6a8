@testable import EbbCluster
import EbbCore
import Foundation
import Testing

@Suite("Timeline")
struct TimelineTests {
    static func sample(_ t: Double, ranks: Int = 1, scaling: Bool = false) -> Timeline.Sample {
        Timeline.Sample(unixTime: t, ranks: ranks, generation: 1, live: 3, waiting: 0, kvUsage: 0.25, tokensPerSecond: 40,
                        ttftP90: t == 2 ? nil : 0.05, tpotP90: 0.01, scaling: scaling, recovering: false)
    }

    @Test("keeps the last `capacity` samples and the events from the oldest one on")
    func capacity() {
        var t = Timeline(capacity: 3)
        t.note(.init(unixTime: 0.5, kind: .failure, label: "old"))
        for i in 0..<5 { t.record(Self.sample(Double(i))) }
        #expect(t.samples.map(\.unixTime) == [2, 3, 4])
        #expect(t.events.isEmpty, "an event before the oldest sample is off the chart")
        t.note(.init(unixTime: 3.5, kind: .resize, label: "b"))
        t.note(.init(unixTime: 2.5, kind: .autoscale, label: "a"))
        #expect(t.events.map(\.label) == ["a", "b"], "events stay in time order")
    }

    @Test("JSON: samples with null latencies where none was measured, events with their kind")
    func json() throws {
        var t = Timeline()
        t.record(Self.sample(1))
        t.record(Self.sample(2, ranks: 2, scaling: true))
        t.note(.init(unixTime: 1.5, kind: .resize, label: "1→2 ranks"))
        let parsed = try JSONValue.parse(Data(t.json.serialized().utf8))
        let samples = try #require(parsed["samples"]?.arrayValue)
        #expect(samples.count == 2)
        #expect(samples[1]["ranks"]?.intValue == 2)
        #expect(samples[1]["scaling"]?.boolValue == true)
        #expect(samples[0]["ttft_p90"]?.doubleValue == 0.05)
        #expect(samples[1]["ttft_p90"] == .null)
        #expect(parsed["events"]?.arrayValue?.first?["kind"]?.stringValue == "resize")
    }
}
