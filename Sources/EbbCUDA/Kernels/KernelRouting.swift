/// MoE kernels: top-k routing (one warp per token), expert mapping, stable grouping by
/// slot (one block, counting sort), weighted scatter-add (gather form: deterministic, in
/// the CPU's order). Mirrors `CPUBackend+Routing.swift`.
enum KernelRouting {
    static let templates = #"""
#define ROUTE_WARPS 4

/// Dynamic shared memory: ROUTE_WARPS * 3 * E floats.
template <typename T, typename B>
__device__ void route_topk_impl(const T *logits, long ls, const B *bias, int *ids, float *weights, int tokens, int E, int k,
                                int sigmoid, int normalize, int groups, int topKGroups, int topTwo, float scaling) {
    extern __shared__ float routeShared[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int t = blockIdx.x * ROUTE_WARPS + warp;
    if (t >= tokens) return;
    float *scores = routeShared + warp * 3 * E;
    float *choice = scores + E;
    float *taken = choice + E;
    const T *row = logits + (long)t * ls;
    if (sigmoid) {
        for (int e = lane; e < E; e += 32) scores[e] = 1.f / (1.f + expf(-ldf(row, e)));
    } else {
        float m = neg_inf();
        for (int e = lane; e < E; e += 32) m = fmaxf(m, ldf(row, e));
        m = warp_max(m);
        float sum = 0.f;
        for (int e = lane; e < E; e += 32) { float v = expf(ldf(row, e) - m); scores[e] = v; sum += v; }
        sum = warp_sum(sum);
        __syncwarp();
        for (int e = lane; e < E; e += 32) scores[e] = scores[e] / sum;
    }
    for (int e = lane; e < E; e += 32) { choice[e] = scores[e] + (bias ? ldf(bias, e) : 0.f); taken[e] = 0.f; }
    __syncwarp();
    if (groups > 1 && topKGroups < groups) {
        int perGroup = E / groups;
        float gscore = neg_inf();
        if (lane < groups) {
            float best = neg_inf(), second = neg_inf();
            for (int e = lane * perGroup; e < (lane + 1) * perGroup; e++) {
                float v = choice[e];
                if (v > best) { second = best; best = v; } else if (v > second) { second = v; }
            }
            gscore = (topTwo && perGroup >= 2) ? best + second : best;
        }
        unsigned keep = 0;
        for (int round = 0; round < topKGroups; round++) {
            bool candidate = lane < groups && !((keep >> lane) & 1u);
            float v = candidate ? gscore : neg_inf();
            int i = candidate ? lane : -1;
            warp_argmax(v, i);
            if (i >= 0) keep |= 1u << i;
        }
        __syncwarp();
        for (int e = lane; e < E; e += 32) if (!((keep >> (e / perGroup)) & 1u)) choice[e] = neg_inf();
        __syncwarp();
    }
    float sum = 0.f;
    for (int slot = 0; slot < k; slot++) {
        float v = neg_inf(); int best = -1;
        for (int e = lane; e < E; e += 32) {
            if (taken[e] == 0.f && (best < 0 || choice[e] > v)) { best = e; v = choice[e]; }
        }
        warp_argmax(v, best);
        __syncwarp();
        if (lane == 0 && best >= 0) {
            taken[best] = 1.f;
            ids[(long)t * k + slot] = best;
            weights[(long)t * k + slot] = scores[best];
            sum += scores[best];
        }
        __syncwarp();
    }
    if (lane == 0) {
        float denominator = sigmoid ? sum + 1e-20f : sum;
        for (int slot = 0; slot < k; slot++) {
            float w = weights[(long)t * k + slot];
            if (normalize) w /= denominator;
            weights[(long)t * k + slot] = w * scaling;
        }
    }
}

/// f32 router logits with a bf16 correction bias (the bias is a bf16 weight).
extern "C" __global__ void route_topk_f32_bias_bf16(const float *logits, long ls, const bf16_t *bias, int *ids, float *weights,
                                                    int tokens, int E, int k, int sigmoid, int normalize, int groups, int topKGroups,
                                                    int topTwo, float scaling) {
    route_topk_impl<float, bf16_t>(logits, ls, bias, ids, weights, tokens, E, k, sigmoid, normalize, groups, topKGroups, topTwo, scaling);
}

/// out[rowIndex[i]] += weight[i] * x[i], as a gather: for each output row, the entries
/// `perm[offsets[r] ..< offsets[r+1]]` (ascending i) are added in order.
template <typename T>
__device__ void scatter_gather_add_impl(const T *x, long xs, const int *perm, const int *offsets, const float *weight,
                                        T *out, long os, int d) {
    long r = blockIdx.x;
    int begin = offsets[r], end = offsets[r + 1];
    if (begin >= end) return;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = ldf(out, r * os + c);
        for (int p = begin; p < end; p++) {
            int i = perm[p];
            acc += weight[i] * ldf(x, (long)i * xs + c);
        }
        stf(out, r * os + c, acc);
    }
}

/// The same sums for a decode step's few entries (n <= 512), in one kernel: block r's warp 0
/// lists the entries i with rowIndex[i] == r in ascending order (ballots), then every
/// thread adds them to its columns in that order, as scatter_gather_add does.
template <typename T>
__device__ void scatter_add_listed_impl(const T *x, long xs, const int *rowIndex, const float *weight, int n, T *out, long os, int d) {
    __shared__ int hits[512];
    __shared__ int hitCount;
    int row = blockIdx.x;
    if (threadIdx.x < 32) {
        int lane = threadIdx.x, count = 0;
        for (int base = 0; base < n; base += 32) {
            int i = base + lane;
            bool match = i < n && rowIndex[i] == row;
            unsigned mask = __ballot_sync(0xffffffffu, match);
            if (match) hits[count + __popc(mask & ((1u << lane) - 1u))] = i;
            count += __popc(mask);
        }
        if (lane == 0) hitCount = count;
    }
    __syncthreads();
    int count = hitCount;
    if (count == 0) return;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = ldf(out, (long)row * os + c);
        for (int j = 0; j < count; j++) {
            int i = hits[j];
            acc += weight[i] * ldf(x, (long)i * xs + c);
        }
        stf(out, (long)row * os + c, acc);
    }
}

