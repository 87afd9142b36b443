// causal, sliding_window, prefix_lm and subsequent_mask against element rules
// written here, and the worked examples as golden matrices.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::allowed_rule;
using oracle::kNegInf;
using oracle::matches_rule;
using oracle::Rule;
using oracle::throws_error_naming;

// The allowed pattern of batch 0, head 0 as rows of 0/1.
std::vector<std::vector<int>> pattern(const Mask& m, int64_t lq, int64_t lk) {
  const Tensor<float> t = m.materialize(1, 1, lq, lk);
  std::vector<std::vector<int>> rows(static_cast<std::size_t>(lq));
  for (int64_t i = 0; i < lq; ++i)
    for (int64_t j = 0; j < lk; ++j) rows[i].push_back(t.data()[i * lk + j] == 0.0f ? 1 : 0);
  return rows;
}

TEST(Causal, TopLeftAndBottomRightGolden) {
  // Lq < Lk: bottom-right lets the last query see every key.
  EXPECT_EQ(pattern(causal(Align::TopLeft), 3, 5),
            (std::vector<std::vector<int>>{{1, 0, 0, 0, 0}, {1, 1, 0, 0, 0}, {1, 1, 1, 0, 0}}));
  EXPECT_EQ(pattern(causal(Align::BottomRight), 3, 5),
            (std::vector<std::vector<int>>{{1, 1, 1, 0, 0}, {1, 1, 1, 1, 0}, {1, 1, 1, 1, 1}}));
  // Lq == Lk: both alignments agree.
  EXPECT_EQ(pattern(causal(Align::TopLeft), 3, 3), pattern(causal(Align::BottomRight), 3, 3));
  EXPECT_EQ(pattern(causal(), 3, 3),
            (std::vector<std::vector<int>>{{1, 0, 0}, {1, 1, 0}, {1, 1, 1}}));
  // Lq > Lk: bottom-right leaves the first Lq - Lk rows with nothing visible.
  EXPECT_EQ(pattern(causal(Align::TopLeft), 4, 2),
            (std::vector<std::vector<int>>{{1, 0}, {1, 1}, {1, 1}, {1, 1}}));
  EXPECT_EQ(pattern(causal(Align::BottomRight), 4, 2),
            (std::vector<std::vector<int>>{{0, 0}, {0, 0}, {1, 0}, {1, 1}}));
}

TEST(Causal, EmptyRowsAreAllNegInf) {
  const Tensor<float> t = causal(Align::BottomRight).materialize(1, 1, 5, 2);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(t.data()[i * 2 + j], kNegInf) << i << "," << j;
  const BoundMask bm = causal(Align::BottomRight).bind({1, 1, 5, 2});
  EXPECT_EQ(bm.classify(0, 0, 0, 3, 0, 2), TileClass::Empty);
  EXPECT_EQ(bm.classify(0, 0, 3, 5, 0, 2), TileClass::Partial);
  EXPECT_EQ(bm.classify(0, 0, 4, 5, 0, 2), TileClass::Full);
}

TEST(Causal, MatchesRuleForAllSmallShapes) {
  for (Align a : {Align::TopLeft, Align::BottomRight})
    for (int64_t lq = 0; lq <= 6; ++lq)
      for (int64_t lk = 0; lk <= 6; ++lk) {
        const int64_t off = a == Align::TopLeft ? 0 : lk - lq;
        EXPECT_TRUE(matches_rule(
            causal(a), {2, 1, lq, lk},
            allowed_rule([&](int64_t, int64_t, int64_t i, int64_t j) { return j <= i + off; })));
      }
}

TEST(SlidingWindow, MatchesRule) {
  const std::vector<int64_t> widths{0, 1, 2, 5, kUnbounded};
  for (Align a : {Align::TopLeft, Align::BottomRight})
    for (int64_t left : widths)
      for (int64_t right : widths)
        for (auto [lq, lk] :
             std::vector<std::pair<int64_t, int64_t>>{{5, 5}, {3, 7}, {7, 3}, {1, 4}}) {
          const int64_t off = a == Align::TopLeft ? 0 : lk - lq;
          const Rule rule = allowed_rule([&](int64_t, int64_t, int64_t i, int64_t j) {
            const int64_t d = j - (i + off);  // distance right of the aligned diagonal
            return (left == kUnbounded || -d <= left) && (right == kUnbounded || d <= right);
          });
          EXPECT_TRUE(matches_rule(sliding_window(left, right, a), {1, 2, lq, lk}, rule));
        }
}

