// Debian's libgloo-dev (0.0~git20220518) ships gloo/transport/tcp/pair.h, which includes
// this header, without shipping it. The shim includes pair.h only to call one member
// function of a pair that libgloo made (`signalExceptionExternal`, see gloo_shim.cpp); it
// never builds, copies or reads these types, so names are all it needs from here. Where
// the real header is installed, it is used instead.
#pragma once

#if __has_include_next(<gloo/common/memory.h>)
#include_next <gloo/common/memory.h>
#else
#include <memory>

namespace gloo {
template <typename T>
class WeakNonOwningPtr {
  std::weak_ptr<T> ptr_;
};

template <typename T>
class NonOwningPtr {
  std::shared_ptr<T> ptr_;
};
}  // namespace gloo
#endif
