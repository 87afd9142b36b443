#include "nn/projection.hpp"

#include <algorithm>

#include "kernels/gemm.hpp"

namespace maskattn::nn::detail {

void project(View<const float, 2> x, const float* weight, const float* bias, View<float, 2> y) {
  const int64_t n = x.size(0), in = x.size(1), out = y.size(1);
  if (n == 0 || out == 0) return;
  // y = bias (broadcast over rows), then y += x W^T.
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int64_t r = 0; r < n; ++r) std::copy(bias, bias + out, y.row(r));
    beta = 1.0f;
  }
  maskattn::detail::gemm(false, true, n, out, in, 1.0f, x.data(), x.stride(0), weight, in, beta,
                         y.data(), y.stride(0));
}

}  // namespace maskattn::nn::detail
