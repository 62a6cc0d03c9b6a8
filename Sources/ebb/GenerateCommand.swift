import ArgumentParser
import EbbCUDA
import EbbCore
import EbbModel
import EbbSampling
import EbbTensor
import EbbTokenizer
import Foundation

/// `ebb generate`: prefill the prompt once, then decode token by token against the KV
/// cache, printing text as it is produced.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate a completion for a prompt, streaming it to stdout")

    @Option(help: "Checkpoint directory or builtin:tiny-moe")
    var model: String = "builtin:tiny-moe"

    @Option(help: "Prompt text")
    var prompt: String

    @Option(help: "Largest number of new tokens")
    var maxTokens: Int = 64

    @Option(help: "Sampling temperature (0 = greedy)")
    var temperature: Double = 0

    @Option(help: "Nucleus sampling probability mass")
    var topP: Double = 1

    @Option(help: "Top-k (0 = off)")
    var topK: Int = 0

    @Option(help: "Random seed for reproducible sampling")
    var seed: UInt64?

    @Flag(help: "Keep generating past the end-of-sequence token")
    var ignoreEos = false

    @Option(help: "CPU threads (default: all cores)")
    var threads: Int?

    @OptionGroup var deviceOptions: DeviceModelOptions

    func run() throws {
        try runReportingErrors {
            guard maxTokens > 0 else { throw EbbError(.invalidArgument, "--max-tokens must be positive") }
            let params = SamplingParams(temperature: temperature, topP: topP, topK: topK, seed: seed,
                                        maxTokens: maxTokens, ignoreEOS: ignoreEos)
            let backend = try deviceOptions.backend(threads: threads)
            let loaded = try deviceOptions.load(model, backend: backend, needTokenizer: true)
            guard let tokenizer = loaded.tokenizer else { throw EbbError(.invalidArgument, "no tokenizer") }
            try params.validate(vocabSize: loaded.model.config.vocabSize)
            let promptIds = tokenizer.encode(prompt).map(Int32.init)
            guard !promptIds.isEmpty else { throw EbbError(.invalidArgument, "the prompt encodes to no tokens") }
            let eos = Set(loaded.eosTokenIds)
            var state = SamplingState(params: params, promptTokenIds: promptIds.map(Int.init), eosTokenIds: Array(eos))
            var detokenizer = IncrementalDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
            let sampler = Sampler()
            let runner = try SequenceRunner(model: loaded.model, maxTokens: promptIds.count + maxTokens)
            let out = FileHandle.standardOutput
            let cuda = backend as? CUDABackend
            try runner.generate(prompt: promptIds, maxNewTokens: maxTokens) { logits, _ in
                try cuda?.checkErrors()
                let token = try sampler.sample(logits: logits, state: &state).tokenId
                if eos.contains(token) && !ignoreEos { return nil }
                out.write(Data(detokenizer.append(token).utf8))
                return Int32(token)
            }
            out.write(Data((detokenizer.finish() + "\n").utf8))
        }
    }
}
