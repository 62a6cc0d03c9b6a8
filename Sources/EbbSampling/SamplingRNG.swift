/// A seeded, reproducible random number generator for one request (one choice).
///
/// xoshiro256** (Blackman & Vigna) seeded through SplitMix64. Each request choice owns one
/// value of this type; the sampler draws exactly one 64-bit value from it per sampled token
/// (greedy steps included), so the stream position always equals the number of tokens
/// sampled and a seeded request gives the same tokens whatever else shares its batch or
/// whichever rank it runs on. The state is a plain value (`Codable`), so it can travel
/// with a request that moves to another rank.
public struct SamplingRNG: RandomNumberGenerator, Sendable, Equatable, Hashable, Codable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// The generator for `seed`, stream `stream` (the choice index for `n` > 1).
    /// Different streams of one seed are independent-looking sequences.
    public init(seed: UInt64, stream: UInt64 = 0) {
        // Mix seed and stream into one SplitMix64 starting point.
        var sm = SplitMix64(state: seed)
        let a = sm.next()
        var sm2 = SplitMix64(state: stream &* 0xD1B5_4A32_D192_ED03 &+ 0x8CB9_2BA7_2F3D_8DD7)
        let b = sm2.next()
        var mixer = SplitMix64(state: a ^ b)
        s0 = mixer.next()
        s1 = mixer.next()
        s2 = mixer.next()
        s3 = mixer.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }  // all-zero state is a fixed point
    }

    /// A generator for an unseeded request: its seed comes from the system RNG.
    public static func systemSeeded(stream: UInt64 = 0) -> SamplingRNG {
        var system = SystemRandomNumberGenerator()
        return SamplingRNG(seed: system.next(), stream: stream)
    }

    /// The generator for a request's choice: seeded from `seed` when given, else from the system RNG.
    public static func forRequest(seed: UInt64?, choiceIndex: Int = 0) -> SamplingRNG {
        let stream = UInt64(truncatingIfNeeded: choiceIndex)
        if let seed { return SamplingRNG(seed: seed, stream: stream) }
        return systemSeeded(stream: stream)
    }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// A uniform double in [0, 1) with 53 random bits (one `next()`).
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 &- k))
    }
}

/// SplitMix64, used only to expand seeds.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
