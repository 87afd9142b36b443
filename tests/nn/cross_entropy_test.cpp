// nn::cross_entropy against a double-precision oracle written here (log-softmax
// in double, torch's label-smoothing formula) and its central finite
// differences; ignore_index, reductions, in-place gradients, accuracy counts,
// stability on large logits, and an Error for every bad argument.
#include "maskattn/nn/cross_entropy.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "throws_error.hpp"

namespace maskattn {
namespace {

using nn::CrossEntropyOptions;
using nn::Reduction;
using testing_errors::throws_error_naming;

// The loss in double, straight from torch's definition: per counted row
// (1 - eps) * (-log p_t) + eps * mean_c(-log p_c), then mean or sum.
double oracle_loss(const std::vector<double>& z, int64_t n, int64_t c,
                   const std::vector<int64_t>& t, const CrossEntropyOptions& o) {
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] == o.ignore_index) continue;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < c; ++k) m = std::max(m, z[i * c + k]);
    double s = 0.0;
    for (int64_t k = 0; k < c; ++k) s += std::exp(z[i * c + k] - m);
    const double lse = m + std::log(s);
    double smooth = 0.0;
    for (int64_t k = 0; k < c; ++k) smooth += lse - z[i * c + k];
    sum += (1.0 - o.label_smoothing) * (lse - z[i * c + t[i]]) +
           o.label_smoothing * smooth / static_cast<double>(c);
    ++count;
  }
  return o.reduction == Reduction::Mean ? sum / static_cast<double>(count) : sum;
}

struct Case {
  int64_t n, c, stride;
  std::vector<float> logits;  // n rows of `stride`, the first c used
  std::vector<int64_t> targets;
};

Case make_case(int64_t n, int64_t c, int64_t stride, uint32_t seed, float scale = 3.0f) {
  Case k{n, c, stride, std::vector<float>(static_cast<std::size_t>(n * stride), 99.0f), {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> z(0.0f, scale);
  std::uniform_int_distribution<int64_t> cls(0, c - 1);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < c; ++j) k.logits[i * stride + j] = z(rng);
    k.targets.push_back(i % 4 == 3 ? -100 : cls(rng));  // every 4th row ignored
  }
  return k;
}

View<const float, 2> logits_of(const Case& k) {
  return View<const float, 2>(k.logits.data(), {k.n, k.c}, {k.stride, 1});
}
View<const int64_t, 1> targets_of(const Case& k) {
  return View<const int64_t, 1>(k.targets.data(), {k.n});
}

TEST(CrossEntropy, ValuesAndGradientsMatchDoubleFiniteDifferences) {
  // Odd sizes, a row stride past C, ignored rows; every smoothing and reduction.
  const Case k = make_case(23, 13, 17, 1);
  std::vector<double> z(static_cast<std::size_t>(k.n * k.c));
  for (int64_t i = 0; i < k.n; ++i)
    for (int64_t j = 0; j < k.c; ++j) z[i * k.c + j] = k.logits[i * k.stride + j];
  double worst_loss = 0.0, worst_grad = 0.0;
  for (const double eps : {0.0, 0.1, 0.5, 1.0})
    for (const Reduction r : {Reduction::Mean, Reduction::Sum}) {
      SCOPED_TRACE(::testing::Message()
                   << "eps " << eps << (r == Reduction::Mean ? " mean" : " sum"));
      CrossEntropyOptions o;
      o.label_smoothing = eps;
      o.reduction = r;
      std::vector<float> d(static_cast<std::size_t>(k.n * 19), 7.0f);  // row stride 19
      const View<float, 2> dv(d.data(), {k.n, k.c}, {19, 1});
      const nn::CrossEntropyResult res = nn::cross_entropy(logits_of(k), targets_of(k), o, dv);
      EXPECT_EQ(res.count, k.n - k.n / 4);
      const double want = oracle_loss(z, k.n, k.c, k.targets, o);
      EXPECT_NEAR(res.loss, want, 1e-6 * std::max(1.0, std::abs(want)));
      worst_loss = std::max(worst_loss, std::abs(res.loss - want));
      // Central differences of the double oracle, h = 1e-5: error ~1e-10.
      const double h = 1e-5;
      for (int64_t i = 0; i < k.n; ++i)
        for (int64_t j = 0; j < k.c; ++j) {
          std::vector<double> zp = z, zm = z;
          zp[i * k.c + j] += h;
          zm[i * k.c + j] -= h;
          const double fd =
              (oracle_loss(zp, k.n, k.c, k.targets, o) - oracle_loss(zm, k.n, k.c, k.targets, o)) /
              (2 * h);
          EXPECT_NEAR(dv(i, j), fd, 1e-6) << "row " << i << " class " << j;
          worst_grad = std::max(worst_grad, std::abs(dv(i, j) - fd));
        }
      // The columns past C are not written.
      for (int64_t i = 0; i < k.n; ++i)
        for (int64_t j = k.c; j < 19; ++j) EXPECT_EQ(d[i * 19 + j], 7.0f);
    }
  RecordProperty("worst_loss_error", fmt::format("{:.3g}", worst_loss));
  RecordProperty("worst_grad_error", fmt::format("{:.3g}", worst_grad));
}

