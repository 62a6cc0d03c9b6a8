/// The checksum of a row that every backend computes the same way, so copies of weights
/// can be compared across ranks and devices without moving them to the host: the sum
/// (mod 2⁶⁴) over the row's elements of a 64-bit mix of (column index, the element's value
/// as f32 bits). The sum does not depend on the order it is taken in (a GPU reduces in any
/// order), the index makes it sensitive to moved elements, and widening makes a bf16 row
/// and the f32 row of the same values agree.
public enum RowChecksum {
    /// SplitMix64's finalizer.
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The term of the element at `column` whose value has f32 bits `bits`.
    @inline(__always)
    public static func term(column: Int, bits: UInt32) -> UInt64 {
        mix((UInt64(column) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(bits))
    }

    /// The checksum of `count` f32 values.
    public static func of(_ values: UnsafePointer<Float>, count: Int) -> UInt64 {
        var sum: UInt64 = 0
        for i in 0..<count { sum &+= term(column: i, bits: values[i].bitPattern) }
        return sum
    }

    /// The checksum of `count` bf16 values (their f32 widening).
    public static func of(bf16 values: UnsafePointer<UInt16>, count: Int) -> UInt64 {
        var sum: UInt64 = 0
        for i in 0..<count { sum &+= term(column: i, bits: UInt32(values[i]) << 16) }
        return sum
    }
}
