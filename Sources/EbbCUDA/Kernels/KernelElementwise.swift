/// Elementwise, normalization, rope, embedding, arg-max and row-gather kernels. Templates
/// over the storage type `T` (float or bf16_t); arithmetic is f32. Mirrors
/// `CPUBackend+Math.swift`.
enum KernelElementwise {
    static let templates = #"""
extern "C" __global__ void fill_u32(unsigned *p, long rows, int cols, long stride, unsigned pattern) {
    long n = rows * (long)cols;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long r = i / cols; int c = (int)(i - r * cols);
        p[r * stride + c] = pattern;
    }
}
extern "C" __global__ void fill_u16(unsigned short *p, long rows, int cols, long stride, unsigned pattern) {
    long n = rows * (long)cols;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long r = i / cols; int c = (int)(i - r * cols);
        p[r * stride + c] = (unsigned short)pattern;
    }
}
extern "C" __global__ void copy_u32(const unsigned *src, long srcStride, unsigned *dst, long dstStride, long rows, int cols) {
    long n = rows * (long)cols;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long r = i / cols; int c = (int)(i - r * cols);
        dst[r * dstStride + c] = src[r * srcStride + c];
    }
}
extern "C" __global__ void copy_u16(const unsigned short *src, long srcStride, unsigned short *dst, long dstStride, long rows, int cols) {
    long n = rows * (long)cols;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long r = i / cols; int c = (int)(i - r * cols);
        dst[r * dstStride + c] = src[r * srcStride + c];
    }
}

/// Uniform values in [-bound, bound] from a hash of (seed, index): dummy weights. The
/// SplitMix64 sequence `RandomWeights` draws on the host, element i being its (i+1)-th draw.
__device__ __forceinline__ float uniform_at(unsigned long long seed, long i, float bound) {
    unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float unit = (float)(z >> 40) * (1.0f / 16777216.0f);
    return (unit * 2.f - 1.f) * bound;
}
extern "C" __global__ void fill_uniform_bf16(bf16_t *p, long n, unsigned long long seed, float bound) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        p[i] = f2bf(uniform_at(seed, i, bound));
}
extern "C" __global__ void fill_uniform_f32(float *p, long n, unsigned long long seed, float bound) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        p[i] = uniform_at(seed, i, bound);
}

template <typename T, typename TO = T>
__device__ void rms_norm_impl(const T *x, long xs, const TO *w, TO *out, long os, int d, float eps) {
    long r = blockIdx.x;
    const T *src = x + r * xs;
    TO *dst = out + r * os;
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) { float v = ldf(src, i); s += v * v; }
    s = block_sum(s);
    float inv = 1.f / sqrtf(s / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) stf(dst, i, ldf(w, i) * (ldf(src, i) * inv));
}

/// `x += b` then `out = rmsNorm(x)`, one block per row; the sum runs in `rms_norm_impl`'s
/// order over the stored (rounded) values, so the result equals `add` then `rms_norm`.
template <typename T, typename TB, typename TO>
__device__ void add_rms_norm_impl(T *x, long xs, const TB *b, long bs, const TO *w, TO *out, long os, int d, float eps) {
    long r = blockIdx.x;
    T *row = x + r * xs;
    const TB *br = b + r * bs;
    TO *dst = out + r * os;
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        stf(row, i, ldf(row, i) + ldf(br, i));
        float v = ldf(row, i);
        s += v * v;
    }
    s = block_sum(s);
    float inv = 1.f / sqrtf(s / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) stf(dst, i, ldf(w, i) * (ldf(row, i) * inv));
}

template <typename T, typename TB = T>
__device__ void add_impl(const T *a, long as, const TB *b, long bs, T *out, long os, long rows, int cols) {
    long n = rows * (long)cols;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long r = i / cols; int c = (int)(i - r * cols);
        stf(out, r * os + c, ldf(a, r * as + c) + ldf(b, r * bs + c));
    }
}

template <typename T>
__device__ void silu_mul_impl(const T *x, long xs, T *out, long os, long rows, int inner) {
    long n = rows * (long)inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long r = i / inner; int c = (int)(i - r * inner);
        float g = ldf(x, r * xs + c);
        stf(out, r * os + c, (g / (1.f + expf(-g))) * ldf(x, r * xs + inner + c));
    }
}

/// x: [tokens, heads, 2*half] rows `xs` apart. One thread per (row, i < half).
template <typename T>
__device__ void rope_impl(T *x, long xs, int heads, long tokens, const int *positions, const float *inv,
                          int half, float factor, int interleaved) {
    long n = tokens * heads * (long)half;
    for (long k = blockIdx.x * (long)blockDim.x + threadIdx.x; k < n; k += (long)gridDim.x * blockDim.x) {
        long row = k / half; int i = (int)(k - row * half);
        long t = row / heads;
        float angle = (float)positions[t] * inv[i];
        float c = cosf(angle) * factor, s = sinf(angle) * factor;
        T *p = x + row * xs;
        int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
        float a = ldf(p, ia), b = ldf(p, ib);
        stf(p, ia, a * c - b * s);
        stf(p, ib, b * c + a * s);
    }
}

template <typename T, typename TO = T>
__device__ void embedding_impl(const int *ids, const T *table, long ts, int vocab, TO *out, long os, long n, int d) {
    long total = n * (long)d;
    for (long k = blockIdx.x * (long)blockDim.x + threadIdx.x; k < total; k += (long)gridDim.x * blockDim.x) {
        long t = k / d; int c = (int)(k - t * d);
        int id = ids[t];
        stf(out, t * os + c, (id >= 0 && id < vocab) ? ldf(table, (long)id * ts + c) : 0.f);
    }
}

