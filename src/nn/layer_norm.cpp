#include "maskattn/nn/layer_norm.hpp"

#include <fmt/format.h>

#include <cmath>

#include "core/parallel_for.hpp"
#include "nn/init.hpp"

namespace maskattn::nn {

LayerNorm::LayerNorm(int64_t normalized_shape, double eps, bool elementwise_affine, bool bias)
    : dim_(normalized_shape), eps_(eps) {
  if (normalized_shape < 1)
    throw Error("LayerNorm: normalized_shape", ">= 1", std::to_string(normalized_shape));
  if (!(std::isfinite(eps) && eps > 0))
    throw Error("LayerNorm: eps", "a finite eps > 0", fmt::format("{}", eps));
  if (elementwise_affine) {
    weight_ = Tensor<float>({dim_});
    detail::init_constant(weight_, 1.0f);
    if (bias) bias_ = Tensor<float>({dim_});
  }
}

void LayerNorm::for_each_param(const ParamFn& fn) {
  if (weight_.numel() > 0) fn("weight", weight_);
  if (bias_.numel() > 0) fn("bias", bias_);
}

void LayerNorm::forward(View<const float, 2> x, View<float, 2> y) const {
  const int64_t n = x.size(0);
  if (x.size(1) != dim_)
    throw Error("LayerNorm: x", fmt::format("(N, {})", dim_), shape_string(x.shape()));
  if (y.shape() != x.shape())
    throw Error("LayerNorm: y", shape_string(x.shape()), shape_string(y.shape()));
  const float* w = weight_.numel() > 0 ? weight_.data() : nullptr;
  const float* b = bias_.numel() > 0 ? bias_.data() : nullptr;
  const double inv_d = 1.0 / static_cast<double>(dim_);
  maskattn::detail::parallel_for_ranges(n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x.row(r);
      float* yr = y.row(r);
      // Two passes in double: mean, then the biased variance around it.
      double mean = 0.0;
      for (int64_t j = 0; j < dim_; ++j) mean += xr[j];
      mean *= inv_d;
      double var = 0.0;
      for (int64_t j = 0; j < dim_; ++j) {
        const double c = xr[j] - mean;
        var += c * c;
      }
      const double inv_std = 1.0 / std::sqrt(var * inv_d + eps_);
      for (int64_t j = 0; j < dim_; ++j) {
        float v = static_cast<float>((xr[j] - mean) * inv_std);
        if (w) v *= w[j];
        if (b) v += b[j];
        yr[j] = v;
      }
    }
  });
}

}  // namespace maskattn::nn
