// Linear: y = x W^T + b, PyTorch's torch.nn.Linear (weight stored (out, in)).
#pragma once

#include <cstdint>

#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class Linear : public Module {
 public:
  // Parameters "weight" (out, in) and, with bias, "bias" (out), initialised
  // as torch does: uniform in +-1/sqrt(in_features).
  Linear(int64_t in_features, int64_t out_features, bool bias = true);

  // x (N, in) -> y (N, out), any row strides. y must not overlap x.
  void forward(View<const float, 2> x, View<float, 2> y) const;

  // Training (gradients.hpp): the backward needs nothing but the input x.
  struct Saved {};
  void forward(View<const float, 2> x, View<float, 2> y, Saved& saved) const;
  // dy (N, out) -> dx (N, in) = dy W (empty: not wanted); adds dy^T x to the
  // weight's gradient and the column sums of dy to the bias's. dx must not
  // overlap dy or x.
  void backward(View<const float, 2> x, const Saved& saved, View<const float, 2> dy,
                View<float, 2> dx, Gradients& grads) const;

  int64_t in_features() const noexcept { return weight_.size(1); }
  int64_t out_features() const noexcept { return weight_.size(0); }
  bool has_bias() const noexcept { return bias_.numel() > 0; }
  Tensor<float>& weight() noexcept { return weight_; }
  const Tensor<float>& weight() const noexcept { return weight_; }
  Tensor<float>& bias() noexcept { return bias_; }
  const Tensor<float>& bias() const noexcept { return bias_; }

 protected:
  void for_each_param(const ParamFn& fn) override;

 private:
  Tensor<float> weight_;  // (out, in)
  Tensor<float> bias_;    // (out) or empty
};

}  // namespace maskattn::nn