/// Grouped x · Wᵀ for rows of few tokens per expert: one warp per output column, the
/// weight row read once per group of GEMV_ROWS rows. Grid (ceil(N / 8), E), 256 threads.
#define GEMV_ROWS 4
/// The `k`-th group (in index order) with rows, from `offsets[E + 1]`; -1 when fewer
/// groups have rows. Warp 0 scans 32 groups at a time with ballots; every thread of the
/// block gets the answer. A grouped GEMV launches one block row per group that can have
/// rows (at most the row count) instead of one per expert, so a decode step with a few
/// tokens does not schedule thousands of empty blocks.
__device__ int kth_nonempty_group(const int *offsets, int E, int k) {
    __shared__ int found;
    if (threadIdx.x < 32) {
        int lane = threadIdx.x, base = 0, result = -1;
        // 256 groups at a time: every load issued before the first ballot.
        for (int e0 = 0; e0 < E && result < 0; e0 += 256) {
            int lo[8], hi[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                int e = e0 + j * 32 + lane;
                lo[j] = e < E ? offsets[e] : 0;
                hi[j] = e < E ? offsets[e + 1] : 0;
            }
#pragma unroll
            for (int j = 0; j < 8; j++) {
                unsigned mask = __ballot_sync(0xffffffffu, lo[j] < hi[j]);
                int count = __popc(mask);
                if (result < 0 && k < base + count) {
                    int before = __popc(mask & ((1u << lane) - 1u));
                    unsigned hit = __ballot_sync(0xffffffffu, lo[j] < hi[j] && before == k - base);
                    result = e0 + j * 32 + __ffs(hit) - 1;
                }
                base += count;
            }
        }
        if (lane == 0) found = result;
    }
    __syncthreads();
    return found;
}

