/// Prefill attention on tensor cores, in the FlashAttention-2 manner: bf16 `mma.sync`
/// m16n8k16 with f32 accumulation, one block per (64-query tile of one sequence, query
/// head), 4 warps of 16 query rows. Keys and values come from the paged cache in tiles of
/// 64 into shared memory (values transposed, so both products read their B operand as
/// 32-bit pairs), the softmax is online in registers (base 2, scale folded in), and the
/// causal mask is applied per element, so only the tiles up to a tile's last visible key
/// are read. Probabilities are rounded to bf16 for P·V, as FlashAttention does. Used for
/// bf16 steps whose sequences carry many query tokens (prefill, chunked prefill); decode
/// keeps `paged_attention` (one query row would leave 63 of 64 tile rows idle).
enum KernelFlashAttention {
    /// Head dimensions compiled (key and value dimension equal).
    static let headDims = [32, 64, 128]

    static let source: String = {
        var text = templates
        for d in headDims {
            text += """
            extern "C" __global__ void __launch_bounds__(128) flash_prefill_bf16_d\(d)(const bf16_t *q, long qs, const bf16_t *kc, const bf16_t *vc, bf16_t *out, long os, const int *queryStart, const int *contextLengths, const int *tables, int tableWidth, int blockSize, int numSeqs, int heads, int kvHeads, float scaleLog2) {
                flash_prefill_impl<\(d)>(q, qs, kc, vc, out, os, queryStart, contextLengths, tables, tableWidth, blockSize, numSeqs, heads, kvHeads, scaleLog2);
            }

            """
        }
        return text
    }()

    static let templates = #"""
/// Two floats as a bf16 pair (`lo` in the low half), rounded to nearest even.
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/// The visible context of query token t of a sequence ending at `end` with `ctx` tokens.
__device__ __forceinline__ int visible_keys(int t, int end, int ctx) { return imax(0, imin(ctx - (end - t) + 1, ctx)); }

template <int D>
__device__ void flash_prefill_impl(const bf16_t *q, long qs, const bf16_t *kc, const bf16_t *vc, bf16_t *out, long os,
                                   const int *queryStart, const int *contextLengths, const int *tables, int tableWidth,
                                   int blockSize, int numSeqs, int heads, int kvHeads, float scaleLog2) {
    // Rows padded by 8 bf16: 16-byte aligned rows, conflict-free fragment reads.
    __shared__ U4 KsRaw[64 * (D + 8) / 8];
    __shared__ U4 VtRaw[D * 72 / 8];
    unsigned short (*Ks)[D + 8] = reinterpret_cast<unsigned short (*)[D + 8]>(KsRaw);
    unsigned short (*Vt)[72] = reinterpret_cast<unsigned short (*)[72]>(VtRaw);
    __shared__ int tileSeq, tileRow0, tileRows;
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int bx = blockIdx.x, h = blockIdx.y, kh = h / (heads / kvHeads);
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

    unsigned qa[D / 16][4];
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
        int col = ks * 16 + (lane & 3) * 2;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int r = r0 + (i & 1) * 8, c = col + (i >> 1) * 8;
            qa[ks][i] = r < rows ? *(const unsigned *)(q + ((long)(row0 + r) * heads + h) * qs + c) : 0u;
        }
    }
    float o[D / 8][4];
#pragma unroll
    for (int nd = 0; nd < D / 8; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[nd][e] = 0.f;
    float m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f};
    const int *table = tables + (long)s * tableWidth;

    for (int k0 = 0; k0 < limit; k0 += 64) {
        __syncthreads();
        // 64 keys and values: lane r of a pass takes key r's 8-element chunk c, so the
        // transposed value stores of a warp land in distinct banks.
        for (int i = tid; i < 64 * (D / 8); i += 128) {
            int r = i & 63, c = (i >> 6) * 8;
            int j = k0 + r;
            U4 kv = {0u, 0u, 0u, 0u}, vv = {0u, 0u, 0u, 0u};
            if (j < limit) {
                long slot = (long)table[j / blockSize] * blockSize + j % blockSize;
                long at = (slot * kvHeads + kh) * D + c;
                kv = *(const U4 *)(kc + at);
                vv = *(const U4 *)(vc + at);
            }
            *(U4 *)&Ks[r][c] = kv;
            unsigned vw[4] = {vv.x, vv.y, vv.z, vv.w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                Vt[c + 2 * e][r] = (unsigned short)(vw[e] & 0xffffu);
                Vt[c + 2 * e + 1][r] = (unsigned short)(vw[e] >> 16);
            }
        }
        __syncthreads();
        // S = Q Kᵀ for this warp's 16 rows and the tile's 64 keys.
        float sc[8][4];
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[ni][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++) {
            int col = ks * 16 + (lane & 3) * 2;
#pragma unroll
            for (int ni = 0; ni < 8; ni++) {
                int n = ni * 8 + (lane >> 2);
                unsigned b[2] = {*(const unsigned *)&Ks[n][col], *(const unsigned *)&Ks[n][col + 8]};
                mma_bf16(sc[ni], qa[ks], b);
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
            for (int nd = 0; nd < D / 8; nd++) { o[nd][2 * i] *= correction; o[nd][2 * i + 1] *= correction; }
        }
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(sc[ni][e] - base[e >> 1]);
                sc[ni][e] = p;
                l[e >> 1] += p;
            }
        // O += P V: the score accumulators of two key octets form one A fragment.
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            unsigned pa[4] = {pack_bf16(sc[2 * kk][0], sc[2 * kk][1]), pack_bf16(sc[2 * kk][2], sc[2 * kk][3]),
                              pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]), pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
            int col = kk * 16 + (lane & 3) * 2;
#pragma unroll
            for (int nd = 0; nd < D / 8; nd++) {
                int n = nd * 8 + (lane >> 2);
                unsigned b[2] = {*(const unsigned *)&Vt[n][col], *(const unsigned *)&Vt[n][col + 8]};
                mma_bf16(o[nd], pa, b);
            }
        }
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
        for (int nd = 0; nd < D / 8; nd++) {
            int col = nd * 8 + (lane & 3) * 2;
            *(unsigned *)(dst + col) = pack_bf16(o[nd][2 * i] * inv, o[nd][2 * i + 1] * inv);
        }
    }
}
"""#
}
