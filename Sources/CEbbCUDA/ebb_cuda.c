// Loads the CUDA libraries with dlopen; see include/CEbbCUDA.h.
#define _GNU_SOURCE
#include "CEbbCUDA.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void appendf(EbbCUDAApi *api, const char *format, ...) {
    size_t used = strlen(api->report);
    if (used + 1 >= sizeof(api->report)) return;
    va_list args;
    va_start(args, format);
    vsnprintf(api->report + used, sizeof(api->report) - used, format, args);
    va_end(args);
}

static const char *defaultFolders[] = {
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/local/nvidia/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    NULL,
};

static void *tryOpen(const char *path, char *lastError, size_t lastErrorSize) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *e = dlerror();
        if (e && strstr(e, "No such file") == NULL) snprintf(lastError, lastErrorSize, "%s", e);
    }
    return handle;
}

/// Opens the first of `names` found in `directories` (colon-separated), then by the
/// loader's search and in the default folders. Writes the path it opened to `where`.
static void *openLibrary(const char *const *names, const char *directories, int searchDefaults,
                         char *where, size_t whereSize, char *lastError, size_t lastErrorSize) {
    char path[1024];
    lastError[0] = 0;
    if (directories && directories[0]) {
        const char *cursor = directories;
        while (*cursor) {
            const char *end = strchr(cursor, ':');
            size_t length = end ? (size_t)(end - cursor) : strlen(cursor);
            if (length > 0 && length < 900) {
                for (const char *const *name = names; *name; name++) {
                    snprintf(path, sizeof(path), "%.*s/%s", (int)length, cursor, *name);
                    void *handle = tryOpen(path, lastError, lastErrorSize);
                    if (handle) {
                        snprintf(where, whereSize, "%s", path);
                        return handle;
                    }
                }
            }
            if (!end) break;
            cursor = end + 1;
        }
    }
    if (!searchDefaults) return NULL;
    for (const char *const *name = names; *name; name++) {
        void *handle = tryOpen(*name, lastError, lastErrorSize);
        if (handle) {
            snprintf(where, whereSize, "%s", *name);
            return handle;
        }
    }
    for (const char **folder = defaultFolders; *folder; folder++) {
        for (const char *const *name = names; *name; name++) {
            snprintf(path, sizeof(path), "%s/%s", *folder, *name);
            void *handle = tryOpen(path, lastError, lastErrorSize);
            if (handle) {
                snprintf(where, whereSize, "%s", path);
                return handle;
            }
        }
    }
    return NULL;
}

/// Looks up `first` (else `second`, if given) in `handle`; records the first missing
/// symbol in `missing`.
static void *symbol(void *handle, const char *missing[1], const char *first, const char *second) {
    void *p = dlsym(handle, first);
    if (!p && second) p = dlsym(handle, second);
    if (!p && !missing[0]) missing[0] = first;
    return p;
}

#define SYM(handle, field, name) \
    *(void **)(&api->field) = symbol(handle, missing, name, NULL)
#define SYM2(handle, field, name, fallback) \
    *(void **)(&api->field) = symbol(handle, missing, name, fallback)

typedef struct {
    const char *label;
    int bit;
    const char *const *names;
} LibrarySpec;

