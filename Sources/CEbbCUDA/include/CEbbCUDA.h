// CEbbCUDA: the CUDA driver API, NVRTC, cuBLAS, cuBLASLt and NCCL loaded with dlopen at run
// time into a function table. No CUDA header is needed to build this: the few types and
// enum values Ebb uses are declared here (values from CUDA 12/13 headers, which are ABI
// stable). Without the libraries the package still builds and the table reports what is
// missing.
#ifndef CEBBCUDA_H
#define CEBBCUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int EbbCUresult;
typedef int EbbCUdevice;
typedef void *EbbCUcontext;
typedef void *EbbCUmodule;
typedef void *EbbCUfunction;
typedef void *EbbCUstream;
typedef void *EbbCUevent;
typedef void *EbbCUgraph;
typedef void *EbbCUgraphExec;
typedef unsigned long long EbbCUdeviceptr;
typedef int EbbNvrtcResult;
typedef void *EbbNvrtcProgram;
typedef int EbbCublasStatus;
typedef void *EbbCublasHandle;
typedef void *EbbNcclComm;
typedef struct { char internal[128]; } EbbNcclUniqueId;

// NCCL values (nccl.h; stable since 2.14).
enum {
    EBB_NCCL_SUCCESS = 0,
    EBB_NCCL_INVALID_USAGE = 5,
    EBB_NCCL_IN_PROGRESS = 7,
    EBB_NCCL_INT8 = 0,
    EBB_NCCL_UINT8 = 1,
    EBB_NCCL_INT32 = 2,
    EBB_NCCL_INT64 = 4,
    EBB_NCCL_FLOAT16 = 6,
    EBB_NCCL_FLOAT32 = 7,
    EBB_NCCL_FLOAT64 = 8,
    EBB_NCCL_BFLOAT16 = 9,
    EBB_NCCL_SUM = 0,
    EBB_NCCL_MAX = 2,
    EBB_NCCL_MIN = 3,
};

// Driver API values.
enum {
    EBB_CUDA_SUCCESS = 0,
    EBB_CUDA_ERROR_OUT_OF_MEMORY = 2,
    EBB_CUDA_ERROR_NOT_INITIALIZED = 3,
    EBB_CUDA_ERROR_NO_DEVICE = 100,
    EBB_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    EBB_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    EBB_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    EBB_CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
    EBB_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
    EBB_CU_STREAM_NON_BLOCKING = 1,
    EBB_CU_STREAM_CAPTURE_MODE_RELAXED = 2,
    EBB_CU_EVENT_DEFAULT = 0,
};

// NVRTC values.
enum { EBB_NVRTC_SUCCESS = 0, EBB_NVRTC_ERROR_COMPILATION = 6 };

// cuBLAS values.
enum {
    EBB_CUBLAS_STATUS_SUCCESS = 0,
    EBB_CUBLAS_OP_N = 0,
    EBB_CUBLAS_OP_T = 1,
    EBB_CUDA_R_32F = 0,
    EBB_CUDA_R_16F = 2,
    EBB_CUDA_R_16BF = 14,
    EBB_CUBLAS_COMPUTE_32F = 68,
    EBB_CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    EBB_CUBLAS_GEMM_DEFAULT = -1,
    EBB_CUBLAS_DEFAULT_MATH = 0,
    EBB_CUBLAS_PEDANTIC_MATH = 2,
};

/// Bits of `EbbCUDAApi.loaded`.
enum {
    EBB_LIB_CUDA = 1,
    EBB_LIB_NVRTC = 2,
    EBB_LIB_CUBLAS = 4,
    EBB_LIB_CUBLASLT = 8,
    EBB_LIB_NCCL = 16,
};

