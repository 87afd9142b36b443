// key_lengths and query_lengths against element rules; bad lengths.
#include <gtest/gtest.h>

#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::allowed_rule;
using oracle::kNegInf;
using oracle::matches_rule;
using oracle::throws_error_naming;

TEST(KeyLengths, MatchesRule) {
  const std::vector<int64_t> lens{3, 0, 5};
  EXPECT_TRUE(matches_rule(key_lengths(lens), {3, 2, 4, 5},
                           allowed_rule([&](int64_t b, int64_t, int64_t, int64_t j) {
                             return j < lens[static_cast<std::size_t>(b)];
                           })));
}

TEST(QueryLengths, MatchesRuleAndRowsPastTheLengthAreEmpty) {
  const std::vector<int64_t> lens{2, 4, 0};
  EXPECT_TRUE(matches_rule(query_lengths(lens), {3, 2, 4, 3},
                           allowed_rule([&](int64_t b, int64_t, int64_t i, int64_t) {
                             return i < lens[static_cast<std::size_t>(b)];
                           })));
  const Tensor<float> t = query_lengths(lens).materialize(3, 1, 4, 3);
  for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(t.data()[(0 * 4 + 3) * 3 + j], kNegInf);
}

TEST(Lengths, PaddedBatchWithLookAhead) {
  // The write-ups' padded batch: lengths 3 and 2 of L = 4, decoder self-attention.
  const std::vector<int64_t> lens{3, 2};
  const Mask m = key_lengths(lens) & query_lengths(lens) & causal();
  EXPECT_TRUE(
      matches_rule(m, {2, 1, 4, 4}, allowed_rule([&](int64_t b, int64_t, int64_t i, int64_t j) {
                     const int64_t n = lens[static_cast<std::size_t>(b)];
                     return i < n && j < n && j <= i;
                   })));
  EXPECT_EQ(m.describe(), "key_lengths(B=2) & query_lengths(B=2) & causal(top_left)");
}

TEST(Lengths, BadInput) {
  const std::vector<int64_t> negative{2, -1};
  EXPECT_TRUE(throws_error_naming([&] { key_lengths(negative); }, "key_lengths"));
  EXPECT_TRUE(throws_error_naming([&] { key_lengths(negative); }, "lengths[1] = -1"));
  EXPECT_TRUE(throws_error_naming([&] { query_lengths(negative); }, "query_lengths"));
  const std::vector<int64_t> lens{2, 6};
  // Longer than Lk / Lq.
  EXPECT_TRUE(throws_error_naming(
      [&] {
        key_lengths(lens).bind({2, 1, 8, 5});
      },
      "mask: key_lengths"));
  EXPECT_TRUE(throws_error_naming([&] { key_lengths(lens).bind({2, 1, 8, 5}); }, "lengths[1] = 6"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        query_lengths(lens).bind({2, 1, 5, 8});
      },
      "mask: query_lengths"));
  EXPECT_NO_THROW(key_lengths(lens).bind({2, 1, 1, 6}));
  // One length per batch element.
  EXPECT_TRUE(throws_error_naming(
      [&] {
        key_lengths(lens).bind({3, 1, 6, 6});
      },
      "one length per batch element (B = 3)"));
  EXPECT_TRUE(throws_error_naming([&] { query_lengths(lens).materialize(1, 1, 6, 6); },
                                  "mask: query_lengths"));
}

}  // namespace
}  // namespace maskattn
