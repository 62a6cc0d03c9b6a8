/// Paged-KV writes and attention. One block per (token, KV head, chunk of up to 8 query
/// heads) for standard attention and per (token, 4 heads) for MLA; each warp walks a
/// share of the visible context with an online softmax, then the warps merge in a fixed
/// order (deterministic). Mirrors `CPUBackend+Attention.swift`.
enum KernelAttention {
    static let templates = #"""
/// Finds the sequence of token t: the largest s with queryStart[s] <= t.
__device__ __forceinline__ int sequence_of(const int *queryStart, int numSeqs, int t) {
    int lo = 0, hi = numSeqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (queryStart[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return lo;
}

template <typename T>
__device__ void write_kv_impl(const T *key, const T *value, T *kc, T *vc, const int *slots,
                              int kRow, int vRow, long capacity) {
    long t = blockIdx.x;
    long slot = slots[t];
    if (slot < 0 || slot >= capacity) return;
    for (int i = threadIdx.x; i < kRow; i += blockDim.x) kc[slot * kRow + i] = key[t * kRow + i];
    for (int i = threadIdx.x; i < vRow; i += blockDim.x) vc[slot * vRow + i] = value[t * vRow + i];
}

template <typename T>
__device__ void write_latent_kv_impl(const T *latent, long ls, const T *rope, long rs, T *cache, const int *slots,
                                     int L, int R, long capacity) {
    long t = blockIdx.x;
    long slot = slots[t];
    if (slot < 0 || slot >= capacity) return;
    T *row = cache + slot * (long)(L + R);
    for (int i = threadIdx.x; i < L; i += blockDim.x) row[i] = latent[t * ls + i];
    for (int i = threadIdx.x; i < R; i += blockDim.x) row[L + i] = rope[t * rs + i];
}

/// Block (s, c) copies positions 64c ..< 64c + 64 of sequence s's context from the paged
/// cache (rows of W) to rows contextStart[s] + j of out (MLA's expanded prefill).
template <typename T>
__device__ void gather_context_impl(const T *cache, int W, long capacity, const int *tables, int tableWidth, int blockSize,
                                    const int *contextLengths, const int *contextStart, T *out, long os) {
    int s = blockIdx.x, j0 = blockIdx.y * 64;
    int n = imin(64, contextLengths[s] - j0);
    if (n <= 0) return;
    const int *table = tables + (long)s * tableWidth;
    long first = contextStart[s] + j0;
    for (int i = threadIdx.x; i < n * W; i += blockDim.x) {
        int j = i / W, c = i - j * W;
        long slot = (long)table[(j0 + j) / blockSize] * blockSize + (j0 + j) % blockSize;
        if (slot >= 0 && slot < capacity) out[(first + j) * os + c] = cache[slot * W + c];
    }
}

/// A value as the storage type holds it (what a store then a load gives).
__device__ __forceinline__ float as_stored(float v, const float *) { return v; }
__device__ __forceinline__ float as_stored(float v, const bf16_t *) { return bf2f(f2bf(v)); }

/// One block per (token, head of the fused q/k/v projection): the head's row into shared
/// memory, its RMSNorm (query and key heads with a norm weight), its rotation (query and
/// key heads), then the query out or the key/value into the cache slot. Values are rounded
/// to the storage type where the separate ops store them, so the result is theirs.
template <typename T>
__device__ void prepare_qkv_impl(const T *qkv, long qs, int heads, int kvHeads, int D, const T *qNorm, const T *kNorm,
                                 float eps, const int *positions, const float *inv, int half, float factor, int interleaved,
                                 T *query, T *kc, T *vc, const int *slots, long capacity) {
    __shared__ float row[256];
    long t = blockIdx.x;
    int h = blockIdx.y;
    int kind = h < heads ? 0 : (h < heads + kvHeads ? 1 : 2);
    const T *src = qkv + t * qs + (long)h * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) row[i] = ldf(src, i);
    __syncthreads();
    const T *w = kind == 0 ? qNorm : (kind == 1 ? kNorm : nullptr);
    if (w != nullptr) {
        float s = 0.f;
        for (int i = threadIdx.x; i < D; i += blockDim.x) s += row[i] * row[i];
        s = block_sum(s);
        float invNorm = 1.f / sqrtf(s / (float)D + eps);
        for (int i = threadIdx.x; i < D; i += blockDim.x) row[i] = as_stored(ldf(w, i) * (row[i] * invNorm), src);
        __syncthreads();
    }
    if (kind < 2) {
        float position = (float)positions[t];
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            float angle = position * inv[i];
            float c = cosf(angle) * factor, sn = sinf(angle) * factor;
            int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
            float a = row[ia], b = row[ib];
            row[ia] = as_stored(a * c - b * sn, src);
            row[ib] = as_stored(b * c + a * sn, src);
        }
        __syncthreads();
    }
    T *dst;
    if (kind == 0) {
        dst = query + (t * heads + h) * (long)D;
    } else {
        long slot = slots[t];
        if (slot < 0 || slot >= capacity) return;
        int kh = h - heads - (kind == 2 ? kvHeads : 0);
        dst = (kind == 1 ? kc : vc) + (slot * kvHeads + kh) * (long)D;
    }
    for (int i = threadIdx.x; i < D; i += blockDim.x) stf(dst, i, row[i]);
}

#define ATTN_WARPS 8
#define ATTN_HEADS 8

/// The end of a paged or latent attention block: merges its warps' online-softmax states
/// (max `m`, sum `l`, unnormalized output `acc` per head, W·32 output lanes) through shared
/// memory, then writes either this key range's partials (split attention: output at the
/// block's max, that max and the sum) or the normalized output of its `nh` heads.
template <typename T, int HEADS, int W>
__device__ __forceinline__ void attention_block_finish(const float (&m)[HEADS], const float (&l)[HEADS], const float (&acc)[HEADS][W],
                                                       float (*sm)[HEADS], float (*sl)[HEADS], float (*so)[W * 32],
                                                       int nh, int width, int t, int heads, int h0, int split, int splits,
                                                       float *pm, float *pl, float *po, T *out, long os) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (lane == 0) {
#pragma unroll
        for (int g = 0; g < HEADS; g++) { sm[warp][g] = m[g]; sl[warp][g] = l[g]; }
    }
    for (int i = threadIdx.x; i < HEADS * W * 32; i += blockDim.x) so[i / (W * 32)][i % (W * 32)] = 0.f;
    __syncthreads();
    float total[HEADS], mine[HEADS], blockMax[HEADS];
#pragma unroll
    for (int g = 0; g < HEADS; g++) {
        float M = neg_inf();
        for (int w = 0; w < warps; w++) M = fmaxf(M, sm[w][g]);
        float L = 0.f;
        if (M != neg_inf()) for (int w = 0; w < warps; w++) if (sm[w][g] != neg_inf()) L += sl[w][g] * expf(sm[w][g] - M);
        total[g] = L;
        blockMax[g] = M;
        mine[g] = (m[g] == neg_inf() || M == neg_inf()) ? 0.f : expf(m[g] - M);
    }
    for (int w = 0; w < warps; w++) {
        if (warp == w) {
#pragma unroll
            for (int g = 0; g < HEADS; g++)
#pragma unroll
                for (int e = 0; e < W; e++) so[g][lane + 32 * e] += acc[g][e] * mine[g];
        }
        __syncthreads();
    }
    if (splits > 1) {
        // Partial results of this key range: unnormalized output at the block's max.
        for (int i = threadIdx.x; i < nh * width; i += blockDim.x) {
            int g = i / width, c = i % width;
            po[(((long)t * heads + h0 + g) * splits + split) * width + c] = so[g][c];
        }
        if (threadIdx.x == 0) {
#pragma unroll
            for (int g = 0; g < HEADS; g++) {
                if (g < nh) {
                    pm[((long)t * heads + h0 + g) * splits + split] = blockMax[g];
                    pl[((long)t * heads + h0 + g) * splits + split] = total[g];
                }
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < nh * width; i += blockDim.x) {
        int g = i / width, c = i % width;
        float L = 0.f;
#pragma unroll
        for (int gg = 0; gg < HEADS; gg++) if (gg == g) L = total[gg];
        stf(out, ((long)t * heads + h0 + g) * os + c, L > 0.f ? so[g][c] / L : 0.f);
    }
}

/// Standard paged attention. EPL = elements of D (and Dv) per lane: D, Dv <= 32 * EPL.
template <typename T, int EPL>
__device__ void paged_attention_impl(const T *q, long qs, const T *kc, const T *vc, T *out, long os,
                                     const int *queryStart, const int *contextLengths, const int *tables, int tableWidth,
                                     int blockSize, int numSeqs, int heads, int kvHeads, int D, int Dv, float scale,
                                     int groupChunks, int chunkLen, float *pm, float *pl, float *po) {
    __shared__ float sm[ATTN_WARPS][ATTN_HEADS], sl[ATTN_WARPS][ATTN_HEADS];
    __shared__ float so[ATTN_HEADS][EPL * 32];
    int t = blockIdx.x, kh = blockIdx.y, chunk = blockIdx.z % groupChunks, split = blockIdx.z / groupChunks;
    int splits = gridDim.z / groupChunks;
    int group = heads / kvHeads;
    int h0 = kh * group + chunk * ATTN_HEADS;
    int nh = imin(ATTN_HEADS, group - chunk * ATTN_HEADS);
    if (nh <= 0) return;
    int s = sequence_of(queryStart, numSeqs, t);
    int end = queryStart[s + 1], ctx = contextLengths[s];
    int visible = imax(0, imin(ctx - (end - t) + 1, ctx));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

    float qr[ATTN_HEADS][EPL], acc[ATTN_HEADS][EPL], m[ATTN_HEADS], l[ATTN_HEADS];
#pragma unroll
    for (int g = 0; g < ATTN_HEADS; g++) {
        m[g] = neg_inf(); l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            int i = lane + 32 * e;
            qr[g][e] = (g < nh && i < D) ? ldf(q, ((long)t * heads + h0 + g) * qs + i) : 0.f;
            acc[g][e] = 0.f;
        }
    }
    const int *table = tables + (long)s * tableWidth;
    int jEnd = imin(visible, (split + 1) * chunkLen);
    for (int j = split * chunkLen + warp; j < jEnd; j += warps) {
        long slot = (long)table[j / blockSize] * blockSize + j % blockSize;
        const T *kp = kc + (slot * kvHeads + kh) * D;
        const T *vp = vc + (slot * kvHeads + kh) * Dv;
        float kv[EPL], vv[EPL];
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            int i = lane + 32 * e;
            kv[e] = i < D ? ldf(kp, i) : 0.f;
            vv[e] = i < Dv ? ldf(vp, i) : 0.f;
        }
        // Every head slot is computed (unused ones on zero queries) so the loops unroll
        // and the arrays stay in registers.
#pragma unroll
        for (int g = 0; g < ATTN_HEADS; g++) {
            float d = 0.f;
#pragma unroll
            for (int e = 0; e < EPL; e++) d += qr[g][e] * kv[e];
            float score = warp_sum(d) * scale;
            float mn = fmaxf(m[g], score);
            float correction = expf(m[g] - mn);
            float p = expf(score - mn);
            l[g] = l[g] * correction + p;
#pragma unroll
            for (int e = 0; e < EPL; e++) acc[g][e] = acc[g][e] * correction + p * vv[e];
            m[g] = mn;
        }
    }
    attention_block_finish<T, ATTN_HEADS, EPL>(m, l, acc, sm, sl, so, nh, Dv, t, heads, h0, split, splits, pm, pl, po, out, os);
}

