// Printing matrices for the terminal: bool masks as grids of glyphs, float
// matrices with fixed precision, each with row and column indices.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "maskattn/tensor.hpp"

namespace maskattn::cli {

// The characters for true and false in a grid (one terminal column each).
struct Glyphs {
  std::string_view yes;
  std::string_view no;
};
inline constexpr Glyphs kBlockGlyphs{"█", "·"};
inline constexpr Glyphs kDigitGlyphs{"1", "0"};

// Names of the row and column indices: "i=3" down the side, "j:" over the top.
struct Axes {
  std::string_view row = "i";
  std::string_view col = "j";
};

// m: (rows, cols) as a grid of glyphs.
void print_grid(View<const bool, 2> m, Glyphs glyphs, Axes axes = {});

// Which elements of an additive mask (rows, cols) may attend (value > -inf),
// as a grid: the picture of Mask::materialize().
void print_allowed(View<const float, 2> additive, Glyphs glyphs, Axes axes = {});

// Several additive masks of one shape next to each other, each under its title.
void print_allowed_side_by_side(std::span<const View<const float, 2>> additive,
                                std::span<const std::string> titles, Glyphs glyphs, Axes axes = {});

// x with `precision` decimals; "-inf", "inf" and "nan" (never "-nan").
std::string format_number(float x, int precision);

// m: (rows, cols) with `precision` decimals; -inf shows as "-inf", NaN as "nan".
void print_matrix(View<const float, 2> m, int precision, Axes axes = {});

// Matrix (b, h) of a (B, H, L, S) tensor as a (L, S) view.
View<const float, 2> slice(const Tensor<float>& t, int64_t b, int64_t h);

}  // namespace maskattn::cli