TEST(CrossEntropy, InPlaceGradientEqualsASeparateOneBitwise) {
  Case k = make_case(31, 9, 9, 2);
  CrossEntropyOptions o;
  o.label_smoothing = 0.2;
  std::vector<float> d(k.logits.size());
  const nn::CrossEntropyResult a = nn::cross_entropy(
      logits_of(k), targets_of(k), o, View<float, 2>(d.data(), {k.n, k.c}, {k.stride, 1}));
  const nn::CrossEntropyResult b = nn::cross_entropy(
      logits_of(k), targets_of(k), o, View<float, 2>(k.logits.data(), {k.n, k.c}, {k.stride, 1}));
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(d, k.logits);
}

TEST(CrossEntropy, WithoutGradientGivesTheSameLoss) {
  const Case k = make_case(10, 6, 6, 3);
  std::vector<float> d(k.logits.size());
  const double with =
      nn::cross_entropy(logits_of(k), targets_of(k), {}, View<float, 2>(d.data(), {k.n, k.c})).loss;
  EXPECT_EQ(nn::cross_entropy(logits_of(k), targets_of(k)).loss, with);
}

TEST(CrossEntropy, MeanIsTheSumOverCountedRowsOnly) {
  const Case k = make_case(12, 5, 5, 4);
  CrossEntropyOptions sum;
  sum.reduction = Reduction::Sum;
  const auto s = nn::cross_entropy(logits_of(k), targets_of(k), sum);
  const auto m = nn::cross_entropy(logits_of(k), targets_of(k));
  EXPECT_EQ(s.count, 9);
  EXPECT_NEAR(m.loss, s.loss / 9.0, 1e-12);
}

TEST(CrossEntropy, IgnoredRowsGetZeroGradientAndAnyIgnoreIndexWorks) {
  Case k = make_case(8, 4, 4, 5);
  for (int64_t& t : k.targets)
    if (t == -100) t = 7;  // an ignore_index past C
  CrossEntropyOptions o;
  o.ignore_index = 7;
  std::vector<float> d(k.logits.size(), 5.0f);
  const auto r =
      nn::cross_entropy(logits_of(k), targets_of(k), o, View<float, 2>(d.data(), {k.n, k.c}));
  EXPECT_EQ(r.count, 6);
  for (int64_t i = 0; i < k.n; ++i) {
    double row_sum = 0.0;
    for (int64_t j = 0; j < k.c; ++j) row_sum += d[i * k.c + j];
    if (k.targets[i] == 7) {
      for (int64_t j = 0; j < k.c; ++j) EXPECT_EQ(d[i * k.c + j], 0.0f);
    } else {
      EXPECT_NEAR(row_sum, 0.0, 1e-7);  // softmax minus a distribution: sums to 0
    }
  }
}

TEST(CrossEntropy, EveryTargetIgnoredGivesZeroLossAndZeroGradient) {
  std::vector<float> z = {1.0f, 2.0f, 3.0f, -1.0f, 0.0f, 4.0f};
  std::vector<int64_t> t = {-100, -100};
  std::vector<float> d(6, 9.0f);
  for (const Reduction r : {Reduction::Mean, Reduction::Sum}) {
    CrossEntropyOptions o;
    o.reduction = r;
    o.label_smoothing = 0.1;
    const auto res = nn::cross_entropy(View<const float, 2>(z.data(), {2, 3}),
                                       View<const int64_t, 1>(t.data(), {2}), o,
                                       View<float, 2>(d.data(), {2, 3}));
    EXPECT_EQ(res.loss, 0.0);
    EXPECT_EQ(res.count, 0);
    EXPECT_EQ(res.correct, 0);
    for (float g : d) EXPECT_EQ(g, 0.0f);
  }
  // No rows at all: the same.
  const auto empty = nn::cross_entropy(View<const float, 2>(z.data(), {0, 3}),
                                       View<const int64_t, 1>(t.data(), {0}));
  EXPECT_EQ(empty.loss, 0.0);
  EXPECT_EQ(empty.count, 0);
}