/// Merges the key-range partials of split attention: rows (t, h) of `out`.
template <typename T>
__device__ void attention_combine_impl(const float *pm, const float *pl, const float *po, T *out, long os, int splits, int Dv) {
    long row = blockIdx.x;
    float M = neg_inf();
    for (int s = 0; s < splits; s++) M = fmaxf(M, pm[row * splits + s]);
    float L = 0.f;
    if (M != neg_inf()) for (int s = 0; s < splits; s++) if (pm[row * splits + s] != neg_inf()) L += pl[row * splits + s] * expf(pm[row * splits + s] - M);
    for (int c = threadIdx.x; c < Dv; c += blockDim.x) {
        float o = 0.f;
        if (L > 0.f) {
            for (int s = 0; s < splits; s++) {
                float ms = pm[row * splits + s];
                if (ms != neg_inf()) o += po[(row * splits + s) * Dv + c] * expf(ms - M);
            }
            o /= L;
        }
        stf(out, row * os + c, o);
    }
}

#define MLA_HEADS 4

/// MLA in latent form over cache rows [L latent | R rope]. EL, ER: elements per lane.
template <typename T, int EL, int ER>
__device__ void latent_attention_impl(const T *ql, long qls, const T *qr, long qrs, const T *cache, T *out, long os,
                                      const int *queryStart, const int *contextLengths, const int *tables, int tableWidth,
                                      int blockSize, int numSeqs, int heads, int L, int R, float scale,
                                      int chunkLen, float *pm, float *pl, float *po) {
    __shared__ float sm[ATTN_WARPS][MLA_HEADS], sl[ATTN_WARPS][MLA_HEADS];
    __shared__ float so[MLA_HEADS][EL * 32];
    int t = blockIdx.x, split = blockIdx.z, splits = gridDim.z;
    int h0 = blockIdx.y * MLA_HEADS;
    int nh = imin(MLA_HEADS, heads - h0);
    if (nh <= 0) return;
    int s = sequence_of(queryStart, numSeqs, t);
    int end = queryStart[s + 1], ctx = contextLengths[s];
    int visible = imax(0, imin(ctx - (end - t) + 1, ctx));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

    float qa[MLA_HEADS][EL], qb[MLA_HEADS][ER], acc[MLA_HEADS][EL], m[MLA_HEADS], l[MLA_HEADS];
#pragma unroll
    for (int g = 0; g < MLA_HEADS; g++) {
        m[g] = neg_inf(); l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < EL; e++) {
            int i = lane + 32 * e;
            qa[g][e] = (g < nh && i < L) ? ldf(ql, ((long)t * heads + h0 + g) * qls + i) : 0.f;
            acc[g][e] = 0.f;
        }
#pragma unroll
        for (int e = 0; e < ER; e++) {
            int i = lane + 32 * e;
            qb[g][e] = (g < nh && i < R) ? ldf(qr, ((long)t * heads + h0 + g) * qrs + i) : 0.f;
        }
    }
    const int *table = tables + (long)s * tableWidth;
    int jEnd = imin(visible, (split + 1) * chunkLen);
    for (int j = split * chunkLen + warp; j < jEnd; j += warps) {
        long slot = (long)table[j / blockSize] * blockSize + j % blockSize;
        const T *row = cache + slot * (long)(L + R);
        float c[EL], r[ER];
#pragma unroll
        for (int e = 0; e < EL; e++) { int i = lane + 32 * e; c[e] = i < L ? ldf(row, i) : 0.f; }
#pragma unroll
        for (int e = 0; e < ER; e++) { int i = lane + 32 * e; r[e] = i < R ? ldf(row, L + i) : 0.f; }
#pragma unroll
        for (int g = 0; g < MLA_HEADS; g++) {
            float d = 0.f, dr = 0.f;
#pragma unroll
            for (int e = 0; e < EL; e++) d += qa[g][e] * c[e];
#pragma unroll
            for (int e = 0; e < ER; e++) dr += qb[g][e] * r[e];
            float score = warp_sum(d + dr) * scale;
            float mn = fmaxf(m[g], score);
            float correction = expf(m[g] - mn);
            float p = expf(score - mn);
            l[g] = l[g] * correction + p;
#pragma unroll
            for (int e = 0; e < EL; e++) acc[g][e] = acc[g][e] * correction + p * c[e];
            m[g] = mn;
        }
    }
    attention_block_finish<T, MLA_HEADS, EL>(m, l, acc, sm, sl, so, nh, L, t, heads, h0, split, splits, pm, pl, po, out, os);
}
"""#

    /// Per-lane element counts compiled for standard attention (head dims up to 256) and
    /// MLA (latent up to 512, rope up to 64).
    static let attentionEPL = [1, 2, 4, 8]
    static let latentEL = [1, 2, 4, 8, 16]
    static let latentER = [1, 2]

    static var wrappers: String {
        var text = #"""
