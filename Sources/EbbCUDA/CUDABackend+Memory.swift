import CEbbCUDA
import EbbCore
import EbbTensor

extension CUDABackend {
    /// Uninitialized device memory (like `torch.empty`); the models write every element
    /// they read.
    public func empty(_ shape: [Int], dtype: DType) throws -> Tensor {
        try checkErrors()
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= (1 << 40) else { throw TensorError.invalidShape(shape) }
            count = product
        }
        try bind()
        let bytes = max(count * dtype.byteSize, 1)
        let block = try allocator.allocate(bytes) { [self] in
            try CUDAStatus.check(api, try CUDAStatus.fn(api.pointee.cuStreamSynchronize, "cuStreamSynchronize")(stream),
                                 "cuStreamSynchronize")
        }
        guard let address = UnsafeMutableRawPointer(bitPattern: UInt(block.address)) else {
            throw EbbError(.internal, "cuMemAlloc returned a null pointer")
        }
        let allocator = self.allocator
        let buffer = DeviceBuffer(device: device, byteCount: block.size, address: address) { _ in allocator.release(block) }
        return Tensor(buffer: buffer, dtype: dtype, shape: shape)
    }

    /// Host → device, converting on the host first when the dtypes differ. The copy is
    /// queued on the stream; the driver stages pageable memory before returning, so the
    /// source may be reused at once.
    public func copy(from source: UnsafeRawBufferPointer, sourceDType: DType, into tensor: Tensor) {
        precondition(tensor.isContiguous, "copy into a strided CUDA tensor")
        let count = tensor.count
        precondition(source.count >= count * sourceDType.byteSize)
        guard let base = source.baseAddress, count > 0 else { return }
        perform {
            try bind()
            let htod = try CUDAStatus.fn(api.pointee.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync")
            let bytes = count * tensor.dtype.byteSize
            transfers.withLock { $0.uploads += 1; $0.uploadBytes += bytes }
            if sourceDType == tensor.dtype {
                try CUDAStatus.check(api, htod(pointer(tensor), base, bytes, stream), "cuMemcpyHtoDAsync(\(bytes) bytes)")
                return
            }
            var converted = [UInt8](repeating: 0, count: bytes)
            converted.withUnsafeMutableBytes { out in
                guard let dst = out.baseAddress else { return }
                if sourceDType == .f32 {
                    Half.narrow(base.assumingMemoryBound(to: Float.self), count: count, to: tensor.dtype, into: dst)
                } else if tensor.dtype == .f32 {
                    Half.widen(base, dtype: sourceDType, count: count, into: dst.assumingMemoryBound(to: Float.self))
                } else {
                    var wide = [Float](repeating: 0, count: count)
                    wide.withUnsafeMutableBufferPointer { w in
                        guard let wp = w.baseAddress else { return }
                        Half.widen(base, dtype: sourceDType, count: count, into: wp)
                        Half.narrow(wp, count: count, to: tensor.dtype, into: dst)
                    }
                }
            }
            try converted.withUnsafeBytes { raw in
                try CUDAStatus.check(api, htod(pointer(tensor), raw.baseAddress, bytes, stream), "cuMemcpyHtoDAsync(\(bytes) bytes)")
            }
        }
    }

    public func copy(_ source: Tensor, into destination: Tensor) {
        precondition(source.count == destination.count && source.dtype == destination.dtype)
        precondition(source.columns == destination.columns || (source.isContiguous && destination.isContiguous))
        guard source.count > 0 else { return }
        perform {
            if source.isContiguous && destination.isContiguous {
                try bind()
                let dtod = try CUDAStatus.fn(api.pointee.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync")
                let bytes = source.count * source.dtype.byteSize
                try CUDAStatus.check(api, dtod(pointer(destination), pointer(source), bytes, stream), "cuMemcpyDtoDAsync")
                return
            }
            try copyStrided(source, into: destination)
        }
    }

    func copyStrided(_ source: Tensor, into destination: Tensor) throws {
        let name = source.dtype.byteSize == 4 ? "copy_u32" : "copy_u16"
        let n = source.count
        try launch(name, grid: (gridFor(n), 1, 1), block: 256,
                   [.tensor(source), .int(source.rowStride), .tensor(destination), .int(destination.rowStride),
                    .int(source.rows), .int(source.columns)])
    }

    public func fill(_ tensor: Tensor, value: Float) {
        guard tensor.count > 0 else { return }
        perform {
            let pattern: UInt32
            switch tensor.dtype {
            case .f32: pattern = value.bitPattern
            case .i32:
                let v: Int32 = value.isFinite ? Int32(max(min(value, 2_000_000_000), -2_000_000_000)) : 0
                pattern = UInt32(bitPattern: v)
            case .bf16: pattern = UInt32(Half.floatToBF16(value))
            case .f16: pattern = UInt32(Half.floatToF16(value))
            }
            let name = tensor.dtype.byteSize == 4 ? "fill_u32" : "fill_u16"
            try launch(name, grid: (gridFor(tensor.count), 1, 1), block: 256,
                       [.tensor(tensor), .int(tensor.rows), .int(tensor.columns), .int(tensor.rowStride), .raw(UInt64(pattern))])
        }
    }

    /// Uniform random values in ±`bound` from `seed` (dummy weights), on the device.
    public func fillUniform(_ tensor: Tensor, seed: UInt64, bound: Float) throws {
        precondition(tensor.isContiguous)
        guard tensor.count > 0 else { return }
        let name: String
        switch tensor.dtype {
        case .bf16: name = "fill_uniform_bf16"
        case .f32: name = "fill_uniform_f32"
        default: throw EbbError(.unsupported, "random fill of \(tensor.dtype) tensors")
        }
        try launch(name, grid: (gridFor(tensor.count), 1, 1), block: 256,
                   [.tensor(tensor), .int(tensor.count), .raw(seed), .float(bound)])
    }

    /// The raw bytes of a tensor (made contiguous on the device first when strided).
    private func downloadBytes(_ tensor: Tensor) throws -> [UInt8] {
        var source = tensor
        if !tensor.isContiguous {
            source = try empty([tensor.rows, tensor.columns], dtype: tensor.dtype)
            try copyStrided(tensor, into: source)
        }
        let bytes = tensor.count * tensor.dtype.byteSize
        var out = [UInt8](repeating: 0, count: bytes)
        guard bytes > 0 else { return out }
        transfers.withLock { $0.downloads += 1; $0.downloadBytes += bytes }
        try bind()
        let dtoh = try CUDAStatus.fn(api.pointee.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync")
        let sync = try CUDAStatus.fn(api.pointee.cuStreamSynchronize, "cuStreamSynchronize")
        // Wait for the stream first, then copy from an idle stream: a copy into pageable
        // memory that waited for queued work (an NCCL kernel waiting for a peer) would hold
        // the driver's memory lock meanwhile, and another thread of this process that needs
        // it (an allocation, NCCL forming a group) could then keep that peer waiting on us.
        try CUDAStatus.check(api, sync(stream), "cuStreamSynchronize before a download (an earlier kernel failed)")
        try out.withUnsafeMutableBytes { raw in
            try CUDAStatus.check(api, dtoh(raw.baseAddress, pointer(source), bytes, stream), "cuMemcpyDtoHAsync(\(bytes) bytes)")
        }
        try CUDAStatus.check(api, sync(stream), "cuStreamSynchronize after a download (an earlier kernel failed)")
        return out
    }

    public func downloadFloats(_ tensor: Tensor) -> [Float] {
        var result = [Float](repeating: 0, count: tensor.count)
        perform {
            let raw = try downloadBytes(tensor)
            raw.withUnsafeBytes { src in
                result.withUnsafeMutableBufferPointer { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    Half.widen(s, dtype: tensor.dtype, count: tensor.count, into: d)
                }
            }
        }
        return result
    }

    public func downloadInts(_ tensor: Tensor) -> [Int32] {
        precondition(tensor.dtype == .i32)
        var result = [Int32](repeating: 0, count: tensor.count)
        perform {
            let raw = try downloadBytes(tensor)
            raw.withUnsafeBytes { src in
                result.withUnsafeMutableBytes { dst in dst.copyMemory(from: src) }
            }
        }
        return result
    }
}
