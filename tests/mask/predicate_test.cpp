// predicate(fn): evaluated into a dense map at bind; element rule, exact tile
// classes, bad input.
#include <gtest/gtest.h>

#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::allowed_rule;
using oracle::classify_exact;
using oracle::matches_rule;
using oracle::throws_error_naming;

bool checker(int64_t b, int64_t h, int64_t i, int64_t j) {
  // Depends on every coordinate: a pattern no other part produces.
  return ((i * 7 + j * 3 + b + 2 * h) % 5) < 2 || (i == j && h == 1);
}

TEST(Predicate, MatchesRuleAndClassifiesExactly) {
  const Mask m = predicate(checker, "checker");
  for (const MaskShape& s :
       std::vector<MaskShape>{{2, 3, 5, 7}, {1, 1, 1, 9}, {3, 2, 8, 1}, {1, 2, 0, 4}}) {
    EXPECT_TRUE(matches_rule(m, s, allowed_rule(checker)));
    EXPECT_TRUE(classify_exact(m, s, {{1, 1}, {2, 2}, {3, 4}, {8, 8}}, true));
  }
  EXPECT_EQ(m.describe(), "checker");
  EXPECT_FALSE(m.bind({1, 1, 3, 3}).has_bias());
}

TEST(Predicate, EvaluatedOncePerBind) {
  int64_t calls = 0;
  const Mask m = predicate([&](int64_t, int64_t, int64_t i, int64_t j) {
    ++calls;
    return j <= i;
  });
  const BoundMask bm = m.bind({2, 2, 3, 4});
  EXPECT_EQ(calls, 2 * 2 * 3 * 4);
  EXPECT_EQ(bm.classify(0, 0, 0, 3, 0, 4), TileClass::Partial);
  EXPECT_EQ(bm.classify(1, 1, 1, 3, 0, 2), TileClass::Full);
  EXPECT_EQ(bm.classify(0, 1, 0, 2, 2, 4), TileClass::Empty);
  float row[4];
  bm.row_values(1, 0, 2, 0, 4, row);
  EXPECT_EQ(calls, 2 * 2 * 3 * 4);  // no re-evaluation after bind
  EXPECT_EQ(row[2], 0.0f);
  EXPECT_EQ(row[3], oracle::kNegInf);
}

TEST(Predicate, BadInput) {
  EXPECT_TRUE(throws_error_naming([] { predicate(MaskPredicate{}); }, "predicate: fn"));
  const Mask m = predicate(checker, "checker");
  // B * H * Lq * Lk overflows int64: an Error before any allocation.
  const int64_t big = int64_t{1} << 20;
  EXPECT_TRUE(throws_error_naming([&] { m.bind({big, big, big, big}); }, "mask: checker"));
}

}  // namespace
}  // namespace maskattn
