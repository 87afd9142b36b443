// Memory read bandwidth as the benchmarks' yardstick for memory-bound work:
// every thread (OpenMP's, through parallel_for) sums its share of a 512 MiB
// float buffer, 16 times the 32 MiB L3 here, so the bytes come from memory.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/parallel_for.hpp"
#include "maskattn/tensor.hpp"

namespace bench {

// Sum of x[0, n) (n a multiple of 32, x 16-byte aligned): 8 independent
// accumulators of 4 floats. SSE is the x86-64 baseline, and two 16-byte loads
// per cycle are several times what memory gives one core (an AVX-512 loop
// measured the same here).
inline double sum_floats(const float* x, int64_t n) {
  __m128 acc[8];
  for (__m128& a : acc) a = _mm_setzero_ps();
  for (int64_t i = 0; i < n; i += 32)
    for (int u = 0; u < 8; ++u) acc[u] = _mm_add_ps(acc[u], _mm_load_ps(x + i + 4 * u));
  alignas(16) float lanes[4];
  double sum = 0.0;
  for (const __m128& a : acc) {
    _mm_store_ps(lanes, a);
    for (float l : lanes) sum += l;
  }
  return sum;
}

// 512 MiB of ones, allocated and touched at construction.
class ReadBandwidth {
 public:
  ReadBandwidth() : buffer_({kFloats}) { std::fill(buffer_.begin(), buffer_.end(), 1.0f); }

  double bytes() const { return static_cast<double>(kFloats) * sizeof(float); }

  // Seconds of one pass over the buffer; nullopt if the sum is not exact
  // (each lane adds at most 2^22 ones, exact in float).
  std::optional<double> timed_pass() {
    const int64_t threads = maskattn::detail::max_threads();
    const int64_t share = kFloats / threads / 32 * 32;
    std::vector<double> sums(static_cast<std::size_t>(threads));
    const auto start = std::chrono::steady_clock::now();
    maskattn::detail::parallel_for(threads, [&](int64_t t) {
      const int64_t n = t + 1 == threads ? kFloats - t * share : share;
      sums[static_cast<std::size_t>(t)] = sum_floats(buffer_.data() + t * share, n);
    });
    const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
    double total = 0.0;
    for (double s : sums) total += s;
    if (total != static_cast<double>(kFloats)) return std::nullopt;
    return seconds.count();
  }

 private:
  static constexpr int64_t kFloats = int64_t{1} << 27;  // 512 MiB
  maskattn::Tensor<float> buffer_;
};

}  // namespace bench