/// One block per row; lowest index among equal maxima; 0 when nothing beats -inf.
template <typename T>
__device__ void argmax_impl(const T *x, long xs, int cols, int *out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    long r = blockIdx.x;
    const T *row = x + r * xs;
    float best = neg_inf(); int index = -1;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = ldf(row, i);
        if (v > best) { best = v; index = i; }
    }
    warp_argmax(best, index);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) { sv[warp] = best; si[warp] = index; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float b = neg_inf(); int ix = -1;
        int warps = (blockDim.x + 31) >> 5;
        for (int w = 0; w < warps; w++) argmax_merge(b, ix, sv[w], si[w]);
        out[r] = ix < 0 ? 0 : ix;
    }
}

template <typename T>
__device__ void gather_rows_impl(const T *x, long xs, long xrows, const int *indices, T *out, long os, long n, int d) {
    long total = n * (long)d;
    for (long k = blockIdx.x * (long)blockDim.x + threadIdx.x; k < total; k += (long)gridDim.x * blockDim.x) {
        long i = k / d; int c = (int)(k - i * d);
        int src = indices[i];
        stf(out, i * os + c, (src >= 0 && src < xrows) ? ldf(x, (long)src * xs + c) : 0.f);
    }
}

/// `RowChecksum` (EbbTensor) of row blockIdx.y: the sum mod 2^64 of mix(column, f32 bits),
/// into out[row] (zeroed before; blocks of a row add with 64-bit atomics).
__device__ __forceinline__ unsigned long long checksum_mix(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
template <typename T>
__device__ void row_checksums_impl(const T *x, long xs, long cols, unsigned long long *out) {
    long r = blockIdx.y;
    unsigned long long sum = 0ull;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < cols; i += (long)gridDim.x * blockDim.x)
        sum += checksum_mix(((unsigned long long)i * 0x9E3779B97F4A7C15ull) ^ (unsigned long long)__float_as_uint(ldf(x, r * xs + i)));
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) atomicAdd(out + r, sum);
}
"""#

    /// Mixed storage for an f32 residual stream beside bf16 activations: the residual
    /// (f32) plus a bf16 branch, its norm into bf16, the embedding into f32.
    static let mixed = #"""
extern "C" __global__ void rms_norm_f32_bf16(const float *x, long xs, const bf16_t *w, bf16_t *out, long os, int d, float eps) {
    rms_norm_impl<float, bf16_t>(x, xs, w, out, os, d, eps);
}
extern "C" __global__ void add_rms_norm_f32_bf16(float *x, long xs, const bf16_t *b, long bs, const bf16_t *w, bf16_t *out, long os, int d, float eps) {
    add_rms_norm_impl<float, bf16_t, bf16_t>(x, xs, b, bs, w, out, os, d, eps);
}
extern "C" __global__ void add_f32_bf16(const float *a, long as, const bf16_t *b, long bs, float *out, long os, long rows, int cols) {
    add_impl<float, bf16_t>(a, as, b, bs, out, os, rows, cols);
}
extern "C" __global__ void embedding_bf16_f32(const int *ids, const bf16_t *table, long ts, int vocab, float *out, long os, long n, int d) {
    embedding_impl<bf16_t, float>(ids, table, ts, vocab, out, os, n, d);
}
"""#

    static let wrappers = #"""
extern "C" __global__ void rms_norm_$S(const $T *x, long xs, const $T *w, $T *out, long os, int d, float eps) {
    rms_norm_impl<$T>(x, xs, w, out, os, d, eps);
}
extern "C" __global__ void add_rms_norm_$S($T *x, long xs, const $T *b, long bs, const $T *w, $T *out, long os, int d, float eps) {
    add_rms_norm_impl<$T, $T, $T>(x, xs, b, bs, w, out, os, d, eps);
}
extern "C" __global__ void add_$S(const $T *a, long as, const $T *b, long bs, $T *out, long os, long rows, int cols) {
    add_impl<$T>(a, as, b, bs, out, os, rows, cols);
}
extern "C" __global__ void silu_mul_$S(const $T *x, long xs, $T *out, long os, long rows, int inner) {
    silu_mul_impl<$T>(x, xs, out, os, rows, inner);
}
extern "C" __global__ void rope_$S($T *x, long xs, int heads, long tokens, const int *positions, const float *inv,
                                   int half, float factor, int interleaved) {
    rope_impl<$T>(x, xs, heads, tokens, positions, inv, half, factor, interleaved);
}
extern "C" __global__ void embedding_$S(const int *ids, const $T *table, long ts, int vocab, $T *out, long os, long n, int d) {
    embedding_impl<$T>(ids, table, ts, vocab, out, os, n, d);
}
extern "C" __global__ void argmax_$S(const $T *x, long xs, int cols, int *out) {
    argmax_impl<$T>(x, xs, cols, out);
}
extern "C" __global__ void gather_rows_$S(const $T *x, long xs, long xrows, const int *indices, $T *out, long os, long n, int d) {
    gather_rows_impl<$T>(x, xs, xrows, indices, out, os, n, d);
}
extern "C" __global__ void row_checksums_$S(const $T *x, long xs, long cols, unsigned long long *out) {
    row_checksums_impl<$T>(x, xs, cols, out);
}
"""#
}
