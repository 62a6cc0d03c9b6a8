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

    /// Greedy tokens (prefill + KV decode) equal transformers' on every fixture, on the
    /// CPU and on CUDA in f32 (the bodies `ebb selftest-cuda` runs on a GPU host).
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: Fixtures.checkpointNames.flatMap { n in ["cpu", "cuda-f32"].map { (n, $0) } })
    func fixtureGreedyTokens(name: String, device: String) throws {
        guard let backend = TestDevices.backend(device) else {
            print("\(device): \(TestDevices.skipMessage)")
            return
        }
        let reference = try FixtureReference(directory: Fixtures.url(name))
        let runner = try SequenceRunner(model: try CausalLM.load(directory: Fixtures.url(name), backend: backend), maxTokens: 128)
        let result = try reference.greedyMatches(runner)
        #expect(result.matching == result.total, "\(device) \(name): \(result.matching)/\(result.total) prompts match")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"),
          arguments: Fixtures.checkpointNames.flatMap { n in ["cpu", "cuda-f32", "cuda-bf16"].map { (n, $0) } })
    func fixtureLogits(name: String, device: String) throws {
        guard let backend = TestDevices.backend(device) else {
            print("\(device): \(TestDevices.skipMessage)")
            return
        }
        let reference = try FixtureReference(directory: Fixtures.url(name))
        let model = try CausalLM.load(directory: Fixtures.url(name), backend: backend)
        let comparison = try reference.compareLogits(try SequenceRunner(model: model, maxTokens: 128))
        print("\(device) \(name): \(comparison)")
        // f32 compute: max error ≤ 1e-4; bf16: typical error and next-token choice (see
        // LogitComparison for why the max cannot hold in bf16 on these fixtures).
        #expect(comparison.passes(bf16: backend.computeDType == .bf16), "\(device) \(name): \(comparison)")
    }
}