template <typename T>
__device__ void grouped_gemv_impl(const T *x, long xs, const int *rowIndex, const T *W, const int *offsets, T *out, long os, int N, int K, int E) {
    int e = kth_nonempty_group(offsets, E, blockIdx.y);
    int n = blockIdx.x * 8 + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (e < 0 || n >= N) return;
    int start = offsets[e], end = offsets[e + 1];
    const T *w = W + ((long)e * N + n) * K;
    for (int r0 = start; r0 < end; r0 += GEMV_ROWS) {
        float acc[GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) acc[r] = 0.f;
        for (int k = lane; k < K; k += 32) {
            float wv = ldf(w, k);
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) if (r0 + r < end) acc[r] += wv * ldf(x, (long)source_row(rowIndex, r0 + r) * xs + k);
        }
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            float v = warp_sum(acc[r]);
            if (lane == 0 && r0 + r < end) stf(out, (long)(r0 + r) * os + n, v);
        }
    }
}

/// Dot product of 8 bf16 pairs (two 16-byte chunks), in f32.
__device__ __forceinline__ float dot8(const U4 &a, const U4 &b) {
    float s = 0.f;
    s += __uint_as_float(a.x << 16) * __uint_as_float(b.x << 16) + __uint_as_float(a.x & 0xffff0000u) * __uint_as_float(b.x & 0xffff0000u);
    s += __uint_as_float(a.y << 16) * __uint_as_float(b.y << 16) + __uint_as_float(a.y & 0xffff0000u) * __uint_as_float(b.y & 0xffff0000u);
    s += __uint_as_float(a.z << 16) * __uint_as_float(b.z << 16) + __uint_as_float(a.z & 0xffff0000u) * __uint_as_float(b.z & 0xffff0000u);
    s += __uint_as_float(a.w << 16) * __uint_as_float(b.w << 16) + __uint_as_float(a.w & 0xffff0000u) * __uint_as_float(b.w & 0xffff0000u);
    return s;
}
/// 16 bytes of a stream read once (weights): not kept in L1.
__device__ __forceinline__ U4 load_stream(const U4 *p) {
    U4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

/// Chunk c (8 values) of x row `xr`: the bf16 row itself, or silu(gate) · up from a row of
/// 2K values (gate first), each product rounded to bf16 as silu_mul stores it.
template <bool SWIGLU>
__device__ __forceinline__ U4 x_chunk(const bf16_t *xr, int c, int K) {
    if (!SWIGLU) return ((const U4 *)xr)[c];
    U4 g = ((const U4 *)xr)[c], u = ((const U4 *)(xr + K))[c];
    unsigned gw[4] = {g.x, g.y, g.z, g.w}, uw[4] = {u.x, u.y, u.z, u.w}, r[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float g0 = __uint_as_float(gw[j] << 16), g1 = __uint_as_float(gw[j] & 0xffff0000u);
        float u0 = __uint_as_float(uw[j] << 16), u1 = __uint_as_float(uw[j] & 0xffff0000u);
        r[j] = (unsigned)f2bf((g0 / (1.f + expf(-g0))) * u0) | ((unsigned)f2bf((g1 / (1.f + expf(-g1))) * u1) << 16);
    }
    return U4{r[0], r[1], r[2], r[3]};
}

/// acc[r][j] += (x row xr[r]) · (weight row j) for j = 0, 1 and the first `count` (at most R)
/// rows, over this lane's 16-byte chunks of K. Each lane keeps eight weight loads in
/// flight (four chunks of both rows) before it multiplies, so weights stream at close to
/// bandwidth. K % 8 == 0; rows 16-byte aligned.
template <int R, bool SWIGLU>
__device__ __forceinline__ void gemv_two_columns(float (*acc)[2], const bf16_t *const *xr, int count, const U4 *w0, const U4 *w1, int K) {
    int chunks = K >> 3, c = threadIdx.x & 31;
    for (; c + 96 < chunks; c += 128) {
        U4 a[4], b[4];
#pragma unroll
        for (int u = 0; u < 4; u++) { a[u] = load_stream(w0 + c + 32 * u); b[u] = load_stream(w1 + c + 32 * u); }
#pragma unroll
        for (int u = 0; u < 4; u++)
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (r < count) {
                    U4 xv = x_chunk<SWIGLU>(xr[r], c + 32 * u, K);
                    acc[r][0] += dot8(a[u], xv);
                    acc[r][1] += dot8(b[u], xv);
                }
            }
    }
    for (; c < chunks; c += 32) {
        U4 a = load_stream(w0 + c), b = load_stream(w1 + c);
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (r < count) {
                U4 xv = x_chunk<SWIGLU>(xr[r], c, K);
                acc[r][0] += dot8(a, xv);
                acc[r][1] += dot8(b, xv);
            }
        }
    }
}

