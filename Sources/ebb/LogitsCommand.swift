import ArgumentParser
import EbbCheckpoint
import EbbCUDA
import EbbCore
import EbbModel
import EbbTensor
import Foundation

/// `ebb logits`: float32 logits of every position of each prompt, each attended on its
/// own, concatenated in order into a safetensors file under the key `logits`.
struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the logits of token prompts to a safetensors file (key 'logits', float32 [total_tokens, vocab])")

    @Option(help: "Checkpoint directory or builtin:tiny-moe")
    var model: String

    @Option(help: "A prompt as comma-separated token ids; repeat for several prompts")
    var tokens: [String]

    @Option(help: "Output safetensors file")
    var output: String

    @Option(help: "CPU threads (default: all cores)")
    var threads: Int?

    @OptionGroup var deviceOptions: DeviceModelOptions

    func run() throws {
        try runReportingErrors {
            guard !tokens.isEmpty else { throw EbbError(.invalidArgument, "give at least one --tokens prompt") }
            let prompts = try tokens.map(parseIds)
            let backend = try deviceOptions.backend(threads: threads)
            let loaded = try deviceOptions.load(model, backend: backend, needTokenizer: false)
            let vocab = loaded.model.config.vocabSize
            let longest = prompts.map(\.count).max() ?? 1
            let runner = try SequenceRunner(model: loaded.model, maxTokens: longest)
            var all = [Float]()
            all.reserveCapacity(prompts.reduce(0) { $0 + $1.count } * vocab)
            for prompt in prompts {
                all += try runner.logits(prompt: prompt)
            }
            if let cuda = backend as? CUDABackend { try cuda.checkErrors() }
            let total = prompts.reduce(0) { $0 + $1.count }
            try SafeTensorsWriter.write([.f32(name: "logits", shape: [total, vocab], values: all)],
                                        to: URL(fileURLWithPath: output))
        }
    }
}