TEST(CrossEntropy, CountsCorrectArgmaxPredictionsWithTheFirstMaximumOnTies) {
  // rows: argmax 2 (target 2: correct), tie 0/1 -> 0 (target 1: wrong),
  // tie -> 0 (target 0: correct), ignored (argmax = target, not counted).
  std::vector<float> z = {0, 1, 5, 3, 3, 1, 2, 2, 2, 0, 0, 9};
  std::vector<int64_t> t = {2, 1, 0, -100};
  const auto r = nn::cross_entropy(View<const float, 2>(z.data(), {4, 3}),
                                   View<const int64_t, 1>(t.data(), {4}));
  EXPECT_EQ(r.count, 3);
  EXPECT_EQ(r.correct, 2);
}

TEST(CrossEntropy, LargeLogitsAreStable) {
  // Shifting a row by a constant changes nothing mathematically; 1e4 would
  // overflow exp() without the max subtracted.
  const Case k = make_case(6, 7, 7, 6);
  Case shifted = k;
  for (float& x : shifted.logits) x += 1.0e4f;
  CrossEntropyOptions o;
  o.label_smoothing = 0.3;
  const auto a = nn::cross_entropy(logits_of(k), targets_of(k), o);
  const auto b = nn::cross_entropy(logits_of(shifted), targets_of(shifted), o);
  ASSERT_TRUE(std::isfinite(b.loss));
  // float rounding of x + 1e4 moves each logit by up to 5e-4.
  EXPECT_NEAR(a.loss, b.loss, 2e-3);
}

TEST(CrossEntropy, MinusInfinityLogitsAreImpossibleClassesAndNaNPropagates) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> z = {0.0f, -inf, 0.0f};
  std::vector<int64_t> t = {0};
  std::vector<float> d(3);
  const auto r = nn::cross_entropy(View<const float, 2>(z.data(), {1, 3}),
                                   View<const int64_t, 1>(t.data(), {1}), {},
                                   View<float, 2>(d.data(), {1, 3}));
  EXPECT_NEAR(r.loss, std::log(2.0), 1e-7);
  EXPECT_EQ(d[1], 0.0f);
  EXPECT_NEAR(d[0], -0.5f, 1e-7);
  // With smoothing an impossible class makes the loss infinite (torch: inf too).
  CrossEntropyOptions o;
  o.label_smoothing = 0.1;
  EXPECT_EQ(nn::cross_entropy(View<const float, 2>(z.data(), {1, 3}),
                              View<const int64_t, 1>(t.data(), {1}), o)
                .loss,
            std::numeric_limits<double>::infinity());
  z[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(nn::cross_entropy(View<const float, 2>(z.data(), {1, 3}),
                                           View<const int64_t, 1>(t.data(), {1}))
                             .loss));
}

TEST(CrossEntropy, ErrorsNameTheArgument) {
  std::vector<float> z(12, 0.0f), d(12);
  std::vector<int64_t> t = {0, 1, 3, 2};
  const View<const float, 2> logits(z.data(), {4, 3});
  const View<const int64_t, 1> targets(t.data(), {4});
  EXPECT_TRUE(throws_error_naming([&] { nn::cross_entropy(logits, targets); }, "targets[2]"));
  t[2] = -5;  // negative and not ignore_index
  EXPECT_TRUE(throws_error_naming([&] { nn::cross_entropy(logits, targets); }, "targets[2]"));
  t[2] = 2;
  EXPECT_TRUE(throws_error_naming(
      [&] { nn::cross_entropy(logits, View<const int64_t, 1>(t.data(), {3})); }, "targets"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        nn::cross_entropy(logits, targets, {}, View<float, 2>(d.data(), {3, 4}));
      },
      "dlogits"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        nn::cross_entropy(View<const float, 2>(z.data(), {4, 0}), targets);
      },
      "logits"));
  for (const double eps : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    CrossEntropyOptions o;
    o.label_smoothing = eps;
    EXPECT_TRUE(
        throws_error_naming([&] { nn::cross_entropy(logits, targets, o); }, "label_smoothing"));
  }
  // Nothing was written before an Error.
  t[1] = 3;
  std::fill(d.begin(), d.end(), 4.0f);
  EXPECT_THROW(nn::cross_entropy(logits, targets, {}, View<float, 2>(d.data(), {4, 3})), Error);
  for (float g : d) EXPECT_EQ(g, 4.0f);
}

}  // namespace
}  // namespace maskattn
