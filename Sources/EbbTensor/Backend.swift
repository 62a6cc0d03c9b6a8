/// The operations the models need, implemented once per device.
///
/// Buffers live on the backend's device. Every op reads and writes device tensors, so a
/// forward pass is a sequence of op calls with no host round trip: the batch description
/// (token ids, positions, block tables) is uploaded once, logits or sampled ids come back
/// once. Ops write into outputs the caller allocated, so a backend can capture them into
/// graphs. Shapes are programming contracts (checked with preconditions); numeric inputs
/// that come from users never reach an op unchecked.
public protocol Backend: AnyObject, Sendable {
    var device: Device { get }
    /// The dtype weights and activations are held in on this device.
    var computeDType: DType { get }
    /// The dtype of the residual stream between layers (f32 on a GPU even when the
    /// activations are bf16, so per-layer updates are not rounded away).
    var residualDType: DType { get }
    /// A short description for logs and benchmarks ("cpu (2 threads, OpenBLAS)").
    var summary: String { get }

    // MARK: Memory

    func empty(_ shape: [Int], dtype: DType) throws -> Tensor
    /// Copies `source` (host memory holding `count(shape)` elements of `sourceDType`) to a
    /// new tensor of `dtype`, converting (widening exactly, narrowing to nearest-even).
    func upload(_ source: UnsafeRawBufferPointer, sourceDType: DType, shape: [Int], dtype: DType) throws -> Tensor
    /// Copies `source` into an existing tensor (same element count), converting.
    func copy(from source: UnsafeRawBufferPointer, sourceDType: DType, into tensor: Tensor)
    func copy(_ source: Tensor, into destination: Tensor)
    func fill(_ tensor: Tensor, value: Float)
    /// Reads a tensor back to the host as f32 (i32 tensors convert to Float exactly below 2^24).
    func downloadFloats(_ tensor: Tensor) -> [Float]
    func downloadInts(_ tensor: Tensor) -> [Int32]
    /// Waits for queued work (a no-op on the CPU).
    func synchronize()
    /// Throws (and clears) the first error a queued op hit since the last check. Ops do
    /// not throw on devices that queue work; callers that read results check first.
    func checkErrors() throws
    /// Free and total bytes of the device's memory, where the device reports them (GPUs);
    /// nil on the host, whose memory the caller measures itself.
    var deviceMemory: (free: Int, total: Int)? { get }
    /// Records the ops `body` enqueues into a graph that can be replayed with one launch,
    /// or returns nil when this backend has no graphs (the CPU). Inputs must stay at the
    /// addresses they had during the capture; `body` must not read results on the host.
    func captureReplayableGraph(_ body: @escaping () throws -> Void) throws -> (any ReplayableGraph)?
    /// Whether `captureReplayableGraph` can return a graph.
    var supportsGraphs: Bool { get }
    /// Copies between host and device memory so far (nil where every tensor lives in host
    /// memory: the CPU).
    var hostTransfers: HostTransfers? { get }
    /// The backend a background thread stages weights with while this one serves: on a GPU
    /// the same device on its own stream (synchronize it before the serving stream reads
    /// the results); on the CPU, this backend.
    func transferLane() throws -> any Backend

    // MARK: Linear algebra

    /// `c[b] = alpha * op(a[b]) · op(b[b]) + beta * c[b]` for `batch` matrices, with
    /// explicit leading dimensions and batch strides (in elements). `m×k · k×n → m×n`.
    func gemm(_ a: MatrixOperand, _ b: MatrixOperand, _ c: MatrixOperand,
              m: Int, n: Int, k: Int, batch: Int, alpha: Float, beta: Float)
    /// Grouped GEMM over experts: rows `offsets[e] ..< offsets[e+1]` of `x` (`[R, K]`) are
    /// multiplied by `weights[e]` (`[E, N, K]`, PyTorch Linear layout) into the same rows of
    /// `out` (`[R, N]`). `offsets` is an i32 tensor `[E + 1]` on the device.
    func groupedLinear(_ x: Tensor, weights: Tensor, offsets: Tensor, out: Tensor)
    /// The same over the rows `x[rowIndex[r]]` (`rowIndex`: i32 `[R]`, `out`: `[R, N]`): the
    /// gather of the routed tokens folded into the product.
    func groupedLinear(_ x: Tensor, rowIndex: Tensor, weights: Tensor, offsets: Tensor, out: Tensor)
    /// `groupedLinear` of `silu(gateUp[:, :K]) * gateUp[:, K:]` for `gateUp: [R, 2K]`: the
    /// expert MLP's down projection with its activation, which is rounded to the input's
    /// dtype as `siluAndMul` stores it (the same values as `siluAndMul` then `groupedLinear`).
    func groupedSwiGLULinear(_ gateUp: Tensor, weights: Tensor, offsets: Tensor, out: Tensor)

