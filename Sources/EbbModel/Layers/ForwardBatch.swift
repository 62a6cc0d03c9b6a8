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

/// A forward step's inputs, uploaded to the device once.
public struct ForwardBatch: Sendable {
    public let tokenIds: Tensor
    public let positions: Tensor
    public let attention: AttentionMetadata
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
        var ids = [Int32](), positions = [Int32](), slots = [Int32](), starts: [Int32] = [0], lengths = [Int32]()
        var logitRows = [Int32](), ranges = [Range<Int>]()
        let width = max(1, sequences.map(\.blockTable.count).max() ?? 1)
        var tables = [Int32](repeating: 0, count: max(1, sequences.count) * width)
        var maxContext = 0
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
                ids.append(id)
                positions.append(Int32(p))
                slots.append(seq.blockTable[p / blockSize] * Int32(blockSize) + Int32(p % blockSize))
            }
            let first = logitRows.count
            let begin = Int(starts[s])
            if seq.allLogits {
                logitRows.append(contentsOf: (begin..<(begin + seq.tokens.count)).map { Int32($0) })
            } else {
                logitRows.append(Int32(begin + seq.tokens.count - 1))
            }
            ranges.append(first..<logitRows.count)
            starts.append(Int32(ids.count))
            lengths.append(Int32(context))
            for (j, b) in seq.blockTable.enumerated() { tables[s * width + j] = b }
            maxContext = max(maxContext, context)
        }
        func upload(_ values: [Int32], _ shape: [Int]) throws -> Tensor {
            try values.withUnsafeBytes { try backend.upload($0, sourceDType: .i32, shape: shape, dtype: .i32) }
        }
        tokenIds = try upload(ids, [ids.count])
        self.positions = try upload(positions, [positions.count])
        attention = AttentionMetadata(
            slotMapping: try upload(slots, [slots.count]),
            queryStart: try upload(starts, [starts.count]),
            contextLengths: try upload(lengths, [lengths.count]),
            blockTables: try upload(tables, [max(1, sequences.count), width]),
            blockSize: blockSize, numSequences: sequences.count, numTokens: ids.count, maxContextLength: maxContext)
        self.logitRows = try upload(logitRows, [logitRows.count])
        numLogitRows = logitRows.count
        logitRanges = ranges
    }
}
