import Foundation

/// SplitMix64: a small, fast, seedable generator whose output is the same on every
/// platform and Swift version, so a `--seed` reproduces the same prompts and arrivals.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// A uniform integer in `range` (must not be empty), without modulo bias.
    public mutating func nextInt(in range: Range<Int>) -> Int {
        let width = UInt64(range.upperBound - range.lowerBound)
        return range.lowerBound + Int(next(upperBound: width))
    }
}

/// When each request of a run is sent, as offsets in seconds from the start.
public enum ArrivalSchedule {
    /// Offsets of a Poisson process of `rate` requests per second: the gaps are
    /// independent exponential draws with mean `1 / rate`, the first request goes out at 0
    /// (as `vllm bench serve` does). A rate of `.infinity` (or any non-finite or
    /// non-positive rate) sends every request at 0. The result is non-decreasing.
    public static func poisson(count: Int, rate: Double, seed: UInt64) -> [Double] {
        guard count > 0 else { return [] }
        guard rate.isFinite, rate > 0 else { return Array(repeating: 0, count: count) }
        var rng = SplitMix64(seed: seed ^ 0x5EED_A441_7A15_0001)
        var offsets = [Double]()
        offsets.reserveCapacity(count)
        var t = 0.0
        for i in 0..<count {
            if i > 0 {
                // -ln(1 - u) with u in [0, 1): never ln(0).
                t += -log(1 - rng.nextUnit()) / rate
            }
            offsets.append(t)
        }
        return offsets
    }
}

/// Random token-id prompts: `count` prompts of `length` ids drawn uniformly from `tokenIds`.
public enum RandomPrompts {
    public static func make(count: Int, length: Int, tokenIds: Range<Int>, seed: UInt64) -> [[Int]] {
        guard count > 0, length > 0, !tokenIds.isEmpty else { return Array(repeating: [], count: max(count, 0)) }
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in (0..<length).map { _ in rng.nextInt(in: tokenIds) } }
    }
}

