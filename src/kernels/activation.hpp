// The feed-forward activations over a buffer, in place, and their backward
// passes, on the best SIMD target Highway compiled (internal;
// kernels/activation.cpp).
#pragma once

#include <cstdint>

namespace maskattn::detail {

// x = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact GELU of torch and
// BERT, with erf from a rational-exponential fit (Numerical Recipes' erfc:
// relative error of erfc under 1.2e-7), so |gelu - exact| <= 1.2e-7 |x|.
void gelu_inplace(float* x, int64_t n);

// x = max(x, 0); NaN stays NaN.
void relu_inplace(float* x, int64_t n);

// The backward passes, given the forward's input x (n): dy *= gelu'(x) =
// Phi(x) + x phi(x) (within 3e-7 of the exact one; NaN at +-inf, as torch's),
// and dy = 0 where x <= 0 (torch's threshold_backward: a NaN x passes dy on).
void gelu_backward(const float* x, float* dy, int64_t n);
void relu_backward(const float* x, float* dy, int64_t n);

}  // namespace maskattn::detail
