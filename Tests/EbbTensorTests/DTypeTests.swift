import Foundation
import Testing
import EbbTensor

/// Independent decoders: sign, exponent and mantissa fields evaluated in Double.
private func decodeBF16(_ bits: UInt16) -> Double {
    let sign: Double = bits & 0x8000 != 0 ? -1 : 1
    let exponent = Int((bits >> 7) & 0xFF)
    let mantissa = Double(bits & 0x7F)
    if exponent == 0xFF { return mantissa == 0 ? sign * .infinity : .nan }
    if exponent == 0 { return sign * mantissa / 128 * pow(2, -126) }
    return sign * (1 + mantissa / 128) * pow(2, Double(exponent - 127))
}

private func decodeF16(_ bits: UInt16) -> Double {
    let sign: Double = bits & 0x8000 != 0 ? -1 : 1
    let exponent = Int((bits >> 10) & 0x1F)
    let mantissa = Double(bits & 0x3FF)
    if exponent == 0x1F { return mantissa == 0 ? sign * .infinity : .nan }
    if exponent == 0 { return sign * mantissa / 1024 * pow(2, -14) }
    return sign * (1 + mantissa / 1024) * pow(2, Double(exponent - 15))
}

/// Magnitude of a 16-bit pattern's positive part as if its exponent were unbounded (so the
/// pattern just past the largest finite value reads as the next power of two, which is
/// how IEEE rounding decides overflow).
private func unboundedMagnitude(_ bits: UInt16, mantissaBits: Int, bias: Int) -> Double {
    let m = Int(bits) & ((1 << mantissaBits) - 1)
    let e = Int(bits) >> mantissaBits
    let scale = Double(1 << mantissaBits)
    if e == 0 { return Double(m) / scale * pow(2, Double(1 - bias)) }
    return (1 + Double(m) / scale) * pow(2, Double(e - bias))
}

/// Reference round-to-nearest-even from f32 to a 16-bit format, by bisection over the
/// (monotonic) positive bit patterns, ties to the even pattern, in Double.
private func referenceNarrow(_ value: Float, mantissaBits: Int, bias: Int, infinity: UInt16) -> UInt16? {
    if value.isNaN { return nil }
    let signBit: UInt16 = value.sign == .minus ? 0x8000 : 0
    let x = Double(value.magnitude)
    if x == .infinity { return signBit | infinity }
    // Largest pattern p in 0...infinity with magnitude(p) <= x.
    var lo = 0, hi = Int(infinity)
    if unboundedMagnitude(infinity, mantissaBits: mantissaBits, bias: bias) <= x { return signBit | infinity }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2
        if unboundedMagnitude(UInt16(mid), mantissaBits: mantissaBits, bias: bias) <= x { lo = mid } else { hi = mid }
    }
    let below = unboundedMagnitude(UInt16(lo), mantissaBits: mantissaBits, bias: bias)
    let above = unboundedMagnitude(UInt16(lo + 1), mantissaBits: mantissaBits, bias: bias)
    let pick: Int
    if x - below < above - x { pick = lo }
    else if x - below > above - x { pick = lo + 1 }
    else { pick = lo % 2 == 0 ? lo : lo + 1 }
    return signBit | UInt16(pick)
}

@Suite struct DTypeTests {
    @Test func byteSizes() {
        #expect(DType.f32.byteSize == 4 && DType.i32.byteSize == 4)
        #expect(DType.bf16.byteSize == 2 && DType.f16.byteSize == 2)
        #expect(!DType.i32.isFloatingPoint && DType.bf16.isFloatingPoint)
    }

