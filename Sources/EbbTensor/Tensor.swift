/// Where a buffer lives.
public enum Device: Sendable, Equatable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let index): return "cuda:\(index)"
        }
    }
}

/// A block of device memory. On the CPU it is host memory; on a GPU the address is a
/// device pointer that only the backend dereferences.
public final class DeviceBuffer: @unchecked Sendable {
    public let device: Device
    public let byteCount: Int
    public let address: UnsafeMutableRawPointer
    private let release: @Sendable (UnsafeMutableRawPointer) -> Void

    public init(device: Device, byteCount: Int, address: UnsafeMutableRawPointer,
                release: @escaping @Sendable (UnsafeMutableRawPointer) -> Void) {
        self.device = device
        self.byteCount = byteCount
        self.address = address
        self.release = release
    }

    deinit { release(address) }
}

/// A view of a device buffer: a dtype, a shape, an element offset, and the stride between
/// rows. All leading dimensions flatten into rows of `shape.last` elements spaced
/// `rowStride` elements apart, which covers the column slices the models take (for
/// example the rope part of each attention head) without copies.
public struct Tensor: @unchecked Sendable {
    public let buffer: DeviceBuffer
    public let dtype: DType
    public let shape: [Int]
    /// Offset of the first element, in elements.
    public let offset: Int
    /// Elements between the starts of consecutive rows (rows = product of leading dims).
    public let rowStride: Int

    public init(buffer: DeviceBuffer, dtype: DType, shape: [Int], offset: Int = 0, rowStride: Int? = nil) {
        self.buffer = buffer
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.rowStride = rowStride ?? (shape.last ?? 1)
    }

    public var device: Device { buffer.device }
    public var count: Int { shape.reduce(1, *) }
    public var columns: Int { shape.last ?? 1 }
    public var rows: Int { shape.count <= 1 ? 1 : shape.dropLast().reduce(1, *) }
    public var isContiguous: Bool { rowStride == columns }

    /// Same elements, new shape. Only for contiguous tensors, or when the last dimension
    /// is kept (the row stride then still applies).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) → \(newShape) changes the element count")
        if isContiguous {
            return Tensor(buffer: buffer, dtype: dtype, shape: newShape, offset: offset)
        }
        precondition(newShape.last == columns, "reshape of a strided tensor must keep the last dimension")
        return Tensor(buffer: buffer, dtype: dtype, shape: newShape, offset: offset, rowStride: rowStride)
    }

    /// Rows `range` of the flattened-rows view; `shape` keeps its trailing dims.
    public func rowSlice(_ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        return Tensor(buffer: buffer, dtype: dtype, shape: [range.count, columns],
                      offset: offset + range.lowerBound * rowStride, rowStride: rowStride)
    }

    /// A slice of the first dimension, keeping the other dims (contiguous tensors only).
    public func slice(first range: Range<Int>) -> Tensor {
        precondition(isContiguous && !shape.isEmpty && range.upperBound <= shape[0])
        let inner = shape.dropFirst().reduce(1, *)
        return Tensor(buffer: buffer, dtype: dtype, shape: [range.count] + shape.dropFirst(),
                      offset: offset + range.lowerBound * inner)
    }

    /// Columns `range` of the last dimension, as a strided view. Works on any shape:
    /// `[T, H, D]` sliced on columns of the last dim gives `[T, H, range.count]`.
    public func columnSlice(_ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= columns)
        var newShape = shape
        newShape[newShape.count - 1] = range.count
        return Tensor(buffer: buffer, dtype: dtype, shape: newShape,
                      offset: offset + range.lowerBound, rowStride: rowStride)
    }

    /// Host pointer to the first element (CPU tensors only).
    public var hostPointer: UnsafeMutableRawPointer {
        precondition(device == .cpu, "host pointer of a \(device) tensor")
        return buffer.address + offset * dtype.byteSize
    }

    public var floatPointer: UnsafeMutablePointer<Float> {
        precondition(dtype == .f32)
        return hostPointer.assumingMemoryBound(to: Float.self)
    }

    public var int32Pointer: UnsafeMutablePointer<Int32> {
        precondition(dtype == .i32)
        return hostPointer.assumingMemoryBound(to: Int32.self)
    }
}
