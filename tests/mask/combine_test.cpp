// Combining parts with &: both must allow, biases add, -inf wins; the empty
// mask; BoundMask's element accessors and range clipping.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::classify_exact;
using oracle::kNegInf;
using oracle::matches_rule;

TEST(Combine, BiasesAddAndNegInfWins) {
  Tensor<float> a({3, 4}), b({2, 4});
  for (int64_t k = 0; k < a.numel(); ++k) a.data()[k] = 0.25f * static_cast<float>(k % 5);
  for (int64_t k = 0; k < b.numel(); ++k)
    b.data()[k] = k == 6 ? kNegInf : -0.5f * static_cast<float>(k % 3);
  const std::vector<int64_t> lens{4, 3};
  const std::vector<float> slopes{0.5f};
  const Mask m = bias(a) & bias(b, Dims2::BatchKey) & key_lengths(lens) & alibi(slopes);
  EXPECT_TRUE(matches_rule(m, {2, 1, 3, 4}, [&](int64_t bb, int64_t, int64_t i, int64_t j) {
    if (j >= lens[static_cast<std::size_t>(bb)] || b.data()[bb * 4 + j] == kNegInf) return kNegInf;
    // Parts apply in order: ((0 + a) + b) + alibi.
    return a.data()[i * 4 + j] + b.data()[bb * 4 + j] -
           0.5f * static_cast<float>(i > j ? i - j : j - i);
  }));
  EXPECT_TRUE(m.bind({2, 1, 3, 4}).has_bias());
  EXPECT_EQ(m.describe(), "bias(3, 4) & bias(2, 4) & key_lengths(B=2) & alibi(H=1, top_left)");
}

TEST(Combine, OverflowingBiasSumsSaturateInsteadOfMasking) {
  // Two additive masks built with torch.finfo(float32).min: their float sum
  // overflows. The element is allowed by both parts (classify says so), so it
  // must stay finite, never -inf (masked) or +inf (NaN after softmax).
  constexpr float kMin = std::numeric_limits<float>::lowest();
  constexpr float kMax = std::numeric_limits<float>::max();
  Tensor<float> a({1, 3}), b({1, 3});
  a.data()[0] = kMin, b.data()[0] = kMin;
  a.data()[1] = kMax, b.data()[1] = kMax;
  a.data()[2] = kNegInf, b.data()[2] = kMin;
  const Mask m = bias(a) & bias(b);
  const BoundMask bm = m.bind({1, 1, 1, 3});
  EXPECT_EQ(bm.value(0, 0, 0, 0), kMin);
  EXPECT_EQ(bm.value(0, 0, 0, 1), kMax);
  EXPECT_EQ(bm.value(0, 0, 0, 2), kNegInf);
  EXPECT_EQ(bm.classify(0, 0, 0, 1, 0, 2), TileClass::Full);
  EXPECT_TRUE(classify_exact(m, {1, 1, 1, 3}, {{1, 1}}, true));
}

TEST(Combine, PartialPartsThatExcludeEachOtherGiveEmpty) {
  // causal keeps j <= i, the keep mask only j > i: each is Partial on the
  // whole tile, together nothing is allowed.
  Tensor<bool> upper({4, 4});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = i + 1; j < 4; ++j) upper.data()[i * 4 + j] = true;
  const Mask m = causal() & keep(upper);
  const BoundMask bm = m.bind({1, 1, 4, 4});
  EXPECT_EQ(bm.classify(0, 0, 0, 4, 0, 4), TileClass::Empty);
  EXPECT_TRUE(classify_exact(m, {1, 1, 4, 4}, {{1, 1}, {2, 2}}, true));
}

TEST(Combine, AndAssignAndCopiesAreIndependentValues) {
  Mask m = causal();
  const Mask copy = m;
  m &= sliding_window(1, 0);
  EXPECT_EQ(copy.describe(), "causal(top_left)");
  EXPECT_EQ(m.describe(), "causal(top_left) & sliding_window(1, 0, top_left)");
  EXPECT_EQ((Mask() & causal()).describe(), "causal(top_left)");
}

TEST(Combine, EmptyMaskAllowsEverything) {
  const Mask all;
  EXPECT_TRUE(all.allows_all());
  EXPECT_EQ(all.describe(), "all");
  const Tensor<float> t = all.materialize(2, 2, 3, 3);
  for (float x : t) EXPECT_EQ(x, 0.0f);
  const BoundMask bm = all.bind({2, 2, 3, 3});
  EXPECT_TRUE(bm.allows_all());
  EXPECT_FALSE(bm.has_bias());
  EXPECT_EQ(bm.classify(1, 1, 0, 3, 0, 3), TileClass::Full);
  EXPECT_EQ(bm.classify(1, 1, 2, 2, 0, 3), TileClass::Empty);  // empty range
}

TEST(BoundMask, ElementAccessorsAndClipping) {
  const std::vector<float> slopes{1.0f};
  const BoundMask bm = (causal() & alibi(slopes)).bind({1, 1, 3, 3});
  EXPECT_TRUE(bm.allowed(0, 0, 2, 1));
  EXPECT_FALSE(bm.allowed(0, 0, 0, 1));
  EXPECT_EQ(bm.value(0, 0, 2, 0), -2.0f);
  EXPECT_EQ(bm.value(0, 0, 1, 2), kNegInf);
  float row[2];
  bm.row_values(0, 0, 2, 1, 3, row);
  EXPECT_EQ(row[0], -1.0f);
  EXPECT_EQ(row[1], 0.0f);
  // Ranges are clipped to the shape: [2, 10) x [0, 10) is row 2, all keys.
  EXPECT_EQ(bm.classify(0, 0, 2, 10, 0, 10), TileClass::Full);
  EXPECT_EQ(bm.classify(0, 0, -5, 1, 1, 10), TileClass::Empty);
  EXPECT_EQ(bm.classify(0, 0, 5, 10, 0, 3), TileClass::Empty);
}

}  // namespace
}  // namespace maskattn