    // MARK: Elementwise and normalization

    /// RMSNorm over the last dimension of each row: `x / sqrt(mean(x²) + eps) * weight`.
    func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor)
    /// `out = a + b` elementwise (same shapes; `out` may alias `a`).
    func add(_ a: Tensor, _ b: Tensor, out: Tensor)
    /// `x += branch` in place, then `out = rmsNorm(x)`: the residual update of a decoder
    /// layer and the next norm in one pass (the same values as `add` then `rmsNorm`).
    /// `out` must not alias `x`.
    func addRMSNorm(_ x: Tensor, _ branch: Tensor, weight: Tensor, eps: Float, out: Tensor)
    /// `out[t, i] = silu(x[t, i]) * x[t, I + i]` for `x: [T, 2I]`, `out: [T, I]`.
    func siluAndMul(_ x: Tensor, out: Tensor)
    /// Rotary embedding in place on `x: [T, H, D]` (rows = T·H, D = rotary dim), position
    /// of row r is `positions[r / H]`.
    func rope(_ x: Tensor, positions: Tensor, rope: RotaryEmbedding)
    /// `out[t] = table[ids[t]]`.
    func embedding(ids: Tensor, table: Tensor, out: Tensor)
    /// Row-wise argmax (lowest index on ties) into an i32 tensor `[T]`.
    func argmax(_ x: Tensor, out: Tensor)
    /// Copies rows: `out[i] = x[indices[i]]`.
    func gatherRows(_ x: Tensor, indices: Tensor, out: Tensor)
    /// A checksum of each row of `x` (`RowChecksum`), computed where the tensor lives and
    /// returned to the host: only 8 bytes a row cross to the host. Waits for queued work.
    func rowChecksums(_ x: Tensor) -> [UInt64]

    // MARK: Attention over a paged KV cache

    /// Writes new keys and values (`[T, Hkv, D]`, `[T, Hkv, Dv]`) into the caches at
    /// `metadata.slotMapping`. Caches are `[blocks, blockSize, Hkv, D]`.
    func writeKV(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, metadata: AttentionMetadata)
    /// Causal attention of `query: [T, H, D]` over the cached keys and values of each
    /// sequence (GQA: head h reads kv head h / (H / Hkv)) into `out: [T, H, Dv]`.
    func pagedAttention(query: Tensor, keyCache: Tensor, valueCache: Tensor,
                        metadata: AttentionMetadata, scale: Float, out: Tensor)
    /// The step from one fused projection `qkv: [T, (H + 2·Hkv)·D]` (query heads, then key
    /// heads, then value heads) to attention's inputs: each query and key head normalized
    /// with its per-head RMSNorm weight when given (`[D]`, Qwen3's q/k norms), rotated
    /// (`rope` over all D), the queries written to `query: [T, H, D]` and the keys and values
    /// into the caches at `metadata.slotMapping` (as `writeKV`). The same values as those
    /// ops run one after another on split, contiguous q, k and v.
    func prepareQKV(_ qkv: Tensor, heads: Int, kvHeads: Int, qNorm: Tensor?, kNorm: Tensor?, eps: Float,
                    positions: Tensor, rope: RotaryEmbedding, query: Tensor, keyCache: Tensor, valueCache: Tensor,
                    metadata: AttentionMetadata)
    /// Writes MLA cache entries: the normalized latent `[T, L]` and the rotated rope key
    /// `[T, R]` per token into `cache: [blocks, blockSize, L + R]`.
    func writeLatentKV(latent: Tensor, ropeKey: Tensor, cache: Tensor, metadata: AttentionMetadata)
    /// Whether MLA prefill should run in the expanded form here (`gatherContext`, one GEMM
    /// by W_kv_b, `expandedLatentAttention`) for these head dimensions: CUDA in bf16, for the
    /// shapes it compiles. The CPU backend keeps the latent form everywhere.
    func expandsLatentPrefill(nopeDim: Int, ropeDim: Int, valueDim: Int) -> Bool
    /// Copies each sequence's context (positions 0 ..< contextLengths[s]) from a paged
    /// cache `[blocks, blockSize, W]` into rows `contextStart[s] ..<` of `out: [C, W]`
    /// (needs `metadata.contextStart`).
    func gatherContext(_ cache: Tensor, metadata: AttentionMetadata, out: Tensor)
    /// MLA attention in the expanded form over contiguous context rows (row
    /// `contextStart[s] + j` is position j of sequence s): head h's key is
    /// [keyValues[j, h·(N+V) ..< h·(N+V)+N], ropeKeys[j]], its value keyValues[j, h·(N+V)+N
    /// ..< (h+1)·(N+V)]; `query: [T, H, N + R]` (rope part rotated), causal, `out: [T, H, V]`.
    func expandedLatentAttention(query: Tensor, keyValues: Tensor, ropeKeys: Tensor, nopeDim: Int, valueDim: Int,
                                 metadata: AttentionMetadata, scale: Float, out: Tensor)
    /// MLA attention in latent form: score(t, j) = scale · (qLatent[t,h]·c_j + qRope[t,h]·kRope_j);
    /// `out[t, h] = Σ_j softmax_j · c_j` (`out: [T, H, L]`).
    func latentAttention(queryLatent: Tensor, queryRope: Tensor, cache: Tensor, latentDim: Int,
                         metadata: AttentionMetadata, scale: Float, out: Tensor)

    // MARK: MoE routing

    /// Top-k expert selection per token from router logits `[T, E]` into `ids` (i32
    /// `[T, k]`) and `weights` (f32 `[T, k]`), following `router`.
    func routeTopK(logits: Tensor, correctionBias: Tensor?, router: RouterConfig, ids: Tensor, weights: Tensor)
    /// Maps logical expert choices `[T, k]` to physical slots through `table: [E, R]`
    /// (replica slots, −1 padded) and `replicaCount: [E]`: token t uses replica
    /// `t mod count`. Writes `slot − slotBase` when it falls in `0..<slotCount`, else −1.
    func mapExperts(_ logical: Tensor, table: Tensor, replicaCount: Tensor, slotBase: Int, slotCount: Int, out: Tensor)
    /// Groups (token, slot) pairs by slot for grouped GEMMs. `slots: [T·k]` (−1 = not
    /// here), `weights: [T·k]`, `pairsPerToken` = k. Writes, in slot order (stable),
    /// `tokenIndex: [T·k]` (the pair's token; −1 for the unplaced pairs at the end),
    /// `sortedWeights: [T·k]` and `offsets: [numSlots + 1]`.
    func groupBySlot(_ slots: Tensor, weights: Tensor, pairsPerToken: Int, numSlots: Int,
                     tokenIndex: Tensor, sortedWeights: Tensor, offsets: Tensor)
    /// `out[rowIndex[i]] += weight[i] * x[i]` for each i with `rowIndex[i] >= 0`.
    func scatterAddWeighted(_ x: Tensor, rowIndex: Tensor, weight: Tensor, out: Tensor)

    // Expert-parallel exchange with sizes fixed before the step (device buffers only).

    /// In place on `slots: [T, k]` (i32): rows t with `rowMask[t] < 0` become −1 (padding
    /// rows of a graph step, whose KV slot is −1).
    func maskPairs(_ slots: Tensor, rowMask: Tensor)
    /// `out[i] = slots[i] − base` when that falls in `0..<count`, else −1 (i32, same count).
    func rebaseSlots(_ slots: Tensor, base: Int, count: Int, out: Tensor)
    /// `out[rowIndex[i]] = x[i]` for each i with `0 ≤ rowIndex[i] < out.rows`.
    func scatterRows(_ x: Tensor, rowIndex: Tensor, out: Tensor)
    /// `counts[s] += 1` (i32) for each `s` of `slots` in `0..<counts.count`.
    func countSlots(_ slots: Tensor, counts: Tensor)
    /// The expert-parallel combine. `slots`, `logical`, `weights`: `[T, k]` (global physical
    /// slot, logical expert, weight); `received: [ranks · pairsPerRank, H]`, where rank r's
    /// block holds the outputs r computed for this rank's pairs, pair p at row
    /// `r · pairsPerRank + p`. Writes `out[t] = Σ weight · row` over the pairs of token t with
    /// a slot ≥ 0, summed in ascending logical expert order (pair order on ties) starting
    /// from 0, as `scatterAddWeighted` sums one rank's grouped rows.
    func combinePairs(_ received: Tensor, slots: Tensor, logical: Tensor, weights: Tensor, slotsPerRank: Int,
                      pairsPerRank: Int, out: Tensor)
}

