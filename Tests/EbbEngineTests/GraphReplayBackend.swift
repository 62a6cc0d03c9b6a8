import EbbTensor
import Synchronization

/// A CPU backend with graphs, for testing graph users without a GPU. Like a CUDA graph,
/// a replay reuses the tensors the capture allocated (same addresses, new contents) and
/// the host values the capture saw; unlike one, the capture also executes (the callers
/// capture a step they have just run eagerly, so running it again writes the same
/// values).
final class GraphReplayBackend: Backend, @unchecked Sendable {
    let base: CPUBackend
    /// Allocations of the capture or replay in progress: recorded, or handed out again.
    private var recording: [Tensor]?
    private var replaying: (tensors: [Tensor], next: Int)?
    private(set) var launches = 0

    init(_ base: CPUBackend = CPUBackend()) { self.base = base }

    final class Graph: ReplayableGraph, @unchecked Sendable {
        let owner: GraphReplayBackend
        let body: () throws -> Void
        let tensors: [Tensor]
        init(owner: GraphReplayBackend, body: @escaping () throws -> Void, tensors: [Tensor]) {
            self.owner = owner
            self.body = body
            self.tensors = tensors
        }
        func launch() throws {
            owner.launches += 1
            owner.replaying = (tensors, 0)
            defer { owner.replaying = nil }
            try body()
        }
    }

    var supportsGraphs: Bool { true }

    func captureReplayableGraph(_ body: @escaping () throws -> Void) throws -> (any ReplayableGraph)? {
        recording = []
        defer { recording = nil }
        try body()
        return Graph(owner: self, body: body, tensors: recording ?? [])
    }

    var device: Device { base.device }
    var computeDType: DType { base.computeDType }
    var summary: String { base.summary + " (graph replay double)" }

