/// Prefill attention on tensor cores, in the FlashAttention-2 manner: bf16 `mma.sync`
/// m16n8k16 with f32 accumulation, one block per (64-query tile of one sequence, query
/// head), 4 warps of 16 query rows. Keys and values come from the paged cache in tiles of
/// 64 into shared memory by cp.async, double-buffered (the next tile loads while this one
/// is computed); fragments come by ldmatrix (values transposed by ldmatrix.trans). The
/// softmax is online in registers (base 2, scale folded in), and the
/// causal mask is applied per element, so only the tiles up to a tile's last visible key
/// are read. Probabilities are rounded to bf16 for P·V, as FlashAttention does. Used for
/// bf16 steps whose sequences carry many query tokens (prefill, chunked prefill); decode
/// keeps `paged_attention` (one query row would leave 63 of 64 tile rows idle).
///
/// The same kernel serves DeepSeek's latent attention in prefill in the expanded form, as
/// DeepSeek's own kernels do for that phase (`flash_mla_prefill_*`): each sequence's
/// context is gathered from the latent cache and multiplied by W_kv_b once, so a head's
/// key is [its nope part, the shared rope key] (192 wide for V3) and its value the value
/// part (128); that is 3.4× fewer multiply-adds than attending in the 576/512-wide latent
/// space, which decode keeps (it reads the small latent cache instead).
enum KernelFlashAttention {
    /// Head dimensions compiled (key and value dimension equal).
    static let headDims = [32, 64, 128]
    /// (nope, rope, value) head dimensions of the expanded MLA prefill kernels: the
    /// DeepSeek-V2/V3 shape and the tiny fixture's.
    static let latentShapes: [(nope: Int, rope: Int, value: Int)] = [(128, 64, 128), (32, 16, 32)]

    /// Dynamic shared memory for key rows of dk and value rows of dv: two buffers of 64 keys
    /// and 64 values, rows padded by 8 bf16.
    static func sharedBytes(keyDim dk: Int, valueDim dv: Int) -> Int { 2 * 64 * (dk + 8 + dv + 8) * 2 }

    static func latentKernel(nope: Int, rope: Int, value: Int) -> String { "flash_mla_prefill_bf16_n\(nope)_r\(rope)_v\(value)" }

    static let source: String = {
        var text = templates
        for d in headDims {
            text += """
            extern "C" __global__ void __launch_bounds__(128) flash_prefill_bf16_d\(d)(const bf16_t *q, long qs, const bf16_t *kc, const bf16_t *vc, bf16_t *out, long os, const int *queryStart, const int *contextLengths, const int *tables, int tableWidth, int blockSize, int numSeqs, int heads, int kvHeads, float scaleLog2) {
                flash_prefill_impl<\(d), \(d), 0>(q, qs, out, os, queryStart, contextLengths, numSeqs, heads, scaleLog2, kc, vc, tables, tableWidth, blockSize, kvHeads, nullptr, 0, nullptr, 0, nullptr);
            }

            """
        }
        for (n, r, v) in latentShapes {
            text += """
            extern "C" __global__ void __launch_bounds__(128) \(latentKernel(nope: n, rope: r, value: v))(const bf16_t *q, long qs, const bf16_t *kv, long kvs, const bf16_t *rope, long rs, bf16_t *out, long os, const int *queryStart, const int *contextLengths, const int *contextStart, int numSeqs, int heads, float scaleLog2) {
                flash_prefill_impl<\(n + r), \(v), \(n)>(q, qs, out, os, queryStart, contextLengths, numSeqs, heads, scaleLog2, nullptr, nullptr, nullptr, 0, 1, 1, kv, kvs, rope, rs, contextStart);
            }

            """
        }
        return text
    }()

