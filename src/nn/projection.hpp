// y = x W^T + b on the GEMM library (internal): Linear's arithmetic, also used
// on slices of a packed weight (MultiheadAttention's in_proj_weight).
#pragma once

#include "maskattn/tensor.hpp"

namespace maskattn::nn::detail {

// x (N, in), weight (out, in) row-major contiguous, bias (out) or null,
// y (N, out); any row strides. y must not overlap x.
void project(View<const float, 2> x, const float* weight, const float* bias, View<float, 2> y);

}  // namespace maskattn::nn::detail
