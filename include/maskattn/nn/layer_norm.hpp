// LayerNorm over the last dimension, PyTorch's torch.nn.LayerNorm(d):
//   y = (x - mean) / sqrt(var + eps) * weight + bias   (biased variance)
#pragma once

#include <cstdint>

#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class LayerNorm : public Module {
 public:
  // Parameters "weight" (d) = 1 and "bias" (d) = 0 when elementwise_affine
  // (bias only with bias = true). eps finite and > 0.
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                     bool bias = true);

  // x (N, d) -> y (N, d); y may be x itself (in place).
  void forward(View<const float, 2> x, View<float, 2> y) const;

  // Training (gradients.hpp): each row's statistics.
  struct Saved {
    Tensor<float> mean;  // (N)
    Tensor<float> rstd;  // (N): 1 / sqrt(var + eps)
  };
  // y must not be x here: the backward needs x.
  void forward(View<const float, 2> x, View<float, 2> y, Saved& saved) const;
  // dy (N, d) -> dx (N, d) (empty: not wanted; may be dy itself); adds the
  // weight's and bias's gradients.
  void backward(View<const float, 2> x, const Saved& saved, View<const float, 2> dy,
                View<float, 2> dx, Gradients& grads) const;

  int64_t normalized_shape() const noexcept { return dim_; }
  double eps() const noexcept { return eps_; }
  Tensor<float>& weight() noexcept { return weight_; }
  Tensor<float>& bias() noexcept { return bias_; }

 protected:
  void for_each_param(const ParamFn& fn) override;

 private:
  void check(View<const float, 2> x, View<float, 2> y) const;
  // The forward; mean and rstd (N) or null: kept for the backward.
  void normalize(View<const float, 2> x, View<float, 2> y, float* mean, float* rstd) const;

  int64_t dim_;
  double eps_;
  Tensor<float> weight_;  // (d) or empty
  Tensor<float> bias_;    // (d) or empty
};

}  // namespace maskattn::nn