TEST(SlidingWindow, CausalIsUnboundedLeftZeroRight) {
  for (Align a : {Align::TopLeft, Align::BottomRight}) {
    const Tensor<float> x = causal(a).materialize(1, 1, 4, 6);
    const Tensor<float> y = sliding_window(kUnbounded, 0, a).materialize(1, 1, 4, 6);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin()));
  }
}

TEST(PrefixLm, MatchesRule) {
  for (Align a : {Align::TopLeft, Align::BottomRight})
    for (int64_t n : {0, 1, 3, 6, 100})
      for (auto [lq, lk] : std::vector<std::pair<int64_t, int64_t>>{{6, 6}, {3, 6}, {6, 3}}) {
        const int64_t off = a == Align::TopLeft ? 0 : lk - lq;
        EXPECT_TRUE(matches_rule(prefix_lm(n, a), {1, 1, lq, lk},
                                 allowed_rule([&](int64_t, int64_t, int64_t i, int64_t j) {
                                   return j < n || j <= i + off;
                                 })));
      }
}

TEST(SubsequentMask, GoldenThree) {
  const Tensor<bool> m = subsequent_mask(3);
  ASSERT_EQ(m.shape(), (std::vector<int64_t>{1, 3, 3}));
  const bool expected[3][3] = {{true, false, false}, {true, true, false}, {true, true, true}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(m.data()[i * 3 + j], expected[i][j]) << i << "," << j;
}

TEST(SubsequentMask, GoldenEight) {
  const Tensor<bool> m = subsequent_mask(8);
  ASSERT_EQ(m.shape(), (std::vector<int64_t>{1, 8, 8}));
  const int expected[8][8] = {
      {1, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 0, 0, 0, 0, 0},
      {1, 1, 1, 1, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 0, 0},
      {1, 1, 1, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 1, 1, 1, 1},
  };
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j)
      EXPECT_EQ(m.data()[i * 8 + j], expected[i][j] == 1) << i << "," << j;
  // As a keep mask it is causal().
  const Tensor<float> a = keep(m).materialize(1, 1, 8, 8);
  const Tensor<float> b = causal().materialize(1, 1, 8, 8);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin()));
}

TEST(Band, Describe) {
  EXPECT_EQ(causal().describe(), "causal(top_left)");
  EXPECT_EQ(sliding_window(2, 0, Align::BottomRight).describe(),
            "sliding_window(2, 0, bottom_right)");
  EXPECT_EQ(sliding_window(kUnbounded, 1).describe(), "sliding_window(unbounded, 1, top_left)");
  EXPECT_EQ(prefix_lm(3).describe(), "prefix_lm(3, top_left)");
}

// Regression: an Align cast from any other integer was accepted and read as
// BottomRight; a Dims2 likewise as QueryKey.
TEST(Band, EnumValuesOutOfRangeAreErrors) {
  const auto bad = static_cast<Align>(5);
  EXPECT_TRUE(throws_error_naming([&] { causal(bad); }, "causal: align"));
  EXPECT_TRUE(throws_error_naming([&] { sliding_window(1, 1, bad); }, "sliding_window: align"));
  EXPECT_TRUE(throws_error_naming([&] { prefix_lm(1, bad); }, "prefix_lm: align"));
  EXPECT_TRUE(throws_error_naming([&] { alibi(std::vector<float>{1.0f}, bad); }, "alibi: align"));
  const bool m[4] = {true, true, true, true};
  EXPECT_TRUE(throws_error_naming(
      [&] {
        keep(View<const bool, 2>(m, {2, 2}), static_cast<Dims2>(3));
      },
      "keep: dims2"));
}

TEST(Band, BadInput) {
  EXPECT_TRUE(throws_error_naming([] { sliding_window(-1, 0); }, "sliding_window: left"));
  EXPECT_TRUE(throws_error_naming([] { sliding_window(1, -2); }, "sliding_window: right"));
  EXPECT_TRUE(throws_error_naming([] { prefix_lm(-1); }, "prefix_lm: n"));
  EXPECT_TRUE(throws_error_naming([] { subsequent_mask(-3); }, "subsequent_mask: size"));
  EXPECT_TRUE(throws_error_naming([] { causal().bind({1, -1, 2, 2}); }, "mask shape"));
  // Sizes whose product overflows int64 are errors naming the argument, not a
  // failed allocation.
  constexpr int64_t kHuge = int64_t{1} << 40;
  EXPECT_TRUE(throws_error_naming([] { subsequent_mask(kHuge); }, "subsequent_mask: size"));
  EXPECT_TRUE(throws_error_naming([] { causal().materialize(kHuge, kHuge, kHuge, kHuge); },
                                  "mask shape: expected a size product"));
  EXPECT_TRUE(throws_error_naming([] { Mask().materialize(kHuge, kHuge, kHuge, kHuge); },
                                  "mask shape: expected a size product"));
}

