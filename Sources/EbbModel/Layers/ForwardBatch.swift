import EbbCore
import EbbTensor

/// One sequence's part of a forward step: the new tokens, how many tokens of it are
/// already in the KV cache, and its block table.
public struct SequenceInput: Sendable, Equatable {
    public var tokens: [Int32]
    /// Tokens of this sequence already in the cache; the new tokens take positions
    /// `cachedTokens ..< cachedTokens + tokens.count`.
    public var cachedTokens: Int
    /// Block ids covering at least `cachedTokens + tokens.count` positions.
    public var blockTable: [Int32]
    /// Compute logits for every new token (prompt logprobs, `ebb logits`) or only the last.
    public var allLogits: Bool

    public init(tokens: [Int32], cachedTokens: Int, blockTable: [Int32], allLogits: Bool = false) {
        self.tokens = tokens
        self.cachedTokens = cachedTokens
        self.blockTable = blockTable
        self.allLogits = allLogits
    }
}

/// A forward step's inputs on the host, checked: what `ForwardBatch` uploads and what a
/// replayed decode graph copies into its fixed input tensors.
public struct HostBatch: Sendable, Equatable {
    public var tokenIds: [Int32] = []
    public var positions: [Int32] = []
    public var slotMapping: [Int32] = []
    /// `[S + 1]` first token row of each sequence.
    public var queryStart: [Int32] = [0]
    public var contextLengths: [Int32] = []
    /// `[S, width]`, zero padded.
    public var blockTables: [Int32] = []
    public var tableWidth: Int = 1
    public var logitRows: [Int32] = []
    public var logitRanges: [Range<Int>] = []
    public var maxContextLength = 0
    public var numSequences: Int { contextLengths.count }

    /// Throws when a block table is too short for the sequence, a token id is outside the
    /// vocabulary, or a position passes `maxPositions`.
    public init(sequences: [SequenceInput], blockSize: Int, numBlocks: Int, vocabSize: Int, maxPositions: Int? = nil) throws {
        tableWidth = max(1, sequences.map(\.blockTable.count).max() ?? 1)
        blockTables = [Int32](repeating: 0, count: max(1, sequences.count) * tableWidth)
        for (s, seq) in sequences.enumerated() {
            let context = seq.cachedTokens + seq.tokens.count
            guard !seq.tokens.isEmpty, seq.cachedTokens >= 0 else {
                throw EbbError(.invalidArgument, "sequence \(s) has no new tokens")
            }
            guard seq.blockTable.count * blockSize >= context else {
                throw EbbError(.invalidArgument, "sequence \(s): \(seq.blockTable.count) blocks of \(blockSize) cannot hold \(context) tokens")
            }
            guard seq.blockTable.allSatisfy({ $0 >= 0 && Int($0) < numBlocks }) else {
                throw EbbError(.invalidArgument, "sequence \(s): block id outside the cache's \(numBlocks) blocks")
            }
            if let maxPositions, context > maxPositions {
                throw EbbError(.invalidArgument, "sequence \(s): \(context) tokens exceed the model's \(maxPositions) positions")
            }
            if let bad = seq.tokens.first(where: { $0 < 0 || Int($0) >= vocabSize }) {
                throw EbbError(.invalidArgument, "token id \(bad) is outside the vocabulary (0..<\(vocabSize))")
            }
            for (i, id) in seq.tokens.enumerated() {
                let p = seq.cachedTokens + i
                tokenIds.append(id)
                positions.append(Int32(p))
                slotMapping.append(seq.blockTable[p / blockSize] * Int32(blockSize) + Int32(p % blockSize))
            }
            let first = logitRows.count
            let begin = Int(queryStart[s])
            if seq.allLogits {
                logitRows.append(contentsOf: (begin..<(begin + seq.tokens.count)).map { Int32($0) })
            } else {
                logitRows.append(Int32(begin + seq.tokens.count - 1))
            }
            logitRanges.append(first..<logitRows.count)
            queryStart.append(Int32(tokenIds.count))
            contextLengths.append(Int32(context))
            for (j, b) in seq.blockTable.enumerated() { blockTables[s * tableWidth + j] = b }
            maxContextLength = max(maxContextLength, context)
        }
    }
}

/// A forward step's inputs, uploaded to the device once.
public struct ForwardBatch: Sendable {
    public let tokenIds: Tensor
    public let positions: Tensor
    public private(set) var attention: AttentionMetadata
    /// `[R]` rows of the step whose logits are computed.
    public let logitRows: Tensor
    public let numLogitRows: Int
    /// For each sequence, the range of its rows in the logits.
    public let logitRanges: [Range<Int>]
    public var numTokens: Int { attention.numTokens }

    /// Builds the device tensors for `sequences`. Throws when a block table is too short
    /// for the sequence, a token id is outside the vocabulary, or a position passes
    /// `maxPositions`; nothing is changed then.
    public init(sequences: [SequenceInput], blockSize: Int, numBlocks: Int, vocabSize: Int, maxPositions: Int? = nil,
                backend: any Backend) throws {
        let host = try HostBatch(sequences: sequences, blockSize: blockSize, numBlocks: numBlocks, vocabSize: vocabSize,
                                 maxPositions: maxPositions)
        func upload(_ values: [Int32], _ shape: [Int]) throws -> Tensor {
            try values.withUnsafeBytes { try backend.upload($0, sourceDType: .i32, shape: shape, dtype: .i32) }
        }
        tokenIds = try upload(host.tokenIds, [host.tokenIds.count])
        positions = try upload(host.positions, [host.positions.count])
        attention = AttentionMetadata(
            slotMapping: try upload(host.slotMapping, [host.slotMapping.count]),
            queryStart: try upload(host.queryStart, [host.queryStart.count]),
            contextLengths: try upload(host.contextLengths, [host.contextLengths.count]),
            blockTables: try upload(host.blockTables, [max(1, host.numSequences), host.tableWidth]),
            blockSize: blockSize, numSequences: host.numSequences, numTokens: host.tokenIds.count,
            maxContextLength: host.maxContextLength)
        // Prefill-sized steps also carry where each sequence's context starts in a
        // contiguous copy (MLA's expanded prefill); decode steps upload nothing more.
        if host.tokenIds.count >= 16 * max(host.numSequences, 1) {
            var starts: [Int32] = [0]
            for c in host.contextLengths { starts.append(starts[starts.count - 1] + c) }
            attention.contextStart = try upload(starts, [starts.count])
            attention.totalContext = Int(starts[starts.count - 1])
        }
        logitRows = try upload(host.logitRows, [host.logitRows.count])
        numLogitRows = host.logitRows.count
        logitRanges = host.logitRanges
    }

    /// A batch over tensors the caller owns (a decode graph's fixed inputs).
    public init(tokenIds: Tensor, positions: Tensor, attention: AttentionMetadata, logitRows: Tensor,
                logitRanges: [Range<Int>]) {
        self.tokenIds = tokenIds
        self.positions = positions
        self.attention = attention
        self.logitRows = logitRows
        numLogitRows = logitRows.count
        self.logitRanges = logitRanges
    }
}
