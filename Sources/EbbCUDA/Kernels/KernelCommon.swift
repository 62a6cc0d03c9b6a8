/// CUDA C shared by every kernel: the bf16 storage type, loads and stores that widen to
/// f32, warp and block reductions. Compiled by NVRTC without any header, so nothing here
/// may include one.
enum KernelCommon {
    static let source = #"""
typedef unsigned short bf16_t;
struct alignas(16) U4 { unsigned x, y, z, w; };

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }

__device__ __forceinline__ float bf2f(unsigned short v) { return __uint_as_float(((unsigned)v) << 16); }
__device__ __forceinline__ unsigned short f2bf(float v) {
    unsigned u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
__device__ __forceinline__ float ldf(const float *p, long i) { return p[i]; }
__device__ __forceinline__ float ldf(const bf16_t *p, long i) { return bf2f(p[i]); }
__device__ __forceinline__ void stf(float *p, long i, float v) { p[i] = v; }
__device__ __forceinline__ void stf(bf16_t *p, long i, float v) { p[i] = f2bf(v); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/// Warp 0 of a block finds the block's tile: group g < count owns rows offsets[g] ..<
/// offsets[g + 1], cut into tiles of `tile` rows in group order, and block `index` takes the
/// index-th tile. Sets *group (−1 past the last tile), *row0 and *rows (shared variables).
__device__ void tile_of_block(const int *offsets, int count, int index, int tile, int *group, int *row0, int *rows) {
    int lane = threadIdx.x & 31;
    int carry = 0;
    if (lane == 0) *group = -1;
    __syncwarp();
    for (int base = 0; base < count; base += 32) {
        int g = base + lane;
        int st = 0, cnt = 0, tiles = 0;
        if (g < count) { st = offsets[g]; cnt = offsets[g + 1] - st; tiles = cnt > 0 ? (cnt + tile - 1) / tile : 0; }
        int inc = tiles;
        for (int o = 1; o < 32; o <<= 1) { int v = __shfl_up_sync(0xffffffffu, inc, o); if (lane >= o) inc += v; }
        int exc = inc - tiles;
        if (tiles > 0 && index >= carry + exc && index < carry + inc) {
            int first = st + (index - carry - exc) * tile;
            *group = g;
            *row0 = first;
            *rows = imin(tile, st + cnt - first);
        }
        carry += __shfl_sync(0xffffffffu, inc, 31);
    }
}

/// Row r of a grouped product reads x row rowIndex[r] (the gather folded into the load), or
/// row r when there is no index.
__device__ __forceinline__ int source_row(const int *rowIndex, int r) { return rowIndex ? rowIndex[r] : r; }

/// Sum over the block (every thread gets it). Blocks of at most 1024 threads.
__device__ float block_sum(float v) {
    __shared__ float partial[32];
    v = warp_sum(v);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    float total = 0.f;
    for (int w = 0; w < warps; w++) total += partial[w];
    return total;
}

/// Exclusive prefix sum over the block of one int per thread; `*total` gets the sum.
__device__ int block_exclusive_scan(int v, int *total) {
    __shared__ int warpTotals[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int inclusive = v;
    for (int o = 1; o < 32; o <<= 1) {
        int n = __shfl_up_sync(0xffffffffu, inclusive, o);
        if (lane >= o) inclusive += n;
    }
    __syncthreads();
    if (lane == 31) warpTotals[warp] = inclusive;
    __syncthreads();
    int before = 0, all = 0;
    int warps = (blockDim.x + 31) >> 5;
    for (int w = 0; w < warps; w++) {
        if (w < warp) before += warpTotals[w];
        all += warpTotals[w];
    }
    *total = all;
    return before + inclusive - v;
}

/// (value, index) arg-max step: b replaces a when a is invalid, or b is larger, or equal
/// with a lower index.
__device__ __forceinline__ void argmax_merge(float &v, int &i, float v2, int i2) {
    bool take = (i2 >= 0) && (i < 0 || v2 > v || (v2 == v && i2 < i));
    if (take) { v = v2; i = i2; }
}
__device__ __forceinline__ void warp_argmax(float &v, int &i) {
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, i, o);
        argmax_merge(v, i, v2, i2);
    }
}
"""#
}
