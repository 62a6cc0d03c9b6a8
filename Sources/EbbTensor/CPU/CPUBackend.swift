import CEbbBLAS
import Dispatch
import Foundation

/// The CPU backend: f32 compute, GEMMs through OpenBLAS, other ops spread over all cores.
public final class CPUBackend: Backend, @unchecked Sendable {
    public let device: Device = .cpu
    public let computeDType: DType = .f32
    public let threads: Int

    /// `threads` defaults to every core; OpenBLAS is told the same number.
    public init(threads: Int? = nil) {
        let n = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.threads = n
        openblas_set_num_threads(Int32(n))
    }

    public var summary: String { "cpu (\(threads) threads, OpenBLAS, f32)" }

    // MARK: Memory

    public func empty(_ shape: [Int], dtype: DType) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= (1 << 40) else { throw TensorError.invalidShape(shape) }
            count = product
        }
        let bytes = max(count * dtype.byteSize, 1)
        // calloc: zeroed pages come lazily from the OS, and a failure is an error, not a trap.
        guard let raw = calloc(bytes, 1) else { throw TensorError.outOfMemory(bytes: bytes, device: "cpu") }
        let buffer = DeviceBuffer(device: .cpu, byteCount: bytes, address: raw) { free($0) }
        return Tensor(buffer: buffer, dtype: dtype, shape: shape)
    }

    public func copy(from source: UnsafeRawBufferPointer, sourceDType: DType, into tensor: Tensor) {
        precondition(tensor.isContiguous)
        let count = tensor.count
        precondition(source.count >= count * sourceDType.byteSize)
        guard let base = source.baseAddress, count > 0 else { return }
        if sourceDType == tensor.dtype {
            tensor.hostPointer.copyMemory(from: base, byteCount: count * tensor.dtype.byteSize)
        } else if tensor.dtype == .f32 {
            Half.widen(base, dtype: sourceDType, count: count, into: tensor.floatPointer)
        } else if sourceDType == .f32 {
            Half.narrow(base.assumingMemoryBound(to: Float.self), count: count, to: tensor.dtype, into: tensor.hostPointer)
        } else {
            var scratch = [Float](repeating: 0, count: count)
            scratch.withUnsafeMutableBufferPointer { buf in
                guard let p = buf.baseAddress else { return }
                Half.widen(base, dtype: sourceDType, count: count, into: p)
                Half.narrow(p, count: count, to: tensor.dtype, into: tensor.hostPointer)
            }
        }
    }

    public func copy(_ source: Tensor, into destination: Tensor) {
        precondition(source.count == destination.count && source.dtype == destination.dtype)
        precondition(source.columns == destination.columns || (source.isContiguous && destination.isContiguous))
        let size = source.dtype.byteSize
        if source.isContiguous && destination.isContiguous {
            destination.hostPointer.copyMemory(from: source.hostPointer, byteCount: source.count * size)
            return
        }
        let cols = source.columns
        for r in 0..<source.rows {
            (destination.hostPointer + r * destination.rowStride * size)
                .copyMemory(from: source.hostPointer + r * source.rowStride * size, byteCount: cols * size)
        }
    }

    public func fill(_ tensor: Tensor, value: Float) {
        let cols = tensor.columns
        for r in 0..<tensor.rows {
            switch tensor.dtype {
            case .f32:
                (tensor.floatPointer + r * tensor.rowStride).update(repeating: value, count: cols)
            case .i32:
                let v: Int32 = value.isFinite ? Int32(max(min(value, 2_000_000_000), -2_000_000_000)) : 0
                (tensor.int32Pointer + r * tensor.rowStride).update(repeating: v, count: cols)
            case .bf16, .f16:
                let bits = tensor.dtype == .bf16 ? Half.floatToBF16(value) : Half.floatToF16(value)
                (tensor.hostPointer.assumingMemoryBound(to: UInt16.self) + r * tensor.rowStride)
                    .update(repeating: bits, count: cols)
            }
        }
    }

    public func downloadFloats(_ tensor: Tensor) -> [Float] {
        let cols = tensor.columns
        var result = [Float](repeating: 0, count: tensor.count)
        result.withUnsafeMutableBufferPointer { out in
            guard let dst = out.baseAddress else { return }
            for r in 0..<tensor.rows {
                Half.widen(tensor.hostPointer + r * tensor.rowStride * tensor.dtype.byteSize,
                           dtype: tensor.dtype, count: cols, into: dst + r * cols)
            }
        }
        return result
    }

    public func downloadInts(_ tensor: Tensor) -> [Int32] {
        precondition(tensor.dtype == .i32)
        let cols = tensor.columns
        var result = [Int32](repeating: 0, count: tensor.count)
        for r in 0..<tensor.rows {
            for c in 0..<cols { result[r * cols + c] = tensor.int32Pointer[r * tensor.rowStride + c] }
        }
        return result
    }

    public func synchronize() {}

    // MARK: Parallel helper

    /// Runs `body(range)` over `0..<count` split into chunks of at least `grain` items on
    /// all threads; small jobs run inline.
    @inline(__always)
    func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threads * 4, max(1, count / max(grain, 1)))
        if chunks <= 1 || threads == 1 {
            body(0..<count)
            return
        }
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            // The chunks touch disjoint rows; the box only carries the closure across.
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let start = c * per
                let end = min(count, start + per)
                if start < end { box.value(start..<end) }
            }
        }
    }
}

/// Carries a value into a `@Sendable` closure where the caller guarantees data-race freedom.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

public enum TensorError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidShape([Int])
    case sizeMismatch(expected: Int, found: Int)
    case outOfMemory(bytes: Int, device: String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .invalidShape(let s): return "invalid tensor shape \(s)"
        case .sizeMismatch(let e, let f): return "buffer holds \(f) bytes, expected \(e)"
        case .outOfMemory(let b, let d): return "out of memory allocating \(b) bytes on \(d)"
        case .unavailable(let why): return "backend unavailable: \(why)"
        }
    }
}
