#include "maskattn/nn/dropout.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/counter_rng.hpp"
#include "core/parallel_for.hpp"

namespace maskattn::nn {

namespace {
// In place: x *= keep / (1 - p), keep drawn from
// (seed, first_element + row * x.size(1) + col).
void apply_dropout(View<float, 2> x, double p, uint64_t seed, uint64_t first_element) {
  if (!(p > 0.0)) return;
  const int64_t cols = x.size(1);
  const auto scale = static_cast<float>(1.0 / (1.0 - p));
  maskattn::detail::parallel_for_ranges(x.size(0), 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = x.row(r);
      for (int64_t c = 0; c < cols; ++c) {
        const uint64_t counter = first_element + static_cast<uint64_t>(r * cols + c);
        row[c] = maskattn::detail::counter_uniform(seed, counter) >= p ? row[c] * scale : 0.0f;
      }
    }
  });
}

// dst = src row by row (nothing when they are the same memory).
void copy_2d(View<const float, 2> src, View<float, 2> dst) {
  if (dst.data() == src.data()) return;
  for (int64_t r = 0; r < src.size(0); ++r) std::copy_n(src.row(r), src.size(1), dst.row(r));
}
}  // namespace

Dropout::Dropout(double p) : p_(p) {
  if (!(p >= 0.0 && p < 1.0))
    throw Error("Dropout: p", "a probability in [0, 1)", fmt::format("{}", p));
}

Dropout::Saved Dropout::draw() const {
  Saved s;
  s.active = training() && p_ > 0.0;
  if (s.active) s.seed = next_draw_seed();
  return s;
}

void Dropout::apply(View<float, 2> x, const Saved& saved, uint64_t first_element) const {
  if (saved.active) apply_dropout(x, p_, saved.seed, first_element);
}

void Dropout::forward(View<const float, 2> x, View<float, 2> y) const {
  Saved saved;
  forward(x, y, saved);
}

void Dropout::forward(View<const float, 2> x, View<float, 2> y, Saved& saved) const {
  if (y.shape() != x.shape())
    throw Error("Dropout: y", shape_string(x.shape()), shape_string(y.shape()));
  copy_2d(x, y);
  saved = draw();
  apply(y, saved);
}

void Dropout::backward(const Saved& saved, View<const float, 2> dy, View<float, 2> dx) const {
  if (dx.shape() != dy.shape())
    throw Error("Dropout: dx", shape_string(dy.shape()), shape_string(dx.shape()));
  // y = x * m / (1 - p), so dx = dy * m / (1 - p): the same map.
  copy_2d(dy, dx);
  apply(dx, saved);
}

}  // namespace maskattn::nn