extern "C" __global__ void prepare_qkv_$S(const $T *qkv, long qs, int heads, int kvHeads, int D, const $T *qNorm, const $T *kNorm,
                                          float eps, const int *positions, const float *inv, int half, float factor, int interleaved,
                                          $T *query, $T *kc, $T *vc, const int *slots, long capacity) {
    prepare_qkv_impl<$T>(qkv, qs, heads, kvHeads, D, qNorm, kNorm, eps, positions, inv, half, factor, interleaved, query, kc, vc, slots, capacity);
}
extern "C" __global__ void write_kv_$S(const $T *key, const $T *value, $T *kc, $T *vc, const int *slots,
                                       int kRow, int vRow, long capacity) {
    write_kv_impl<$T>(key, value, kc, vc, slots, kRow, vRow, capacity);
}
extern "C" __global__ void write_latent_kv_$S(const $T *latent, long ls, const $T *rope, long rs, $T *cache, const int *slots,
                                              int L, int R, long capacity) {
    write_latent_kv_impl<$T>(latent, ls, rope, rs, cache, slots, L, R, capacity);
}
extern "C" __global__ void gather_context_$S(const $T *cache, int W, long capacity, const int *tables, int tableWidth, int blockSize,
                                              const int *contextLengths, const int *contextStart, $T *out, long os) {
    gather_context_impl<$T>(cache, W, capacity, tables, tableWidth, blockSize, contextLengths, contextStart, out, os);
}
extern "C" __global__ void attention_combine_$S(const float *pm, const float *pl, const float *po, $T *out, long os, int splits, int Dv) {
    attention_combine_impl<$T>(pm, pl, po, out, os, splits, Dv);
}

