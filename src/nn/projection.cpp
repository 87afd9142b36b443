#include "nn/projection.hpp"

#include <algorithm>

#include "core/arena.hpp"
#include "core/parallel_for.hpp"
#include "kernels/gemm.hpp"

namespace maskattn::nn::detail {

using maskattn::detail::gemm;

void project(View<const float, 2> x, const float* weight, const float* bias, View<float, 2> y) {
  const int64_t n = x.size(0), in = x.size(1), out = y.size(1);
  if (n == 0 || out == 0) return;
  // y = bias (broadcast over rows), then y += x W^T.
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int64_t r = 0; r < n; ++r) std::copy(bias, bias + out, y.row(r));
    beta = 1.0f;
  }
  gemm(false, true, n, out, in, 1.0f, x.data(), x.stride(0), weight, in, beta, y.data(),
       y.stride(0));
}

void project_backward(View<const float, 2> x, const float* weight, View<const float, 2> dy,
                      View<float, 2> dx, float* dweight, float* dbias, bool accumulate_dx) {
  const int64_t n = dy.size(0), out = dy.size(1), in = x.size(1);
  // dx (N, in) = dy (N, out) . W (out, in)
  if (dx.data() != nullptr && n > 0)
    gemm(false, false, n, in, out, 1.0f, dy.data(), dy.stride(0), weight, in,
         accumulate_dx ? 1.0f : 0.0f, dx.data(), dx.stride(0));
  // dW (out, in) += dy^T (out, N) . x (N, in)
  if (dweight != nullptr && n > 0)
    gemm(true, false, out, in, n, 1.0f, dy.data(), dy.stride(0), x.data(), x.stride(0), 1.0f,
         dweight, in);
  // db (out) += the column sums of dy, in double, each column block by one
  // thread: the same sum whatever the thread count.
  if (dbias != nullptr && n > 0)
    maskattn::detail::parallel_for_ranges(out, 64, [&](int64_t begin, int64_t end) {
      maskattn::detail::Arena::Frame frame(maskattn::detail::thread_arena());
      double* sum = frame.alloc<double>(end - begin);
      std::fill(sum, sum + (end - begin), 0.0);
      for (int64_t r = 0; r < n; ++r) {
        const float* row = dy.row(r) + begin;
#pragma omp simd
        for (int64_t c = 0; c < end - begin; ++c) sum[c] += row[c];
      }
      for (int64_t c = begin; c < end; ++c) dbias[c] += static_cast<float>(sum[c - begin]);
    });
}

}  // namespace maskattn::nn::detail