/// Dense x · Wᵀ for up to R rows (decode steps): bf16 W [N, K] (row stride ws), bf16 x, f32
/// accumulation, f32 or bf16 out. One warp per two output columns; 128 threads, grid
/// ceil(N / 8).
template <int R, typename TO>
__device__ void gemv_rows_impl(const bf16_t *x, long xs, const bf16_t *W, long ws, TO *out, long os, int M, int N, int K) {
    int n0 = (blockIdx.x * 4 + (threadIdx.x >> 5)) * 2, lane = threadIdx.x & 31;
    if (n0 >= N) return;
    bool two = n0 + 1 < N;
    float acc[R][2];
#pragma unroll
    for (int r = 0; r < R; r++) { acc[r][0] = 0.f; acc[r][1] = 0.f; }
    const bf16_t *xr[R];
#pragma unroll
    for (int r = 0; r < R; r++) xr[r] = x + (long)(r < M ? r : 0) * xs;
    gemv_two_columns<R, false>(acc, xr, M, (const U4 *)(W + (long)n0 * ws), (const U4 *)(W + (long)(two ? n0 + 1 : n0) * ws), K);
#pragma unroll
    for (int r = 0; r < R; r++) {
        float v0 = warp_sum(acc[r][0]), v1 = warp_sum(acc[r][1]);
        if (lane == 0 && r < M) {
            stf(out, (long)r * os + n0, v0);
            if (two) stf(out, (long)r * os + n0 + 1, v1);
        }
    }
}

/// The grouped GEMV in bf16 (K % 8 == 0, rows 16-byte aligned): one warp per two output
/// columns of one expert, GEMV_ROWS of its rows at a time; grid (ceil(N / 16), groups that
/// can have rows), 256 threads. With SWIGLU, x rows hold 2K values (gate, up) and the
/// activation is applied as they are read (the expert MLP's down projection).
template <bool SWIGLU>
__device__ void grouped_gemv_vec_impl(const bf16_t *x, long xs, const int *rowIndex, const bf16_t *W, const int *offsets, bf16_t *out,
                                      long os, int N, int K, int E) {
    int e = kth_nonempty_group(offsets, E, blockIdx.y);
    int n0 = (blockIdx.x * 8 + (threadIdx.x >> 5)) * 2, lane = threadIdx.x & 31;
    if (e < 0 || n0 >= N) return;
    bool two = n0 + 1 < N;
    int start = offsets[e], end = offsets[e + 1];
    const U4 *w0 = (const U4 *)(W + ((long)e * N + n0) * K), *w1 = (const U4 *)(W + ((long)e * N + (two ? n0 + 1 : n0)) * K);
    for (int r0 = start; r0 < end; r0 += GEMV_ROWS) {
        float acc[GEMV_ROWS][2];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) { acc[r][0] = 0.f; acc[r][1] = 0.f; }
        const bf16_t *xr[GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) xr[r] = x + (long)source_row(rowIndex, r0 + r < end ? r0 + r : r0) * xs;
        gemv_two_columns<GEMV_ROWS, SWIGLU>(acc, xr, end - r0, w0, w1, K);
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            float v0 = warp_sum(acc[r][0]), v1 = warp_sum(acc[r][1]);
            if (lane == 0 && r0 + r < end) {
                out[(long)(r0 + r) * os + n0] = f2bf(v0);
                if (two) out[(long)(r0 + r) * os + n0 + 1] = f2bf(v1);
            }
        }
    }
}
extern "C" __global__ void __launch_bounds__(256) grouped_gemv_vec_bf16(const bf16_t *x, long xs, const int *rowIndex, const bf16_t *W,
                                                                      const int *offsets, bf16_t *out, long os, int N, int K, int E) {
    grouped_gemv_vec_impl<false>(x, xs, rowIndex, W, offsets, out, os, N, K, E);
}
extern "C" __global__ void __launch_bounds__(256) grouped_gemv_swiglu_bf16(const bf16_t *x, long xs, const bf16_t *W, const int *offsets,
                                                                         bf16_t *out, long os, int N, int K, int E) {
    grouped_gemv_vec_impl<true>(x, xs, nullptr, W, offsets, out, os, N, K, E);
}