// Found by fuzz/mask_tiles_fuzzer: binding a band to lengths whose sum
// overflows int64 (Lq + Lk + 1 and offset +- width were computed in int64)
// was undefined behaviour, and the row/tile arithmetic i + width with it.
// Now every limit is clamped to the shape, and tiles and rows anywhere in a
// huge shape follow the rule.
TEST(Band, HugeShapesWithoutOverflow) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const MaskShape shapes[] = {{1, 1, kMax, kMax},
                              {1, 1, kMax - 7, kMax},
                              {1, 1, 3, kMax},
                              {1, 1, kMax, 5},
                              {1, 1, int64_t{1} << 62, (int64_t{1} << 62) + 9}};
  struct Case {
    Mask mask;
    int64_t left, right, prefix;
    Align align;
  };
  const Case cases[] = {
      {causal(Align::BottomRight), kUnbounded, 0, 0, Align::BottomRight},
      {causal(), kUnbounded, 0, 0, Align::TopLeft},
      {sliding_window(3, kUnbounded), 3, kUnbounded, 0, Align::TopLeft},
      {sliding_window(kMax - 1, 2, Align::BottomRight), kMax - 1, 2, 0, Align::BottomRight},
      {sliding_window(1, kMax - 1, Align::BottomRight), 1, kMax - 1, 0, Align::BottomRight},
      {prefix_lm(5, Align::BottomRight), kUnbounded, 0, 5, Align::BottomRight},
      {prefix_lm(kMax), kUnbounded, 0, kMax, Align::TopLeft}};
  for (const MaskShape& s : shapes)
    for (const Case& c : cases) {
      const __int128 offset = c.align == Align::TopLeft ? 0 : __int128{s.k_len} - s.q_len;
      auto allowed = [&](int64_t i, int64_t j) {
        const __int128 d = __int128{j} - i - offset;
        return j < c.prefix || ((c.left == kUnbounded || d >= -__int128{c.left}) &&
                                (c.right == kUnbounded || d <= c.right));
      };
      const BoundMask bound = c.mask.bind(s);
      // 4 x 4 tiles at the corners and on the aligned diagonal's ends.
      const int64_t q_starts[] = {0, std::max<int64_t>(s.q_len - 4, 0)};
      const int64_t k_starts[] = {0, std::max<int64_t>(s.k_len - 4, 0)};
      for (int64_t q0 : q_starts)
        for (int64_t k0 : k_starts) {
          const int64_t q1 = std::min(q0 + 4, s.q_len), k1 = std::min(k0 + 4, s.k_len);
          int64_t n = 0;
          for (int64_t i = q0; i < q1; ++i) {
            std::vector<float> row(static_cast<std::size_t>(k1 - k0));
            bound.row_values(0, 0, i, k0, k1, row.data());
            for (int64_t j = k0; j < k1; ++j) {
              n += allowed(i, j);
              EXPECT_EQ(row[static_cast<std::size_t>(j - k0)], allowed(i, j) ? 0.0f : kNegInf)
                  << c.mask.describe() << " of " << oracle::shape_text(s) << " at " << i << ", "
                  << j;
            }
          }
          std::vector<float> tile(static_cast<std::size_t>((k1 - k0) * (q1 - q0)));
          bound.tile_values(0, 0, q0, q1, k0, k1, tile.data(), q1 - q0);
          for (int64_t j = k0; j < k1; ++j)
            for (int64_t i = q0; i < q1; ++i)
              EXPECT_EQ(tile[static_cast<std::size_t>((j - k0) * (q1 - q0) + (i - q0))],
                        allowed(i, j) ? 0.0f : kNegInf)
                  << c.mask.describe() << " of " << oracle::shape_text(s) << " at " << i << ", "
                  << j;
          const TileClass want = n == 0                       ? TileClass::Empty
                                 : n == (q1 - q0) * (k1 - k0) ? TileClass::Full
                                                              : TileClass::Partial;
          EXPECT_EQ(bound.classify(0, 0, q0, q1, k0, k1), want)
              << c.mask.describe() << " of " << oracle::shape_text(s) << " tile " << q0 << ", "
              << k0;
        }
    }
}

}  // namespace
}  // namespace maskattn
