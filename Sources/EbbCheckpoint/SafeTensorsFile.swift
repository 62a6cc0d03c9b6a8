import EbbCore
import Foundation
import EbbTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One safetensors file, memory-mapped read-only (or, for tests and small blobs, held in
/// an owned buffer), with its header parsed and every entry validated against the file.
///
/// Layout: an 8-byte little-endian u64 `N`, then `N` bytes of UTF-8 JSON
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`,
/// then the data; offsets are relative to the first byte after the header.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Headers larger than this are rejected as corrupt (real ones are a few MB at most).
    public static let maxHeaderLength = 100_000_000

    /// The file's path (or the name given to `init(bytes:name:)`), used in messages.
    public let path: String
    /// Tensors by name.
    public let entries: [String: TensorEntry]
    /// Tensor names in header order.
    public let orderedNames: [String]
    /// `__metadata__` (string to string), empty if absent.
    public let metadata: [String: String]
    /// Size of the whole file in bytes.
    public let byteCount: Int

    private enum Storage {
        case mapped(UnsafeMutableRawPointer, Int)
        case owned(UnsafeMutableRawBufferPointer)
    }
    private let storage: Storage
    private let base: UnsafeRawPointer?

    /// Maps `url` read-only and validates its header.
    public init(url: URL) throws(CheckpointError) {
        let path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(file: path, reason: Self.errnoString()) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(file: path, reason: Self.errnoString()) }
        guard (Int(st.st_mode) & Int(S_IFMT)) == Int(S_IFREG) else { throw .io(file: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw .corruptHeader(file: path, reason: "file is \(size) bytes, shorter than the 8-byte header length")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .io(file: path, reason: "mmap failed: \(Self.errnoString())")
        }
        let parsed: Parsed
        do {
            parsed = try Self.parse(UnsafeRawBufferPointer(start: p, count: size), path: path)
        } catch {
            munmap(p, size)
            throw error
        }
        self.path = path
        self.storage = .mapped(p, size)
        self.base = UnsafeRawPointer(p)
        self.byteCount = size
        self.entries = parsed.entries
        self.orderedNames = parsed.ordered
        self.metadata = parsed.metadata
    }

    /// Parses a safetensors image held in memory (copied into an aligned buffer).
    public init(bytes: [UInt8], name: String) throws(CheckpointError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress, let d = buffer.baseAddress { d.copyMemory(from: s, byteCount: src.count) }
        }
        let view = UnsafeRawBufferPointer(start: buffer.baseAddress, count: bytes.count)
        let parsed: Parsed
        do {
            parsed = try Self.parse(view, path: name)
        } catch {
            buffer.deallocate()
            throw error
        }
        self.path = name
        self.storage = .owned(buffer)
        self.base = UnsafeRawPointer(buffer.baseAddress)
        self.byteCount = bytes.count
        self.entries = parsed.entries
        self.orderedNames = parsed.ordered
        self.metadata = parsed.metadata
    }

    deinit {
        switch storage {
        case let .mapped(p, size): munmap(p, size)
        case let .owned(buffer): buffer.deallocate()
        }
    }

    /// The tensor's bytes, valid while this file is alive. The entry must come from this file;
    /// a range outside the file gives an empty buffer.
    public func rawBytes(_ entry: TensorEntry) -> UnsafeRawBufferPointer {
        guard let base, entry.byteRange.lowerBound >= 0, entry.byteRange.upperBound <= byteCount else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(start: base + entry.byteRange.lowerBound, count: entry.byteRange.count)
    }

    /// The entry named `name`, or `.missingTensor`.
    public func entry(_ name: String) throws(CheckpointError) -> TensorEntry {
        guard let e = entries[name] else { throw .missingTensor(file: path, tensor: name) }
        return e
    }

    /// A F32/BF16/F16 tensor widened to f32.
    public func floats(_ name: String) throws(CheckpointError) -> [Float] {
        let e = try entry(name)
        return try TensorConversion.floats(e, rawBytes(e))
    }

    /// An I32/I64 tensor as Int.
    public func ints(_ name: String) throws(CheckpointError) -> [Int] {
        let e = try entry(name)
        return try TensorConversion.ints(e, rawBytes(e))
    }

    // MARK: Parsing

    private struct Parsed {
        var entries: [String: TensorEntry] = [:]
        var ordered: [String] = []
        var metadata: [String: String] = [:]
    }

    private static func errnoString() -> String {
        String(cString: strerror(errno))
    }

    private static func parse(_ file: UnsafeRawBufferPointer, path: String) throws(CheckpointError) -> Parsed {
        let size = file.count
        guard size >= 8 else {
            throw .corruptHeader(file: path, reason: "file is \(size) bytes, shorter than the 8-byte header length")
        }
        var n64: UInt64 = 0
        for k in 0..<8 { n64 |= UInt64(file[k]) << (8 * UInt64(k)) }
        guard n64 <= UInt64(maxHeaderLength) else {
            throw .corruptHeader(file: path, reason: "header length \(n64) is larger than the \(maxHeaderLength)-byte limit")
        }
        let n = Int(n64)
        guard n <= size - 8 else {
            throw .corruptHeader(file: path, reason: "header length \(n) runs past the end of the file (\(size) bytes)")
        }
        guard n >= 2 else { throw .corruptHeader(file: path, reason: "header length \(n) is too short for a JSON object") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[8..<(8 + n)])
        guard headerBytes[0] == UInt8(ascii: "{") else {
            throw .corruptHeader(file: path, reason: "header does not start with '{'")
        }
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw .corruptHeader(file: path, reason: "header is not valid UTF-8")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(headerBytes, maxDepth: 64)
        } catch {
            throw .corruptHeader(file: path, reason: "invalid JSON: \(error.description)")
        }
        guard case let .object(members) = json else {
            throw .corruptHeader(file: path, reason: "header is \(json.typeName), not an object")
        }
        let dataStart = 8 + n
        let dataSize = size - dataStart
        var out = Parsed()
        var seen = Set<String>()
        for (name, value) in members {
            guard seen.insert(name).inserted else {
                throw .corruptHeader(file: path, reason: "key '\(name)' appears twice")
            }
            if name == "__metadata__" {
                guard case let .object(meta) = value else {
                    throw .corruptHeader(file: path, reason: "__metadata__ is \(value.typeName), not an object")
                }
                for (k, v) in meta {
                    guard case let .string(s) = v else {
                        throw .corruptHeader(file: path, reason: "__metadata__ value for '\(k)' is \(v.typeName), not a string")
                    }
                    out.metadata[k] = s
                }
                continue
            }
            let entry = try parseEntry(name: name, value: value, path: path, dataStart: dataStart, dataSize: dataSize)
            out.entries[name] = entry
            out.ordered.append(name)
        }
        return out
    }

    private static func parseEntry(name: String, value: JSONValue, path: String, dataStart: Int, dataSize: Int) throws(CheckpointError) -> TensorEntry {
        guard case let .object(fields) = value else {
            throw .corruptHeader(file: path, reason: "entry for tensor '\(name)' is \(value.typeName), not an object")
        }
        func field(_ key: String) throws(CheckpointError) -> JSONValue {
            guard let v = fields.first(where: { $0.0 == key })?.1 else {
                throw .corruptHeader(file: path, reason: "tensor '\(name)' has no '\(key)'")
            }
            return v
        }
        guard case let .string(dtypeText) = try field("dtype") else {
            throw .corruptHeader(file: path, reason: "tensor '\(name)': 'dtype' is not a string")
        }
        guard let dtype = StorageDType(rawValue: dtypeText) else {
            throw .unknownDType(file: path, tensor: name, dtype: dtypeText)
        }
        guard case let .array(dimValues) = try field("shape") else {
            throw .corruptHeader(file: path, reason: "tensor '\(name)': 'shape' is not an array")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dimValues.count)
        var elements = 1
        var overflow = false
        for d in dimValues {
            guard let dim = d.exactInt, dim >= 0 else {
                throw .corruptHeader(file: path, reason: "tensor '\(name)': shape dim \(Self.render(d)) is not a non-negative integer")
            }
            shape.append(dim)
            let (m, o) = elements.multipliedReportingOverflow(by: dim)
            elements = m
            overflow = overflow || o
        }
        let (bytesNeeded, o2) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        if overflow || o2 {
            throw .corruptHeader(file: path, reason: "tensor '\(name)': element count of shape \(shape) overflows")
        }
        guard case let .array(offsets) = try field("data_offsets") else {
            throw .corruptHeader(file: path, reason: "tensor '\(name)': 'data_offsets' is not an array")
        }
        guard offsets.count == 2 else {
            throw .corruptHeader(file: path, reason: "tensor '\(name)': 'data_offsets' has \(offsets.count) values, expected 2")
        }
        guard let begin = offsets[0].exactInt, let end = offsets[1].exactInt, begin >= 0, end >= 0 else {
            throw .offsetsOutOfRange(file: path, tensor: name,
                                     detail: "data_offsets \(Self.render(offsets[0])), \(Self.render(offsets[1])) are not non-negative integers")
        }
        guard end >= begin else {
            throw .offsetsOutOfRange(file: path, tensor: name, detail: "end \(end) is before begin \(begin)")
        }
        guard end <= dataSize else {
            throw .offsetsOutOfRange(file: path, tensor: name,
                                     detail: "[\(begin), \(end)) ends past the \(dataSize) bytes of data after the header")
        }
        guard end - begin == bytesNeeded else {
            throw .byteLengthMismatch(file: path, tensor: name, dtype: dtype.rawValue, shape: shape,
                                      expectedBytes: bytesNeeded, foundBytes: end - begin)
        }
        return TensorEntry(name: name, dtype: dtype, shape: shape,
                           byteRange: (dataStart + begin)..<(dataStart + end), file: path)
    }

    private static func render(_ v: JSONValue) -> String {
        switch v {
        case let .number(t): return t
        case let .string(s): return "\"\(s)\""
        default: return v.typeName
        }
    }
}

/// Conversions from stored bytes to Swift arrays, safe for unaligned data.
public enum TensorConversion {
    /// Widens a F32/BF16/F16 tensor to f32 exactly.
    public static func floats(_ entry: TensorEntry, _ bytes: UnsafeRawBufferPointer) throws(CheckpointError) -> [Float] {
        guard let dtype = entry.dtype.tensorDType, dtype.isFloatingPoint else {
            throw .unsupportedDType(file: entry.file, tensor: entry.name, dtype: entry.dtype.rawValue,
                                    supported: StorageDType.floatReadable.map(\.rawValue))
        }
        let count = bytes.count / entry.dtype.byteSize
        guard count > 0, let src = bytes.baseAddress else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { dst, initialized in
            guard let d = dst.baseAddress else { initialized = 0; return }
            if Int(bitPattern: src) % entry.dtype.byteSize == 0 {
                Half.widen(src, dtype: dtype, count: count, into: d)
            } else {
                switch dtype {
                case .f32:
                    UnsafeMutableRawPointer(d).copyMemory(from: src, byteCount: count * 4)
                case .bf16:
                    for i in 0..<count { d[i] = Half.bf16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                case .f16:
                    for i in 0..<count { d[i] = Half.f16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                case .i32:
                    for i in 0..<count { d[i] = Float(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
                }
            }
            initialized = count
        }
    }

    /// Converts an I32/I64 tensor to Int.
    public static func ints(_ entry: TensorEntry, _ bytes: UnsafeRawBufferPointer) throws(CheckpointError) -> [Int] {
        switch entry.dtype {
        case .i32:
            let count = bytes.count / 4
            return (0..<count).map { Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .i64:
            let count = bytes.count / 8
            return (0..<count).map { Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        default:
            throw .unsupportedDType(file: entry.file, tensor: entry.name, dtype: entry.dtype.rawValue,
                                    supported: StorageDType.intReadable.map(\.rawValue))
        }
    }
}
