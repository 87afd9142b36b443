#include "core/parallel_for.hpp"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <mutex>

namespace maskattn::detail {

namespace {

// Runs body(i) for i in [0, n): on the calling thread when there is nothing
// to share, else in an OpenMP team with the given schedule. The first
// exception a worker throws is rethrown on the caller's thread.
template <bool kDynamic>
void run(int64_t n, const std::function<void(int64_t)>& body) {
  if (n <= 0) return;
  if (n == 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::exception_ptr first;
  std::mutex m;
  auto guarded = [&](int64_t i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!first) first = std::current_exception();
    }
  };
  if constexpr (kDynamic) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) guarded(i);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) guarded(i);
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace

void parallel_for(int64_t n, const std::function<void(int64_t)>& body) { run<false>(n, body); }

void parallel_for_dynamic(int64_t n, const std::function<void(int64_t)>& body) {
  run<true>(n, body);
}

void parallel_for_ranges(int64_t n, int64_t grain,
                         const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = std::clamp<int64_t>(n / grain, 1, max_threads());
  const int64_t step = (n + chunks - 1) / chunks;
  parallel_for(chunks, [&](int64_t c) {
    const int64_t begin = c * step, end = std::min(n, begin + step);
    if (begin < end) body(begin, end);
  });
}

int max_threads() noexcept { return omp_get_max_threads(); }

}  // namespace maskattn::detail
