#include "maskattn/nn/positional_encoding.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>

#include "core/arena.hpp"
#include "maskattn/positional.hpp"

namespace maskattn::nn {

namespace {
// The table sinusoidal_encoding(max_len, d_model), its errors naming this
// module's arguments ("length" and "dim" are the function's).
Tensor<float> encoding_table(int64_t max_len, int64_t d_model) {
  try {
    return sinusoidal_encoding(max_len, d_model);
  } catch (const Error& e) {
    const std::string_view arg = e.argument();
    const std::string_view name = arg == "length" ? "max_len" : arg == "dim" ? "d_model" : arg;
    throw Error(fmt::format("PositionalEncoding: {}", name), e.expected(), e.actual());
  }
}
}  // namespace

PositionalEncoding::PositionalEncoding(int64_t d_model, double dropout, int64_t max_len)
    : pe_(encoding_table(max_len, d_model)), dropout_(dropout) {}

void PositionalEncoding::for_each_child(const ChildFn& fn) { fn("dropout", dropout_); }

namespace {
// The dropout of a (A, B, d) tensor, slice by slice along A: as one dropout of
// its A*B rows, whatever the strides.
void drop_slices(const Dropout& dropout, const Dropout::Saved& saved, View<float, 3> y) {
  if (!saved.active) return;
  const int64_t b = y.size(1), d = y.size(2);
  for (int64_t a = 0; a < y.size(0); ++a) {
    const View<float, 2> rows(y.row(a, 0), {b, d}, {y.stride(1), 1});
    dropout.apply(rows, saved, static_cast<uint64_t>(a * b * d));
  }
}
}  // namespace

void PositionalEncoding::forward(View<const float, 3> x, View<float, 3> y, bool batch_first,
                                 int64_t offset) const {
  Saved saved;
  forward(x, y, batch_first, offset, saved);
}

void PositionalEncoding::forward(View<const float, 3> x, View<float, 3> y, bool batch_first,
                                 int64_t offset, Saved& saved) const {
  const int64_t len = batch_first ? x.size(1) : x.size(0);
  const int64_t batch = batch_first ? x.size(0) : x.size(1);
  if (x.size(2) != d_model())
    throw Error("PositionalEncoding: x",
                fmt::format("{}, {})", batch_first ? "(B, L" : "(L, B", d_model()),
                shape_string(x.shape()));
  if (y.shape() != x.shape())
    throw Error("PositionalEncoding: y", shape_string(x.shape()), shape_string(y.shape()));
  if (offset < 0 || offset > max_len() - len)
    throw Error("PositionalEncoding: offset",
                fmt::format("offset + length <= max_len = {} (length {})", max_len(), len),
                std::to_string(offset));
  const int64_t d = d_model();
  for (int64_t l = 0; l < len; ++l) {
    const float* pe = pe_.data() + (offset + l) * d;
    for (int64_t b = 0; b < batch; ++b) {
      const float* xr = batch_first ? x.row(b, l) : x.row(l, b);
      float* yr = batch_first ? y.row(b, l) : y.row(l, b);
      for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] + pe[j];
    }
  }
  saved = dropout_.draw();
  drop_slices(dropout_, saved, y);
}

void PositionalEncoding::backward(const Saved& saved, View<const float, 3> dy,
                                  View<float, 3> dx) const {
  if (dy.size(2) != d_model())
    throw Error("PositionalEncoding: dy", fmt::format("(*, *, {})", d_model()),
                shape_string(dy.shape()));
  if (dx.shape() != dy.shape())
    throw Error("PositionalEncoding: dx", shape_string(dy.shape()), shape_string(dx.shape()));
  if (dx.data() != dy.data())
    for (int64_t a = 0; a < dy.size(0); ++a)
      for (int64_t b = 0; b < dy.size(1); ++b) std::copy_n(dy.row(a, b), dy.size(2), dx.row(a, b));
  drop_slices(dropout_, saved, dx);
}

}  // namespace maskattn::nn
