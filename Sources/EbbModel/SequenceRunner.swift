import EbbCore
import EbbTensor

/// Runs one sequence at a time through a model with its own small KV cache: prefill once,
/// then decode token by token against the cache. The engine's scheduler batches many
/// sequences; this is what `ebb generate`, `ebb logits` and the numerics tests use.
public struct SequenceRunner {
    public let model: CausalLM
    public let blockSize: Int
    public let cache: KVCache

    /// A cache large enough for `maxTokens` positions.
    public init(model: CausalLM, maxTokens: Int, blockSize: Int = 16) throws {
        guard maxTokens > 0 else { throw EbbError(.invalidArgument, "maxTokens must be positive") }
        self.model = model
        self.blockSize = blockSize
        let blocks = (maxTokens + blockSize - 1) / blockSize
        cache = try model.makeKVCache(numBlocks: blocks, blockSize: blockSize)
    }

    private var blockTable: [Int32] { (0..<cache.numBlocks).map { Int32($0) } }

    private func checkFits(_ tokens: Int) throws {
        guard tokens <= cache.numBlocks * blockSize else {
            throw EbbError(.invalidArgument, "\(tokens) tokens do not fit the runner's cache of \(cache.numBlocks * blockSize)")
        }
    }

    /// Logits `[prompt.count, vocab]` (row-major) for every position of `prompt`, attended
    /// on its own from an empty cache.
    public func logits(prompt: [Int32]) throws -> [Float] {
        try checkFits(prompt.count)
        let batch = try model.makeBatch([SequenceInput(tokens: prompt, cachedTokens: 0, blockTable: blockTable, allLogits: true)], cache: cache)
        return model.backend.downloadFloats(try model.forward(batch, cache: cache))
    }

    /// Prefills `prompt` and decodes until `maxNewTokens` tokens, calling `next` with the
    /// last position's logits (host f32) to choose each token; `next` returns nil to stop.
    @discardableResult
    public func generate(prompt: [Int32], maxNewTokens: Int,
                         next: (_ logits: [Float], _ step: Int) throws -> Int32?) throws -> [Int32] {
        try checkFits(prompt.count + maxNewTokens)
        guard !prompt.isEmpty else { throw EbbError(.invalidArgument, "the prompt is empty") }
        var output = [Int32]()
        var pending = prompt
        var cached = 0
        for step in 0..<maxNewTokens {
            let batch = try model.makeBatch([SequenceInput(tokens: pending, cachedTokens: cached, blockTable: blockTable)], cache: cache)
            let logits = model.backend.downloadFloats(try model.forward(batch, cache: cache))
            cached += pending.count
            guard let token = try next(logits, step) else { break }
            output.append(token)
            pending = [token]
        }
        return output
    }

    /// Greedy decoding (argmax, lowest index on ties).
    public func greedy(prompt: [Int32], maxNewTokens: Int) throws -> [Int32] {
        try generate(prompt: prompt, maxNewTokens: maxNewTokens) { logits, _ in Int32(Self.argmax(logits)) }
    }

    public static func argmax(_ values: [Float]) -> Int {
        var best = -Float.infinity, index = 0
        for (i, v) in values.enumerated() where v > best {
            best = v
            index = i
        }
        return index
    }
}
