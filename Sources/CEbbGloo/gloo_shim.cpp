// C shim over libgloo. Every entry point catches every exception; see CEbbGloo.h.
#include "CEbbGloo.h"

#if __has_include(<gloo/rendezvous/context.h>)

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoallv.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/tcp/pair.h>
#include <gloo/types.h>

namespace {

constexpr uint8_t kEbbP2PSlotPrefix = 0xE0;
constexpr size_t kBcubeMaxBytes = 256 * 1024;

struct StoreFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void writeErr(char *err, size_t errcap, const std::string &msg) {
  if (err == nullptr || errcap == 0) return;
  size_t n = msg.size() < errcap - 1 ? msg.size() : errcap - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

// A gloo store whose operations are callbacks into the caller (Swift).
class CallbackStore : public gloo::rendezvous::Store {
 public:
  CallbackStore(const ebb_gloo_store &cb, std::chrono::milliseconds timeout)
      : cb_(cb), timeout_(timeout) {}

  void set(const std::string &key, const std::vector<char> &data) override {
    char err[512] = {0};
    int rc = cb_.set(cb_.user, key.c_str(), reinterpret_cast<const uint8_t *>(data.data()),
                     data.size(), err, sizeof(err));
    if (rc != 0) throw StoreFailure(std::string("store set '") + key + "': " + err);
  }

  std::vector<char> get(const std::string &key) override {
    char err[512] = {0};
    uint8_t *out = nullptr;
    size_t len = 0;
    int rc = cb_.get(cb_.user, key.c_str(), timeout_.count(), &out, &len, err, sizeof(err));
    if (rc != 0) {
      std::free(out);
      throw StoreFailure(std::string("store get '") + key + "': " + err);
    }
    std::vector<char> v(len);
    if (len > 0 && out != nullptr) std::memcpy(v.data(), out, len);
    std::free(out);
    return v;
  }

  void wait(const std::vector<std::string> &keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string> &keys,
            const std::chrono::milliseconds &timeout) override {
    std::vector<const char *> ptrs;
    ptrs.reserve(keys.size());
    for (const auto &k : keys) ptrs.push_back(k.c_str());
    char err[512] = {0};
    int rc = cb_.wait(cb_.user, ptrs.data(), ptrs.size(), timeout.count(), err, sizeof(err));
    if (rc != 0) throw StoreFailure(std::string("store wait: ") + err);
  }

