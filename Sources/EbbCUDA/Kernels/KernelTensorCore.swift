/// Tensor-core building blocks (bf16 `mma.sync` m16n8k16 with f32 accumulation, `ldmatrix`,
/// `cp.async` copies into shared memory) and the grouped expert GEMM built from them.
/// The flash prefill attention uses the same primitives.
enum KernelTensorCore {
    static let source = #"""
/// c += a · b for one m16n8k16 tile: a row-major 16×16, b column-major 16×8, c 16×8 f32.
__device__ __forceinline__ void mma_bf16(float *c, const unsigned *a, const unsigned *b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// Two floats as a bf16 pair (`lo` in the low half), rounded to nearest even.
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ unsigned shared_address(const void *p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

/// Four 8×8 b16 matrices from shared memory: lanes 8j..8j+7 give the row addresses of
/// matrix j (16-byte aligned); each thread gets row lane/4, columns 2·(lane%4)… of each.
__device__ __forceinline__ void ldmatrix_x4(unsigned *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(p)));
}

/// The same, each matrix transposed: thread gets column lane/4, rows 2·(lane%4)….
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(p)));
}

/// 16 bytes global → shared without passing through registers; `valid` false writes zeros
/// and reads nothing.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(shared_address(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/// Waits until at most N committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }

/// Grouped x · Wᵀ on tensor cores for many rows per expert (prefill, large decode batches).
/// Tiles of 64 rows × 128 columns, K in steps of 32 through a 3-stage cp.async pipeline;
/// 8 warps of 32×32, fragments by ldmatrix. Shared rows hold 32 + 8 bf16 (80 bytes: 16-byte
/// aligned, ldmatrix without bank conflicts). Grid (ceil(N/128), ceil(R/64) + E): block y
/// is the y-th (expert, 64-row tile) pair (`tile_of_block`); blocks past the last tile
/// return. Row r reads x row rowIndex[r] when there is an index (the gather folded into the
/// copy). Needs K % 8 == 0, xs % 8 == 0 and 16-byte aligned x and W.
#define GM_BM 64
#define GM_BN 128
#define GM_BK 32
#define GM_LD 40
#define GM_STAGES 3
#define GM_STAGE ((GM_BM + GM_BN) * GM_LD)

__device__ __forceinline__ void grouped_mma_load(unsigned short *stage, const bf16_t *xrow, const bf16_t *Wb,
                                                 int rows, int n0, int N, int K, int k0) {
    int r = threadIdx.x >> 2, kc = (threadIdx.x & 3) * 8;
    bool kin = k0 + kc < K;
    bool va = kin && r < rows;
    cp_async16(stage + r * GM_LD + kc, va ? xrow + k0 + kc : xrow, va);
    unsigned short *Bs = stage + GM_BM * GM_LD;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int rb = r + h * 64;
        bool vb = kin && n0 + rb < N;
        cp_async16(Bs + rb * GM_LD + kc, vb ? Wb + (long)(n0 + rb) * K + k0 + kc : Wb, vb);
    }
}

extern "C" __global__ void __launch_bounds__(256) grouped_mma_bf16(const bf16_t *x, long xs, const int *rowIndex, const bf16_t *W,
                                                                 const int *offsets, bf16_t *out, long os, int E, int N, int K) {
    __shared__ U4 smemRaw[GM_STAGES * GM_STAGE / 8];
    unsigned short *smem = reinterpret_cast<unsigned short *>(smemRaw);
    __shared__ int tileExpert, tileRow0, tileRows;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (warp == 0) tile_of_block(offsets, E, blockIdx.y, GM_BM, &tileExpert, &tileRow0, &tileRows);
    __syncthreads();
    int e = tileExpert;
    if (e < 0) return;
    int row0 = tileRow0, rows = tileRows;
    int n0 = blockIdx.x * GM_BN;
    const bf16_t *Wb = W + (long)e * N * K;
    int wm = warp >> 2, wn = warp & 3;
    float c[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) c[i][j][q] = 0.f;
    int kTiles = (K + GM_BK - 1) / GM_BK;
    // The x row this thread copies (row0 + threadIdx.x / 4 of the tile, through rowIndex).
    int myRow = threadIdx.x >> 2;
    const bf16_t *xrow = x + (long)(myRow < rows ? source_row(rowIndex, row0 + myRow) : 0) * xs;
#pragma unroll
    for (int s = 0; s < GM_STAGES - 1; s++) {
        if (s < kTiles) grouped_mma_load(smem + s * GM_STAGE, xrow, Wb, rows, n0, N, K, s * GM_BK);
        cp_async_commit();
    }
    for (int kt = 0; kt < kTiles; kt++) {
        cp_async_wait<GM_STAGES - 2>();
        __syncthreads();
        // The stage refilled here was read in the previous iteration, which every warp has left.
        int next = kt + GM_STAGES - 1;
        if (next < kTiles) grouped_mma_load(smem + (next % GM_STAGES) * GM_STAGE, xrow, Wb, rows, n0, N, K, next * GM_BK);
        cp_async_commit();
        const unsigned short *As = smem + (kt % GM_STAGES) * GM_STAGE;
        const unsigned short *Bs = As + GM_BM * GM_LD;
#pragma unroll
        for (int kk = 0; kk < GM_BK; kk += 16) {
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
                ldmatrix_x4(a[mi], As + (wm * 32 + mi * 16 + (lane & 15)) * GM_LD + kk + (lane >> 4) * 8);
#pragma unroll
            for (int nj = 0; nj < 2; nj++) {
                unsigned r[4];
                ldmatrix_x4(r, Bs + (wn * 32 + nj * 16 + (lane & 7) + (lane >> 4) * 8) * GM_LD + kk + ((lane >> 3) & 1) * 8);
                b[2 * nj][0] = r[0];
                b[2 * nj][1] = r[1];
                b[2 * nj + 1][0] = r[2];
                b[2 * nj + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma_bf16(c[mi][ni], a[mi], b[ni]);
        }
    }
    cp_async_wait<0>();
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            int row = wm * 32 + mi * 16 + (lane >> 2);
            int col = n0 + wn * 32 + ni * 8 + (lane & 3) * 2;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int rr = row + h * 8;
                if (rr >= rows || col >= N) continue;
                bf16_t *dst = out + (long)(row0 + rr) * os + col;
                if (col + 1 < N && ((unsigned long)dst & 3) == 0) {
                    *(unsigned *)dst = pack_bf16(c[mi][ni][2 * h], c[mi][ni][2 * h + 1]);
                } else {
                    dst[0] = f2bf(c[mi][ni][2 * h]);
                    if (col + 1 < N) dst[1] = f2bf(c[mi][ni][2 * h + 1]);
                }
            }
        }
    }
}
"""#
}