typedef struct EbbCUDAApi {
    /// EBB_LIB_* bits of the libraries that loaded with every symbol Ebb needs.
    int loaded;
    /// One line per library: where it was found, or why not ("libnvrtc: not found in ...").
    char report[4096];

    // Driver API (libcuda).
    EbbCUresult (*cuInit)(unsigned int flags);
    EbbCUresult (*cuDriverGetVersion)(int *version);
    EbbCUresult (*cuDeviceGetCount)(int *count);
    EbbCUresult (*cuDeviceGet)(EbbCUdevice *device, int ordinal);
    EbbCUresult (*cuDeviceGetName)(char *name, int len, EbbCUdevice device);
    EbbCUresult (*cuDeviceGetAttribute)(int *value, int attribute, EbbCUdevice device);
    EbbCUresult (*cuDeviceTotalMem)(size_t *bytes, EbbCUdevice device);
    EbbCUresult (*cuDevicePrimaryCtxRetain)(EbbCUcontext *context, EbbCUdevice device);
    EbbCUresult (*cuCtxSetCurrent)(EbbCUcontext context);
    EbbCUresult (*cuCtxSynchronize)(void);
    EbbCUresult (*cuMemAlloc)(EbbCUdeviceptr *pointer, size_t bytes);
    EbbCUresult (*cuMemFree)(EbbCUdeviceptr pointer);
    EbbCUresult (*cuMemGetInfo)(size_t *free, size_t *total);
    EbbCUresult (*cuMemcpyHtoDAsync)(EbbCUdeviceptr dst, const void *src, size_t bytes, EbbCUstream stream);
    EbbCUresult (*cuMemcpyDtoHAsync)(void *dst, EbbCUdeviceptr src, size_t bytes, EbbCUstream stream);
    EbbCUresult (*cuMemcpyDtoDAsync)(EbbCUdeviceptr dst, EbbCUdeviceptr src, size_t bytes, EbbCUstream stream);
    EbbCUresult (*cuStreamCreate)(EbbCUstream *stream, unsigned int flags);
    EbbCUresult (*cuStreamDestroy)(EbbCUstream stream);
    EbbCUresult (*cuStreamSynchronize)(EbbCUstream stream);
    EbbCUresult (*cuEventCreate)(EbbCUevent *event, unsigned int flags);
    EbbCUresult (*cuEventDestroy)(EbbCUevent event);
    EbbCUresult (*cuEventRecord)(EbbCUevent event, EbbCUstream stream);
    EbbCUresult (*cuEventSynchronize)(EbbCUevent event);
    EbbCUresult (*cuEventElapsedTime)(float *milliseconds, EbbCUevent start, EbbCUevent end);
    EbbCUresult (*cuModuleLoadData)(EbbCUmodule *module, const void *image);
    EbbCUresult (*cuModuleUnload)(EbbCUmodule module);
    EbbCUresult (*cuModuleGetFunction)(EbbCUfunction *function, EbbCUmodule module, const char *name);
    EbbCUresult (*cuFuncSetAttribute)(EbbCUfunction function, int attribute, int value);
    EbbCUresult (*cuLaunchKernel)(EbbCUfunction f, unsigned int gridX, unsigned int gridY, unsigned int gridZ,
                                  unsigned int blockX, unsigned int blockY, unsigned int blockZ,
                                  unsigned int sharedBytes, EbbCUstream stream, void **params, void **extra);
    EbbCUresult (*cuGetErrorName)(EbbCUresult error, const char **name);
    EbbCUresult (*cuGetErrorString)(EbbCUresult error, const char **text);
    EbbCUresult (*cuStreamBeginCapture)(EbbCUstream stream, int mode);
    EbbCUresult (*cuStreamEndCapture)(EbbCUstream stream, EbbCUgraph *graph);
    EbbCUresult (*cuGraphInstantiateWithFlags)(EbbCUgraphExec *exec, EbbCUgraph graph, unsigned long long flags);
    EbbCUresult (*cuGraphLaunch)(EbbCUgraphExec exec, EbbCUstream stream);
    EbbCUresult (*cuGraphExecDestroy)(EbbCUgraphExec exec);
    EbbCUresult (*cuGraphDestroy)(EbbCUgraph graph);

    // NVRTC.
    EbbNvrtcResult (*nvrtcVersion)(int *major, int *minor);
    EbbNvrtcResult (*nvrtcCreateProgram)(EbbNvrtcProgram *program, const char *source, const char *name,
                                         int numHeaders, const char *const *headers, const char *const *includeNames);
    EbbNvrtcResult (*nvrtcCompileProgram)(EbbNvrtcProgram program, int numOptions, const char *const *options);
    EbbNvrtcResult (*nvrtcGetProgramLogSize)(EbbNvrtcProgram program, size_t *size);
    EbbNvrtcResult (*nvrtcGetProgramLog)(EbbNvrtcProgram program, char *log);
    EbbNvrtcResult (*nvrtcGetCUBINSize)(EbbNvrtcProgram program, size_t *size);
    EbbNvrtcResult (*nvrtcGetCUBIN)(EbbNvrtcProgram program, char *cubin);
    EbbNvrtcResult (*nvrtcDestroyProgram)(EbbNvrtcProgram *program);
    const char *(*nvrtcGetErrorString)(EbbNvrtcResult result);

    // cuBLAS.
    EbbCublasStatus (*cublasCreate)(EbbCublasHandle *handle);
    EbbCublasStatus (*cublasDestroy)(EbbCublasHandle handle);
    EbbCublasStatus (*cublasSetStream)(EbbCublasHandle handle, EbbCUstream stream);
    EbbCublasStatus (*cublasSetWorkspace)(EbbCublasHandle handle, void *workspace, size_t bytes);
    EbbCublasStatus (*cublasSetMathMode)(EbbCublasHandle handle, int mode);
    EbbCublasStatus (*cublasGetVersion)(EbbCublasHandle handle, int *version);
    EbbCublasStatus (*cublasGemmStridedBatchedEx)(
        EbbCublasHandle handle, int transa, int transb, int m, int n, int k, const void *alpha,
        const void *A, int Atype, int lda, long long strideA,
        const void *B, int Btype, int ldb, long long strideB, const void *beta,
        void *C, int Ctype, int ldc, long long strideC, int batchCount, int computeType, int algo);
    const char *(*cublasGetStatusString)(EbbCublasStatus status);

    // cuBLASLt (dense GEMMs).
    size_t (*cublasLtGetVersion)(void);
    EbbCublasStatus (*cublasLtCreate)(void **handle);
    EbbCublasStatus (*cublasLtDestroy)(void *handle);
    EbbCublasStatus (*cublasLtMatmulDescCreate)(void **desc, int computeType, int scaleType);
    EbbCublasStatus (*cublasLtMatmulDescDestroy)(void *desc);
    EbbCublasStatus (*cublasLtMatmulDescSetAttribute)(void *desc, int attribute, const void *value, size_t bytes);
    EbbCublasStatus (*cublasLtMatrixLayoutCreate)(void **layout, int type, uint64_t rows, uint64_t cols, int64_t ld);
    EbbCublasStatus (*cublasLtMatrixLayoutDestroy)(void *layout);
    EbbCublasStatus (*cublasLtMatrixLayoutSetAttribute)(void *layout, int attribute, const void *value, size_t bytes);
    EbbCublasStatus (*cublasLtMatmulPreferenceCreate)(void **preference);
    EbbCublasStatus (*cublasLtMatmulPreferenceDestroy)(void *preference);
    EbbCublasStatus (*cublasLtMatmulPreferenceSetAttribute)(void *preference, int attribute, const void *value, size_t bytes);
    EbbCublasStatus (*cublasLtMatmulAlgoGetHeuristic)(void *handle, void *desc, void *a, void *b, void *c, void *d,
                                                      void *preference, int requested, void *results, int *returned);
    EbbCublasStatus (*cublasLtMatmul)(void *handle, void *desc, const void *alpha, const void *A, void *a,
                                      const void *B, void *b, const void *beta, const void *C, void *c, void *D, void *d,
                                      const void *algo, void *workspace, size_t workspaceBytes, EbbCUstream stream);

    // NCCL (device data plane). Results are ncclResult_t values (EBB_NCCL_*).
    int (*ncclGetVersion)(int *version);
    const char *(*ncclGetErrorString)(int result);
    const char *(*ncclGetLastError)(EbbNcclComm comm);
    int (*ncclGetUniqueId)(EbbNcclUniqueId *id);
    int (*ncclCommGetAsyncError)(EbbNcclComm comm, int *result);
    int (*ncclCommAbort)(EbbNcclComm comm);
    int (*ncclCommDestroy)(EbbNcclComm comm);
    int (*ncclCommFinalize)(EbbNcclComm comm);
    int (*ncclGroupStart)(void);
    int (*ncclGroupEnd)(void);
    int (*ncclAllReduce)(const void *send, void *recv, size_t count, int dtype, int op, EbbNcclComm comm, EbbCUstream stream);
    int (*ncclAllGather)(const void *send, void *recv, size_t sendCount, int dtype, EbbNcclComm comm, EbbCUstream stream);
    int (*ncclBroadcast)(const void *send, void *recv, size_t count, int dtype, int root, EbbNcclComm comm, EbbCUstream stream);
    int (*ncclSend)(const void *send, size_t count, int dtype, int peer, EbbNcclComm comm, EbbCUstream stream);
    int (*ncclRecv)(void *recv, size_t count, int dtype, int peer, EbbNcclComm comm, EbbCUstream stream);
    /// Optional (NULL when the loaded NCCL lacks them): split and shrink build a new
    /// communicator from a running one without a new unique id.
    int (*ncclCommSplit)(EbbNcclComm comm, int color, int key, EbbNcclComm *newcomm, void *config);
    int (*ncclCommShrink)(EbbNcclComm comm, int *excludeRanks, int excludeCount, EbbNcclComm *newcomm, void *config, int flags);
    /// Not optional for us: initialization with a config (non-blocking, so it can time out).
    int (*ncclCommInitRankConfig)(EbbNcclComm *comm, int nranks, EbbNcclUniqueId id, int rank, void *config);
} EbbCUDAApi;

