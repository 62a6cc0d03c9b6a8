import EbbCore
import EbbTensor

/// One op's comparison against the CPU backend.
public struct ParityResult: Sendable, CustomStringConvertible {
    public let op: String
    /// max |Δ| / max |reference| (0 for exact integer matches, 1 for any mismatch).
    public let error: Float
    public let tolerance: Float
    public var passed: Bool { error <= tolerance && !error.isNaN }

    public var description: String {
        "\(passed ? "ok  " : "FAIL") \(op): error \(error) (tolerance \(tolerance))"
    }
}

/// Runs the same op on the CPU backend (f32, the reference) and a backend under test on
/// identical random inputs (rounded to the tested backend's compute dtype first, so both
/// see the same values) and compares. Used by the GPU parity tests and `ebb selftest-cuda`.
final class ParityHarness {
    let cpu: CPUBackend
    let dev: any Backend
    private var state: UInt64
    private(set) var results: [ParityResult] = []

    init(device: any Backend, cpu: CPUBackend, seed: UInt64) {
        self.dev = device
        self.cpu = cpu
        self.state = seed
    }

    /// Relative tolerance for float outputs in the tested compute dtype.
    var tolerance: Float { dev.computeDType == .f32 ? 2e-5 : 1.5e-2 }

    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale], representable in the tested compute dtype.
    func random(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in
            let v = (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
            return dev.computeDType == .bf16 ? Half.bf16ToFloat(Half.floatToBF16(v)) : v
        }
    }

    func int(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }

    struct Pair {
        let cpu: Tensor
        let dev: Tensor
    }

    func floats(_ values: [Float], _ shape: [Int], dtype: DType? = nil) throws -> Pair {
        let c = try values.withUnsafeBytes { try cpu.upload($0, sourceDType: .f32, shape: shape, dtype: .f32) }
        let d = try values.withUnsafeBytes { try dev.upload($0, sourceDType: .f32, shape: shape, dtype: dtype ?? dev.computeDType) }
        return Pair(cpu: c, dev: d)
    }

    func randomPair(_ shape: [Int], scale: Float = 1) throws -> Pair {
        try floats(random(shape.reduce(1, *), scale: scale), shape)
    }

    func ints(_ values: [Int32], _ shape: [Int]) throws -> Pair {
        let c = try values.withUnsafeBytes { try cpu.upload($0, sourceDType: .i32, shape: shape, dtype: .i32) }
        let d = try values.withUnsafeBytes { try dev.upload($0, sourceDType: .i32, shape: shape, dtype: .i32) }
        return Pair(cpu: c, dev: d)
    }

    func empty(_ shape: [Int], dtype: DType? = nil) throws -> Pair {
        let c = try cpu.empty(shape, dtype: dtype == .i32 ? .i32 : .f32)
        let d = try dev.empty(shape, dtype: dtype ?? dev.computeDType)
        return Pair(cpu: c, dev: d)
    }

    /// Same initial contents on both sides (NaN-free poison, so unwritten outputs show).
    func poisoned(_ shape: [Int], dtype: DType? = nil) throws -> Pair {
        let p = try empty(shape, dtype: dtype)
        cpu.fill(p.cpu, value: 7)
        dev.fill(p.dev, value: 7)
        return p
    }

    func compare(_ op: String, _ p: Pair, tolerance: Float? = nil) {
        let reference = cpu.downloadFloats(p.cpu)
        let got = dev.downloadFloats(p.dev)
        var maxRef: Float = 0, maxDiff: Float = 0
        for (r, g) in zip(reference, got) {
            maxRef = max(maxRef, abs(r))
            let d = abs(r - g)
            maxDiff = (d.isNaN || maxDiff.isNaN) ? .nan : max(maxDiff, d)
        }
        let error = reference.count == got.count ? maxDiff / max(maxRef, 1e-30) : 1
        results.append(ParityResult(op: op, error: error, tolerance: tolerance ?? self.tolerance))
    }

    /// Row checksums of the same view of both copies must be identical.
    func compareChecksums(_ op: String, _ p: Pair, columns: Range<Int>? = nil) {
        let same = cpu.rowChecksums(columns.map { p.cpu.columnSlice($0) } ?? p.cpu)
            == dev.rowChecksums(columns.map { p.dev.columnSlice($0) } ?? p.dev)
        results.append(ParityResult(op: op, error: same ? 0 : 1, tolerance: 0))
    }

    func compareInts(_ op: String, _ p: Pair) {
        let same = cpu.downloadInts(p.cpu) == dev.downloadInts(p.dev)
        results.append(ParityResult(op: op, error: same ? 0 : 1, tolerance: 0))
    }

    func fail(_ op: String, _ error: any Error) {
        results.append(ParityResult(op: "\(op) threw \(error)", error: 1, tolerance: 0))
    }
}
