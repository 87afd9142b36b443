// Linear: y = x W^T + b, PyTorch's torch.nn.Linear (weight stored (out, in)).
#pragma once

#include <cstdint>

#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class Linear : public Module {
 public:
  // Parameters "weight" (out, in) and, with bias, "bias" (out), initialised
  // as torch does: uniform in +-1/sqrt(in_features).
  Linear(int64_t in_features, int64_t out_features, bool bias = true);

  // x (N, in) -> y (N, out), any row strides. y must not overlap x.
  void forward(View<const float, 2> x, View<float, 2> y) const;

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