/// A matrix inside a tensor: element offset from the tensor's start, leading dimension,
/// stride between batch entries, and whether it is used transposed.
public struct MatrixOperand: Sendable {
    public var tensor: Tensor
    public var offset: Int
    public var leadingDimension: Int
    public var batchStride: Int
    public var transposed: Bool

    public init(_ tensor: Tensor, offset: Int = 0, leadingDimension: Int? = nil, batchStride: Int = 0, transposed: Bool = false) {
        self.tensor = tensor
        self.offset = offset
        self.leadingDimension = leadingDimension ?? tensor.rowStride
        self.batchStride = batchStride
        self.transposed = transposed
    }
}

/// Describes one forward step's sequences for attention. All arrays are device tensors
/// (i32). `T` = tokens in the step, `S` = sequences.
public struct AttentionMetadata: Sendable {
    /// `[T]` cache slot (block · blockSize + offset) of each new token.
    public var slotMapping: Tensor
    /// `[S + 1]` first token index of each sequence in the step; last entry = T.
    public var queryStart: Tensor
    /// `[S]` context length of each sequence after this step (cached + new tokens).
    public var contextLengths: Tensor
    /// `[S, maxBlocksPerSequence]` block ids of each sequence.
    public var blockTables: Tensor
    public var blockSize: Int
    public var numSequences: Int
    public var numTokens: Int
    /// Largest context length in the step (host-known bound, used to size scratch).
    public var maxContextLength: Int
    /// `[S + 1]` first row of each sequence's context in a contiguous copy of the contexts
    /// (`gatherContext`), and the total: set for prefill-sized eager steps, nil otherwise.
    public var contextStart: Tensor?
    public var totalContext: Int