extern "C" __global__ void map_experts(const int *logical, const int *table, int width, const int *counts, int E,
                                       int slotBase, int slotCount, int *out, long pairs, int k) {
    for (long p = blockIdx.x * (long)blockDim.x + threadIdx.x; p < pairs; p += (long)gridDim.x * blockDim.x) {
        long t = p / k;
        int e = logical[p];
        int result = -1;
        if (e >= 0 && e < E) {
            int count = counts[e];
            if (count > 0) {
                int replica = (int)(t % (count < width ? count : width));
                int slot = table[(long)e * width + replica] - slotBase;
                if (slot >= 0 && slot < slotCount) result = slot;
            }
        }
        out[p] = result;
    }
}

/// One warp places keys start ..< end in order: key i (bucket b; numKeys for keys outside
/// 0..<numKeys) goes to position cursor[b · stride] (then advanced), outIndex = i / divisor
/// (-1 unplaced), wOut = its weight (0 unplaced). Lanes with equal buckets take consecutive
/// positions in lane order (match_any), so the placement is stable.
__device__ void place_run(const int *keys, int start, int end, int numKeys, int divisor, int *cursor, long stride,
                          const float *wIn, int *outIndex, float *wOut) {
    int lane = threadIdx.x & 31;
    for (int base = start; base < end; base += 32) {
        int i = base + lane;
        bool valid = i < end;
        int b = -1;
        if (valid) { b = keys[i]; if (b < 0 || b >= numKeys) b = numKeys; }
        unsigned peers = __match_any_sync(0xffffffffu, b);
        int rank = __popc(peers & ((1u << lane) - 1u));
        int at = valid ? cursor[b * stride] : 0;
        __syncwarp();
        if (valid) {
            int pos = at + rank;
            bool placed = b < numKeys;
            outIndex[pos] = placed ? i / divisor : -1;
            if (wOut) wOut[pos] = placed ? wIn[i] : 0.f;
            if (lane == __ffs(peers) - 1) cursor[b * stride] = at + __popc(peers);
        }
        __syncwarp();
    }
}

/// Stable counting sort of n keys into numKeys buckets (+1 for keys outside 0..<numKeys,
/// placed last). One block of 1024 threads; dynamic shared memory (numKeys + 1) ints.
/// outIndex[pos] = i / divisor for placed keys, -1 for the rest; wOut likewise (0).
/// offsets[b] = start of bucket b for b in 0...numKeys.
extern "C" __global__ void __launch_bounds__(1024) group_stable(const int *keys, int n, int numKeys, int divisor,
                                                               const float *wIn, int *outIndex, float *wOut, int *offsets) {
    extern __shared__ int cursor[];
    int S = numKeys + 1;
    for (int i = threadIdx.x; i < S; i += blockDim.x) cursor[i] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        int b = keys[i];
        if (b < 0 || b >= numKeys) b = numKeys;
        atomicAdd(&cursor[b], 1);
    }
    __syncthreads();
    int per = (S + blockDim.x - 1) / blockDim.x;
    int first = threadIdx.x * per;
    int local = 0;
    for (int i = first; i < first + per && i < S; i++) local += cursor[i];
    int total = 0;
    int running = block_exclusive_scan(local, &total);
    __syncthreads();
    for (int i = first; i < first + per && i < S; i++) {
        int c = cursor[i];
        cursor[i] = running;
        offsets[i] = running;
        running += c;
    }
    __syncthreads();
    if (threadIdx.x < 32) place_run(keys, 0, n, numKeys, divisor, cursor, 1, wIn, outIndex, wOut);
}

