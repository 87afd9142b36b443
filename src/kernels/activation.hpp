// The feed-forward activations over a buffer, in place, on the best SIMD
// target Highway compiled (internal; kernels/activation.cpp).
#pragma once

#include <cstdint>

namespace maskattn::detail {

// x = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact GELU of torch and
// BERT, with erf from a rational-exponential fit (Numerical Recipes' erfc:
// relative error of erfc under 1.2e-7), so |gelu - exact| <= 1.2e-7 |x|.
void gelu_inplace(float* x, int64_t n);

// x = max(x, 0); NaN stays NaN.
void relu_inplace(float* x, int64_t n);

}  // namespace maskattn::detail