/// Starts a communicator of `nranks`, this process being `rank`, from the 128-byte unique
/// id `id`; `blocking` = 0 returns at once (EBB_NCCL_IN_PROGRESS) and the caller polls
/// ncclCommGetAsyncError (abort on timeout). Returns an ncclResult_t.
int ebb_nccl_init_rank(const EbbCUDAApi *api, EbbNcclComm *comm, int nranks, const uint8_t *id, int rank, int blocking);
/// Splits `comm` (color −1 = not in the new one) with a non-blocking config; NULL api
/// function → EBB_NCCL_INVALID_USAGE.
int ebb_nccl_split(const EbbCUDAApi *api, EbbNcclComm comm, int color, int key, EbbNcclComm *newcomm, int blocking);
/// Shrinks `comm` by the ranks listed, non-blocking config; flags 0 (default) or 1 (abort
/// outstanding work first).
int ebb_nccl_shrink(const EbbCUDAApi *api, EbbNcclComm comm, int *exclude, int count, EbbNcclComm *newcomm, int blocking, int flags);

/// One cuBLASLt GEMM shape, planned once (descriptors and the heuristic's algorithm) and
/// run many times: column-major `D = op(A)·op(B)` (`m×n`, inner `k`), `batch` matrices.
typedef struct EbbLtPlan {
    void *desc, *a, *b, *c;
    /// cublasLtMatmulHeuristicResult_t: the algorithm (64 bytes), workspace size, state, waves.
    unsigned char heuristic[96];
    size_t workspace;
} EbbLtPlan;

