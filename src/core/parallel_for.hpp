// The library's one way to use threads: parallel_for over [0, n) on the
// OpenMP runtime (which the GEMM library of later modules shares, so the two
// never fight over the cores). Exceptions thrown by `body` are caught on the
// worker and the first one is rethrown on the caller's thread.
#pragma once

#include <cstdint>
#include <functional>

namespace maskattn::detail {

// Calls body(i) for every i in [0, n), in parallel when n > 1 and more than
// one thread is available. Static schedule: which thread runs which i depends
// only on n and the thread count.
void parallel_for(int64_t n, const std::function<void(int64_t)>& body);

// Threads parallel_for uses (OpenMP's omp_get_max_threads()).
int max_threads() noexcept;

}  // namespace maskattn::detail
