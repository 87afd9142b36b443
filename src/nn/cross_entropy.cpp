#include "maskattn/nn/cross_entropy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel_for.hpp"

namespace maskattn::nn {
namespace {

void check_arguments(View<const float, 2> logits, View<const int64_t, 1> targets,
                     const CrossEntropyOptions& o, View<float, 2> dlogits) {
  const int64_t n = logits.size(0), c = logits.size(1);
  if (c < 1)
    throw Error("cross_entropy: logits", "(N, C) with C >= 1 classes",
                shape_string(logits.shape()));
  if (targets.size(0) != n)
    throw Error("cross_entropy: targets", fmt::format("({}) (one per row of the logits)", n),
                shape_string(targets.shape()));
  if (!dlogits.empty() && dlogits.shape() != logits.shape())
    throw Error("cross_entropy: dlogits",
                fmt::format("{} (the logits' shape)", shape_string(logits.shape())),
                shape_string(dlogits.shape()));
  if (!(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0))
    throw Error("cross_entropy: label_smoothing", "a number in [0, 1]",
                fmt::format("{}", o.label_smoothing));
}

// Counted rows; Error naming the first target that is neither a class nor ignored.
int64_t count_targets(View<const int64_t, 1> targets, int64_t classes, int64_t ignore_index) {
  int64_t count = 0;
  for (int64_t i = 0; i < targets.size(0); ++i) {
    const int64_t t = targets(i);
    if (t == ignore_index) continue;
    if (t < 0 || t >= classes)
      throw Error(fmt::format("cross_entropy: targets[{}]", i),
                  fmt::format("a class in [0, {}) or ignore_index ({})", classes, ignore_index),
                  fmt::format("{}", t));
    ++count;
  }
  return count;
}

struct RowResult {
  double loss;
  bool correct;
};

// One counted row: its loss, whether its argmax is the target, and (when d is
// not null) weight * its gradient written to d[0, C). d may be z.
RowResult row_loss(const float* z, int64_t classes, int64_t target, double eps, double weight,
                   float* d) {
  // max, first argmax, sum; NaN anywhere makes the row NaN.
  float m = z[0];
  int64_t argmax = 0;
  double sum_z = 0.0;
  bool nan = false;
  for (int64_t c = 0; c < classes; ++c) {
    nan |= std::isnan(z[c]);
    if (z[c] > m) {
      m = z[c];
      argmax = c;
    }
    sum_z += z[c];
  }
  const float z_t = z[target];
  const bool correct = !nan && argmax == target;
  if (nan) {
    if (d) std::fill(d, d + classes, std::numeric_limits<float>::quiet_NaN());
    return {std::numeric_limits<double>::quiet_NaN(), false};
  }
  // sum_c exp(z_c - m), each term in [0, 1]; written to d for the gradient.
  double sum_e = 0.0;
  for (int64_t c = 0; c < classes; ++c) {
    const float e = std::exp(z[c] - m);
    if (d) d[c] = e;
    sum_e += e;
  }
  // loss = lse - (1 - eps) z_t - eps mean(z), lse = m + log(sum_e), as
  // log(sum_e) + (1 - eps)(m - z_t) + eps (m - mean(z)): non-negative terms;
  // a term whose weight is 0 is left out (0 * inf is NaN, not 0).
  double loss = std::log(sum_e);
  if (eps < 1.0) loss += (1.0 - eps) * (static_cast<double>(m) - z_t);
  if (eps > 0.0) loss += eps * (static_cast<double>(m) - sum_z / static_cast<double>(classes));
  if (d) {
    // weight * (p_c - eps / C - (1 - eps) [c == t]), p_c = e_c / sum_e.
    const auto scale = static_cast<float>(weight / sum_e);
    const auto uniform = static_cast<float>(weight * eps / static_cast<double>(classes));
    for (int64_t c = 0; c < classes; ++c) d[c] = d[c] * scale - uniform;
    d[target] -= static_cast<float>(weight * (1.0 - eps));
  }
  return {loss, correct};
}

}  // namespace

CrossEntropyResult cross_entropy(View<const float, 2> logits, View<const int64_t, 1> targets,
                                 const CrossEntropyOptions& options, View<float, 2> dlogits) {
  check_arguments(logits, targets, options, dlogits);
  const int64_t n = logits.size(0), classes = logits.size(1);
  CrossEntropyResult result;
  result.count = count_targets(targets, classes, options.ignore_index);
  const double weight = options.reduction == Reduction::Mean && result.count > 0
                            ? 1.0 / static_cast<double>(result.count)
                            : 1.0;
  // Per-row results, summed in row order afterwards (thread-count independent).
  std::vector<RowResult> rows(static_cast<std::size_t>(n), RowResult{0.0, false});
  const int64_t grain = std::max<int64_t>(1, 16384 / classes);
  detail::parallel_for_ranges(n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* d = dlogits.empty() ? nullptr : dlogits.row(i);
      const int64_t t = targets(i);
      if (t == options.ignore_index) {
        if (d) std::fill(d, d + classes, 0.0f);
        continue;
      }
      rows[static_cast<std::size_t>(i)] =
          row_loss(logits.row(i), classes, t, options.label_smoothing, weight, d);
    }
  });
  double sum = 0.0;
  for (const RowResult& r : rows) {
    sum += r.loss;
    result.correct += r.correct ? 1 : 0;
  }
  result.loss = options.reduction == Reduction::Mean && result.count > 0
                    ? sum / static_cast<double>(result.count)
                    : sum;
  return result;
}

}  // namespace maskattn::nn
