#include "maskattn/nn/layer_norm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/arena.hpp"
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

void LayerNorm::check(View<const float, 2> x, View<float, 2> y) const {
  if (x.size(1) != dim_)
    throw Error("LayerNorm: x", fmt::format("(N, {})", dim_), shape_string(x.shape()));
  if (y.shape() != x.shape())
    throw Error("LayerNorm: y", shape_string(x.shape()), shape_string(y.shape()));
}

void LayerNorm::forward(View<const float, 2> x, View<float, 2> y) const {
  check(x, y);
  normalize(x, y, nullptr, nullptr);
}

void LayerNorm::forward(View<const float, 2> x, View<float, 2> y, Saved& saved) const {
  check(x, y);
  if (x.size(0) > 0 && y.data() == x.data())
    throw Error("LayerNorm: y", "not x itself in training (the backward needs x)",
                "y is x (in place)");
  ensure_shape(saved.mean, {x.size(0)});
  ensure_shape(saved.rstd, {x.size(0)});
  normalize(x, y, saved.mean.data(), saved.rstd.data());
}

void LayerNorm::normalize(View<const float, 2> x, View<float, 2> y, float* mean_out,
                          float* rstd_out) const {
  const float* w = weight_.numel() > 0 ? weight_.data() : nullptr;
  const float* b = bias_.numel() > 0 ? bias_.data() : nullptr;
  const double inv_d = 1.0 / static_cast<double>(dim_);
  maskattn::detail::parallel_for_ranges(x.size(0), 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x.row(r);
      float* yr = y.row(r);
      // Two passes in double: mean, then the biased variance around it
      // (SIMD lanes: each sums every lanes-th element, then the lanes add).
      double mean = 0.0;
#pragma omp simd reduction(+ : mean)
      for (int64_t j = 0; j < dim_; ++j) mean += xr[j];
      mean *= inv_d;
      double var = 0.0;
#pragma omp simd reduction(+ : var)
      for (int64_t j = 0; j < dim_; ++j) {
        const double c = xr[j] - mean;
        var += c * c;
      }
      const double inv_std = 1.0 / std::sqrt(var * inv_d + eps_);
      if (mean_out) mean_out[r] = static_cast<float>(mean);
      if (rstd_out) rstd_out[r] = static_cast<float>(inv_std);
      if (w && b) {
#pragma omp simd
        for (int64_t j = 0; j < dim_; ++j)
          yr[j] = static_cast<float>((xr[j] - mean) * inv_std) * w[j] + b[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < dim_; ++j) {
          float v = static_cast<float>((xr[j] - mean) * inv_std);
          if (w) v *= w[j];
          if (b) v += b[j];
          yr[j] = v;
        }
      }
    }
  });
}

void LayerNorm::backward(View<const float, 2> x, const Saved& saved, View<const float, 2> dy,
                         View<float, 2> dx, Gradients& grads) const {
  const int64_t n = x.size(0);
  if (x.size(1) != dim_)
    throw Error("LayerNorm: x", fmt::format("(N, {})", dim_), shape_string(x.shape()));
  if (dy.shape() != x.shape())
    throw Error("LayerNorm: dy", shape_string(x.shape()), shape_string(dy.shape()));
  if (dx.data() != nullptr && dx.shape() != x.shape())
    throw Error("LayerNorm: dx", shape_string(x.shape()), shape_string(dx.shape()));
  if (saved.mean.numel() != n || saved.rstd.numel() != n)
    throw Error("LayerNorm: saved", fmt::format("the statistics of {} rows", n),
                fmt::format("{} rows", saved.mean.numel()));
  const float* mean = saved.mean.data();
  const float* rstd = saved.rstd.data();
  const float* w = weight_.numel() > 0 ? weight_.data() : nullptr;
  // xhat = (x - mean) rstd, y = xhat w + b.
  // Parameters first (dx may overwrite dy): dw += sum_rows dy xhat,
  // db += sum_rows dy; column blocks per thread, summed in double.
  float* dw = weight_.numel() > 0 ? grads[weight_].data() : nullptr;
  float* db = bias_.numel() > 0 ? grads[bias_].data() : nullptr;
  if ((dw || db) && n > 0)
    maskattn::detail::parallel_for_ranges(dim_, 64, [&](int64_t begin, int64_t end) {
      maskattn::detail::Arena::Frame frame(maskattn::detail::thread_arena());
      const int64_t cols = end - begin;
      double* sw = frame.alloc<double>(cols);
      double* sb = frame.alloc<double>(cols);
      std::fill(sw, sw + cols, 0.0);
      std::fill(sb, sb + cols, 0.0);
      for (int64_t r = 0; r < n; ++r) {
        const float* xr = x.row(r);
        const float* g = dy.row(r);
#pragma omp simd
        for (int64_t j = begin; j < end; ++j) {
          sw[j - begin] += static_cast<double>(g[j]) * ((xr[j] - double{mean[r]}) * rstd[r]);
          sb[j - begin] += g[j];
        }
      }
      for (int64_t j = begin; j < end; ++j) {
        if (dw) dw[j] += static_cast<float>(sw[j - begin]);
        if (db) db[j] += static_cast<float>(sb[j - begin]);
      }
    });
  if (dx.data() == nullptr) return;
  // With g = dy w: dx = rstd (g - mean(g) - xhat mean(g xhat)).
  const double inv_d = 1.0 / static_cast<double>(dim_);
  maskattn::detail::parallel_for_ranges(n, 64, [&](int64_t begin, int64_t end) {
    maskattn::detail::Arena::Frame frame(maskattn::detail::thread_arena());
    double* gw = frame.alloc<double>(dim_);  // g = dy w of the row
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x.row(r);
      const float* g = dy.row(r);
      const double m = mean[r], s = rstd[r];
      if (w) {
#pragma omp simd
        for (int64_t j = 0; j < dim_; ++j) gw[j] = static_cast<double>(g[j]) * w[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < dim_; ++j) gw[j] = g[j];
      }
      double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t j = 0; j < dim_; ++j) {
        sum_g += gw[j];
        sum_gx += gw[j] * ((xr[j] - m) * s);
      }
      const double mg = sum_g * inv_d, mgx = sum_gx * inv_d;
      float* out = dx.row(r);
#pragma omp simd
      for (int64_t j = 0; j < dim_; ++j)
        out[j] = static_cast<float>(s * (gw[j] - mg - (xr[j] - m) * s * mgx));
    }
  });
}

}  // namespace maskattn::nn
