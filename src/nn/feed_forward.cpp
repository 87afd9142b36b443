#include "maskattn/nn/feed_forward.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/arena.hpp"
#include "core/parallel_for.hpp"
#include "kernels/activation.hpp"

namespace maskattn::nn {

Activation activation_from_name(std::string_view name, std::string_view argument) {
  if (name == "relu") return Activation::ReLU;
  if (name == "gelu") return Activation::GELU;
  throw Error(argument, "\"relu\" or \"gelu\"", fmt::format("\"{}\"", name));
}

namespace {

// d_model, once both sizes are known good: checked before the Linears are
// made, so the message names FeedForward's arguments, not Linear's.
int64_t checked_sizes(int64_t d_model, int64_t dim_feedforward) {
  if (d_model < 1 || dim_feedforward < 1)
    throw Error("FeedForward", "d_model >= 1 and dim_feedforward >= 1",
                fmt::format("({}, {})", d_model, dim_feedforward));
  return d_model;
}

}  // namespace

FeedForward::FeedForward(int64_t d_model, int64_t dim_feedforward, Activation activation,
                         double dropout, bool bias)
    : linear1_(checked_sizes(d_model, dim_feedforward), dim_feedforward, bias),
      dropout_(dropout),
      linear2_(dim_feedforward, d_model, bias),
      activation_(activation) {}

void FeedForward::for_each_child(const ChildFn& fn) {
  fn("linear1", linear1_);
  fn("dropout", dropout_);
  fn("linear2", linear2_);
}

void FeedForward::check(View<const float, 2> x, View<float, 2> y) const {
  const int64_t d = linear1_.in_features();
  if (x.size(1) != d)
    throw Error("FeedForward: x", fmt::format("(N, {})", d), shape_string(x.shape()));
  if (y.shape() != x.shape())
    throw Error("FeedForward: y", shape_string(x.shape()), shape_string(y.shape()));
}

void FeedForward::forward(View<const float, 2> x, View<float, 2> y) const {
  check(x, y);
  const int64_t n = x.size(0), hidden = linear1_.out_features();
  maskattn::detail::Arena::Frame frame(maskattn::detail::thread_arena());
  const View<float, 2> h(frame.alloc<float>(n * hidden), {n, hidden});  // (N, dim_feedforward)
  Dropout::Saved dropout;
  run(x, h, View<float, 2>(), dropout, y);
}

void FeedForward::forward(View<const float, 2> x, View<float, 2> y, Saved& saved) const {
  check(x, y);
  const std::vector<int64_t> shape{x.size(0), linear1_.out_features()};
  ensure_shape(saved.pre, shape);
  ensure_shape(saved.hidden, shape);
  run(x, saved.hidden.view<2>(), saved.pre.view<2>(), saved.dropout, y);
}

void FeedForward::run(View<const float, 2> x, View<float, 2> h, View<float, 2> pre,
                      Dropout::Saved& dropout, View<float, 2> y) const {
  const int64_t hidden = h.size(1);
  const bool keep_pre = pre.data() != nullptr;
  linear1_.forward(x, keep_pre ? pre : h);
  const bool gelu = activation_ == Activation::GELU;
  // h and pre are contiguous (N, dim_feedforward): each range is one run.
  maskattn::detail::parallel_for_ranges(x.size(0), 16, [&](int64_t begin, int64_t end) {
    float* p = h.row(begin);
    const int64_t count = (end - begin) * hidden;
    if (keep_pre) std::copy_n(pre.row(begin), count, p);
    if (gelu)
      maskattn::detail::gelu_inplace(p, count);
    else
      maskattn::detail::relu_inplace(p, count);
  });
  dropout_.forward(h, h, dropout);
  linear2_.forward(h, y);
}

void FeedForward::backward(View<const float, 2> x, const Saved& saved, View<const float, 2> dy,
                           View<float, 2> dx, Gradients& grads) const {
  const int64_t n = x.size(0), hidden = linear1_.out_features();
  if (x.size(1) != linear1_.in_features())
    throw Error("FeedForward: x", fmt::format("(N, {})", linear1_.in_features()),
                shape_string(x.shape()));
  if (dy.shape() != x.shape())
    throw Error("FeedForward: dy", shape_string(x.shape()), shape_string(dy.shape()));
  if (saved.pre.shape() != std::vector<int64_t>{n, hidden} ||
      saved.hidden.shape() != saved.pre.shape())
    throw Error("FeedForward: saved", fmt::format("a forward's of {} rows", n),
                shape_string(saved.pre.shape()));
  maskattn::detail::Arena::Frame frame(maskattn::detail::thread_arena());
  const View<float, 2> dh(frame.alloc<float>(n * hidden), {n, hidden});  // (N, dim_feedforward)
  linear2_.backward(saved.hidden.view<2>(), Linear::Saved{}, dy, dh, grads);
  dropout_.backward(saved.dropout, dh, dh);
  const bool gelu = activation_ == Activation::GELU;
  maskattn::detail::parallel_for_ranges(n, 16, [&](int64_t begin, int64_t end) {
    const float* p = saved.pre.data() + begin * hidden;
    float* g = dh.row(begin);
    const int64_t count = (end - begin) * hidden;
    if (gelu)
      maskattn::detail::gelu_backward(p, g, count);
    else
      maskattn::detail::relu_backward(p, g, count);
  });
  linear1_.backward(x, Linear::Saved{}, dh, dx, grads);
}

}  // namespace maskattn::nn
