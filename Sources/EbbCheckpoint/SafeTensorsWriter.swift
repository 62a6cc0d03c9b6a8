import EbbCore
import Foundation
import EbbTensor

/// A tensor to write: raw little-endian bytes with their dtype and shape.
public struct WritableTensor: Sendable, Equatable {
    public var name: String
    public var dtype: StorageDType
    public var shape: [Int]
    public var data: [UInt8]

    public init(name: String, dtype: StorageDType, shape: [Int], data: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public static func f32(name: String, shape: [Int], values: [Float]) -> WritableTensor {
        WritableTensor(name: name, dtype: .f32, shape: shape,
                       data: values.withUnsafeBufferPointer { p in
                           [UInt8](unsafeUninitializedCapacity: p.count * 4) { out, n in
                               for (i, v) in p.enumerated() {
                                   let b = v.bitPattern.littleEndian
                                   for k in 0..<4 { out[4 * i + k] = UInt8(truncatingIfNeeded: b >> (8 * UInt32(k))) }
                               }
                               n = p.count * 4
                           }
                       })
    }

    /// f32 values narrowed to bf16 (or f16) with round-to-nearest-even.
    public static func half(name: String, dtype: StorageDType, shape: [Int], values: [Float]) -> WritableTensor {
        var data = [UInt8]()
        data.reserveCapacity(values.count * 2)
        for v in values {
            let bits = dtype == .f16 ? Half.floatToF16(v) : Half.floatToBF16(v)
            data.append(UInt8(truncatingIfNeeded: bits))
            data.append(UInt8(truncatingIfNeeded: bits >> 8))
        }
        return WritableTensor(name: name, dtype: dtype == .f16 ? .f16 : .bf16, shape: shape, data: data)
    }

    public static func i32(name: String, shape: [Int], values: [Int32]) -> WritableTensor {
        var data = [UInt8]()
        data.reserveCapacity(values.count * 4)
        for v in values {
            let b = UInt32(bitPattern: v)
            for k in 0..<4 { data.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(k)))) }
        }
        return WritableTensor(name: name, dtype: .i32, shape: shape, data: data)
    }

    public static func i64(name: String, shape: [Int], values: [Int64]) -> WritableTensor {
        var data = [UInt8]()
        data.reserveCapacity(values.count * 8)
        for v in values {
            let b = UInt64(bitPattern: v)
            for k in 0..<8 { data.append(UInt8(truncatingIfNeeded: b >> (8 * UInt64(k)))) }
        }
        return WritableTensor(name: name, dtype: .i64, shape: shape, data: data)
    }
}

/// Writes safetensors files the way Hugging Face does: header keys sorted (`__metadata__`
/// among them), header padded with spaces to a multiple of 8 bytes, data in header order.
public enum SafeTensorsWriter {
    /// The complete file image.
    public static func serialize(_ tensors: [WritableTensor], metadata: [String: String] = [:]) throws(CheckpointError) -> [UInt8] {
        let file = "<safetensors being written>"
        var seen = Set<String>()
        for t in tensors {
            guard !t.name.isEmpty, t.name != "__metadata__" else {
                throw .corruptHeader(file: file, reason: "invalid tensor name '\(t.name)'")
            }
            guard seen.insert(t.name).inserted else {
                throw .duplicateTensor(tensor: t.name, files: [file])
            }
            var elements = 1
            for d in t.shape {
                guard d >= 0 else {
                    throw .corruptHeader(file: file, reason: "tensor '\(t.name)' has negative dim in shape \(t.shape)")
                }
                let (m, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw .corruptHeader(file: file, reason: "tensor '\(t.name)': shape \(t.shape) overflows") }
                elements = m
            }
            let (need, o) = elements.multipliedReportingOverflow(by: t.dtype.byteSize)
            guard !o, need == t.data.count else {
                throw .byteLengthMismatch(file: file, tensor: t.name, dtype: t.dtype.rawValue, shape: t.shape,
                                          expectedBytes: o ? Int.max : need, foundBytes: t.data.count)
            }
        }
        let sorted = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var entries: [(key: String, json: String)] = []
        var offset = 0
        for t in sorted {
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append((t.name, "{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.data.count)]}"))
            offset += t.data.count
        }
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { "\(Self.quoted($0.key)):\(Self.quoted($0.value))" }
            entries.append(("__metadata__", "{" + pairs.joined(separator: ",") + "}"))
            entries.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        }
        var header = Array(("{" + entries.map { "\(Self.quoted($0.key)):\($0.json)" }.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + header.count + offset)
        let n = UInt64(header.count)
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(k)))) }
        out.append(contentsOf: header)
        for t in sorted { out.append(contentsOf: t.data) }
        return out
    }

    /// Writes `tensors` to `url` (atomically: a temporary file renamed into place).
    public static func write(_ tensors: [WritableTensor], metadata: [String: String] = [:], to url: URL) throws(CheckpointError) {
        let bytes = try serialize(tensors, metadata: metadata)
        do {
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw .io(file: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}

extension SafeTensorsWriter {
    /// A JSON string literal (EbbCore's writer).
    static func quoted(_ s: String) -> String { EbbCore.JSONValue.string(s).serialized() }
}
