#include "maskattn/nn/feed_forward.hpp"

#include <fmt/format.h>

#include "core/arena.hpp"
#include "core/parallel_for.hpp"
#include "kernels/activation.hpp"

namespace maskattn::nn {

Activation activation_from_name(std::string_view name, std::string_view argument) {
  if (name == "relu") return Activation::ReLU;
  if (name == "gelu") return Activation::GELU;
  throw Error(argument, "\"relu\" or \"gelu\"", fmt::format("\"{}\"", name));
}

FeedForward::FeedForward(int64_t d_model, int64_t dim_feedforward, Activation activation,
                         double dropout, bool bias)
    : linear1_(d_model, dim_feedforward, bias),
      dropout_(dropout),
      linear2_(dim_feedforward, d_model, bias),
      activation_(activation) {}

void FeedForward::for_each_child(const ChildFn& fn) {
  fn("linear1", linear1_);
  fn("dropout", dropout_);
  fn("linear2", linear2_);
}

void FeedForward::forward(View<const float, 2> x, View<float, 2> y) const {
  const int64_t n = x.size(0), hidden = linear1_.out_features(), d = linear1_.in_features();
  if (x.size(1) != d)
    throw Error("FeedForward: x", fmt::format("(N, {})", d), shape_string(x.shape()));
  if (y.shape() != x.shape())
    throw Error("FeedForward: y", shape_string(x.shape()), shape_string(y.shape()));
  maskattn::detail::Arena::Frame frame(maskattn::detail::thread_arena());
  View<float, 2> h(frame.alloc<float>(n * hidden), {n, hidden});  // (N, dim_feedforward)
  linear1_.forward(x, h);
  const bool gelu = activation_ == Activation::GELU;
  maskattn::detail::parallel_for_ranges(n, 16, [&](int64_t begin, int64_t end) {
    float* p = h.row(begin);
    const int64_t count = (end - begin) * hidden;
    if (gelu)
      maskattn::detail::gelu_inplace(p, count);
    else
      maskattn::detail::relu_inplace(p, count);
  });
  dropout_.forward(h, h);
  linear2_.forward(h, y);
}

}  // namespace maskattn::nn
