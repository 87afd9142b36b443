// Sinusoidal positional encoding (Vaswani et al., 2017, section 3.5):
//   angle(pos, i) = pos / base^(2i / d),  i = 0 .. d/2 - 1
// sin(angle) and cos(angle) go to columns (2i, 2i + 1) when interleaved, or
// (i, d/2 + i) when concatenated. Angles are computed in double: at pos ~ 1e4
// a float angle would already be off by ~1e-3 rad.
#include "maskattn/positional.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <vector>

namespace maskattn {
namespace {

void check_base(double base) {
  // base <= 1 makes the wavelengths shrink (or vanish) with i instead of grow.
  if (!(std::isfinite(base) && base > 1.0))
    throw Error("base", "a finite number > 1 (the paper uses 10000)", fmt::format("{}", base));
}

void check_dim(int64_t dim, std::string_view argument, std::string_view actual) {
  // Each frequency fills one sin and one cos column: an odd d leaves one unpaired.
  if (dim <= 0 || dim % 2 != 0)
    throw Error(argument, "an even dim >= 2 (sin and cos columns come in pairs)", actual);
}

void check_layout(PeLayout layout) {
  if (layout != PeLayout::Interleaved && layout != PeLayout::Concatenated)
    throw Error("layout", "PeLayout::Interleaved or PeLayout::Concatenated",
                std::to_string(static_cast<int>(layout)));
}

// out: (length, dim), already checked.
void fill(View<float, 2> out, double base, PeLayout layout, int64_t offset) {
  const int64_t length = out.size(0), dim = out.size(1), half = dim / 2;
  // divisor[i] = base^(2i / d), the denominator of the paper's formula.
  std::vector<double> divisor(static_cast<std::size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    divisor[static_cast<std::size_t>(i)] =
        std::pow(base, static_cast<double>(2 * i) / static_cast<double>(dim));
  for (int64_t p = 0; p < length; ++p) {
    const double pos = static_cast<double>(offset + p);
    float* row = out.row(p);
    for (int64_t i = 0; i < half; ++i) {
      const double angle = pos / divisor[static_cast<std::size_t>(i)];
      const int64_t sin_col = layout == PeLayout::Interleaved ? 2 * i : i;
      const int64_t cos_col = layout == PeLayout::Interleaved ? 2 * i + 1 : half + i;
      row[sin_col] = static_cast<float>(std::sin(angle));
      row[cos_col] = static_cast<float>(std::cos(angle));
    }
  }
}

}  // namespace

Tensor<float> sinusoidal_encoding(int64_t length, int64_t dim, double base, PeLayout layout) {
  if (length < 0) throw Error("length", "length >= 0", std::to_string(length));
  check_dim(dim, "dim", std::to_string(dim));
  check_base(base);
  check_layout(layout);
  checked_mul(length, dim, "length");
  Tensor<float> pe({length, dim});
  fill(pe.view<2>(), base, layout, 0);
  return pe;
}

void sinusoidal_encoding(View<float, 2> out, double base, PeLayout layout, int64_t offset) {
  const std::string shape = shape_string(out.shape());
  check_dim(out.size(1), "out", fmt::format("shape (length, dim) = {}", shape));
  if (out.empty() && out.size(0) > 0)
    throw Error("out", fmt::format("a view with data for shape {}", shape), "a null view");
  check_base(base);
  check_layout(layout);
  if (offset < 0) throw Error("offset", "offset >= 0", std::to_string(offset));
  if (offset > std::numeric_limits<int64_t>::max() - out.size(0))
    throw Error("offset", fmt::format("offset + length <= {}", std::numeric_limits<int64_t>::max()),
                fmt::format("offset {} with length {}", offset, out.size(0)));
  fill(out, base, layout, offset);
}

}  // namespace maskattn
