import EbbCore
import Foundation
import Synchronization

/// The safetensors files of a Hugging Face model directory, opened (memory-mapped) once,
/// with tensors looked up by name across shards and every read recorded, so a loader can
/// report tensors it never used.
///
/// Which files: `model.safetensors.index.json`'s `weight_map` shards if the index exists;
/// else `model.safetensors`; else every `*.safetensors` in the directory (sorted).
public final class Checkpoint: @unchecked Sendable {
    public static let indexFileName = "model.safetensors.index.json"
    public static let singleFileName = "model.safetensors"

    public let directory: URL
    /// The index file, `model.safetensors` or the directory: what `.missingTensor` names.
    public let source: String
    /// The opened files, in the order they were opened.
    public let files: [SafeTensorsFile]
    /// `metadata` of the index file (numbers rendered as text), empty if none.
    public let indexMetadata: [String: String]

    private let locations: [String: (file: Int, entry: TensorEntry)]
    private let used = Mutex<Set<String>>([])

    public init(directory: URL) throws(CheckpointError) {
        self.directory = directory
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw .io(file: directory.path, reason: "no such directory")
        }
        let indexURL = directory.appendingPathComponent(Self.indexFileName)
        let singleURL = directory.appendingPathComponent(Self.singleFileName)
        var files: [SafeTensorsFile] = []
        var weightMap: [(String, String)] = []
        var indexMetadata: [String: String] = [:]

        if fm.fileExists(atPath: indexURL.path) {
            source = indexURL.path
            (weightMap, indexMetadata) = try Self.readIndex(indexURL)
            var shardNames: [String] = []
            var seen = Set<String>()
            for (_, shard) in weightMap where seen.insert(shard).inserted { shardNames.append(shard) }
            shardNames.sort()
            for shard in shardNames {
                let url = directory.appendingPathComponent(shard)
                guard fm.fileExists(atPath: url.path) else {
                    throw .io(file: url.path, reason: "shard named in \(Self.indexFileName) weight_map does not exist")
                }
                files.append(try SafeTensorsFile(url: url))
            }
        } else if fm.fileExists(atPath: singleURL.path) {
            source = singleURL.path
            files.append(try SafeTensorsFile(url: singleURL))
        } else {
            source = directory.path
            let names: [String]
            do {
                names = try fm.contentsOfDirectory(atPath: directory.path)
            } catch {
                throw .io(file: directory.path, reason: "cannot list directory: \(error.localizedDescription)")
            }
            let shards = names.filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !shards.isEmpty else {
                throw .io(file: directory.path,
                          reason: "no safetensors found (expected \(Self.indexFileName), \(Self.singleFileName) or *.safetensors)")
            }
            for shard in shards { files.append(try SafeTensorsFile(url: directory.appendingPathComponent(shard))) }
        }

