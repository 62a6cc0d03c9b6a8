import EbbCheckpoint
import EbbCore
import EbbCUDA
import EbbModel
import EbbTensor
import EbbTestSupport
import Foundation
import Testing

/// The backends a parity test runs on: the CPU always, CUDA (f32 and bf16) when a device
/// is found. Without one the CUDA cases skip with a message.
enum TestDevices {
    static let cudaFound = CUDABackend.deviceCount() > 0
    static let skipMessage = "no CUDA device (\(CUDALibraries.process.missing.map(\.rawValue).joined(separator: ", ")) missing or no GPU); GPU parity skipped"
    static let cudaF32: CUDABackend? = cudaFound ? try? CUDABackend(device: 0, computeDType: .f32) : nil
    static let cudaBF16: CUDABackend? = cudaFound ? try? CUDABackend(device: 0, computeDType: .bf16) : nil

    static func backend(_ name: String) -> (any Backend)? {
        switch name {
        case "cpu": return CPUBackend()
        case "cuda-f32": return cudaF32
        case "cuda-bf16": return cudaBF16
        default: return nil
        }
    }
}

@Suite(.serialized)
struct GPUParityTests {
    @Test(arguments: ["cpu", "cuda-f32", "cuda-bf16"])
    func opsMatchTheCPUBackend(device: String) throws {
        guard let backend = TestDevices.backend(device) else {
            print("\(device): \(TestDevices.skipMessage)")
            return
        }
        let results = BackendParity.run(device: backend, seed: 42)
        #expect(results.count > 30)
        for r in results {
            print("\(device): \(r)")
            #expect(r.passed, "\(device): \(r)")
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: Fixtures.checkpointNames.flatMap { n in ["cpu", "cuda-f32", "cuda-bf16"].map { (n, $0) } })
    func fixtureLogits(name: String, device: String) throws {
        guard let backend = TestDevices.backend(device) else {
            print("\(device): \(TestDevices.skipMessage)")
            return
        }
        let file = try SafeTensorsFile(url: Fixtures.url("\(name)/reference.safetensors"))
        let ids = try file.ints("input_ids").map(Int32.init)
        let lengths = try file.ints("prompt_lengths")
        let reference = try file.floats("logits")
        let model = try CausalLM.load(directory: Fixtures.url(name), backend: backend)
        let runner = try SequenceRunner(model: model, maxTokens: 128)
        var ours = [Float](), start = 0
        for n in lengths {
            ours += try runner.logits(prompt: Array(ids[start..<(start + n)]))
            start += n
        }
        if let cuda = backend as? CUDABackend { try cuda.checkErrors() }
        #expect(ours.count == reference.count)
        let maxRef = reference.map(abs).max() ?? 1
        var maxDiff: Float = 0
        for (a, b) in zip(ours, reference) { maxDiff = max(maxDiff, abs(a - b)) }
        let ratio = maxDiff / maxRef
        let tolerance: Float = backend.computeDType == .bf16 ? 2e-2 : 1e-4
        print("\(device) \(name): max |Δ| / max |ref| = \(ratio)")
        #expect(ratio <= tolerance, "\(device) \(name): \(ratio)")
    }
}