    public init(slotMapping: Tensor, queryStart: Tensor, contextLengths: Tensor, blockTables: Tensor,
                blockSize: Int, numSequences: Int, numTokens: Int, maxContextLength: Int,
                contextStart: Tensor? = nil, totalContext: Int = 0) {
        self.slotMapping = slotMapping
        self.queryStart = queryStart
        self.contextLengths = contextLengths
        self.blockTables = blockTables
        self.blockSize = blockSize
        self.numSequences = numSequences
        self.numTokens = numTokens
        self.maxContextLength = maxContextLength
        self.contextStart = contextStart
        self.totalContext = totalContext
    }
}

/// How a router turns logits into (expert, weight) pairs.
public struct RouterConfig: Sendable, Equatable {
    public enum Scoring: String, Sendable { case softmax, sigmoid }
    public var scoring: Scoring
    public var topK: Int
    /// Divide the chosen weights by their sum (`norm_topk_prob`).
    public var normalize: Bool
    /// DeepSeek group-limited routing: experts split into `numGroups` groups, keep the
    /// `topKGroups` groups with the best sum of their top-2 scores. 1 = no grouping.
    public var numGroups: Int
    public var topKGroups: Int
    /// How a group's score is formed: DeepSeek-V3 sums its two best experts (`noaux_tc`),
    /// DeepSeek-V2 takes its best one (`group_limited_greedy`).
    public var groupScoreTopTwo: Bool
    /// Multiplies the final weights (`routed_scaling_factor`).
    public var scalingFactor: Float

    public init(scoring: Scoring, topK: Int, normalize: Bool, numGroups: Int = 1, topKGroups: Int = 1,
                groupScoreTopTwo: Bool = true, scalingFactor: Float = 1) {
        self.groupScoreTopTwo = groupScoreTopTwo
        self.scoring = scoring
        self.topK = topK
        self.normalize = normalize
        self.numGroups = numGroups
        self.topKGroups = topKGroups
        self.scalingFactor = scalingFactor
    }
}

/// A captured sequence of a backend's ops (a CUDA graph).
public protocol ReplayableGraph: AnyObject, Sendable {
    /// Enqueues one replay.
    func launch() throws
}

extension Backend {
    /// Every backend's upload: a new tensor, filled by `copy(from:)`, errors checked.
    public func upload(_ source: UnsafeRawBufferPointer, sourceDType: DType, shape: [Int], dtype: DType) throws -> Tensor {
        let tensor = try empty(shape, dtype: dtype)
        guard source.count >= tensor.count * sourceDType.byteSize else {
            throw TensorError.sizeMismatch(expected: tensor.count * sourceDType.byteSize, found: source.count)
        }
        copy(from: source, sourceDType: sourceDType, into: tensor)
        try checkErrors()
        return tensor
    }

    public func checkErrors() throws {}
    public var residualDType: DType { computeDType }
    public var deviceMemory: (free: Int, total: Int)? { nil }
    public func captureReplayableGraph(_ body: @escaping () throws -> Void) throws -> (any ReplayableGraph)? { nil }
    public var supportsGraphs: Bool { false }
    public var hostTransfers: HostTransfers? { nil }
    public func transferLane() throws -> any Backend { self }
}

/// Copies a device backend made between host and device memory (counts and bytes).
public struct HostTransfers: Sendable, Equatable {
    public var downloads = 0
    public var downloadBytes = 0
    public var uploads = 0
    public var uploadBytes = 0

    public init() {}

    /// What happened between `earlier` and this count.
    public func since(_ earlier: HostTransfers) -> HostTransfers { combined(with: earlier, sign: -1) }

    public static func += (total: inout HostTransfers, more: HostTransfers) { total = total.combined(with: more, sign: 1) }

    private func combined(with other: HostTransfers, sign: Int) -> HostTransfers {
        var r = self
        r.downloads += sign * other.downloads
        r.downloadBytes += sign * other.downloadBytes
        r.uploads += sign * other.uploads
        r.uploadBytes += sign * other.uploadBytes
        return r
    }
}
