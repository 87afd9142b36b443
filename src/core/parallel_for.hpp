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

// The same with a dynamic schedule: idle threads take the next i. For tasks
// of uneven cost (the query blocks of a causal mask); the result must not
// depend on which thread runs which i (each i writes only its own output).
void parallel_for_dynamic(int64_t n, const std::function<void(int64_t)>& body);

// Calls body(begin, end) over consecutive ranges that cover [0, n), each of
// at least `grain` items (but the last), one range per thread at most: for
// loops whose items are too cheap for a call each (rows of a LayerNorm).
void parallel_for_ranges(int64_t n, int64_t grain,
                         const std::function<void(int64_t begin, int64_t end)>& body);

// Threads parallel_for uses (OpenMP's omp_get_max_threads()).
int max_threads() noexcept;

}  // namespace maskattn::detail
