#include "maskattn/nn/dropout.hpp"

#include <fmt/format.h>

#include "core/counter_rng.hpp"
#include "core/parallel_for.hpp"

namespace maskattn::nn {

namespace detail {
void apply_dropout(View<float, 2> x, double p, uint64_t seed) {
  if (!(p > 0.0)) return;
  const int64_t cols = x.size(1);
  const auto scale = static_cast<float>(1.0 / (1.0 - p));
  maskattn::detail::parallel_for_ranges(x.size(0), 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = x.row(r);
      for (int64_t c = 0; c < cols; ++c) {
        const auto counter = static_cast<uint64_t>(r * cols + c);
        row[c] = maskattn::detail::counter_uniform(seed, counter) >= p ? row[c] * scale : 0.0f;
      }
    }
  });
}
}  // namespace detail

Dropout::Dropout(double p) : p_(p) {
  if (!(p >= 0.0 && p < 1.0))
    throw Error("Dropout: p", "a probability in [0, 1)", fmt::format("{}", p));
}

void Dropout::forward(View<const float, 2> x, View<float, 2> y) const {
  if (y.shape() != x.shape())
    throw Error("Dropout: y", shape_string(x.shape()), shape_string(y.shape()));
  if (y.data() != x.data())
    for (int64_t r = 0; r < x.size(0); ++r) std::copy(x.row(r), x.row(r) + x.size(1), y.row(r));
  if (training()) detail::apply_dropout(y, p_, next_draw_seed());
}

}  // namespace maskattn::nn