static const char *const cudaNames[] = {"libcuda.so.1", "libcuda.so", NULL};
static const char *const nvrtcNames[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", NULL};
static const char *const cublasLtNames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so", NULL};
static const char *const cublasNames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", NULL};
static const char *const ncclNames[] = {"libnccl.so.2", "libnccl.so", NULL};

static void *openOrReport(EbbCUDAApi *api, const char *label, const char *const *names,
                          const char *directories, int searchDefaults) {
    char where[1024] = {0}, lastError[512] = {0};
    void *handle = openLibrary(names, directories, searchDefaults, where, sizeof(where), lastError, sizeof(lastError));
    if (!handle) {
        appendf(api, "%s: not found (tried %s", label, names[0]);
        for (const char *const *n = names + 1; *n; n++) appendf(api, ", %s", *n);
        appendf(api, " in %s%s%s)", directories && directories[0] ? directories : "",
                directories && directories[0] && searchDefaults ? " and " : "",
                searchDefaults ? "the loader's search path and /usr/local/cuda/lib64" : "");
        if (lastError[0]) appendf(api, "; last error: %s", lastError);
        appendf(api, "\n");
        return NULL;
    }
    appendf(api, "%s: %s", label, where);
    return handle;
}

static void finish(EbbCUDAApi *api, int bit, const char *missing) {
    if (missing) {
        appendf(api, " lacks symbol %s (too old?)\n", missing);
    } else {
        api->loaded |= bit;
        appendf(api, "\n");
    }
}

int ebb_cuda_load(EbbCUDAApi *api, const char *directories, int searchDefaults) {
    memset(api, 0, sizeof(*api));
    const char *missing[1];
    void *h;

    if ((h = openOrReport(api, "libcuda", cudaNames, directories, searchDefaults))) {
        missing[0] = NULL;
        SYM(h, cuInit, "cuInit");
        SYM(h, cuDriverGetVersion, "cuDriverGetVersion");
        SYM(h, cuDeviceGetCount, "cuDeviceGetCount");
        SYM(h, cuDeviceGet, "cuDeviceGet");
        SYM(h, cuDeviceGetName, "cuDeviceGetName");
        SYM(h, cuDeviceGetAttribute, "cuDeviceGetAttribute");
        SYM(h, cuDeviceTotalMem, "cuDeviceTotalMem_v2");
        SYM(h, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
        SYM(h, cuCtxSetCurrent, "cuCtxSetCurrent");
        SYM(h, cuCtxSynchronize, "cuCtxSynchronize");
        SYM(h, cuMemAlloc, "cuMemAlloc_v2");
        SYM(h, cuMemFree, "cuMemFree_v2");
        SYM(h, cuMemGetInfo, "cuMemGetInfo_v2");
        SYM(h, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
        SYM(h, cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
        SYM(h, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
        SYM(h, cuStreamCreate, "cuStreamCreate");
        SYM2(h, cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy");
        SYM(h, cuStreamSynchronize, "cuStreamSynchronize");
        SYM(h, cuEventCreate, "cuEventCreate");
        SYM2(h, cuEventDestroy, "cuEventDestroy_v2", "cuEventDestroy");
        SYM(h, cuEventRecord, "cuEventRecord");
        SYM(h, cuEventSynchronize, "cuEventSynchronize");
        SYM2(h, cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime");
        SYM(h, cuModuleLoadData, "cuModuleLoadData");
        SYM(h, cuModuleUnload, "cuModuleUnload");
        SYM(h, cuModuleGetFunction, "cuModuleGetFunction");
        SYM(h, cuFuncSetAttribute, "cuFuncSetAttribute");
        SYM(h, cuLaunchKernel, "cuLaunchKernel");
        SYM(h, cuGetErrorName, "cuGetErrorName");
        SYM(h, cuGetErrorString, "cuGetErrorString");
        SYM2(h, cuStreamBeginCapture, "cuStreamBeginCapture_v2", "cuStreamBeginCapture");
        SYM(h, cuStreamEndCapture, "cuStreamEndCapture");
        SYM(h, cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
        SYM(h, cuGraphLaunch, "cuGraphLaunch");
        SYM(h, cuGraphExecDestroy, "cuGraphExecDestroy");
        SYM(h, cuGraphDestroy, "cuGraphDestroy");
        finish(api, EBB_LIB_CUDA, missing[0]);
    }

    if ((h = openOrReport(api, "libnvrtc", nvrtcNames, directories, searchDefaults))) {
        missing[0] = NULL;
        SYM(h, nvrtcVersion, "nvrtcVersion");
        SYM(h, nvrtcCreateProgram, "nvrtcCreateProgram");
        SYM(h, nvrtcCompileProgram, "nvrtcCompileProgram");
        SYM(h, nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize");
        SYM(h, nvrtcGetProgramLog, "nvrtcGetProgramLog");
        SYM(h, nvrtcGetCUBINSize, "nvrtcGetCUBINSize");
        SYM(h, nvrtcGetCUBIN, "nvrtcGetCUBIN");
        SYM(h, nvrtcDestroyProgram, "nvrtcDestroyProgram");
        SYM(h, nvrtcGetErrorString, "nvrtcGetErrorString");
        finish(api, EBB_LIB_NVRTC, missing[0]);
    }

    // cuBLASLt first: libcublas needs it, and the loader reuses it by soname.
    if ((h = openOrReport(api, "libcublasLt", cublasLtNames, directories, searchDefaults))) {
        missing[0] = NULL;
        SYM(h, cublasLtGetVersion, "cublasLtGetVersion");
        SYM(h, cublasLtCreate, "cublasLtCreate");
        SYM(h, cublasLtDestroy, "cublasLtDestroy");
        SYM(h, cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate");
        SYM(h, cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy");
        SYM(h, cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
        SYM(h, cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
        SYM(h, cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
        SYM(h, cublasLtMatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute");
        SYM(h, cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
        SYM(h, cublasLtMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
        SYM(h, cublasLtMatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
        SYM(h, cublasLtMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
        SYM(h, cublasLtMatmul, "cublasLtMatmul");
        finish(api, EBB_LIB_CUBLASLT, missing[0]);
    }

    if ((h = openOrReport(api, "libcublas", cublasNames, directories, searchDefaults))) {
        missing[0] = NULL;
        SYM(h, cublasCreate, "cublasCreate_v2");
        SYM(h, cublasDestroy, "cublasDestroy_v2");
        SYM(h, cublasSetStream, "cublasSetStream_v2");
        SYM(h, cublasSetWorkspace, "cublasSetWorkspace_v2");
        SYM(h, cublasSetMathMode, "cublasSetMathMode");
        SYM(h, cublasGetVersion, "cublasGetVersion_v2");
        SYM(h, cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx");
        SYM(h, cublasGetStatusString, "cublasGetStatusString");
        finish(api, EBB_LIB_CUBLAS, missing[0]);
    }

    if ((h = openOrReport(api, "libnccl", ncclNames, directories, searchDefaults))) {
        missing[0] = NULL;
        SYM(h, ncclGetVersion, "ncclGetVersion");
        SYM(h, ncclGetErrorString, "ncclGetErrorString");
        SYM(h, ncclGetLastError, "ncclGetLastError");
        SYM(h, ncclGetUniqueId, "ncclGetUniqueId");
        SYM(h, ncclCommGetAsyncError, "ncclCommGetAsyncError");
        SYM(h, ncclCommAbort, "ncclCommAbort");
        SYM(h, ncclCommDestroy, "ncclCommDestroy");
        SYM(h, ncclCommFinalize, "ncclCommFinalize");
        SYM(h, ncclGroupStart, "ncclGroupStart");
        SYM(h, ncclGroupEnd, "ncclGroupEnd");
        SYM(h, ncclAllReduce, "ncclAllReduce");
        SYM(h, ncclAllGather, "ncclAllGather");
        SYM(h, ncclBroadcast, "ncclBroadcast");
        SYM(h, ncclSend, "ncclSend");
        SYM(h, ncclRecv, "ncclRecv");
        SYM(h, ncclCommInitRankConfig, "ncclCommInitRankConfig");
        // Optional: a NULL entry means "not in this NCCL" (fresh init instead).
        *(void **)(&api->ncclCommSplit) = dlsym(h, "ncclCommSplit");
        *(void **)(&api->ncclCommShrink) = dlsym(h, "ncclCommShrink");
        finish(api, EBB_LIB_NCCL, missing[0]);
    }
    return api->loaded;
}

static EbbCUDAApi processApi;
static pthread_once_t processOnce = PTHREAD_ONCE_INIT;

static void loadProcessApi(void) {
    ebb_cuda_load(&processApi, getenv("EBB_CUDA_LIB_DIR"), 1);
}

const EbbCUDAApi *ebb_cuda_api(void) {
    pthread_once(&processOnce, loadProcessApi);
    return &processApi;
}

// MARK: cuBLASLt plans

// cublasLt attribute numbers (cublasLt.h, stable across CUDA 12 and 13).
enum {
    LT_DESC_TRANSA = 3,
    LT_DESC_TRANSB = 4,
    LT_LAYOUT_BATCH_COUNT = 5,
    LT_LAYOUT_STRIDED_BATCH_OFFSET = 6,
    LT_PREF_MAX_WORKSPACE_BYTES = 1,
};

static EbbCublasStatus layout(const EbbCUDAApi *api, void **out, int type, uint64_t rows, uint64_t cols, int64_t ld,
                              int batch, int64_t stride) {
    EbbCublasStatus st = api->cublasLtMatrixLayoutCreate(out, type, rows, cols, ld);
    if (st != 0) return st;
    if (batch > 1) {
        int32_t count = batch;
        st = api->cublasLtMatrixLayoutSetAttribute(*out, LT_LAYOUT_BATCH_COUNT, &count, sizeof(count));
        if (st == 0) st = api->cublasLtMatrixLayoutSetAttribute(*out, LT_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride));
    }
    return st;
}

void ebb_lt_plan_destroy(const EbbCUDAApi *api, EbbLtPlan *plan) {
    if (plan->a) api->cublasLtMatrixLayoutDestroy(plan->a);
    if (plan->b) api->cublasLtMatrixLayoutDestroy(plan->b);
    if (plan->c) api->cublasLtMatrixLayoutDestroy(plan->c);
    if (plan->desc) api->cublasLtMatmulDescDestroy(plan->desc);
    memset(plan, 0, sizeof(*plan));
}

EbbCublasStatus ebb_lt_plan(const EbbCUDAApi *api, void *lt, EbbLtPlan *plan, int transA, int transB,
                            uint64_t m, uint64_t n, uint64_t k, int typeA, int64_t lda, int64_t strideA,
                            int typeB, int64_t ldb, int64_t strideB, int typeC, int64_t ldc, int64_t strideC,
                            int batch, size_t maxWorkspace) {
    memset(plan, 0, sizeof(*plan));
    if (!(api->loaded & EBB_LIB_CUBLASLT) || !lt) return 7; // CUBLAS_STATUS_INVALID_VALUE
    EbbCublasStatus st = api->cublasLtMatmulDescCreate(&plan->desc, EBB_CUBLAS_COMPUTE_32F, EBB_CUDA_R_32F);
    int32_t ta = transA, tb = transB;
    if (st == 0) st = api->cublasLtMatmulDescSetAttribute(plan->desc, LT_DESC_TRANSA, &ta, sizeof(ta));
    if (st == 0) st = api->cublasLtMatmulDescSetAttribute(plan->desc, LT_DESC_TRANSB, &tb, sizeof(tb));
    // Stored shapes: op(A) is m×k, so A is m×k (N) or k×m (T); likewise B.
    if (st == 0) st = layout(api, &plan->a, typeA, transA ? k : m, transA ? m : k, lda, batch, strideA);
    if (st == 0) st = layout(api, &plan->b, typeB, transB ? n : k, transB ? k : n, ldb, batch, strideB);
    if (st == 0) st = layout(api, &plan->c, typeC, m, n, ldc, batch, strideC);
    void *pref = NULL;
    if (st == 0) st = api->cublasLtMatmulPreferenceCreate(&pref);
    uint64_t ws = maxWorkspace;
    if (st == 0) st = api->cublasLtMatmulPreferenceSetAttribute(pref, LT_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    int returned = 0;
    if (st == 0) st = api->cublasLtMatmulAlgoGetHeuristic(lt, plan->desc, plan->a, plan->b, plan->c, plan->c, pref, 1,
                                                          plan->heuristic, &returned);
    if (pref) api->cublasLtMatmulPreferenceDestroy(pref);
    if (st == 0 && returned < 1) st = 15; // CUBLAS_STATUS_NOT_SUPPORTED
    if (st != 0) {
        ebb_lt_plan_destroy(api, plan);
        return st;
    }
    memcpy(&plan->workspace, plan->heuristic + 64, sizeof(size_t));
    return 0;
}

EbbCublasStatus ebb_lt_run(const EbbCUDAApi *api, void *lt, const EbbLtPlan *plan, const float *alpha,
                           const void *A, const void *B, const float *beta, void *C, void *workspace, EbbCUstream stream) {
    return api->cublasLtMatmul(lt, plan->desc, alpha, A, plan->a, B, plan->b, beta, C, plan->c, C, plan->c,
                               plan->heuristic, workspace, plan->workspace, stream);
}

// MARK: NCCL

/// The first fields of ncclConfig_t (its 2.14 layout). NCCL reads `size` and copies only
/// that much of a caller's config, keeping its defaults for later fields, so this prefix
/// works with every later NCCL.
typedef struct {
    size_t size;
    unsigned int magic;
    unsigned int version;
    int blocking;
    int cgaClusterSize;
    int minCTAs;
    int maxCTAs;
    const char *netName;
} EbbNcclConfig;

static EbbNcclConfig ncclConfig(const EbbCUDAApi *api, int blocking) {
    int version = 0;
    if (api->ncclGetVersion) api->ncclGetVersion(&version);
    const int undef = (int)0x80000000;
    EbbNcclConfig c = {sizeof(EbbNcclConfig), 0xcafebeef, (unsigned int)version, blocking, undef, undef, undef, NULL};
    return c;
}

int ebb_nccl_init_rank(const EbbCUDAApi *api, EbbNcclComm *comm, int nranks, const uint8_t *id, int rank, int blocking) {
    if (!(api->loaded & EBB_LIB_NCCL)) return EBB_NCCL_INVALID_USAGE;
    EbbNcclUniqueId uid;
    memcpy(uid.internal, id, sizeof(uid.internal));
    EbbNcclConfig config = ncclConfig(api, blocking);
    return api->ncclCommInitRankConfig(comm, nranks, uid, rank, &config);
}

int ebb_nccl_split(const EbbCUDAApi *api, EbbNcclComm comm, int color, int key, EbbNcclComm *newcomm, int blocking) {
    if (!api->ncclCommSplit) return EBB_NCCL_INVALID_USAGE;
    EbbNcclConfig config = ncclConfig(api, blocking);
    return api->ncclCommSplit(comm, color, key, newcomm, &config);
}

int ebb_nccl_shrink(const EbbCUDAApi *api, EbbNcclComm comm, int *exclude, int count, EbbNcclComm *newcomm, int blocking, int flags) {
    if (!api->ncclCommShrink) return EBB_NCCL_INVALID_USAGE;
    EbbNcclConfig config = ncclConfig(api, blocking);
    return api->ncclCommShrink(comm, exclude, count, newcomm, &config, flags);
}