    static let templates = #"""
/// The visible context of query token t of a sequence ending at `end` with `ctx` tokens.
__device__ __forceinline__ int visible_keys(int t, int end, int ctx) { return imax(0, imin(ctx - (end - t) + 1, ctx)); }

/// Keys k0 ..< k0 + 64 (rows of DQK) and their values (rows of DV) into shared rows padded
/// by 8 bf16, by cp.async; keys past `limit` are zeros. DN == 0: one KV head `kh` of the
/// paged cache. DN > 0 (expanded MLA): key = [kv row's head-h nope part, the shared rope
/// key], value = the kv row's head-h value part, rows ctx0 + j of contiguous tensors.
template <int DQK, int DV, int DN>
__device__ __forceinline__ void flash_load_kv(unsigned short *Ks, unsigned short *Vs, int k0, int limit,
                                              const bf16_t *kc, const bf16_t *vc, const int *table, int blockSize, int kvHeads, int kh,
                                              const bf16_t *kv, long kvs, const bf16_t *rope, long rs, int ctx0, int h) {
    for (int i = threadIdx.x; i < 64 * (DQK / 8); i += 128) {
        int r = i / (DQK / 8), c = (i % (DQK / 8)) * 8;
        int j = k0 + r;
        bool valid = j < limit;
        const bf16_t *src = DN == 0 ? kc : kv;
        if (valid) {
            if (DN == 0) src = kc + (((long)table[j / blockSize] * blockSize + j % blockSize) * kvHeads + kh) * DQK + c;
            else if (c < DN) src = kv + (long)(ctx0 + j) * kvs + (long)h * (DN + DV) + c;
            else src = rope + (long)(ctx0 + j) * rs + (c - DN);
        }
        cp_async16(Ks + r * (DQK + 8) + c, src, valid);
    }
    for (int i = threadIdx.x; i < 64 * (DV / 8); i += 128) {
        int r = i / (DV / 8), c = (i % (DV / 8)) * 8;
        int j = k0 + r;
        bool valid = j < limit;
        const bf16_t *src = DN == 0 ? vc : kv;
        if (valid) {
            if (DN == 0) src = vc + (((long)table[j / blockSize] * blockSize + j % blockSize) * kvHeads + kh) * DV + c;
            else src = kv + (long)(ctx0 + j) * kvs + (long)h * (DN + DV) + DN + c;
        }
        cp_async16(Vs + r * (DV + 8) + c, src, valid);
    }
}

extern __shared__ U4 flashShared[];

template <int DQK, int DV, int DN>
__device__ void flash_prefill_impl(const bf16_t *q, long qs, bf16_t *out, long os, const int *queryStart, const int *contextLengths,
                                   int numSeqs, int heads, float scaleLog2,
                                   const bf16_t *kc, const bf16_t *vc, const int *tables, int tableWidth, int blockSize, int kvHeads,
                                   const bf16_t *kv, long kvs, const bf16_t *rope, long rs, const int *contextStart) {
    // Two buffers of (64 keys, 64 values), rows padded by 8 bf16: 16-byte aligned rows,
    // ldmatrix without bank conflicts. The next tile loads while this one is computed.
    constexpr int LDK = DQK + 8, LDV = DV + 8, BUFFER = 64 * (LDK + LDV);
    unsigned short *smem = reinterpret_cast<unsigned short *>(flashShared);
    __shared__ int tileSeq, tileRow0, tileRows;
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int bx = blockIdx.x, h = blockIdx.y, kh = DN == 0 ? h / (heads / kvHeads) : 0;
    // Block x is the x-th (sequence, 64-token tile) pair, in sequence order.
    if (warp == 0) tile_of_block(queryStart, numSeqs, bx, 64, &tileSeq, &tileRow0, &tileRows);
    __syncthreads();
    int s = tileSeq;
    if (s < 0) return;
    int row0 = tileRow0, rows = tileRows;
    int end = queryStart[s + 1], ctx = contextLengths[s];
    int limit = visible_keys(row0 + rows - 1, end, ctx);
    // This thread's two rows (r and r + 8 of its warp's 16) and their visible keys.
    int r0 = warp * 16 + (lane >> 2);
    int vis0 = r0 < rows ? visible_keys(row0 + r0, end, ctx) : 0;
    int vis1 = r0 + 8 < rows ? visible_keys(row0 + r0 + 8, end, ctx) : 0;
    const int *table = DN == 0 ? tables + (long)s * tableWidth : nullptr;
    int ctx0 = DN == 0 ? 0 : contextStart[s];
    int tiles = (limit + 63) / 64;
    if (tiles > 0)
        flash_load_kv<DQK, DV, DN>(smem, smem + 64 * LDK, 0, limit, kc, vc, table, blockSize, kvHeads, kh, kv, kvs, rope, rs, ctx0, h);
    cp_async_commit();

    unsigned qa[DQK / 16][4];
#pragma unroll
    for (int ks = 0; ks < DQK / 16; ks++) {
        int col = ks * 16 + (lane & 3) * 2;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int r = r0 + (i & 1) * 8, c = col + (i >> 1) * 8;
            qa[ks][i] = r < rows ? *(const unsigned *)(q + ((long)(row0 + r) * heads + h) * qs + c) : 0u;
        }
    }
    float o[DV / 8][4];
#pragma unroll
    for (int nd = 0; nd < DV / 8; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[nd][e] = 0.f;
    float m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f};