    func empty(_ shape: [Int], dtype: DType) throws -> Tensor {
        if var r = replaying {
            guard r.next < r.tensors.count, r.tensors[r.next].shape == shape, r.tensors[r.next].dtype == dtype else {
                throw TensorError.unavailable("a replay allocated differently from its capture")
            }
            defer { r.next += 1; replaying = r }
            return r.tensors[r.next]
        }
        let t = try base.empty(shape, dtype: dtype)
        recording?.append(t)
        return t
    }
    func upload(_ source: UnsafeRawBufferPointer, sourceDType: DType, shape: [Int], dtype: DType) throws -> Tensor {
        guard replaying == nil, recording == nil else { throw TensorError.unavailable("upload inside a graph") }
        return try base.upload(source, sourceDType: sourceDType, shape: shape, dtype: dtype)
    }
    func copy(from source: UnsafeRawBufferPointer, sourceDType: DType, into tensor: Tensor) {
        counted.uploads += 1
        counted.uploadBytes += tensor.count * tensor.dtype.byteSize
        base.copy(from: source, sourceDType: sourceDType, into: tensor)
    }
    func copy(_ source: Tensor, into destination: Tensor) { base.copy(source, into: destination) }
    func fill(_ tensor: Tensor, value: Float) { base.fill(tensor, value: value) }
    func downloadFloats(_ tensor: Tensor) -> [Float] { countDownload(tensor); return base.downloadFloats(tensor) }
    func downloadInts(_ tensor: Tensor) -> [Int32] { countDownload(tensor); return base.downloadInts(tensor) }
    /// Copies counted as a device backend counts them (downloads and `copy(from:)` uploads).
    private var counted = HostTransfers()
    var hostTransfers: HostTransfers? { counted }
    private func countDownload(_ t: Tensor) {
        counted.downloads += 1
        counted.downloadBytes += t.count * t.dtype.byteSize
    }
    func synchronize() {}
    func gemm(_ a: MatrixOperand, _ b: MatrixOperand, _ c: MatrixOperand, m: Int, n: Int, k: Int, batch: Int, alpha: Float, beta: Float) {
        base.gemm(a, b, c, m: m, n: n, k: k, batch: batch, alpha: alpha, beta: beta)
    }
    func groupedLinear(_ x: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        base.groupedLinear(x, weights: weights, offsets: offsets, out: out)
    }
    func groupedLinear(_ x: Tensor, rowIndex: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        base.groupedLinear(x, rowIndex: rowIndex, weights: weights, offsets: offsets, out: out)
    }
    func groupedSwiGLULinear(_ gateUp: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        base.groupedSwiGLULinear(gateUp, weights: weights, offsets: offsets, out: out)
    }
    func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor) { base.rmsNorm(x, weight: weight, eps: eps, out: out) }
    func add(_ a: Tensor, _ b: Tensor, out: Tensor) { base.add(a, b, out: out) }
    func siluAndMul(_ x: Tensor, out: Tensor) { base.siluAndMul(x, out: out) }
    func rope(_ x: Tensor, positions: Tensor, rope: RotaryEmbedding) { base.rope(x, positions: positions, rope: rope) }
    func embedding(ids: Tensor, table: Tensor, out: Tensor) { base.embedding(ids: ids, table: table, out: out) }
    func argmax(_ x: Tensor, out: Tensor) { base.argmax(x, out: out) }
    func prepareQKV(_ qkv: Tensor, heads: Int, kvHeads: Int, qNorm: Tensor?, kNorm: Tensor?, eps: Float,
                    positions: Tensor, rope: RotaryEmbedding, query: Tensor, keyCache: Tensor, valueCache: Tensor,
                    metadata: AttentionMetadata) {
        base.prepareQKV(qkv, heads: heads, kvHeads: kvHeads, qNorm: qNorm, kNorm: kNorm, eps: eps, positions: positions,
                        rope: rope, query: query, keyCache: keyCache, valueCache: valueCache, metadata: metadata)
    }
    func addRMSNorm(_ x: Tensor, _ branch: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        base.addRMSNorm(x, branch, weight: weight, eps: eps, out: out)
    }
    func gatherRows(_ x: Tensor, indices: Tensor, out: Tensor) { base.gatherRows(x, indices: indices, out: out) }
    func rowChecksums(_ x: Tensor) -> [UInt64] { base.rowChecksums(x) }
    func writeKV(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, metadata: AttentionMetadata) {
        base.writeKV(key: key, value: value, keyCache: keyCache, valueCache: valueCache, metadata: metadata)
    }
    func pagedAttention(query: Tensor, keyCache: Tensor, valueCache: Tensor, metadata: AttentionMetadata, scale: Float, out: Tensor) {
        base.pagedAttention(query: query, keyCache: keyCache, valueCache: valueCache, metadata: metadata, scale: scale, out: out)
    }
    func writeLatentKV(latent: Tensor, ropeKey: Tensor, cache: Tensor, metadata: AttentionMetadata) {
        base.writeLatentKV(latent: latent, ropeKey: ropeKey, cache: cache, metadata: metadata)
    }
    func expandsLatentPrefill(nopeDim: Int, ropeDim: Int, valueDim: Int) -> Bool {
        base.expandsLatentPrefill(nopeDim: nopeDim, ropeDim: ropeDim, valueDim: valueDim)
    }
    func gatherContext(_ cache: Tensor, metadata: AttentionMetadata, out: Tensor) { base.gatherContext(cache, metadata: metadata, out: out) }
    func expandedLatentAttention(query: Tensor, keyValues: Tensor, ropeKeys: Tensor, nopeDim: Int, valueDim: Int,
                                 metadata: AttentionMetadata, scale: Float, out: Tensor) {
        base.expandedLatentAttention(query: query, keyValues: keyValues, ropeKeys: ropeKeys, nopeDim: nopeDim, valueDim: valueDim,
                                     metadata: metadata, scale: scale, out: out)
    }
    func latentAttention(queryLatent: Tensor, queryRope: Tensor, cache: Tensor, latentDim: Int, metadata: AttentionMetadata, scale: Float, out: Tensor) {
        base.latentAttention(queryLatent: queryLatent, queryRope: queryRope, cache: cache, latentDim: latentDim, metadata: metadata, scale: scale, out: out)
    }
    func routeTopK(logits: Tensor, correctionBias: Tensor?, router: RouterConfig, ids: Tensor, weights: Tensor) {
        base.routeTopK(logits: logits, correctionBias: correctionBias, router: router, ids: ids, weights: weights)
    }
    func mapExperts(_ logical: Tensor, table: Tensor, replicaCount: Tensor, slotBase: Int, slotCount: Int, out: Tensor) {
        base.mapExperts(logical, table: table, replicaCount: replicaCount, slotBase: slotBase, slotCount: slotCount, out: out)
    }
    func groupBySlot(_ slots: Tensor, weights: Tensor, pairsPerToken: Int, numSlots: Int, tokenIndex: Tensor, sortedWeights: Tensor, offsets: Tensor) {
        base.groupBySlot(slots, weights: weights, pairsPerToken: pairsPerToken, numSlots: numSlots,
                         tokenIndex: tokenIndex, sortedWeights: sortedWeights, offsets: offsets)
    }
    func scatterAddWeighted(_ x: Tensor, rowIndex: Tensor, weight: Tensor, out: Tensor) {
        base.scatterAddWeighted(x, rowIndex: rowIndex, weight: weight, out: out)
    }
    func maskPairs(_ slots: Tensor, rowMask: Tensor) { base.maskPairs(slots, rowMask: rowMask) }
    func rebaseSlots(_ slots: Tensor, base offset: Int, count: Int, out: Tensor) {
        base.rebaseSlots(slots, base: offset, count: count, out: out)
    }
    func scatterRows(_ x: Tensor, rowIndex: Tensor, out: Tensor) { base.scatterRows(x, rowIndex: rowIndex, out: out) }
    func countSlots(_ slots: Tensor, counts: Tensor) { base.countSlots(slots, counts: counts) }
    func combinePairs(_ received: Tensor, slots: Tensor, logical: Tensor, weights: Tensor, slotsPerRank: Int,
                      pairsPerRank: Int, out: Tensor) {
        base.combinePairs(received, slots: slots, logical: logical, weights: weights, slotsPerRank: slotsPerRank,
                          pairsPerRank: pairsPerRank, out: out)
    }
}