/// Plans a GEMM; returns a cuBLAS status (non-zero: no plan, `plan` holds nothing).
/// `transA`/`transB` are EBB_CUBLAS_OP_*; types are EBB_CUDA_R_*; compute is f32.
EbbCublasStatus ebb_lt_plan(const EbbCUDAApi *api, void *lt, EbbLtPlan *plan, int transA, int transB,
                            uint64_t m, uint64_t n, uint64_t k, int typeA, int64_t lda, int64_t strideA,
                            int typeB, int64_t ldb, int64_t strideB, int typeC, int64_t ldc, int64_t strideC,
                            int batch, size_t maxWorkspace);

/// Runs a planned GEMM on `stream`: D = C = alpha·op(A)·op(B) + beta·C.
EbbCublasStatus ebb_lt_run(const EbbCUDAApi *api, void *lt, const EbbLtPlan *plan, const float *alpha,
                           const void *A, const void *B, const float *beta, void *C, void *workspace, EbbCUstream stream);

void ebb_lt_plan_destroy(const EbbCUDAApi *api, EbbLtPlan *plan);

/// Loads the libraries into `api`. `directories` is a colon-separated list searched first
/// (may be NULL); then, when `searchDefaults` is non-zero, the dynamic loader's default
/// search with the usual sonames and the usual install folders. Returns `api->loaded`.
int ebb_cuda_load(EbbCUDAApi *api, const char *directories, int searchDefaults);

/// The process-wide table, loaded once from `EBB_CUDA_LIB_DIR` and the defaults.
const EbbCUDAApi *ebb_cuda_api(void);

#ifdef __cplusplus
}
#endif

#endif
