import Testing
@testable import EbbBench

@Suite struct ScheduleTests {
    @Test func poissonGapsHaveMeanOneOverRate() {
        for rate in [0.5, 4.0, 100.0] {
            let t = ArrivalSchedule.poisson(count: 20_000, rate: rate, seed: 42)
            #expect(t.count == 20_000)
            #expect(t[0] == 0)
            #expect(zip(t, t.dropFirst()).allSatisfy { $0 <= $1 })
            let gaps = zip(t.dropFirst(), t).map { $0 - $1 }
            let mean = Stats.mean(gaps)
            // Mean of 19,999 exponential gaps: standard error 1/(R·√n) ≈ 0.7 % of the mean.
            #expect(abs(mean * rate - 1) < 0.03, "rate \(rate): mean gap \(mean)")
            // Exponential: the standard deviation equals the mean.
            #expect(abs(Stats.std(gaps) * rate - 1) < 0.05)
        }
    }

    @Test func sameSeedSameSchedule() {
        #expect(ArrivalSchedule.poisson(count: 50, rate: 3, seed: 1) == ArrivalSchedule.poisson(count: 50, rate: 3, seed: 1))
        #expect(ArrivalSchedule.poisson(count: 50, rate: 3, seed: 1) != ArrivalSchedule.poisson(count: 50, rate: 3, seed: 2))
    }

    @Test func infiniteRateSendsEverythingAtOnce() {
        #expect(ArrivalSchedule.poisson(count: 5, rate: .infinity, seed: 0) == [0, 0, 0, 0, 0])
        #expect(ArrivalSchedule.poisson(count: 0, rate: 1, seed: 0).isEmpty)
    }

    @Test func promptsAreSeededAndInRange() {
        let a = RandomPrompts.make(count: 20, length: 64, tokenIds: 3..<259, seed: 9)
        #expect(a.count == 20 && a.allSatisfy { $0.count == 64 })
        #expect(a.joined().allSatisfy { (3..<259).contains($0) })
        #expect(a == RandomPrompts.make(count: 20, length: 64, tokenIds: 3..<259, seed: 9))
        #expect(Set(a.joined()).count > 200)  // covers most of the 256 ids
    }
}
