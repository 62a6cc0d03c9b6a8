/// Element types Ebb stores. Floating types widen to f32 exactly and narrow with
/// round-to-nearest-even; i32 holds token ids, positions and index tables.
public enum DType: String, Sendable, Equatable, CaseIterable {
    case f32
    case bf16
    case f16
    case i32

    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .bf16, .f16: return 2
        }
    }

    public var isFloatingPoint: Bool { self != .i32 }
}

/// Scalar conversions between f32 and the 16-bit formats.
public enum Half {
    /// bf16 → f32 is exact: the 16 bits are the top half of the f32.
    @inline(__always)
    public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// f32 → bf16 with round-to-nearest-even; NaN stays NaN (quiet), infinities stay.
    @inline(__always)
    public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040) }
        let lsb = (bits >> 16) & 1
        let rounded = bits &+ 0x7FFF &+ lsb
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// f16 → f32 is exact (subnormals included).
    @inline(__always)
    public static func f16ToFloat(_ bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// f32 → f16 with round-to-nearest-even (the hardware conversion).
    @inline(__always)
    public static func floatToF16(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }

    /// Widens `count` elements of `dtype` at `source` into `destination` as f32.
    public static func widen(_ source: UnsafeRawPointer, dtype: DType, count: Int, into destination: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            destination.update(from: source.assumingMemoryBound(to: Float.self), count: count)
        case .bf16:
            let s = source.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { destination[i] = bf16ToFloat(s[i]) }
        case .f16:
            let s = source.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { destination[i] = f16ToFloat(s[i]) }
        case .i32:
            let s = source.assumingMemoryBound(to: Int32.self)
            for i in 0..<count { destination[i] = Float(s[i]) }
        }
    }

    /// Narrows `count` f32 values into `dtype` at `destination` (round-to-nearest-even).
    public static func narrow(_ source: UnsafePointer<Float>, count: Int, to dtype: DType, into destination: UnsafeMutableRawPointer) {
        switch dtype {
        case .f32:
            destination.assumingMemoryBound(to: Float.self).update(from: source, count: count)
        case .bf16:
            let d = destination.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = floatToBF16(source[i]) }
        case .f16:
            let d = destination.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = floatToF16(source[i]) }
        case .i32:
            let d = destination.assumingMemoryBound(to: Int32.self)
            for i in 0..<count {
                let v = source[i].rounded()
                d[i] = v.isFinite ? Int32(clamping: Int64(max(min(v, 2.0e9), -2.0e9))) : 0
            }
        }
    }
}
