// Cross-entropy of logits against class targets: torch.nn.CrossEntropyLoss
// with class indices (ignore_index, label_smoothing, reduction "mean" or
// "sum"), fused with its gradient, as training needs it.
//
// For a row i with target t (not ignored), p = softmax(z_i) over C classes
// and smoothing eps (torch's definition, as in Szegedy et al. 2016: the target
// distribution is (1 - eps) one_hot(t) + eps / C):
//
//   loss_i = (1 - eps) (-log p_t) + (eps / C) sum_c (-log p_c)
//          = lse_i - (1 - eps) z_it - (eps / C) sum_c z_ic,  lse_i = log sum_c exp(z_ic)
//   dloss_i / dz_ic = p_c - (1 - eps) [c == t] - eps / C
//
// "mean" divides the sum over counted rows by their number (rows whose target
// is ignore_index count for nothing and get a zero gradient), "sum" does not.
// lse is computed stably (max subtracted) and every row's loss summed in
// double, in row order: the result does not depend on the thread count.
#pragma once

#include <cstdint>

#include "maskattn/tensor.hpp"

namespace maskattn::nn {

enum class Reduction { Mean, Sum };

struct CrossEntropyOptions {
  // Rows whose target is this are left out (the BERT MLM labels' -100 for
  // tokens not to predict). Any value outside [0, C) may be used.
  int64_t ignore_index = -100;
  // eps in [0, 1]: the weight moved from the target to the uniform distribution.
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::Mean;
};

struct CrossEntropyResult {
  // The reduced loss. With no counted row (every target ignored, or N = 0)
  // it is 0 and dlogits is all zeros, in both reductions: a batch with nothing
  // to predict teaches nothing. (torch's mean gives NaN there, 0/0, which
  // would poison a training run; `count` says it happened.)
  double loss = 0.0;
  int64_t count = 0;    // rows counted: targets that are not ignore_index
  int64_t correct = 0;  // of those, rows whose argmax (the first maximum) is the target
};

// logits (N, C) float32, any row stride; targets (N) int64, each in [0, C) or
// ignore_index. When dlogits is given ((N, C), any row stride) it receives the
// gradient of the returned loss with respect to the logits; it may be the
// logits' own memory (same data and strides: the gradient replaces the
// logits), and must not overlap them otherwise. Rows are processed in
// parallel. NaN or +-inf logits in a counted row make the loss NaN, as in
// torch.
//
// Errors (maskattn::Error, before anything is written): C < 1, targets or
// dlogits of another shape, label_smoothing outside [0, 1], a target outside
// [0, C) that is not ignore_index (naming "targets[i]" and its value).
CrossEntropyResult cross_entropy(View<const float, 2> logits, View<const int64_t, 1> targets,
                                 const CrossEntropyOptions& options = {},
                                 View<float, 2> dlogits = {});

}  // namespace maskattn::nn
