import EbbCore
import EbbTensor

/// Decode steps replayed from captured graphs (CUDA graphs), as vLLM and SGLang do: one
/// graph per (batch bucket, context bucket), captured the first time a step needs it.
/// A decode step of `n` sequences runs the graph of the smallest batch bucket ≥ n and of
/// the smallest context bucket ≥ its longest context; the extra rows repeat the first
/// sequence's token, attend to its first cached position and write no KV (slot −1), so
/// they read only valid data and change nothing. Inputs are copied into the graph's fixed
/// tensors before each replay; the logits come back in the graph's own output tensor.
///
/// For models that hold every expert, or whose expert-parallel exchange has fixed sizes
/// (`DeviceExpertExchange`, e.g. NCCL: its collectives are captured with the step; every
/// rank then runs the same batch bucket, `minimumBatch`, agreed before the step), on
/// backends with graphs; `run` returns nil otherwise (the host-memory exchange cannot be
/// captured), and the caller runs the step eagerly.
public final class DecodeGraphs {
    public let model: CausalLM
    public let cache: KVCache
    /// Largest batch that runs from a graph.
    public let maxBatch: Int
    /// Longest context a graph covers (the model length).
    public let maxContext: Int
    private var graphs: [Key: Entry] = [:]
    /// Most graphs kept at once; past it the least recently used one is released (its
    /// memory pool goes back), so varied batch sizes and contexts cannot pile up graphs.
    public var maxGraphs: Int = 48
    private var useCounter = 0
    public private(set) var evictions = 0
    private var slotsVersion: Int
    private var exchangeVersion: Int
    /// Why graphs are off (capture failed once, or the backend has none).
    public private(set) var disabledReason: String?
    /// Replays so far, for logs and benchmarks.
    public private(set) var replays = 0

    struct Key: Hashable {
        let batch: Int
        let context: Int
    }

    struct Entry {
        let inputs: ForwardBatch
        let graph: any ReplayableGraph
        let logits: Tensor
        var lastUse: Int
    }

    public init(model: CausalLM, cache: KVCache, maxBatch: Int, maxContext: Int) {
        self.model = model
        self.cache = cache
        self.maxBatch = max(1, maxBatch)
        self.maxContext = max(1, maxContext)
        slotsVersion = model.expertSlotsVersion
        exchangeVersion = model.expertParallel?.exchangeVersion ?? 0
    }

    /// Why a step cannot run from a graph now (nil: it can).
    private var unavailableReason: String? {
        if let disabledReason { return disabledReason }
        if let group = model.expertParallel, !group.isFixedSize { return "expert parallelism exchanges tokens on the host" }
        return nil
    }

    /// Releases every graph (before the communicator they captured is closed).
    public func releaseAll() {
        graphs.removeAll()
    }

    /// Graphs captured so far.
    public var count: Int { graphs.count }

    /// Batch buckets: 1, 2, 4, 8, then multiples of 8 up to 32, of 16 up to 256, of 32 beyond.
    public static func batchBucket(_ n: Int) -> Int {
        if n <= 8 { return n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8 }
        let step = n <= 32 ? 8 : n <= 256 ? 16 : 32
        return (n + step - 1) / step * step
    }

    /// Context buckets: powers of two from 256, capped at the model length.
    static func contextBucket(_ n: Int, max limit: Int) -> Int {
        var c = 256
        while c < n { c *= 2 }
        return min(c, max(limit, n))
    }

