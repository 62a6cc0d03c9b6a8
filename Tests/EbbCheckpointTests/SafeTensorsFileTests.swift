import Foundation
import Testing
import EbbTensor
@testable import EbbCheckpoint

@Suite struct SafeTensorsRoundTripTests {
    @Test func writerOutputReadsBackExactly() throws {
        let dir = try makeTempDir()
        defer { removeDir(dir) }
        let url = dir.appendingPathComponent("out.safetensors")
        let tensors = sampleTensors()
        let meta = ["format": "pt", "note": "quote \" backslash \\ newline \n ünïcode"]
        try SafeTensorsWriter.write(tensors, metadata: meta, to: url)

        let f = try SafeTensorsFile(url: url)
        #expect(f.metadata == meta)
        #expect(f.orderedNames == tensors.map(\.name).sorted())
        for t in tensors {
            let e = try f.entry(t.name)
            #expect(e.dtype == t.dtype)
            #expect(e.shape == t.shape)
            #expect(e.file == url.path)
            #expect(Array(f.rawBytes(e)) == t.data)
        }
        #expect(try f.floats("a.weight").map(\.bitPattern) == [1, -2, 3.5, 0, Float.infinity, -0.0].map(\.bitPattern))
        #expect(try f.floats("b.bf16") == [1, 0.5, -3, 65536]) // 65504 rounds to 65536 in bf16
        #expect(try f.floats("c.f16") == [Half.f16ToFloat(Half.floatToF16(0.099975586)), -1])
        #expect(try f.ints("d.ids") == [7, -1, Int(Int32.max)])
        #expect(try f.ints("e.pos") == [Int(Int64.min), 42])
        #expect(try f.floats("f.scalar") == [3.25])
        #expect(try f.floats("g.empty") == [])
        #expect(try f.entry("f.scalar").elementCount == 1)

        // Layout as Hugging Face writes it: header length a multiple of 8, space padded,
        // keys sorted, data contiguous in header order.
        let bytes = try [UInt8](Data(contentsOf: url))
        var n = 0
        for k in 0..<8 { n |= Int(bytes[k]) << (8 * k) }
        #expect(n % 8 == 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasPrefix("{\"__metadata__\":{\"format\":\"pt\","))
        var expectedStart = 8 + n
        for name in f.orderedNames {
            let e = try f.entry(name)
            #expect(e.byteRange.lowerBound == expectedStart)
            expectedStart = e.byteRange.upperBound
        }
        #expect(expectedStart == bytes.count)
    }

    @Test func headerTextMatchesHuggingFaceFormat() throws {
        let bytes = try SafeTensorsWriter.serialize([
            .f32(name: "b", shape: [2], values: [1, 2]),
            .i32(name: "a", shape: [1, 1], values: [5]),
        ])
        let json = #"{"a":{"dtype":"I32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let padded = json + String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)
        #expect(bytes == image(header: padded, data: [5, 0, 0, 0, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]))
    }

    @Test func inMemoryAndMappedAgree() throws {
        let dir = try makeTempDir()
        defer { removeDir(dir) }
        let bytes = try SafeTensorsWriter.serialize(sampleTensors(), metadata: ["k": "v"])
        let url = dir.appendingPathComponent("x.safetensors")
        try writeBytes(bytes, to: url)
        let mapped = try SafeTensorsFile(url: url)
        let memory = try SafeTensorsFile(bytes: bytes, name: url.path)
        #expect(mapped.entries == memory.entries)
        #expect(mapped.metadata == memory.metadata)
        for name in mapped.orderedNames {
            let e = try mapped.entry(name)
            #expect(Array(mapped.rawBytes(e)) == Array(memory.rawBytes(e)))
        }
    }

    @Test func unalignedDataConvertsCorrectly() throws {
        // Header of odd length puts every tensor at an odd address.
        let values: [Float] = [1.5, -2.25, 1e-3]
        var data: [UInt8] = []
        for v in values { for k in 0..<4 { data.append(UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32(k)))) } }
        let bf: [UInt16] = [0x3F80, 0xC040]
        for b in bf { data += [UInt8(b & 0xFF), UInt8(b >> 8)] }
        data += [9, 0, 0, 0]
        let header = #"{"f":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"h":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]},"i":{"dtype":"I32","shape":[1],"data_offsets":[16,20]}}"# + " "
        #expect(header.utf8.count % 2 == 1)
        let f = try SafeTensorsFile(bytes: image(header: header, data: data), name: "odd")
        #expect(try f.floats("f") == values)
        #expect(try f.floats("h") == [1, -3])
        #expect(try f.ints("i") == [9])
    }

    @Test func writerRejectsBadTensors() {
        #expect(throws: CheckpointError.self) {
            try SafeTensorsWriter.serialize([.f32(name: "x", shape: [3], values: [1, 2])])
        }
        #expect(throws: CheckpointError.self) {
            try SafeTensorsWriter.serialize([.f32(name: "x", shape: [1], values: [1]), .f32(name: "x", shape: [1], values: [2])])
        }
        #expect(throws: CheckpointError.self) {
            try SafeTensorsWriter.serialize([.f32(name: "__metadata__", shape: [1], values: [1])])
        }
        #expect(throws: CheckpointError.self) {
            try SafeTensorsWriter.serialize([WritableTensor(name: "x", dtype: .u8, shape: [-1], data: [])])
        }
    }

    @Test func writeToUnwritablePathThrowsIO() {
        let url = URL(fileURLWithPath: "/nonexistent-dir-\(UUID().uuidString)/x.safetensors")
        let error = #expect(throws: CheckpointError.self) {
            try SafeTensorsWriter.write([.f32(name: "x", shape: [1], values: [1])], to: url)
        }
        guard case .io(let file, _)? = error else { Issue.record("expected .io, got \(String(describing: error))"); return }
        #expect(file == url.path)
    }
}