        var locations: [String: (file: Int, entry: TensorEntry)] = [:]
        for (i, f) in files.enumerated() {
            for name in f.orderedNames {
                guard let e = f.entries[name] else { continue }
                if let prior = locations[name] {
                    throw .duplicateTensor(tensor: name, files: [files[prior.file].path, f.path])
                }
                locations[name] = (i, e)
            }
        }
        let fileIndexByName = Dictionary(files.enumerated().map { ($1.path, $0) }, uniquingKeysWith: { a, _ in a })
        for (tensor, shard) in weightMap {
            let shardPath = directory.appendingPathComponent(shard).path
            guard let loc = locations[tensor], let wanted = fileIndexByName[shardPath], loc.file == wanted else {
                throw .missingTensor(file: shardPath, tensor: tensor)
            }
        }
        self.files = files
        self.locations = locations
        self.indexMetadata = indexMetadata
    }

    private static func readIndex(_ url: URL) throws(CheckpointError) -> ([(String, String)], [String: String]) {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .io(file: path, reason: error.localizedDescription)
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse([UInt8](data), maxDepth: 64)
        } catch {
            throw .invalidIndex(file: path, reason: "invalid JSON: \(error.description)")
        }
        guard case let .object(top) = json else {
            throw .invalidIndex(file: path, reason: "top level is \(json.typeName), not an object")
        }
        guard let wm = top.first(where: { $0.0 == "weight_map" })?.1 else {
            throw .invalidIndex(file: path, reason: "no 'weight_map'")
        }
        guard case let .object(pairs) = wm else {
            throw .invalidIndex(file: path, reason: "'weight_map' is \(wm.typeName), not an object")
        }
        var map: [(String, String)] = []
        var seen = Set<String>()
        for (tensor, v) in pairs {
            guard case let .string(shard) = v else {
                throw .invalidIndex(file: path, reason: "weight_map['\(tensor)'] is \(v.typeName), not a file name")
            }
            guard !shard.isEmpty, !shard.hasPrefix("/"), !shard.split(separator: "/").contains("..") else {
                throw .invalidIndex(file: path, reason: "weight_map['\(tensor)'] = '\(shard)' is not a file in the model directory")
            }
            guard seen.insert(tensor).inserted else {
                throw .invalidIndex(file: path, reason: "tensor '\(tensor)' appears twice in weight_map")
            }
            map.append((tensor, shard))
        }
        var meta: [String: String] = [:]
        if case let .object(m)? = top.first(where: { $0.0 == "metadata" })?.1 {
            for (k, v) in m {
                switch v {
                case let .string(s): meta[k] = s
                case let .number(t): meta[k] = t
                case let .bool(b): meta[k] = String(b)
                default: break
                }
            }
        }
        return (map, meta)
    }

    // MARK: Lookup and reads

    /// All tensor names, sorted.
    public var tensorNames: [String] { locations.keys.sorted() }

    public func contains(_ name: String) -> Bool { locations[name] != nil }

    /// The entry for `name` (does not count as a use), or `.missingTensor` naming `source`.
    public func entry(_ name: String) throws(CheckpointError) -> TensorEntry {
        guard let loc = locations[name] else { throw .missingTensor(file: source, tensor: name) }
        return loc.entry
    }

    /// Records that `name` was used (reads do this themselves).
    public func markUsed(_ name: String) {
        _ = used.withLock { $0.insert(name) }
    }

    /// Tensors never read nor marked used, sorted.
    public func unusedTensorNames() -> [String] {
        let u = used.withLock { $0 }
        return locations.keys.filter { !u.contains($0) }.sorted()
    }

    /// Throws `.unexpectedTensor` for the first (sorted) tensor that was never used and is not ignored.
    public func checkAllUsed(ignoring ignore: (String) -> Bool = { _ in false }) throws(CheckpointError) {
        for name in unusedTensorNames() where !ignore(name) {
            let file = locations[name]?.entry.file ?? source
            throw .unexpectedTensor(file: file, tensor: name)
        }
    }

    private func checkedEntry(_ name: String, shape: [Int]?) throws(CheckpointError) -> (SafeTensorsFile, TensorEntry) {
        guard let loc = locations[name] else { throw .missingTensor(file: source, tensor: name) }
        if let shape, shape != loc.entry.shape {
            throw .shapeMismatch(file: loc.entry.file, tensor: name, expected: shape, found: loc.entry.shape)
        }
        markUsed(name)
        return (files[loc.file], loc.entry)
    }

    /// A F32/BF16/F16 tensor of exactly `shape`, widened to f32 exactly.
    public func floats(_ name: String, shape: [Int]) throws(CheckpointError) -> [Float] {
        let (f, e) = try checkedEntry(name, shape: shape)
        return try TensorConversion.floats(e, f.rawBytes(e))
    }

    /// A F32/BF16/F16 tensor of any shape, widened to f32; returns the shape too.
    public func floats(_ name: String) throws(CheckpointError) -> (shape: [Int], values: [Float]) {
        let (f, e) = try checkedEntry(name, shape: nil)
        return (e.shape, try TensorConversion.floats(e, f.rawBytes(e)))
    }

    /// An I32/I64 tensor as Int (any shape; pass `shape` to check it).
    public func ints(_ name: String, shape: [Int]? = nil) throws(CheckpointError) -> [Int] {
        let (f, e) = try checkedEntry(name, shape: shape)
        return try TensorConversion.ints(e, f.rawBytes(e))
    }

    /// Calls `body` with the tensor's entry and its mapped bytes (valid only during the call)
    /// after checking its shape.
    public func withRawBytes<R>(_ name: String, shape: [Int],
                                _ body: (TensorEntry, UnsafeRawBufferPointer) throws -> R) throws -> R {
        let (f, e) = try checkedEntry(name, shape: shape)
        return try withExtendedLifetime(f) { try body(e, f.rawBytes(e)) }
    }
}
