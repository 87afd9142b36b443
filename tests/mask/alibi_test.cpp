// ALiBi: the paper's slopes, the bias rule, alignment, combination, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::classify_exact;
using oracle::kNegInf;
using oracle::matches_rule;
using oracle::throws_error_naming;

// Slopes written out from ofirpress/attention_with_linear_biases get_slopes().
TEST(AlibiSlopes, PaperValues) {
  auto pow2 = [](double e) { return static_cast<float>(std::exp2(e)); };
  EXPECT_EQ(alibi_slopes(1), (std::vector<float>{pow2(-8)}));
  EXPECT_EQ(alibi_slopes(2), (std::vector<float>{pow2(-4), pow2(-8)}));
  EXPECT_EQ(alibi_slopes(8), (std::vector<float>{pow2(-1), pow2(-2), pow2(-3), pow2(-4), pow2(-5),
                                                 pow2(-6), pow2(-7), pow2(-8)}));
  // Not a power of two: slopes of 4, then every other slope of 8.
  EXPECT_EQ(alibi_slopes(3), (std::vector<float>{pow2(-4), pow2(-8), pow2(-2)}));
  EXPECT_EQ(alibi_slopes(6),
            (std::vector<float>{pow2(-2), pow2(-4), pow2(-6), pow2(-8), pow2(-1), pow2(-3)}));
  const std::vector<float> s12 = alibi_slopes(12);
  const std::vector<double> e12{-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5};
  ASSERT_EQ(s12.size(), 12u);
  for (std::size_t k = 0; k < 12; ++k) EXPECT_FLOAT_EQ(s12[k], pow2(e12[k])) << k;
}

TEST(Alibi, BiasRuleBothAlignments) {
  const std::vector<float> slopes = alibi_slopes(4);
  for (Align a : {Align::TopLeft, Align::BottomRight})
    for (auto [lq, lk] : std::vector<std::pair<int64_t, int64_t>>{{5, 5}, {2, 6}, {6, 2}}) {
      const int64_t off = a == Align::TopLeft ? 0 : lk - lq;
      const MaskShape s{2, 4, lq, lk};
      EXPECT_TRUE(matches_rule(
          alibi(slopes, a), s,
          [&](int64_t, int64_t h, int64_t i, int64_t j) {
            const double d = std::fabs(static_cast<double>(i + off - j));
            return static_cast<float>(-slopes[h] * d);
          },
          1e-6f));
      EXPECT_TRUE(classify_exact(alibi(slopes, a), s, {{1, 1}, {2, 3}}, false));
      EXPECT_TRUE(alibi(slopes, a).bind(s).has_bias());
    }
}

TEST(Alibi, WithCausalMasksTheFuture) {
  const std::vector<float> slopes{0.5f, 0.25f};
  const Mask m = causal() & alibi(slopes);
  EXPECT_TRUE(matches_rule(m, {1, 2, 4, 4}, [&](int64_t, int64_t h, int64_t i, int64_t j) {
    return j > i ? kNegInf : -slopes[h] * static_cast<float>(i - j);
  }));
  EXPECT_EQ(m.describe(), "causal(top_left) & alibi(H=2, top_left)");
}

// Found by fuzz/mask_tiles_fuzzer: -slope * distance was computed in float,
// so a large finite slope overflowed to -inf (an allowed element masked
// while classify() said Full) or, negative, to +inf (NaN after softmax, and
// NaN where another part masks: -inf + inf). The bias now saturates at
// float's finite range, as row_values() promises.
TEST(Alibi, LargeSlopesSaturateInsteadOfOverflowing) {
  constexpr float kMax = std::numeric_limits<float>::max();
  const std::vector<float> slopes{kMax, -kMax, 1e30f};
  const MaskShape s{1, 3, 5, 7};
  const Mask m = alibi(slopes, Align::BottomRight);
  EXPECT_TRUE(matches_rule(
      m, s,
      [&](int64_t, int64_t h, int64_t i, int64_t j) {
        const double x = -double(slopes[h]) * std::fabs(double(i + 2 - j));
        return static_cast<float>(std::clamp<double>(x, -kMax, kMax));
      },
      1e-6f));
  EXPECT_TRUE(classify_exact(m, s, {{1, 1}, {2, 3}, {8, 8}}, true));
  // Where another part masks, the element stays -inf (not NaN); elsewhere
  // the biases add, saturated.
  const Tensor<bool> none({1, 7});
  const Mask both = block(none, Dims2::BatchKey) & causal() & m;
  EXPECT_TRUE(matches_rule(
      both, s,
      [&](int64_t, int64_t h, int64_t i, int64_t j) {
        if (j > i) return kNegInf;
        const double x = -double(slopes[h]) * std::fabs(double(i + 2 - j));
        return static_cast<float>(std::clamp<double>(x, -kMax, kMax));
      },
      1e-6f));
}

TEST(Alibi, BadInput) {
  EXPECT_TRUE(throws_error_naming([] { alibi_slopes(0); }, "alibi_slopes: num_heads"));
  EXPECT_TRUE(throws_error_naming([] { alibi_slopes(-4); }, "alibi_slopes: num_heads"));
  const std::vector<float> nan{0.5f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_TRUE(throws_error_naming([&] { alibi(nan); }, "alibi: slopes"));
  EXPECT_TRUE(throws_error_naming([&] { alibi(nan); }, "slopes[1] = nan"));
  const std::vector<float> inf{std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(throws_error_naming([&] { alibi(inf); }, "slopes[0] = inf"));
  const std::vector<float> three = alibi_slopes(3);
  EXPECT_TRUE(throws_error_naming([&] { alibi(three).bind({1, 4, 2, 2}); }, "mask: alibi"));
  EXPECT_TRUE(throws_error_naming([&] { alibi(three).bind({1, 4, 2, 2}); }, "H = 4"));
}

}  // namespace
}  // namespace maskattn
