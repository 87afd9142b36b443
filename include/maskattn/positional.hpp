// Sinusoidal positional encoding (Vaswani et al., 2017, section 3.5).
//
//   angle(pos, i) = pos / base^(2i / d),  i = 0 .. d/2 - 1
//   Interleaved   (the paper):  PE(pos, 2i) = sin(angle), PE(pos, 2i + 1) = cos(angle)
//   Concatenated  (halves):     PE(pos, i)  = sin(angle), PE(pos, d/2 + i) = cos(angle)
//
// d must be even (an odd d is an Error: the pairs of sin/cos would not close);
// base finite and > 1; length, offset >= 0; layout one of PeLayout's values.
// Computed in double precision, stored as float.
#pragma once

#include <cstdint>

#include "maskattn/tensor.hpp"

namespace maskattn {

enum class PeLayout { Interleaved, Concatenated };

// (length, dim) encoding of positions 0 .. length-1.
Tensor<float> sinusoidal_encoding(int64_t length, int64_t dim, double base = 10000.0,
                                  PeLayout layout = PeLayout::Interleaved);

// Fills out (length, dim) with the encoding of positions offset .. offset+length-1.
void sinusoidal_encoding(View<float, 2> out, double base = 10000.0,
                         PeLayout layout = PeLayout::Interleaved, int64_t offset = 0);

}  // namespace maskattn