/// The same stable counting sort for many keys, in three launches over all SMs: the n keys
/// are cut into `chunks` runs of `chunk` keys, one warp each; `counts` is a scratch matrix
/// of (numKeys + 1) buckets × chunks, bucket-major, so an exclusive scan over it gives each
/// run its first position in each bucket. Same outputs as group_stable.
/// 1. Warp c counts run c's keys per bucket into counts[b * chunks + c].
extern "C" __global__ void group_chunk_count(const int *keys, int n, int numKeys, int chunk, int chunks, int *counts) {
    int warp = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (warp >= chunks) return;
    for (int b = lane; b <= numKeys; b += 32) counts[(long)b * chunks + warp] = 0;
    __syncwarp();
    int start = warp * chunk, end = imin(n, start + chunk);
    for (int base = start; base < end; base += 32) {
        int i = base + lane;
        int b = -1;
        if (i < end) { b = keys[i]; if (b < 0 || b >= numKeys) b = numKeys; }
        unsigned peers = __match_any_sync(0xffffffffu, b);
        if (i < end && lane == __ffs(peers) - 1) counts[(long)b * chunks + warp] += __popc(peers);
        __syncwarp();
    }
}
/// 2. One block: exclusive scan of counts in place (4 entries a thread per pass);
/// offsets[b] = the scanned counts[b * chunks].
extern "C" __global__ void __launch_bounds__(1024) group_chunk_scan(int *counts, int total, int chunks, int *offsets) {
    int carry = 0;
    for (int t0 = 0; t0 < total; t0 += blockDim.x * 4) {
        int first = t0 + threadIdx.x * 4;
        int v[4], local = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) { v[j] = first + j < total ? counts[first + j] : 0; local += v[j]; }
        int sum = 0;
        int running = carry + block_exclusive_scan(local, &sum);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int i = first + j;
            if (i < total) {
                counts[i] = running;
                if (i % chunks == 0) offsets[i / chunks] = running;
            }
            running += v[j];
        }
        carry += sum;
    }
}
/// 3. Warp c places run c's keys from its scanned cursors, in order.
extern "C" __global__ void group_chunk_place(const int *keys, int n, int numKeys, int divisor, int chunk, int chunks, int *counts,
                                             const float *wIn, int *outIndex, float *wOut) {
    int warp = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    if (warp >= chunks) return;
    place_run(keys, warp * chunk, imin(n, warp * chunk + chunk), numKeys, divisor, counts + warp, chunks, wIn, outIndex, wOut);
}

