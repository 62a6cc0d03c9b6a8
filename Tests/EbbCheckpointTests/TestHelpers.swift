import Foundation
@testable import EbbCheckpoint

/// A fresh temporary directory, removed when the returned cleanup runs.
func makeTempDir(_ label: String = "ckpt") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("ebb-\(label)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func removeDir(_ url: URL) { try? FileManager.default.removeItem(at: url) }

/// A safetensors image from raw header text and data bytes (header length = text length).
func image(header: String, data: [UInt8] = [], headerLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    let n = headerLength ?? UInt64(h.count)
    var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
    out += h
    out += data
    return out
}

func writeBytes(_ bytes: [UInt8], to url: URL) throws {
    try Data(bytes).write(to: url)
}

/// Opens `bytes` through a real file (the mmap path) and returns the thrown error, if any.
func openError(_ bytes: [UInt8], in dir: URL, name: String = "t.safetensors") throws -> CheckpointError? {
    let url = dir.appendingPathComponent(name)
    try writeBytes(bytes, to: url)
    do {
        _ = try SafeTensorsFile(url: url)
        return nil
    } catch {
        return error
    }
}

/// SplitMix64: small, seeded, reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A small valid file: several dtypes, a scalar, an empty tensor and metadata.
func sampleTensors() -> [WritableTensor] {
    [
        .f32(name: "a.weight", shape: [2, 3], values: [1, -2, 3.5, 0, .infinity, -0.0]),
        .half(name: "b.bf16", dtype: .bf16, shape: [4], values: [1, 0.5, -3, 65504]),
        .half(name: "c.f16", dtype: .f16, shape: [2, 1], values: [0.099975586, -1]),
        .i32(name: "d.ids", shape: [3], values: [7, -1, Int32.max]),
        .i64(name: "e.pos", shape: [2], values: [Int64.min, 42]),
        .f32(name: "f.scalar", shape: [], values: [3.25]),
        .f32(name: "g.empty", shape: [0, 5], values: []),
        WritableTensor(name: "h.bytes", dtype: .u8, shape: [3], data: [1, 2, 255]),
    ]
}
