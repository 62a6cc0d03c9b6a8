import ArgumentParser
import EbbCore
import EbbEngine
import EbbModel
import EbbServer
import EbbTensor
import EbbTokenizer
import Foundation

/// `ebb serve`: the OpenAI-compatible server over one engine core.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve a model over an OpenAI-compatible HTTP API")

    @Option(help: "Checkpoint directory or builtin:tiny-moe")
    var model: String = "builtin:tiny-moe"

    @Option(help: "Name clients use for the model (default: the --model value)")
    var servedModelName: String?

    @Option(help: "Address to listen on")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on")
    var port: Int = 8000

    @Option(help: "KV-cache memory, e.g. 512MiB or 2GiB (default: a fraction of available memory)")
    var kvCacheMemory: String?

    @Option(help: "Fraction of available memory for the KV cache when --kv-cache-memory is not given")
    var kvCacheFraction: Double = 0.05

    @Option(help: "Tokens per KV-cache block")
    var blockSize: Int = 16

    @Option(help: "Token budget of one engine step")
    var maxNumBatchedTokens: Int = 2048

    @Option(help: "Most requests running at once")
    var maxNumSeqs: Int = 256

    @Option(help: "Longest prompt + output (default: the model's max_position_embeddings)")
    var maxModelLen: Int?

    @Flag(help: "Turn automatic prefix caching off")
    var noPrefixCaching = false

    @Option(help: "CPU threads (default: all cores)")
    var threads: Int?

    func run() async throws {
        let server: OpenAIServer
        let loop: EngineLoop
        do {
            let memory = try kvCacheMemory.map(parseBytes)
            guard blockSize > 0, maxNumBatchedTokens > 0, maxNumSeqs > 0, (maxModelLen ?? 1) > 0,
                  kvCacheFraction > 0, kvCacheFraction <= 1, (1...65535).contains(port) else {
                throw EbbError(.invalidArgument, "sizes must be positive, --kv-cache-fraction in (0, 1], --port in 1...65535")
            }
            let backend = CPUBackend(threads: threads)
            let loaded = try LoadedModel.load(model, backend: backend, needTokenizer: true)
            guard let tokenizer = loaded.tokenizer else { throw EbbError(.invalidArgument, "no tokenizer") }
            let template = try loadChatTemplate(model)
            let config = EngineConfig(blockSize: blockSize, kvCacheBytes: memory, kvCacheFraction: kvCacheFraction,
                                      maxNumBatchedTokens: maxNumBatchedTokens, maxNumSeqs: maxNumSeqs,
                                      maxModelLen: maxModelLen, enablePrefixCaching: !noPrefixCaching)
            let core = try EngineCore(model: loaded.model, config: config)
            loop = EngineLoop(core: core)
            server = OpenAIServer(engine: loop, tokenizer: tokenizer, chatTemplate: template,
                                  modelName: servedModelName ?? model, eosTokenIds: loaded.eosTokenIds)
            let stats = core.stats
            log("model \(model): \(loaded.model.config.architecture.rawValue), \(String(format: "%.1f", Double(loaded.model.weightBytes) / 1e6)) MB of weights on \(backend.summary)")
            log("KV cache: \(stats.numBlocks) blocks of \(blockSize) tokens; max model length \(core.maxModelLen); prefix caching \(noPrefixCaching ? "off" : "on")")
        } catch {
            FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
            throw ExitCode(1)
        }
        loop.start()
        defer { loop.stop() }
        try await server.run(host: host, port: port) { [host] bound in
            log("serving on http://\(host):\(bound) (OpenAI API: /v1/completions, /v1/chat/completions)")
        }
    }
}

func log(_ message: String) {
    FileHandle.standardError.write(Data("[ebb] \(message)\n".utf8))
}

/// The chat template of a checkpoint directory; the builtin model uses ChatML.
func loadChatTemplate(_ model: String) throws -> ChatTemplate? {
    if model.hasPrefix("builtin:") {
        return try ChatTemplate(source: builtinChatML, specialTokens: ["eos_token": "<|im_end|>"])
    }
    let dir = URL(fileURLWithPath: model, isDirectory: true)
    let config = dir.appendingPathComponent("tokenizer_config.json").path
    let jinja = dir.appendingPathComponent("chat_template.jinja").path
    guard FileManager.default.fileExists(atPath: config) || FileManager.default.fileExists(atPath: jinja) else { return nil }
    do {
        return try ChatTemplate.load(directory: dir)
    } catch let e as EbbError where e.code == .template && e.message.hasPrefix("no chat template in") {
        return nil
    }
}

let builtinChatML = """
{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
"""

/// "512MiB", "2GiB", "1.5GB", "1000000" → bytes.
func parseBytes(_ text: String) throws -> Int {
    let kib = 1024.0
    let units: [(String, Double)] = [("KiB", kib), ("MiB", kib * kib), ("GiB", kib * kib * kib), ("TiB", kib * kib * kib * kib),
                                     ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
                                     ("K", kib), ("M", kib * kib), ("G", kib * kib * kib), ("B", 1)]
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
        if let v = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v > 0, v * factor < 1e15 {
            return Int(v * factor)
        }
    }
    if let v = Int(trimmed), v > 0 { return v }
    throw EbbError(.invalidArgument, "'\(text)' is not a size (examples: 512MiB, 2GiB, 1000000)")
}
