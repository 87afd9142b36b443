// y = x W^T + b on the GEMM library (internal): Linear's arithmetic, also used
// on slices of a packed weight (MultiheadAttention's in_proj_weight), forward
// and backward.
#pragma once

#include "maskattn/tensor.hpp"

namespace maskattn::nn::detail {

// x (N, in), weight (out, in) row-major contiguous, bias (out) or null,
// y (N, out); any row strides. y must not overlap x.
void project(View<const float, 2> x, const float* weight, const float* bias, View<float, 2> y);

// The backward of project() for dy = dLoss/dy (N, out):
//   dx (N, in)       = dy W       (written; or added to dx when accumulate_dx:
//                                  several projections of one input, as the
//                                  q, k, v projections of self-attention)
//   dweight (out, in) += dy^T x   (row-major contiguous, like weight)
//   dbias (out)       += sum over rows of dy
// An empty dx (null data), a null dweight or a null dbias is not wanted.
// Any row strides; dx must not overlap dy or x.
void project_backward(View<const float, 2> x, const float* weight, View<const float, 2> dy,
                      View<float, 2> dx, float* dweight, float* dbias, bool accumulate_dx = false);

}  // namespace maskattn::nn::detail
