// The position-wise feed-forward net of a Transformer layer:
//   y = linear2(dropout(activation(linear1(x))))
// with PyTorch's names: the layers that hold one list "linear1.*" and
// "linear2.*" as their own children, as torch.nn.TransformerEncoderLayer does.
#pragma once

#include <cstdint>
#include <string_view>

#include "maskattn/nn/dropout.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

enum class Activation {
  ReLU,
  GELU,  // exact: 0.5 x (1 + erf(x / sqrt(2))), torch's default "gelu"
};
// "relu" or "gelu"; Error naming `argument` otherwise.
Activation activation_from_name(std::string_view name, std::string_view argument = "activation");

class FeedForward : public Module {
 public:
  FeedForward(int64_t d_model, int64_t dim_feedforward, Activation activation = Activation::ReLU,
              double dropout = 0.1, bool bias = true);

  // x (N, d_model) -> y (N, d_model); y must not overlap x.
  void forward(View<const float, 2> x, View<float, 2> y) const;

  // Training (gradients.hpp).
  struct Saved {
    Tensor<float> pre;     // (N, dim_feedforward): linear1's output, before the activation
    Tensor<float> hidden;  // (N, dim_feedforward): linear2's input, dropout(activation(pre))
    Dropout::Saved dropout;
  };
  void forward(View<const float, 2> x, View<float, 2> y, Saved& saved) const;
  // dy (N, d_model) -> dx (N, d_model) (empty: not wanted); adds the
  // gradients of both layers' weights and biases. dx must not overlap dy or x.
  void backward(View<const float, 2> x, const Saved& saved, View<const float, 2> dy,
                View<float, 2> dx, Gradients& grads) const;

  Activation activation() const noexcept { return activation_; }
  Linear& linear1() noexcept { return linear1_; }
  Linear& linear2() noexcept { return linear2_; }

  // "linear1", "dropout", "linear2". Public: the Transformer layers list
  // these as their own children, as torch names them.
  void for_each_child(const ChildFn& fn) override;

 private:
  void check(View<const float, 2> x, View<float, 2> y) const;
  // The forward: h (N, dim_feedforward) receives linear2's input; pre (the
  // same shape, or empty: not kept) the pre-activation.
  void run(View<const float, 2> x, View<float, 2> h, View<float, 2> pre, Dropout::Saved& dropout,
           View<float, 2> y) const;

  Linear linear1_;  // (dim_feedforward, d_model)
  Dropout dropout_;
  Linear linear2_;  // (d_model, dim_feedforward)
  Activation activation_;
};

}  // namespace maskattn::nn
