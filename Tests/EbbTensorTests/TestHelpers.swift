import Foundation
import Testing
import EbbTensor

/// SplitMix64: a small, seeded, platform-independent generator so every run sees the
/// same "random" inputs.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func floats(_ n: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<n).map { _ in Float.random(in: range, using: &self) }
    }
}

/// Value written around strided views, to see that ops leave the gaps alone.
let sentinel: Float = 12345.5

/// A backend with a fixed, small thread count (the machine has few cores; >1 so that the
/// parallel paths run).
func makeBackend(threads: Int = 3) -> CPUBackend { CPUBackend(threads: threads) }

func upload(_ backend: CPUBackend, _ values: [Float], _ shape: [Int]) throws -> Tensor {
    try values.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: shape, dtype: .f32) }
}

func uploadInts(_ backend: CPUBackend, _ values: [Int32], _ shape: [Int]) throws -> Tensor {
    try values.withUnsafeBytes { try backend.upload($0, sourceDType: .i32, shape: shape, dtype: .i32) }
}

/// A view of `shape` (logical) whose last dimension sits at columns `lead ..< lead + cols`
/// of a wider buffer (`lead + cols + trail` columns), filled with `values` (row-major,
/// logical) and `sentinel` elsewhere. Returns the view and its parent.
func stridedView(_ backend: CPUBackend, _ values: [Float], shape: [Int], lead: Int, trail: Int) throws -> (view: Tensor, parent: Tensor) {
    let cols = shape.last ?? 1
    let wide = lead + cols + trail
    var parentShape = shape
    parentShape[parentShape.count - 1] = wide
    let rows = values.count / max(cols, 1)
    var data = [Float](repeating: sentinel, count: rows * wide)
    for r in 0..<rows { for c in 0..<cols { data[r * wide + lead + c] = values[r * cols + c] } }
    let parent = try upload(backend, data, parentShape)
    return (parent.columnSlice(lead..<(lead + cols)), parent)
}

/// True when every element of `parent` outside columns `lead ..< lead + cols` is still
/// the sentinel.
func gapsUntouched(_ backend: CPUBackend, _ parent: Tensor, lead: Int, cols: Int) -> Bool {
    let all = backend.downloadFloats(parent)
    let wide = parent.columns
    for (i, v) in all.enumerated() {
        let c = i % wide
        if (c < lead || c >= lead + cols) && v != sentinel { return false }
    }
    return true
}

/// Largest |a − e| / (atol + rtol·|e|) over the arrays; ≤ 1 means within tolerance.
func maxError(_ actual: [Float], _ expected: [Double], atol: Double, rtol: Double = 0) -> Double {
    guard actual.count == expected.count else { return .infinity }
    var worst = 0.0
    for (a, e) in zip(actual, expected) {
        let err = abs(Double(a) - e) / (atol + rtol * abs(e))
        if !(err <= worst) { worst = err.isNaN ? .infinity : max(worst, err) }
    }
    return worst
}

func expectClose(_ actual: [Float], _ expected: [Double], atol: Double = 1e-5, rtol: Double = 1e-5,
                 _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): count \(actual.count) vs \(expected.count)", sourceLocation: sourceLocation)
    let err = maxError(actual, expected, atol: atol, rtol: rtol)
    #expect(err <= 1, "\(what): max scaled error \(err)", sourceLocation: sourceLocation)
}