    @Test func bf16WideningIsExactForAllPatterns() {
        var mismatches = 0
        for raw in 0...0xFFFF {
            let bits = UInt16(raw)
            let got = Half.bf16ToFloat(bits)
            let want = decodeBF16(bits)
            if want.isNaN { if !got.isNaN { mismatches += 1 }; continue }
            // Exact: same value and same sign (so ±0 are told apart).
            if Double(got) != want || got.sign != (bits & 0x8000 != 0 ? .minus : .plus) { mismatches += 1 }
            // Independent bit-level check: the pattern is the top half of the f32.
            if got.bitPattern != UInt32(bits) << 16 { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test func f16WideningIsExactForAllPatterns() {
        var mismatches = 0
        for raw in 0...0xFFFF {
            let bits = UInt16(raw)
            let got = Half.f16ToFloat(bits)
            let want = decodeF16(bits)
            if want.isNaN { if !got.isNaN { mismatches += 1 }; continue }
            if Double(got) != want || got.sign != (bits & 0x8000 != 0 ? .minus : .plus) { mismatches += 1 }
            if Double(Float16(bitPattern: bits)) != want { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    static let bf16Cases: [(UInt32, UInt16)] = [
        // (f32 bits, expected bf16 bits)
        (0x3F80_8000, 0x3F80),  // 1 + 2^-8: halfway 0x3F80/0x3F81 → even 0x3F80
        (0x3F81_8000, 0x3F82),                  // halfway 0x3F81/0x3F82 → even 0x3F82
        (0x3F80_8001, 0x3F81),                  // just above halfway → up
        (0x3F81_7FFF, 0x3F81),                  // just below halfway → down
        (0xBF80_8000, 0xBF80),                  // negative tie → even
        (0xBF81_8000, 0xBF82),
        (0x7F80_0000, 0x7F80),                  // +inf
        (0xFF80_0000, 0xFF80),                  // -inf
        (0x7F7F_FFFF, 0x7F80),                  // f32 max overflows to +inf
        (0xFF7F_FFFF, 0xFF80),                  // -f32 max → -inf
        (0x7F7F_7FFF, 0x7F7F),                  // just below the tie with inf → bf16 max
        (0x7F7F_8000, 0x7F80),                  // tie between bf16 max (odd) and inf (even) → inf
        (0x0000_0000, 0x0000),                  // +0
        (0x8000_0000, 0x8000),                  // -0 keeps its sign
        (0x0000_0001, 0x0000),                  // smallest f32 subnormal → 0
        (0x0000_8000, 0x0000),                  // subnormal tie 0/0x0001 → 0
        (0x0001_8000, 0x0002),                  // subnormal tie 0x0001/0x0002 → 0x0002
        (0x0000_8001, 0x0001),                  // subnormal just above tie
        (0x8000_8001, 0x8001),                  // negative subnormal
        (0x007F_FFFF, 0x0080),                  // largest f32 subnormal rounds to smallest normal
    ]

    @Test(arguments: bf16Cases)
    func bf16NarrowingHandPicked(_ input: UInt32, _ expected: UInt16) {
        let got = Half.floatToBF16(Float(bitPattern: input))
        #expect(got == expected, "f32 0x\(String(input, radix: 16)) → 0x\(String(got, radix: 16)), want 0x\(String(expected, radix: 16))")
    }

    @Test(arguments: [UInt32(0x7FC0_0000), 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF, 0x7F80_FFFF])
    func bf16NarrowingKeepsNaN(_ input: UInt32) {
        // A payload only in the low 16 bits must not truncate to an infinity.
        let got = Half.floatToBF16(Float(bitPattern: input))
        #expect(Half.bf16ToFloat(got).isNaN, "0x\(String(input, radix: 16)) → 0x\(String(got, radix: 16))")
        #expect((got & 0x8000) == UInt16(input >> 16) & 0x8000, "sign kept")
    }

    static let f16Cases: [(Float, UInt16)] = [
        // (f32 value, expected f16 bits)
        (1, 0x3C00),
        (0x1.002p0, 0x3C00),                   // tie 0x3C00/0x3C01 → even
        (0x1.006p0, 0x3C02),               // tie 0x3C01/0x3C02 → even
        (0x1.00201p0, 0x3C01),         // just above the tie
        (-0x1.002p0, 0xBC00),
        (65504, 0x7BFF),                          // f16 max
        (65519, 0x7BFF),                          // below the overflow tie
        (65520, 0x7C00),                          // tie max (odd) / inf (even) → inf
        (1e6, 0x7C00),                            // overflow
        (-1e6, 0xFC00),
        (.infinity, 0x7C00),
        (-.infinity, 0xFC00),
        (0x1p-24, 0x0001),                        // smallest f16 subnormal
        (0x1p-25, 0x0000),                        // tie 0/0x0001 → 0
        (0x1.8p-24, 0x0002),                    // tie 0x0001/0x0002 → 0x0002
        (0x1.002p-25, 0x0001),              // just above the tie
        (0x1.ffcp-15, 0x0400),              // tie largest subnormal (odd) / min normal (even)
        (-0.0, 0x8000),
        (0x1p-30, 0x0000),                        // underflow to zero
    ]

    @Test(arguments: f16Cases)
    func f16NarrowingHandPicked(_ input: Float, _ expected: UInt16) {
        let got = Half.floatToF16(input)
        #expect(got == expected, "\(input) → 0x\(String(got, radix: 16)), want 0x\(String(expected, radix: 16))")
    }

    @Test(arguments: [UInt32(0x7FC0_0000), 0xFFC0_0000, 0x7F80_0001, 0x7F80_2000, 0x7FFF_FFFF])
    func f16NarrowingKeepsNaN(_ input: UInt32) {
        let got = Half.floatToF16(Float(bitPattern: input))
        #expect(Half.f16ToFloat(got).isNaN, "0x\(String(input, radix: 16)) → 0x\(String(got, radix: 16))")
    }

    /// Random f32 bit patterns (all exponents) against the bisection reference.
    @Test func narrowingMatchesReferenceOnRandomPatterns() {
        var rng = SeededRNG(seed: 0xB16)
        var bfBad = 0, fBad = 0
        for i in 0..<100_000 {
            var bits = UInt32(truncatingIfNeeded: rng.next())
            // Half the samples near the f16 range so its rounding paths get exercised.
            if i % 2 == 0 { bits = (bits & 0x807F_FFFF) | (UInt32(rng.next() % 40 + 100) << 23) }
            let v = Float(bitPattern: bits)
            if let want = referenceNarrow(v, mantissaBits: 7, bias: 127, infinity: 0x7F80) {
                if Half.floatToBF16(v) != want { bfBad += 1 }
            } else if !Half.bf16ToFloat(Half.floatToBF16(v)).isNaN { bfBad += 1 }
            if let want = referenceNarrow(v, mantissaBits: 10, bias: 15, infinity: 0x7C00) {
                if Half.floatToF16(v) != want { fBad += 1 }
            } else if !Half.f16ToFloat(Half.floatToF16(v)).isNaN { fBad += 1 }
        }
        #expect(bfBad == 0)
        #expect(fBad == 0)
    }

    /// narrow(widen(x)) == x for every 16-bit pattern; NaNs stay NaN (payload may change).
    @Test(arguments: [DType.bf16, DType.f16])
    func roundTripAllPatterns(_ dtype: DType) {
        let patterns = (0...0xFFFF).map { UInt16($0) }
        var floats = [Float](repeating: 0, count: patterns.count)
        var back = [UInt16](repeating: 0, count: patterns.count)
        patterns.withUnsafeBytes { src in
            floats.withUnsafeMutableBufferPointer { f in
                Half.widen(src.baseAddress!, dtype: dtype, count: patterns.count, into: f.baseAddress!)
            }
        }
        floats.withUnsafeBufferPointer { f in
            back.withUnsafeMutableBytes { dst in
                Half.narrow(f.baseAddress!, count: patterns.count, to: dtype, into: dst.baseAddress!)
            }
        }
        var bad = 0
        for i in 0..<patterns.count {
            if floats[i].isNaN {
                let backValue = dtype == .bf16 ? Half.bf16ToFloat(back[i]) : Half.f16ToFloat(back[i])
                if !backValue.isNaN { bad += 1 }
            } else if back[i] != patterns[i] {
                bad += 1
            }
        }
        #expect(bad == 0)
    }

    @Test func uploadConvertsThroughBackend() throws {
        let backend = makeBackend()
        let values: [Float] = [0x1.01p0, 0x1.03p0, -2.5, 65520, 0x1p-25]
        let bf = try values.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [5], dtype: .bf16) }
        let f16 = try values.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [5], dtype: .f16) }
        #expect(backend.downloadFloats(bf) == values.map { Half.bf16ToFloat(Half.floatToBF16($0)) })
        #expect(backend.downloadFloats(bf)[0] == 1 && backend.downloadFloats(bf)[1] == 0x1.04p0)
        #expect(backend.downloadFloats(f16) == [0x1.01p0, 0x1.03p0, -2.5, Float.infinity, 0])
        // bf16 → f16 goes through f32.
        let bfBits = values.map { Half.floatToBF16($0) }
        let crossed = try bfBits.withUnsafeBytes { try backend.upload($0, sourceDType: .bf16, shape: [5], dtype: .f16) }
        #expect(backend.downloadFloats(crossed) == bfBits.map { Half.f16ToFloat(Half.floatToF16(Half.bf16ToFloat($0))) })
        // Short source buffers are an error, not a crash.
        #expect(throws: TensorError.self) {
            try values.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [6], dtype: .f32) }
        }
    }
}
