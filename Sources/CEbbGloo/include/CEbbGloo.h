// CEbbGloo: a plain C API over Debian's libgloo (TCP transport).
//
// Every function returns an EBB_GLOO_* status code; on failure it writes a
// NUL-terminated message into `err` (capacity `errcap`). No C++ exception ever
// leaves this library: the shim catches everything at the boundary.
//
// Rendezvous goes through a key-value store implemented by the caller as three
// callbacks (so the store can live anywhere: a directory, memory, a gRPC
// coordinator). Callbacks return 0 on success and write a message into
// `err` otherwise; `get` must wait (up to `timeout_ms`) until the key exists.
#ifndef CEBBGLOO_H
#define CEBBGLOO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  EBB_GLOO_OK = 0,
  EBB_GLOO_TIMEOUT = 1,       // an operation or rendezvous timed out
  EBB_GLOO_IO = 2,            // transport failure (peer closed, connection reset, ...)
  EBB_GLOO_INVALID = 3,       // invalid argument
  EBB_GLOO_STORE = 4,         // the rendezvous store failed
  EBB_GLOO_INTERNAL = 5,      // anything else
};

enum { EBB_GLOO_F32 = 0, EBB_GLOO_I32 = 1, EBB_GLOO_I64 = 2, EBB_GLOO_U8 = 3, EBB_GLOO_F64 = 4 };
enum { EBB_GLOO_SUM = 0, EBB_GLOO_MAX = 1, EBB_GLOO_MIN = 2 };

typedef int (*ebb_gloo_store_set_fn)(void *user, const char *key, const uint8_t *data,
                                     size_t len, char *err, size_t errcap);
// On success *out is a buffer allocated with malloc (may be NULL when *out_len is 0);
// the shim frees it with free().
typedef int (*ebb_gloo_store_get_fn)(void *user, const char *key, int64_t timeout_ms,
                                     uint8_t **out, size_t *out_len, char *err, size_t errcap);
typedef int (*ebb_gloo_store_wait_fn)(void *user, const char *const *keys, size_t nkeys,
                                      int64_t timeout_ms, char *err, size_t errcap);

typedef struct ebb_gloo_store {
  void *user;
  ebb_gloo_store_set_fn set;
  ebb_gloo_store_get_fn get;
  ebb_gloo_store_wait_fn wait;
} ebb_gloo_store;

typedef struct ebb_gloo_ctx ebb_gloo_ctx;

// 1 when this build links libgloo; 0 when it was built without it (every call then fails).
int ebb_gloo_available(void);

// Builds a full-mesh context of `size` ranks over TCP. `hostname` (e.g. "127.0.0.1" or a
// host name) or `iface` (e.g. "eth0") picks the local address; pass NULL/"" for either.
// `connect_timeout_ms` bounds the rendezvous; `op_timeout_ms` becomes the default timeout
// of every operation.
int ebb_gloo_connect(const ebb_gloo_store *store, int rank, int size, const char *hostname,
                     const char *iface, int64_t connect_timeout_ms, int64_t op_timeout_ms,
                     ebb_gloo_ctx **out, char *err, size_t errcap);
void ebb_gloo_destroy(ebb_gloo_ctx *ctx);
// Fails every pending and later operation of `ctx` with an I/O error naming `reason`, and
// closes its connections (peers waiting on this rank fail too). Safe from any thread while
// another thread is inside an operation; `ctx` stays valid until ebb_gloo_destroy.
void ebb_gloo_abort(ebb_gloo_ctx *ctx, const char *reason);

// In place: `buf` holds `count` elements of `dtype`.
int ebb_gloo_allreduce(ebb_gloo_ctx *ctx, void *buf, size_t count, int dtype, int op,
                       char *err, size_t errcap);
// `out` holds size * `bytes_per_rank` bytes.
int ebb_gloo_allgather(ebb_gloo_ctx *ctx, const void *in, void *out, size_t bytes_per_rank,
                       char *err, size_t errcap);
int ebb_gloo_broadcast(ebb_gloo_ctx *ctx, void *buf, size_t bytes, int root, char *err,
                       size_t errcap);
// Counts are in elements of `elem_size` bytes, one per rank; buffers are packed in rank order.
int ebb_gloo_alltoallv(ebb_gloo_ctx *ctx, const void *in, const int64_t *send_counts,
                       void *out, const int64_t *recv_counts, size_t elem_size, char *err,
                       size_t errcap);
// Point to point: blocks until the bytes left (send) or arrived (recv), or the timeout.
int ebb_gloo_send(ebb_gloo_ctx *ctx, const void *buf, size_t bytes, int dst, uint32_t tag,
                  char *err, size_t errcap);
int ebb_gloo_recv(ebb_gloo_ctx *ctx, void *buf, size_t bytes, int src, uint32_t tag,
                  char *err, size_t errcap);
int ebb_gloo_barrier(ebb_gloo_ctx *ctx, char *err, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
