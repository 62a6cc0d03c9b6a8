import Dispatch
import Synchronization

/// Wraps a backend and adds up the wall time of each kind of op, for benchmarks that
/// report where a forward pass spends its time. On an asynchronous device it waits for
/// each op so the times are attributable (which slows the run; use it for breakdowns,
/// not for headline numbers).
public final class ProfilingBackend: Backend, @unchecked Sendable {
    public enum Category: String, CaseIterable, Sendable {
        case gemm, attention, routing, elementwise, memory
    }

    public let base: any Backend
    private let totals = Mutex<[Category: UInt64]>([:])

    public init(_ base: any Backend) { self.base = base }

    public var device: Device { base.device }
    public var computeDType: DType { base.computeDType }
    public var residualDType: DType { base.residualDType }
    public var summary: String { base.summary + " (profiled)" }
    /// Weight moves are not profiled.
    public func transferLane() throws -> any Backend { try base.transferLane() }

    /// Seconds spent per category since the last reset.
    public func seconds() -> [Category: Double] {
        totals.withLock { $0.mapValues { Double($0) / 1e9 } }
    }

    public func reset() { totals.withLock { $0 = [:] } }

    @inline(__always)
    private func timed<R>(_ category: Category, _ body: () throws -> R) rethrows -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        if base.device != .cpu { base.synchronize() }
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        totals.withLock { $0[category, default: 0] += elapsed }
        return result
    }

    public func empty(_ shape: [Int], dtype: DType) throws -> Tensor { try timed(.memory) { try base.empty(shape, dtype: dtype) } }
    public func upload(_ source: UnsafeRawBufferPointer, sourceDType: DType, shape: [Int], dtype: DType) throws -> Tensor {
        try timed(.memory) { try base.upload(source, sourceDType: sourceDType, shape: shape, dtype: dtype) }
    }
    public func copy(from source: UnsafeRawBufferPointer, sourceDType: DType, into tensor: Tensor) {
        timed(.memory) { base.copy(from: source, sourceDType: sourceDType, into: tensor) }
    }
    public func copy(_ source: Tensor, into destination: Tensor) { timed(.memory) { base.copy(source, into: destination) } }
    public func fill(_ tensor: Tensor, value: Float) { timed(.memory) { base.fill(tensor, value: value) } }
    public func downloadFloats(_ tensor: Tensor) -> [Float] { timed(.memory) { base.downloadFloats(tensor) } }
    public func downloadInts(_ tensor: Tensor) -> [Int32] { timed(.memory) { base.downloadInts(tensor) } }
    public func synchronize() { base.synchronize() }
    public func checkErrors() throws { try base.checkErrors() }
    public var deviceMemory: (free: Int, total: Int)? { base.deviceMemory }
    public var hostTransfers: HostTransfers? { base.hostTransfers }

    public func gemm(_ a: MatrixOperand, _ b: MatrixOperand, _ c: MatrixOperand, m: Int, n: Int, k: Int, batch: Int, alpha: Float, beta: Float) {
        timed(.gemm) { base.gemm(a, b, c, m: m, n: n, k: k, batch: batch, alpha: alpha, beta: beta) }
    }
    public func groupedLinear(_ x: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        timed(.gemm) { base.groupedLinear(x, weights: weights, offsets: offsets, out: out) }
    }
    public func groupedLinear(_ x: Tensor, rowIndex: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        timed(.gemm) { base.groupedLinear(x, rowIndex: rowIndex, weights: weights, offsets: offsets, out: out) }
    }
    public func groupedSwiGLULinear(_ gateUp: Tensor, weights: Tensor, offsets: Tensor, out: Tensor) {
        timed(.gemm) { base.groupedSwiGLULinear(gateUp, weights: weights, offsets: offsets, out: out) }
    }
    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        timed(.elementwise) { base.rmsNorm(x, weight: weight, eps: eps, out: out) }
    }
    public func add(_ a: Tensor, _ b: Tensor, out: Tensor) { timed(.elementwise) { base.add(a, b, out: out) } }
    public func siluAndMul(_ x: Tensor, out: Tensor) { timed(.elementwise) { base.siluAndMul(x, out: out) } }
    public func rope(_ x: Tensor, positions: Tensor, rope: RotaryEmbedding) {
        timed(.elementwise) { base.rope(x, positions: positions, rope: rope) }
    }
    public func embedding(ids: Tensor, table: Tensor, out: Tensor) { timed(.elementwise) { base.embedding(ids: ids, table: table, out: out) } }
    public func argmax(_ x: Tensor, out: Tensor) { timed(.elementwise) { base.argmax(x, out: out) } }
    public func prepareQKV(_ qkv: Tensor, heads: Int, kvHeads: Int, qNorm: Tensor?, kNorm: Tensor?, eps: Float,
                           positions: Tensor, rope: RotaryEmbedding, query: Tensor, keyCache: Tensor, valueCache: Tensor,
                           metadata: AttentionMetadata) {
        timed(.attention) {
            base.prepareQKV(qkv, heads: heads, kvHeads: kvHeads, qNorm: qNorm, kNorm: kNorm, eps: eps, positions: positions,
                            rope: rope, query: query, keyCache: keyCache, valueCache: valueCache, metadata: metadata)
        }
    }
    public func addRMSNorm(_ x: Tensor, _ branch: Tensor, weight: Tensor, eps: Float, out: Tensor) {
        timed(.elementwise) { base.addRMSNorm(x, branch, weight: weight, eps: eps, out: out) }
    }
    public func gatherRows(_ x: Tensor, indices: Tensor, out: Tensor) { timed(.routing) { base.gatherRows(x, indices: indices, out: out) } }
    public func rowChecksums(_ x: Tensor) -> [UInt64] { timed(.elementwise) { base.rowChecksums(x) } }
    public func writeKV(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, metadata: AttentionMetadata) {
        timed(.attention) { base.writeKV(key: key, value: value, keyCache: keyCache, valueCache: valueCache, metadata: metadata) }
    }
    public func pagedAttention(query: Tensor, keyCache: Tensor, valueCache: Tensor, metadata: AttentionMetadata, scale: Float, out: Tensor) {
        timed(.attention) { base.pagedAttention(query: query, keyCache: keyCache, valueCache: valueCache, metadata: metadata, scale: scale, out: out) }
    }
    public func writeLatentKV(latent: Tensor, ropeKey: Tensor, cache: Tensor, metadata: AttentionMetadata) {
        timed(.attention) { base.writeLatentKV(latent: latent, ropeKey: ropeKey, cache: cache, metadata: metadata) }
    }
    public func expandsLatentPrefill(nopeDim: Int, ropeDim: Int, valueDim: Int) -> Bool {
        base.expandsLatentPrefill(nopeDim: nopeDim, ropeDim: ropeDim, valueDim: valueDim)
    }
    public func gatherContext(_ cache: Tensor, metadata: AttentionMetadata, out: Tensor) {
        timed(.attention) { base.gatherContext(cache, metadata: metadata, out: out) }
    }
    public func expandedLatentAttention(query: Tensor, keyValues: Tensor, ropeKeys: Tensor, nopeDim: Int, valueDim: Int,
                                        metadata: AttentionMetadata, scale: Float, out: Tensor) {
        timed(.attention) {
            base.expandedLatentAttention(query: query, keyValues: keyValues, ropeKeys: ropeKeys, nopeDim: nopeDim, valueDim: valueDim,
                                         metadata: metadata, scale: scale, out: out)
        }
    }
    public func latentAttention(queryLatent: Tensor, queryRope: Tensor, cache: Tensor, latentDim: Int, metadata: AttentionMetadata, scale: Float, out: Tensor) {
        timed(.attention) {
            base.latentAttention(queryLatent: queryLatent, queryRope: queryRope, cache: cache, latentDim: latentDim, metadata: metadata, scale: scale, out: out)
        }
    }
    public func routeTopK(logits: Tensor, correctionBias: Tensor?, router: RouterConfig, ids: Tensor, weights: Tensor) {
        timed(.routing) { base.routeTopK(logits: logits, correctionBias: correctionBias, router: router, ids: ids, weights: weights) }
    }
    public func mapExperts(_ logical: Tensor, table: Tensor, replicaCount: Tensor, slotBase: Int, slotCount: Int, out: Tensor) {
        timed(.routing) { base.mapExperts(logical, table: table, replicaCount: replicaCount, slotBase: slotBase, slotCount: slotCount, out: out) }
    }
    public func groupBySlot(_ slots: Tensor, weights: Tensor, pairsPerToken: Int, numSlots: Int, tokenIndex: Tensor, sortedWeights: Tensor, offsets: Tensor) {
        timed(.routing) {
            base.groupBySlot(slots, weights: weights, pairsPerToken: pairsPerToken, numSlots: numSlots,
                             tokenIndex: tokenIndex, sortedWeights: sortedWeights, offsets: offsets)
        }
    }
    public func scatterAddWeighted(_ x: Tensor, rowIndex: Tensor, weight: Tensor, out: Tensor) {
        timed(.routing) { base.scatterAddWeighted(x, rowIndex: rowIndex, weight: weight, out: out) }
    }
    public func maskPairs(_ slots: Tensor, rowMask: Tensor) {
        timed(.routing) { base.maskPairs(slots, rowMask: rowMask) }
    }
    public func rebaseSlots(_ slots: Tensor, base offset: Int, count: Int, out: Tensor) {
        timed(.routing) { base.rebaseSlots(slots, base: offset, count: count, out: out) }
    }
    public func scatterRows(_ x: Tensor, rowIndex: Tensor, out: Tensor) {
        timed(.routing) { base.scatterRows(x, rowIndex: rowIndex, out: out) }
    }
    public func countSlots(_ slots: Tensor, counts: Tensor) {
        timed(.routing) { base.countSlots(slots, counts: counts) }
    }
    public func combinePairs(_ received: Tensor, slots: Tensor, logical: Tensor, weights: Tensor, slotsPerRank: Int,
                             pairsPerRank: Int, out: Tensor) {
        timed(.routing) {
            base.combinePairs(received, slots: slots, logical: logical, weights: weights, slotsPerRank: slotsPerRank,
                              pairsPerRank: pairsPerRank, out: out)
        }
    }
}
