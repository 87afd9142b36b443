#include "core/parallel_for.hpp"

#include <omp.h>

#include <exception>
#include <mutex>

namespace maskattn::detail {

void parallel_for(int64_t n, const std::function<void(int64_t)>& body) {
  if (n <= 0) return;
  if (n == 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::exception_ptr first;
  std::mutex m;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

int max_threads() noexcept { return omp_get_max_threads(); }

}  // namespace maskattn::detail