"""#
        for e in attentionEPL {
            text += """
            extern "C" __global__ void __launch_bounds__(256) paged_attention_$S_e\(e)(const $T *q, long qs, const $T *kc, const $T *vc, $T *out, long os,
                const int *queryStart, const int *contextLengths, const int *tables, int tableWidth,
                int blockSize, int numSeqs, int heads, int kvHeads, int D, int Dv, float scale,
                int groupChunks, int chunkLen, float *pm, float *pl, float *po) {
                paged_attention_impl<$T, \(e)>(q, qs, kc, vc, out, os, queryStart, contextLengths, tables, tableWidth,
                                               blockSize, numSeqs, heads, kvHeads, D, Dv, scale, groupChunks, chunkLen, pm, pl, po);
            }

            """
        }
        for el in latentEL {
            for er in latentER {
                text += """
                extern "C" __global__ void __launch_bounds__(256) latent_attention_$S_l\(el)_r\(er)(const $T *ql, long qls, const $T *qr, long qrs,
                    const $T *cache, $T *out, long os, const int *queryStart, const int *contextLengths, const int *tables,
                    int tableWidth, int blockSize, int numSeqs, int heads, int L, int R, float scale,
                    int chunkLen, float *pm, float *pl, float *po) {
                    latent_attention_impl<$T, \(el), \(er)>(ql, qls, qr, qrs, cache, out, os, queryStart, contextLengths, tables,
                                                          tableWidth, blockSize, numSeqs, heads, L, R, scale, chunkLen, pm, pl, po);
                }

                """
            }
        }
        return text
    }
}
