import EbbCheckpoint
import EbbModel
import EbbTensor
import EbbTestSupport
import Foundation
import Testing

/// The reference of a fixture: prompts, logits and greedy continuations from transformers.
struct Reference {
    let prompts: [[Int32]]
    let logits: [Float]
    let vocab: Int
    let greedy: [[Int32]]

    init(_ name: String) throws {
        let file = try SafeTensorsFile(url: Fixtures.url("\(name)/reference.safetensors"))
        let ids = try file.ints("input_ids").map(Int32.init)
        let lengths = try file.ints("prompt_lengths")
        var prompts = [[Int32]](), start = 0
        for n in lengths {
            prompts.append(Array(ids[start..<(start + n)]))
            start += n
        }
        self.prompts = prompts
        let logitsEntry = try file.entry("logits")
        vocab = logitsEntry.shape[1]
        logits = try file.floats("logits")
        let greedyEntry = try file.entry("greedy_ids")
        let flat = try file.ints("greedy_ids").map(Int32.init)
        let width = greedyEntry.shape[1]
        greedy = (0..<greedyEntry.shape[0]).map { Array(flat[($0 * width)..<(($0 + 1) * width)]) }
    }
}

@Suite(.serialized)
struct FixtureNumericsTests {
    static let backend = CPUBackend()

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func logitsMatchTransformers(name: String) throws {
        let reference = try Reference(name)
        let model = try CausalLM.load(directory: Fixtures.url(name), backend: Self.backend)
        let runner = try SequenceRunner(model: model, maxTokens: 128)
        var ours = [Float]()
        for prompt in reference.prompts {
            ours += try runner.logits(prompt: prompt)
        }
        #expect(ours.count == reference.logits.count)
        let maxRef = reference.logits.map(abs).max() ?? 1
        var maxDiff: Float = 0
        for (a, b) in zip(ours, reference.logits) { maxDiff = max(maxDiff, abs(a - b)) }
        let relative = maxDiff / maxRef
        print("\(name): max |Δ| = \(maxDiff), max |ref| = \(maxRef), ratio = \(relative)")
        #expect(relative <= 1e-4, "\(name): max |Δ| / max |ref| = \(relative)")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: Fixtures.checkpointNames)
    func greedyMatchesTransformers(name: String) throws {
        let reference = try Reference(name)
        let model = try CausalLM.load(directory: Fixtures.url(name), backend: Self.backend)
        let runner = try SequenceRunner(model: model, maxTokens: 128)
        for (prompt, expected) in zip(reference.prompts, reference.greedy) {
            let got = try runner.greedy(prompt: prompt, maxNewTokens: expected.count)
            #expect(got == expected, "\(name): prompt of \(prompt.count) tokens")
        }
    }
}