    /// Runs a decode step (one new token per sequence, last-position logits only) from a
    /// graph; returns the logits `[n, vocab]` (the first n rows of the graph's output) and
    /// each sequence's logit rows, or nil when this step cannot use a graph.
    /// `minimumBatch`: the batch bucket to use at least (expert parallelism: the bucket every
    /// rank agreed on for this step).
    public func run(_ sequences: [SequenceInput], minimumBatch: Int = 1) throws -> (logits: Tensor, ranges: [Range<Int>])? {
        guard unavailableReason == nil, !sequences.isEmpty, sequences.count <= maxBatch, minimumBatch <= maxBatch,
              sequences.allSatisfy({ $0.tokens.count == 1 && !$0.allLogits }) else { return nil }
        let currentExchange = model.expertParallel?.exchangeVersion ?? 0
        if model.expertSlotsVersion != slotsVersion || currentExchange != exchangeVersion {
            graphs.removeAll()
            slotsVersion = model.expertSlotsVersion
            exchangeVersion = currentExchange
        }
        var host = try HostBatch(sequences: sequences, blockSize: cache.blockSize, numBlocks: cache.numBlocks,
                                 vocabSize: model.config.vocabSize)
        let key = Key(batch: Self.batchBucket(max(sequences.count, minimumBatch)),
                      context: Self.contextBucket(host.maxContextLength, max: maxContext))
        let width = (key.context + cache.blockSize - 1) / cache.blockSize
        guard host.tableWidth <= width else { return nil }
        pad(&host, to: key.batch, width: width)
        let n = sequences.count
        let ranges = (0..<n).map { $0..<($0 + 1) }
        useCounter += 1
        model.expertParallel?.stepTokens = key.batch
        if let entry = graphs[key] {
            graphs[key]?.lastUse = useCounter
            try write(host, into: entry.inputs)
            try entry.graph.launch()
            replays += 1
            return (rows(entry.logits, n), ranges)
        }
        while graphs.count >= max(1, maxGraphs), let oldest = graphs.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            graphs.removeValue(forKey: oldest)
            evictions += 1
        }
        // First use: run the step eagerly on fresh fixed inputs (this is the real step),
        // then capture the same forward for the next steps of this shape.
        let inputs = try makeInputs(key, width: width)
        try write(host, into: inputs)
        let logits = try model.forward(inputs, cache: cache)
        try model.backend.checkErrors()
        do {
            var captured: Tensor?
            let model = self.model, cache = self.cache
            if let graph = try model.backend.captureReplayableGraph({ captured = try model.forward(inputs, cache: cache) }),
               let out = captured {
                graphs[key] = Entry(inputs: inputs, graph: graph, logits: out, lastUse: useCounter)
            } else {
                disabledReason = "the \(model.backend.device) backend has no graphs"
            }
        } catch {
            disabledReason = "graph capture failed: \(describe(error))"
        }
        return (rows(logits, n), ranges)
    }

    /// The first `n` rows of `[B, vocab]` logits.
    private func rows(_ logits: Tensor, _ n: Int) -> Tensor {
        n == logits.rows ? logits : logits.rowSlice(0..<n)
    }

    /// Extra rows repeat row 0's token and table, at position 0 with context 1, writing no KV.
    private func pad(_ host: inout HostBatch, to batch: Int, width: Int) {
        let n = host.numSequences
        var tables = [Int32](repeating: 0, count: batch * width)
        for s in 0..<batch {
            let source = s < n ? s : 0
            for j in 0..<host.tableWidth { tables[s * width + j] = host.blockTables[source * host.tableWidth + j] }
        }
        host.blockTables = tables
        host.tableWidth = width
        for s in n..<batch {
            host.tokenIds.append(host.tokenIds[0])
            host.positions.append(0)
            host.slotMapping.append(-1)
            host.contextLengths.append(1)
            host.queryStart.append(Int32(s + 1))
            host.logitRows.append(Int32(s))
        }
    }

    private func makeInputs(_ key: Key, width: Int) throws -> ForwardBatch {
        let b = model.backend
        func ints(_ shape: [Int]) throws -> Tensor { try b.empty(shape, dtype: .i32) }
        let attention = AttentionMetadata(
            slotMapping: try ints([key.batch]), queryStart: try ints([key.batch + 1]), contextLengths: try ints([key.batch]),
            blockTables: try ints([key.batch, width]), blockSize: cache.blockSize, numSequences: key.batch,
            numTokens: key.batch, maxContextLength: key.context)
        return ForwardBatch(tokenIds: try ints([key.batch]), positions: try ints([key.batch]), attention: attention,
                            logitRows: try ints([key.batch]), logitRanges: (0..<key.batch).map { $0..<($0 + 1) })
    }

    private func write(_ host: HostBatch, into batch: ForwardBatch) throws {
        let b = model.backend
        func copy(_ values: [Int32], _ t: Tensor) throws {
            guard values.count == t.count else {
                throw EbbError(.internal, "decode graph input of \(values.count) values for a tensor of \(t.count)")
            }
            values.withUnsafeBytes { b.copy(from: $0, sourceDType: .i32, into: t) }
        }
        try copy(host.tokenIds, batch.tokenIds)
        try copy(host.positions, batch.positions)
        try copy(host.slotMapping, batch.attention.slotMapping)
        try copy(host.queryStart, batch.attention.queryStart)
        try copy(host.contextLengths, batch.attention.contextLengths)
        try copy(host.blockTables, batch.attention.blockTables)
        try copy(host.logitRows, batch.logitRows)
    }
}