// Expert-parallel exchange with fixed sizes (see Backend.combinePairs and friends).
extern "C" __global__ void mask_pairs(int *slots, const int *mask, long tokens, int k) {
    for (long p = blockIdx.x * (long)blockDim.x + threadIdx.x; p < tokens * k; p += (long)gridDim.x * blockDim.x) {
        if (mask[p / k] < 0) slots[p] = -1;
    }
}
extern "C" __global__ void rebase_slots(const int *slots, int base, int count, int *out, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int s = slots[i];
        int r = s - base;
        out[i] = (s >= 0 && r >= 0 && r < count) ? r : -1;
    }
}
extern "C" __global__ void count_slots(const int *slots, long n, int *counts, int numSlots) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int s = slots[i];
        if (s >= 0 && s < numSlots) atomicAdd(&counts[s], 1);
    }
}
template <typename T>
__device__ void scatter_rows_impl(const T *x, long xs, const int *rowIndex, T *out, long os, long outRows, int d) {
    long i = blockIdx.x;
    int r = rowIndex[i];
    if (r < 0 || r >= outRows) return;
    for (int c = threadIdx.x; c < d; c += blockDim.x) out[(long)r * os + c] = x[i * xs + c];
}
/// One block per token; the token's pairs sorted by logical expert (k ≤ 32) by thread 0.
template <typename T>
__device__ void combine_pairs_impl(const T *x, long xs, long xRows, const int *slots, const int *logical, const float *weights,
                                   int k, int slotsPerRank, long pairsPerRank, T *out, long os, int d) {
    __shared__ long rows[32];
    __shared__ float w[32];
    __shared__ int n;
    long t = blockIdx.x;
    if (threadIdx.x == 0) {
        int order[32];
        int count = 0;
        for (int j = 0; j < k && j < 32; j++) {
            long p = t * k + j;
            if (slots[p] < 0) continue;
            int at = count;
            while (at > 0 && logical[t * k + order[at - 1]] > logical[p]) { order[at] = order[at - 1]; at--; }
            order[at] = j;
            count++;
        }
        int used = 0;
        for (int i = 0; i < count; i++) {
            long p = t * k + order[i];
            long row = (long)(slots[p] / slotsPerRank) * pairsPerRank + p;
            if (row >= xRows) continue;
            rows[used] = row;
            w[used] = weights[p];
            used++;
        }
        n = used;
    }
    __syncthreads();
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.f;
        for (int i = 0; i < n; i++) acc += w[i] * ldf(x, rows[i] * xs + c);
        stf(out, t * os + c, acc);
    }
}
"""#

    /// Row counts `gemv_rows` is compiled for (a step's rows round up to the next).
    static let gemvRowCounts = [1, 2, 4, 8]

    static let wrappers: String = {
        var text = wrapperTemplates
        for r in gemvRowCounts {
            text += """
            extern "C" __global__ void __launch_bounds__(128) gemv_rows\(r)_bf16_$S(const bf16_t *x, long xs, const bf16_t *W, long ws, $T *out, long os, int M, int N, int K) {
                gemv_rows_impl<\(r), $T>(x, xs, W, ws, out, os, M, N, K);
            }

            """
        }
        return text
    }()

    static let wrapperTemplates = #"""
extern "C" __global__ void route_topk_$S(const $T *logits, long ls, const $T *bias, int *ids, float *weights, int tokens, int E, int k,
                                         int sigmoid, int normalize, int groups, int topKGroups, int topTwo, float scaling) {
    route_topk_impl<$T, $T>(logits, ls, bias, ids, weights, tokens, E, k, sigmoid, normalize, groups, topKGroups, topTwo, scaling);
}
extern "C" __global__ void scatter_add_listed_$S(const $T *x, long xs, const int *rowIndex, const float *weight, int n,
                                                  $T *out, long os, int d) {
    scatter_add_listed_impl<$T>(x, xs, rowIndex, weight, n, out, os, d);
}
extern "C" __global__ void scatter_gather_add_$S(const $T *x, long xs, const int *perm, const int *offsets, const float *weight,
                                                 $T *out, long os, int d) {
    scatter_gather_add_impl<$T>(x, xs, perm, offsets, weight, out, os, d);
}
extern "C" __global__ void __launch_bounds__(256) grouped_gemv_$S(const $T *x, long xs, const int *rowIndex, const $T *W, const int *offsets, $T *out, long os,
                                                                  int N, int K, int E) {
    grouped_gemv_impl<$T>(x, xs, rowIndex, W, offsets, out, os, N, K, E);
}
extern "C" __global__ void scatter_rows_$S(const $T *x, long xs, const int *rowIndex, $T *out, long os, long outRows, int d) {
    scatter_rows_impl<$T>(x, xs, rowIndex, out, os, outRows, d);
}
extern "C" __global__ void combine_pairs_$S(const $T *x, long xs, long xRows, const int *slots, const int *logical, const float *weights,
                                          int k, int slotsPerRank, long pairsPerRank, $T *out, long os, int d) {
    combine_pairs_impl<$T>(x, xs, xRows, slots, logical, weights, k, slotsPerRank, pairsPerRank, out, os, d);
}
"""#
}
