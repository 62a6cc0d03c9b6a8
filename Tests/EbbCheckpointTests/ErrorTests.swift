import Foundation
import Testing
@testable import EbbCheckpoint

/// One test per kind of bad input, each checking the error case and what it names.
@Suite struct SafeTensorsErrorTests {
    let validEntry = #""x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    let eightBytes: [UInt8] = Array(repeating: 0, count: 8)

    func reason(_ e: CheckpointError?) -> String {
        if case let .corruptHeader(_, r)? = e { return r }
        return "not corruptHeader: \(String(describing: e))"
    }

    @Test func truncatedHeaderLength() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        for size in [0, 1, 7] {
            let e = try openError(Array(repeating: 1, count: size), in: dir)
            guard case let .corruptHeader(file, r)? = e else { Issue.record("size \(size): \(String(describing: e))"); continue }
            #expect(file.hasSuffix("t.safetensors"))
            #expect(r.contains("shorter than the 8-byte header"))
        }
    }

    @Test func truncatedHeaderJSON() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let full = image(header: "{\(validEntry)}", data: eightBytes)
        // Cut inside the JSON: the declared length now runs past the end.
        let e = try openError(Array(full.prefix(20)), in: dir)
        #expect(reason(e).contains("past the end"))
    }

    @Test func headerLengthPastEOF() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let e = try openError(image(header: "{}", headerLength: 1000), in: dir)
        #expect(reason(e).contains("runs past the end of the file"))
        let huge = try openError(image(header: "{}", headerLength: UInt64.max), in: dir)
        #expect(reason(huge).contains("limit"))
        let big = try openError(image(header: "{}", headerLength: 100_000_001), in: dir)
        #expect(reason(big).contains("limit"))
    }

    @Test func invalidJSON() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        for header in ["{\"x\":", "{\"x\" 1}", "{'x':1}", "{\"x\":{}}}", "{\"x\":[1,]}", "{\"x\":tru}", "{\"a\":\"\\q\"}", "{}   x"] {
            let e = try openError(image(header: header), in: dir)
            #expect(reason(e).contains("JSON") || reason(e).contains("entry"), "\(header): \(String(describing: e))")
        }
        let notObject = try openError(image(header: "[1,2]   "), in: dir)
        #expect(reason(notObject).contains("'{'"))
        var bad = image(header: "{\"ab\":{}}")
        bad[10] = 0xC3 // lone UTF-8 lead byte inside the key, header length unchanged
        #expect(reason(try openError(bad, in: dir)).contains("UTF-8"))
        let dup = try openError(image(header: "{\(validEntry),\(validEntry)}", data: eightBytes), in: dir)
        #expect(reason(dup).contains("twice"))
    }

    @Test func wrongTypedAndMissingFields() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let cases: [(String, String)] = [
            (#"{"x":5}"#, "not an object"),
            (#"{"x":{"shape":[2],"data_offsets":[0,8]}}"#, "no 'dtype'"),
            (#"{"x":{"dtype":"F32","data_offsets":[0,8]}}"#, "no 'shape'"),
            (#"{"x":{"dtype":"F32","shape":[2]}}"#, "no 'data_offsets'"),
            (#"{"x":{"dtype":7,"shape":[2],"data_offsets":[0,8]}}"#, "'dtype' is not a string"),
            (#"{"x":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, "'shape' is not an array"),
            (#"{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, "not a non-negative integer"),
            (#"{"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, "not a non-negative integer"),
            (#"{"x":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}"#, "not a non-negative integer"),
            (#"{"x":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#, "not a non-negative integer"),
            (#"{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, "overflows"),
            (#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, "expected 2"),
            (#"{"x":{"dtype":"F32","shape":[2],"data_offsets":{}}}"#, "not an array"),
            (#"{"__metadata__":{"a":1}}"#, "not a string"),
            (#"{"__metadata__":[]}"#, "not an object"),
        ]
        for (header, needle) in cases {
            let e = try openError(image(header: header, data: eightBytes), in: dir)
            #expect(reason(e).contains(needle), "\(header): \(String(describing: e))")
        }
    }

    @Test func unknownDType() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let e = try openError(image(header: #"{"w":{"dtype":"F8_E9","shape":[2],"data_offsets":[0,2]}}"#, data: [0, 0]), in: dir)
        #expect(e == .unknownDType(file: dir.appendingPathComponent("t.safetensors").path, tensor: "w", dtype: "F8_E9"))
        #expect(e?.description.contains("F8_E9") == true)
    }

    @Test func offsetsOutsideFile() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let e = try openError(image(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: eightBytes), in: dir)
        guard case let .offsetsOutOfRange(_, tensor, detail)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(tensor == "w")
        #expect(detail.contains("past"))
        let neg = try openError(image(header: #"{"w":{"dtype":"F32","shape":[0],"data_offsets":[-4,0]}}"#), in: dir)
        guard case .offsetsOutOfRange? = neg else { Issue.record("\(String(describing: neg))"); return }
    }

    @Test func endBeforeBegin() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let e = try openError(image(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: eightBytes), in: dir)
        guard case let .offsetsOutOfRange(_, tensor, detail)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(tensor == "w")
        #expect(detail.contains("before begin"))
    }

    @Test func byteLengthMismatch() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let e = try openError(image(header: #"{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}"#, data: eightBytes), in: dir)
        #expect(e == .byteLengthMismatch(file: dir.appendingPathComponent("t.safetensors").path, tensor: "w",
                                         dtype: "BF16", shape: [3], expectedBytes: 6, foundBytes: 8))
    }

    @Test func notARegularFileOrMissing() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        #expect(throws: CheckpointError.self) { try SafeTensorsFile(url: dir) }
        let missing = dir.appendingPathComponent("nope.safetensors")
        let e = #expect(throws: CheckpointError.self) { try SafeTensorsFile(url: missing) }
        guard case let .io(file, _)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(file == missing.path)
    }

    @Test func floatsAndIntsRejectOtherDTypes() throws {
        let f = try SafeTensorsFile(bytes: SafeTensorsWriter.serialize(sampleTensors()), name: "mem")
        let e1 = #expect(throws: CheckpointError.self) { try f.floats("d.ids") }
        guard case .unsupportedDType(_, "d.ids", "I32", _)? = e1 else { Issue.record("\(String(describing: e1))"); return }
        #expect(throws: CheckpointError.self) { try f.floats("h.bytes") }
        #expect(throws: CheckpointError.self) { try f.ints("a.weight") }
        #expect(throws: CheckpointError.missingTensor(file: "mem", tensor: "zzz")) { try f.floats("zzz") }
    }
}

@Suite struct CheckpointDirectoryTests {
    /// A sharded directory: two shards and an index.
    func shardedDir() throws -> URL {
        let dir = try makeTempDir("sharded")
        try SafeTensorsWriter.write([.f32(name: "a", shape: [2], values: [1, 2]), .i32(name: "ids", shape: [2], values: [3, 4])],
                                    metadata: ["format": "pt"], to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafeTensorsWriter.write([.half(name: "b", dtype: .bf16, shape: [1, 2], values: [0.5, -1])],
                                    to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        try writeIndex(dir, ["a": "model-00001-of-00002.safetensors", "ids": "model-00001-of-00002.safetensors",
                             "b": "model-00002-of-00002.safetensors"])
        return dir
    }

    func writeIndex(_ dir: URL, _ map: [String: String]) throws {
        let obj: [String: Any] = ["metadata": ["total_size": 20], "weight_map": map]
        try JSONSerialization.data(withJSONObject: obj).write(to: dir.appendingPathComponent(Checkpoint.indexFileName))
    }

    @Test func shardedReadsAndTracksUse() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        let c = try Checkpoint(directory: dir)
        #expect(c.tensorNames == ["a", "b", "ids"])
        #expect(c.files.count == 2)
        #expect(c.indexMetadata["total_size"] == "20")
        #expect(try c.entry("b").file.hasSuffix("model-00002-of-00002.safetensors"))
        #expect(c.unusedTensorNames() == ["a", "b", "ids"])
        #expect(try c.floats("a", shape: [2]) == [1, 2])
        #expect(try c.floats("b", shape: [1, 2]) == [0.5, -1])
        #expect(c.unusedTensorNames() == ["ids"])
        let e = #expect(throws: CheckpointError.self) { try c.checkAllUsed() }
        #expect(e == .unexpectedTensor(file: dir.appendingPathComponent("model-00001-of-00002.safetensors").path, tensor: "ids"))
        try c.checkAllUsed(ignoring: { $0 == "ids" })
        #expect(try c.ints("ids") == [3, 4])
        try c.checkAllUsed()
    }

    @Test func withRawBytesChecksShapeAndMarksUse() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        let c = try Checkpoint(directory: dir)
        let n = try c.withRawBytes("b", shape: [1, 2]) { entry, bytes in
            #expect(entry.dtype == .bf16)
            return bytes.count
        }
        #expect(n == 4)
        #expect(c.unusedTensorNames() == ["a", "ids"])
        #expect(throws: CheckpointError.self) { try c.withRawBytes("b", shape: [2]) { _, _ in 0 } }
        struct Boom: Error {}
        #expect(throws: Boom.self) { try c.withRawBytes("a", shape: [2]) { _, _ in throw Boom() } }
    }

    @Test func useTrackingIsThreadSafe() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        let tensors = (0..<200).map { WritableTensor.f32(name: "t\($0)", shape: [1], values: [Float($0)]) }
        try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        let c = try Checkpoint(directory: dir)
        DispatchQueue.concurrentPerform(iterations: 200) { i in
            _ = try? c.floats("t\(i)", shape: [1])
        }
        #expect(c.unusedTensorNames().isEmpty)
    }

    @Test func shapeMismatchViaFloats() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        let c = try Checkpoint(directory: dir)
        let e = #expect(throws: CheckpointError.self) { try c.floats("b", shape: [2, 1]) }
        #expect(e == .shapeMismatch(file: dir.appendingPathComponent("model-00002-of-00002.safetensors").path,
                                    tensor: "b", expected: [2, 1], found: [1, 2]))
        #expect(c.unusedTensorNames().contains("b")) // a failed read is not a use
    }

    @Test func missingTensorNamesTheIndex() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        let c = try Checkpoint(directory: dir)
        let e = #expect(throws: CheckpointError.self) { try c.floats("model.norm.weight", shape: [2]) }
        #expect(e == .missingTensor(file: dir.appendingPathComponent(Checkpoint.indexFileName).path, tensor: "model.norm.weight"))
        #expect(throws: CheckpointError.self) { try c.entry("nope") }
    }

    @Test func indexPointsToMissingShard() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        try writeIndex(dir, ["a": "model-00001-of-00002.safetensors", "c": "model-00003-of-00003.safetensors"])
        let e = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
        guard case let .io(file, reason)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(file.hasSuffix("model-00003-of-00003.safetensors"))
        #expect(reason.contains("weight_map"))
    }

    @Test func indexNamesTensorAbsentFromShard() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        try writeIndex(dir, ["a": "model-00001-of-00002.safetensors", "zz": "model-00002-of-00002.safetensors"])
        let e = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
        #expect(e == .missingTensor(file: dir.appendingPathComponent("model-00002-of-00002.safetensors").path, tensor: "zz"))
        // Listed in the wrong shard is also missing from the shard it names.
        try writeIndex(dir, ["a": "model-00002-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"])
        let e2 = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
        #expect(e2 == .missingTensor(file: dir.appendingPathComponent("model-00002-of-00002.safetensors").path, tensor: "a"))
    }

    @Test func invalidIndex() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        let indexURL = dir.appendingPathComponent(Checkpoint.indexFileName)
        for text in ["{", "[]", #"{"metadata":{}}"#, #"{"weight_map":[]}"#, #"{"weight_map":{"a":1}}"#,
                     #"{"weight_map":{"a":"../x.safetensors"}}"#, #"{"weight_map":{"a":"/etc/passwd"}}"#] {
            try Data(text.utf8).write(to: indexURL)
            let e = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
            guard case .invalidIndex? = e else { Issue.record("\(text): \(String(describing: e))"); continue }
        }
    }

    @Test func singleFileAndFallbackAndDuplicates() throws {
        let dir = try makeTempDir(); defer { removeDir(dir) }
        // Nothing there.
        let none = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
        guard case let .io(_, reason)? = none else { Issue.record("\(String(describing: none))"); return }
        #expect(reason.contains("no safetensors found"))
        // Any *.safetensors, sorted.
        try SafeTensorsWriter.write([.f32(name: "y", shape: [1], values: [2])], to: dir.appendingPathComponent("b.safetensors"))
        try SafeTensorsWriter.write([.f32(name: "x", shape: [1], values: [1])], to: dir.appendingPathComponent("a.safetensors"))
        let c = try Checkpoint(directory: dir)
        #expect(c.tensorNames == ["x", "y"])
        #expect(c.files.map { URL(fileURLWithPath: $0.path).lastPathComponent } == ["a.safetensors", "b.safetensors"])
        #expect(throws: CheckpointError.missingTensor(file: dir.path, tensor: "z")) { try c.entry("z") }
        // Duplicate name across files.
        try SafeTensorsWriter.write([.f32(name: "x", shape: [1], values: [3])], to: dir.appendingPathComponent("c.safetensors"))
        let dup = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
        guard case let .duplicateTensor(tensor, files)? = dup else { Issue.record("\(String(describing: dup))"); return }
        #expect(tensor == "x")
        #expect(files.count == 2)
        // model.safetensors wins over the others.
        try SafeTensorsWriter.write([.f32(name: "m", shape: [1], values: [4])], to: dir.appendingPathComponent("model.safetensors"))
        let single = try Checkpoint(directory: dir)
        #expect(single.tensorNames == ["m"])
        #expect(single.source.hasSuffix("model.safetensors"))
    }

    @Test func missingDirectory() {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-nope-\(UUID().uuidString)")
        let e = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
        guard case .io? = e else { Issue.record("\(String(describing: e))"); return }
    }

    @Test func corruptShardErrorNamesShard() throws {
        let dir = try shardedDir(); defer { removeDir(dir) }
        let shard = dir.appendingPathComponent("model-00002-of-00002.safetensors")
        try writeBytes(image(header: #"{"b":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), to: shard)
        let e = #expect(throws: CheckpointError.self) { try Checkpoint(directory: dir) }
        #expect(e == .unknownDType(file: shard.path, tensor: "b", dtype: "F8_E9"))
    }
}
