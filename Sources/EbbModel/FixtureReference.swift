import EbbCheckpoint
import EbbCore
import Foundation

/// A fixture's transformers reference (`reference.safetensors`: the prompts, logits at
/// every prompt position, greedy tokens per prompt) and the checks of a model against it,
/// shared by the parity tests and `ebb selftest-cuda` so both run the same bodies.
public struct FixtureReference: Sendable {
    public let prompts: [[Int32]]
    /// `[positions, vocab]` over all prompts in order.
    public let logits: [Float]
    /// Greedy continuation of each prompt.
    public let greedy: [[Int32]]

    public init(directory: URL) throws {
        let file = try SafeTensorsFile(url: directory.appendingPathComponent("reference.safetensors"))
        let ids = try file.ints("input_ids").map(Int32.init)
        let lengths = try file.ints("prompt_lengths")
        var prompts = [[Int32]](), start = 0
        for n in lengths {
            guard n > 0, start + n <= ids.count else { throw EbbError(.invalidArgument, "reference.safetensors: prompt lengths exceed input_ids") }
            prompts.append(Array(ids[start..<(start + n)]))
            start += n
        }
        let greedyEntry = try file.entry("greedy_ids")
        let flat = try file.ints("greedy_ids").map(Int32.init)
        guard greedyEntry.shape.count == 2, greedyEntry.shape[0] == prompts.count else {
            throw EbbError(.invalidArgument, "reference.safetensors: greedy_ids is not [prompts, tokens]")
        }
        let width = greedyEntry.shape[1]
        self.prompts = prompts
        greedy = (0..<prompts.count).map { Array(flat[($0 * width)..<(($0 + 1) * width)]) }
        logits = try file.floats("logits")
    }

    /// Logits of every prompt position, each prompt prefilled alone, against the reference.
    public func compareLogits(_ runner: SequenceRunner) throws -> LogitComparison {
        var ours = [Float]()
        for p in prompts { ours += try runner.logits(prompt: p) }
        try runner.model.backend.checkErrors()
        return LogitComparison(ours, reference: logits, vocab: runner.model.config.vocabSize)
    }

    /// Greedy continuations (prefill + KV decode) of each prompt; the prompts whose tokens
    /// all match the reference's.
    public func greedyMatches(_ runner: SequenceRunner, tokens: Int? = nil) throws -> (matching: Int, total: Int, outputs: [[Int32]]) {
        var matching = 0, outputs = [[Int32]]()
        for (p, expected) in zip(prompts, greedy) {
            let n = min(tokens ?? expected.count, expected.count)
            let got = try runner.greedy(prompt: p, maxNewTokens: n)
            try runner.model.backend.checkErrors()
            outputs.append(got)
            if got == Array(expected.prefix(n)) { matching += 1 }
        }
        return (matching, prompts.count, outputs)
    }
}
