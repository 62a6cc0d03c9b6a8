import CEbbCUDA
import EbbCore
@testable import EbbCUDA
import Foundation
import Testing

/// The dlopen shim, on any machine: missing libraries are reported, not fatal.
struct LibraryLoadingTests {
    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-cuda-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func emptyDirectoryReportsEveryLibraryMissing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let probe = CUDALibraries.probe(directories: dir.path, searchDefaults: false)
        #expect(probe.loaded.isEmpty)
        #expect(!probe.usable)
        #expect(probe.missing == [.cuda, .nvrtc, .cublas])
        for library in CUDALibraries.Library.allCases {
            #expect(probe.report.contains("\(library.rawValue): not found"), "\(probe.report)")
        }
        #expect(probe.report.contains(dir.path))
        let error = probe.unavailableError
        #expect(error.code == .unsupported)
        #expect(error.message.contains("libcuda, libnvrtc, libcublas"))
        #expect(error.message.contains("EBB_CUDA_LIB_DIR"))
    }

    @Test func corruptLibraryReportsTheLoaderError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("not an ELF file".utf8).write(to: dir.appendingPathComponent("libcuda.so.1"))
        let probe = CUDALibraries.probe(directories: dir.path, searchDefaults: false)
        #expect(!probe.loaded.contains(.cuda))
        #expect(probe.report.contains("libcuda: not found"))
        #expect(probe.report.contains("last error"), "\(probe.report)")
    }

    @Test func libraryWithoutTheSymbolsIsNotUsed() throws {
        // Any real shared library stands in for libnvrtc: it loads but lacks nvrtcVersion.
        let candidates = ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib64/libz.so.1",
                          "/lib/aarch64-linux-gnu/libz.so.1"]
        guard let real = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else { return }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Copy the file itself: libz.so.1 is a symlink, and a copied relative symlink dangles.
        let file = URL(fileURLWithPath: real).resolvingSymlinksInPath().path
        try FileManager.default.copyItem(atPath: file, toPath: dir.appendingPathComponent("libnvrtc.so.13").path)
        let probe = CUDALibraries.probe(directories: dir.path, searchDefaults: false)
        #expect(!probe.loaded.contains(.nvrtc))
        #expect(probe.report.contains("lacks symbol nvrtcVersion"), "\(probe.report)")
        #expect(probe.missing.contains(.nvrtc))
    }

    @Test func backendReportsUnavailableWithoutCUDA() throws {
        guard !CUDALibraries.process.usable else { return }
        #expect(CUDABackend.deviceCount() == 0)
        do {
            _ = try CUDABackend(device: 0)
            Issue.record("CUDABackend started without CUDA")
        } catch let error as EbbError {
            #expect(error.code == .unsupported)
            #expect(error.message.contains("CUDA is unavailable"))
        }
    }

    @Test func computeDTypeMustBeBF16OrF32() {
        #expect(throws: EbbError.self) { _ = try CUDABackend(device: 0, computeDType: .f16) }
    }

    @Test func kernelSourceHasEveryEntryPoint() throws {
        let source = KernelSource.full
        var names = ["fill_u32", "fill_u16", "copy_u32", "copy_u16", "fill_uniform_bf16", "grouped_gemv_vec_bf16", "grouped_gemv_swiglu_bf16",
                     "grouped_mma_bf16", "map_experts", "group_stable", "group_chunk_count", "group_chunk_scan", "group_chunk_place",
                     "add_rms_norm_f32_bf16"] + KernelFlashAttention.headDims.map { "flash_prefill_bf16_d\($0)" }
            + KernelFlashAttention.latentShapes.map { KernelFlashAttention.latentKernel(nope: $0.nope, rope: $0.rope, value: $0.value) }
        for s in ["f32", "bf16"] {
            names += ["rms_norm", "add", "silu_mul", "rope", "embedding", "argmax", "gather_rows", "write_kv", "write_latent_kv",
                      "route_topk", "scatter_gather_add", "scatter_add_listed", "gather_context", "grouped_gemv", "row_checksums", "add_rms_norm", "prepare_qkv"].map { "\($0)_\(s)" }
            names += KernelAttention.attentionEPL.map { "paged_attention_\(s)_e\($0)" }
            names += KernelRouting.gemvRowCounts.map { "gemv_rows\($0)_bf16_\(s)" }
        }
        for name in names {
            #expect(source.contains("void \(name)(") || source.contains("void __launch_bounds__(256) \(name)(")
                    || source.contains("void __launch_bounds__(128) \(name)(") || source.contains("void __launch_bounds__(1024) \(name)("),
                    "kernel \(name) missing")
        }
        #expect(!source.contains("$T") && !source.contains("$S"))
        if let path = ProcessInfo.processInfo.environment["EBB_DUMP_KERNELS"], !path.isEmpty {
            try source.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// The whole kernel source compiles for the H200's architecture wherever NVRTC loads,
    /// GPU or not (e.g. `pip install nvidia-cuda-nvrtc-cu12` and EBB_CUDA_LIB_DIR at its lib).
    @Test func kernelSourceCompilesWithNVRTC() throws {
        guard let api = ebb_cuda_api(), api.pointee.loaded & Int32(EBB_LIB_NVRTC) != 0 else {
            print("no libnvrtc: kernel compile check skipped")
            return
        }
        let cubin = try KernelModule.compile(api: api, source: KernelSource.full, options: ["--gpu-architecture=sm_90", "--std=c++17"])
        #expect(cubin.count > 100_000)
        let text = String(decoding: cubin, as: UTF8.self)
        for name in ["rms_norm_f32_bf16", "add_f32_bf16", "embedding_bf16_f32", "paged_attention_bf16_e4", "grouped_mma_bf16",
                     "flash_prefill_bf16_d128"] {
            #expect(text.contains(name), "\(name) not in the CUBIN")
        }
    }

    @Test func allocatorRoundsSizes() {
        #expect(DeviceAllocator.rounded(1) == 512)
        #expect(DeviceAllocator.rounded(513) == 1024)
        #expect(DeviceAllocator.rounded(1 << 20) == 1 << 20)
        #expect(DeviceAllocator.rounded((1 << 20) + 1) == 2 << 20)
        #expect(DeviceAllocator.rounded(5 << 20) == 6 << 20)
    }
}