    for (int t = 0; t < tiles; t++) {
        int k0 = t * 64;
        const unsigned short *Ks = smem + (t & 1) * BUFFER, *Vs = Ks + 64 * LDK;
        if (t + 1 < tiles) {
            unsigned short *nextK = smem + ((t + 1) & 1) * BUFFER;
            flash_load_kv<DQK, DV, DN>(nextK, nextK + 64 * LDK, k0 + 64, limit, kc, vc, table, blockSize, kvHeads, kh, kv, kvs, rope, rs,
                                       ctx0, h);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        // S = Q Kᵀ for this warp's 16 rows and the tile's 64 keys (ldmatrix: keys are the
        // rows of Ks, as the B operand's columns).
        float sc[8][4];
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[ni][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < DQK / 16; ks++) {
#pragma unroll
            for (int nj = 0; nj < 4; nj++) {
                unsigned r[4];
                ldmatrix_x4(r, Ks + (nj * 16 + (lane & 7) + (lane >> 4) * 8) * LDK + ks * 16 + ((lane >> 3) & 1) * 8);
                unsigned b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_bf16(sc[2 * nj], qa[ks], b0);
                mma_bf16(sc[2 * nj + 1], qa[ks], b1);
            }
        }
        // Causal mask, then the online softmax of both rows (a row's 64 scores are spread
        // over the 4 threads of a quad).
        float tileMax[2] = {neg_inf(), neg_inf()};
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + ni * 8 + (lane & 3) * 2 + (e & 1);
                float v = key < ((e >> 1) ? vis1 : vis0) ? sc[ni][e] * scaleLog2 : neg_inf();
                sc[ni][e] = v;
                tileMax[e >> 1] = fmaxf(tileMax[e >> 1], v);
            }
        float base[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            tileMax[i] = fmaxf(tileMax[i], __shfl_xor_sync(0xffffffffu, tileMax[i], 1));
            tileMax[i] = fmaxf(tileMax[i], __shfl_xor_sync(0xffffffffu, tileMax[i], 2));
            float mNew = fmaxf(m[i], tileMax[i]);
            base[i] = mNew == neg_inf() ? 0.f : mNew;
            float correction = exp2f(m[i] - base[i]);
            m[i] = mNew;
            l[i] *= correction;
#pragma unroll
            for (int nd = 0; nd < DV / 8; nd++) { o[nd][2 * i] *= correction; o[nd][2 * i + 1] *= correction; }
        }
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(sc[ni][e] - base[e >> 1]);
                sc[ni][e] = p;
                l[e >> 1] += p;
            }
        // O += P V: the score accumulators of two key octets form one A fragment; V's
        // fragments come transposed by ldmatrix.trans from its row-major tile.
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            unsigned pa[4] = {pack_bf16(sc[2 * kk][0], sc[2 * kk][1]), pack_bf16(sc[2 * kk][2], sc[2 * kk][3]),
                              pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]), pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
            for (int nj = 0; nj < DV / 16; nj++) {
                unsigned r[4];
                ldmatrix_x4_trans(r, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDV + nj * 16 + (lane >> 4) * 8);
                unsigned b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_bf16(o[2 * nj], pa, b0);
                mma_bf16(o[2 * nj + 1], pa, b1);
            }
        }
        // Every warp is done with this buffer before the next iteration refills it.
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int r = r0 + 8 * i;
        if (r >= rows) continue;
        float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
        bf16_t *dst = out + ((long)(row0 + r) * heads + h) * os;
#pragma unroll
        for (int nd = 0; nd < DV / 8; nd++) {
            int col = nd * 8 + (lane & 3) * 2;
            *(unsigned *)(dst + col) = pack_bf16(o[nd][2 * i] * inv, o[nd][2 * i + 1] * inv);
        }
    }
}
"""#
}
