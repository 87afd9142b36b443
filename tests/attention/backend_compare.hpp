// Comparing one backend's results with another's (flash with reference):
// elementwise closeness of two same-shape views, the largest magnitude of a
// view, and a scoped thread count.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "maskattn/tensor.hpp"

namespace maskattn::testing_attention {

// Restores the thread count a test changes.
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

// |a - b| <= tol + rel |b| elementwise over two same-shape views; NaN
// matches NaN and -inf matches -inf.
template <int N>
inline ::testing::AssertionResult same_within(std::string_view what, View<const float, N> got,
                                              View<const float, N> want, double tol,
                                              double rel = 0.0) {
  int64_t count = 1;
  for (int d = 0; d < N - 1; ++d) count *= got.size(d);
  const int64_t last = got.size(N - 1);
  std::array<int64_t, N> idx{};
  for (int64_t r = 0; r < count; ++r) {
    int64_t rem = r;
    for (int d = N - 2; d >= 0; --d) idx[d] = rem % got.size(d), rem /= got.size(d);
    int64_t og = 0, ow = 0;
    for (int d = 0; d < N - 1; ++d) og += idx[d] * got.stride(d), ow += idx[d] * want.stride(d);
    for (int64_t x = 0; x < last; ++x) {
      const double g = got.data()[og + x], w = want.data()[ow + x];
      const bool ok = std::isnan(w)   ? std::isnan(g)
                      : std::isinf(w) ? g == w
                                      : std::fabs(g - w) <= tol + rel * std::fabs(w);
      if (!ok) {
        std::string where;
        for (int d = 0; d < N - 1; ++d) where += std::to_string(idx[d]) + ", ";
        return ::testing::AssertionFailure() << what << "(" << where << x << "): flash " << g
                                             << ", reference " << w << " (tol " << tol << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

inline double max_abs(View<const float, 4> v) {
  double m = 0.0;
  for (int64_t a = 0; a < v.size(0); ++a)
    for (int64_t b = 0; b < v.size(1); ++b)
      for (int64_t c = 0; c < v.size(2); ++c)
        for (int64_t d = 0; d < v.size(3); ++d)
          if (std::isfinite(v(a, b, c, d))) m = std::max(m, std::fabs(double(v(a, b, c, d))));
  return m;
}

}  // namespace maskattn::testing_attention