 private:
  ebb_gloo_store cb_;
  std::chrono::milliseconds timeout_;
};

bool looksLikeTimeout(const std::string &s) {
  return s.find("imed out") != std::string::npos || s.find("imeout") != std::string::npos;
}

// Runs `fn`, mapping every exception to a status code and a message.
template <typename F>
int guarded(const char *what, char *err, size_t errcap, F &&fn) {
  try {
    fn();
    return EBB_GLOO_OK;
  } catch (const StoreFailure &e) {
    std::string m = e.what();
    writeErr(err, errcap, std::string(what) + ": " + m);
    return looksLikeTimeout(m) ? EBB_GLOO_TIMEOUT : EBB_GLOO_STORE;
  } catch (const gloo::IoException &e) {
    std::string m = e.what();
    writeErr(err, errcap, std::string(what) + ": " + m);
    return looksLikeTimeout(m) ? EBB_GLOO_TIMEOUT : EBB_GLOO_IO;
  } catch (const gloo::EnforceNotMet &e) {
    writeErr(err, errcap, std::string(what) + ": " + e.what());
    return EBB_GLOO_INVALID;
  } catch (const std::invalid_argument &e) {
    writeErr(err, errcap, std::string(what) + ": " + e.what());
    return EBB_GLOO_INVALID;
  } catch (const std::exception &e) {
    std::string m = e.what();
    writeErr(err, errcap, std::string(what) + ": " + m);
    return looksLikeTimeout(m) ? EBB_GLOO_TIMEOUT : EBB_GLOO_INTERNAL;
  } catch (...) {
    writeErr(err, errcap, std::string(what) + ": unknown C++ exception");
    return EBB_GLOO_INTERNAL;
  }
}

// Gloo wants non-null pointers even for empty buffers.
char gEmpty[16];
template <typename T>
T *nonNull(T *p) {
  return p != nullptr ? p : reinterpret_cast<T *>(gEmpty);
}

template <typename T>
void setReduce(gloo::AllreduceOptions &opts, int op) {
  switch (op) {
    case EBB_GLOO_SUM:
      opts.setReduceFunction(static_cast<void (*)(void *, const void *, const void *, size_t)>(
          &gloo::sum<T>));
      break;
    case EBB_GLOO_MAX:
      opts.setReduceFunction(static_cast<void (*)(void *, const void *, const void *, size_t)>(
          &gloo::max<T>));
      break;
    case EBB_GLOO_MIN:
      opts.setReduceFunction(static_cast<void (*)(void *, const void *, const void *, size_t)>(
          &gloo::min<T>));
      break;
    default:
      throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
}

template <typename T>
void allreduceTyped(const std::shared_ptr<gloo::Context> &c, void *buf, size_t count, int op) {
  gloo::AllreduceOptions opts(c);
  opts.setOutput(static_cast<T *>(buf), count);
  // Small messages: BCUBE (log2(size) rounds) measured 4-10x faster than the ring (which
  // needs 2*(size-1) rounds) for a 16-byte all-reduce on this host. Large ones: the ring.
  // EBB_GLOO_ALLREDUCE_ALGO=ring|bcube overrides (for measurements).
  bool bcube = count * sizeof(T) <= kBcubeMaxBytes;
  if (const char *a = std::getenv("EBB_GLOO_ALLREDUCE_ALGO")) {
    if (std::string(a) == "bcube") bcube = true;
    if (std::string(a) == "ring") bcube = false;
  }
  opts.setAlgorithm(bcube ? gloo::AllreduceOptions::Algorithm::BCUBE
                          : gloo::AllreduceOptions::Algorithm::RING);
  setReduce<T>(opts, op);
  gloo::allreduce(opts);
}

}  // namespace

struct ebb_gloo_ctx {
  std::shared_ptr<gloo::transport::Device> device;
  std::shared_ptr<gloo::rendezvous::Context> context;
};

namespace {
// Gloo fails a pair's pending operations with `signalExceptionExternal` (what its buffers
// call when they time out); the TCP pair keeps it protected. Named through a derived class
// it yields a pointer to the pair's own member, which any code may call.
struct PairFailure : gloo::transport::tcp::Pair {
  static void fail(gloo::transport::tcp::Pair &pair, const std::string &reason) {
    auto signal = &PairFailure::signalExceptionExternal;
    (pair.*signal)(reason);
  }
};
}  // namespace

extern "C" {

int ebb_gloo_connect(const ebb_gloo_store *store, int rank, int size, const char *hostname,
                     const char *iface, int64_t connect_timeout_ms, int64_t op_timeout_ms,
                     ebb_gloo_ctx **out, char *err, size_t errcap) {
  if (out == nullptr || store == nullptr || store->set == nullptr || store->get == nullptr ||
      store->wait == nullptr) {
    writeErr(err, errcap, "connect: null argument");
    return EBB_GLOO_INVALID;
  }
  *out = nullptr;
  if (size < 1 || rank < 0 || rank >= size || connect_timeout_ms <= 0 || op_timeout_ms <= 0) {
    writeErr(err, errcap, "connect: invalid rank/size/timeout");
    return EBB_GLOO_INVALID;
  }
  ebb_gloo_ctx *result = nullptr;
  int rc = guarded("connect", err, errcap, [&] {
    auto timeout = std::chrono::milliseconds(connect_timeout_ms);
    gloo::transport::tcp::attr attr;
    if (hostname != nullptr && hostname[0] != '\0') attr.hostname = hostname;
    if (iface != nullptr && iface[0] != '\0') attr.iface = iface;
    auto dev = gloo::transport::tcp::CreateDevice(attr);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
    ctx->setTimeout(timeout);
    CallbackStore cbStore(*store, timeout);
    ctx->connectFullMesh(cbStore, dev);
    // Operations take their timeout from the context when they start.
    ctx->setTimeout(std::chrono::milliseconds(op_timeout_ms));
    auto *r = new ebb_gloo_ctx();
    r->device = dev;
    r->context = ctx;
    result = r;
  });
  *out = result;
  return rc;
}

void ebb_gloo_destroy(ebb_gloo_ctx *ctx) {
  if (ctx == nullptr) return;
  try {
    delete ctx;
  } catch (...) {
  }
}

void ebb_gloo_abort(ebb_gloo_ctx *ctx, const char *reason) {
  if (ctx == nullptr || !ctx->context) return;
  try {
    std::string why = std::string("aborted: ") + (reason != nullptr ? reason : "no reason given");
    auto &c = *ctx->context;
    for (int peer = 0; peer < c.size; peer++) {
      if (peer == c.rank) continue;
      auto *pair = dynamic_cast<gloo::transport::tcp::Pair *>(c.getPair(peer).get());
      if (pair != nullptr) PairFailure::fail(*pair, why);
    }
  } catch (...) {
  }
}

#define EBB_CHECK_CTX()                                \
  if (ctx == nullptr || !ctx->context) {               \
    writeErr(err, errcap, "null or closed context");   \
    return EBB_GLOO_INVALID;                           \
  }

int ebb_gloo_allreduce(ebb_gloo_ctx *ctx, void *buf, size_t count, int dtype, int op,
                       char *err, size_t errcap) {
  EBB_CHECK_CTX();
  if (count == 0) return EBB_GLOO_OK;
  return guarded("allreduce", err, errcap, [&] {
    auto &c = ctx->context;
    std::shared_ptr<gloo::Context> base = c;
    switch (dtype) {
      case EBB_GLOO_F32: allreduceTyped<float>(base, buf, count, op); break;
      case EBB_GLOO_F64: allreduceTyped<double>(base, buf, count, op); break;
      case EBB_GLOO_I32: allreduceTyped<int32_t>(base, buf, count, op); break;
      case EBB_GLOO_I64: allreduceTyped<int64_t>(base, buf, count, op); break;
      case EBB_GLOO_U8: allreduceTyped<uint8_t>(base, buf, count, op); break;
      default: throw std::invalid_argument("unknown dtype " + std::to_string(dtype));
    }
  });
}

int ebb_gloo_allgather(ebb_gloo_ctx *ctx, const void *in, void *out, size_t bytes_per_rank,
                       char *err, size_t errcap) {
  EBB_CHECK_CTX();
  if (bytes_per_rank == 0) return EBB_GLOO_OK;
  return guarded("allgather", err, errcap, [&] {
    std::shared_ptr<gloo::Context> base = ctx->context;
    gloo::AllgatherOptions opts(base);
    opts.setInput(const_cast<uint8_t *>(static_cast<const uint8_t *>(in)), bytes_per_rank);
    opts.setOutput(static_cast<uint8_t *>(out), bytes_per_rank * base->size);
    gloo::allgather(opts);
  });
}

int ebb_gloo_broadcast(ebb_gloo_ctx *ctx, void *buf, size_t bytes, int root, char *err,
                       size_t errcap) {
  EBB_CHECK_CTX();
  if (bytes == 0) return EBB_GLOO_OK;
  return guarded("broadcast", err, errcap, [&] {
    std::shared_ptr<gloo::Context> base = ctx->context;
    gloo::BroadcastOptions opts(base);
    opts.setOutput(static_cast<uint8_t *>(buf), bytes);
    opts.setRoot(root);
    gloo::broadcast(opts);
  });
}

int ebb_gloo_alltoallv(ebb_gloo_ctx *ctx, const void *in, const int64_t *send_counts,
                       void *out, const int64_t *recv_counts, size_t elem_size, char *err,
                       size_t errcap) {
  EBB_CHECK_CTX();
  if (send_counts == nullptr || recv_counts == nullptr || elem_size == 0) {
    writeErr(err, errcap, "alltoallv: null counts or zero element size");
    return EBB_GLOO_INVALID;
  }
  return guarded("alltoallv", err, errcap, [&] {
    std::shared_ptr<gloo::Context> base = ctx->context;
    size_t n = static_cast<size_t>(base->size);
    // Counts in bytes, so any element size works with one code path.
    std::vector<int64_t> sc(n), rc(n);
    for (size_t i = 0; i < n; i++) {
      sc[i] = send_counts[i] * static_cast<int64_t>(elem_size);
      rc[i] = recv_counts[i] * static_cast<int64_t>(elem_size);
    }
    gloo::AlltoallvOptions opts(base);
    opts.setInput(nonNull(const_cast<uint8_t *>(static_cast<const uint8_t *>(in))), sc);
    opts.setOutput(nonNull(static_cast<uint8_t *>(out)), rc);
    gloo::alltoallv(opts);
  });
}

int ebb_gloo_send(ebb_gloo_ctx *ctx, const void *buf, size_t bytes, int dst, uint32_t tag,
                  char *err, size_t errcap) {
  EBB_CHECK_CTX();
  return guarded("send", err, errcap, [&] {
    std::shared_ptr<gloo::Context> base = ctx->context;
    if (dst < 0 || dst >= base->size || dst == base->rank)
      throw std::invalid_argument("bad destination rank " + std::to_string(dst));
    auto ub = base->createUnboundBuffer(nonNull(const_cast<void *>(buf)), bytes);
    ub->send(dst, gloo::Slot::build(kEbbP2PSlotPrefix, tag));
    ub->waitSend(base->getTimeout());
  });
}

int ebb_gloo_recv(ebb_gloo_ctx *ctx, void *buf, size_t bytes, int src, uint32_t tag,
                  char *err, size_t errcap) {
  EBB_CHECK_CTX();
  return guarded("recv", err, errcap, [&] {
    std::shared_ptr<gloo::Context> base = ctx->context;
    if (src < 0 || src >= base->size || src == base->rank)
      throw std::invalid_argument("bad source rank " + std::to_string(src));
    auto ub = base->createUnboundBuffer(nonNull(buf), bytes);
    ub->recv(src, gloo::Slot::build(kEbbP2PSlotPrefix, tag));
    ub->waitRecv(base->getTimeout());
  });
}

int ebb_gloo_barrier(ebb_gloo_ctx *ctx, char *err, size_t errcap) {
  EBB_CHECK_CTX();
  return guarded("barrier", err, errcap, [&] {
    std::shared_ptr<gloo::Context> base = ctx->context;
    gloo::BarrierOptions opts(base);
    gloo::barrier(opts);
  });
}

}  // extern "C"

extern "C" int ebb_gloo_available(void) { return 1; }

#else  // built without libgloo-dev: every entry point reports that Gloo is unavailable.

#include <cstring>

namespace {
int unavailable(char *err, size_t errcap) {
  const char msg[] = "Ebb was built without libgloo-dev (install it and rebuild)";
  if (err != nullptr && errcap > 0) {
    size_t n = sizeof(msg) - 1 < errcap - 1 ? sizeof(msg) - 1 : errcap - 1;
    std::memcpy(err, msg, n);
    err[n] = '\0';
  }
  return EBB_GLOO_INTERNAL;
}
}  // namespace

extern "C" {
int ebb_gloo_available(void) { return 0; }
int ebb_gloo_connect(const ebb_gloo_store *, int, int, const char *, const char *, int64_t, int64_t,
                     ebb_gloo_ctx **out, char *err, size_t errcap) {
  if (out != nullptr) *out = nullptr;
  return unavailable(err, errcap);
}
void ebb_gloo_destroy(ebb_gloo_ctx *) {}
void ebb_gloo_abort(ebb_gloo_ctx *, const char *) {}
int ebb_gloo_allreduce(ebb_gloo_ctx *, void *, size_t, int, int, char *err, size_t errcap) {
  return unavailable(err, errcap);
}
int ebb_gloo_allgather(ebb_gloo_ctx *, const void *, void *, size_t, char *err, size_t errcap) {
  return unavailable(err, errcap);
}
int ebb_gloo_broadcast(ebb_gloo_ctx *, void *, size_t, int, char *err, size_t errcap) {
  return unavailable(err, errcap);
}
int ebb_gloo_alltoallv(ebb_gloo_ctx *, const void *, const int64_t *, void *, const int64_t *,
                       size_t, char *err, size_t errcap) {
  return unavailable(err, errcap);
}
int ebb_gloo_send(ebb_gloo_ctx *, const void *, size_t, int, uint32_t, char *err, size_t errcap) {
  return unavailable(err, errcap);
}
int ebb_gloo_recv(ebb_gloo_ctx *, void *, size_t, int, uint32_t, char *err, size_t errcap) {
  return unavailable(err, errcap);
}
int ebb_gloo_barrier(ebb_gloo_ctx *, char *err, size_t errcap) { return unavailable(err, errcap); }
}  // extern "C"

#endif
