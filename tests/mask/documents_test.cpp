// documents(ids) and documents(query_ids, key_ids): element rule, sorted and
// unsorted ids, per-batch ids, exact tile classes, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::allowed_rule;
using oracle::classify_exact;
using oracle::matches_rule;
using oracle::throws_error_naming;

const std::vector<std::pair<int64_t, int64_t>> kTiles{{1, 1}, {2, 2}, {3, 4}, {4, 3}, {16, 16}};

TEST(Documents, SharedSortedIdsAreBlockDiagonal) {
  const std::vector<int32_t> ids{0, 0, 0, 1, 1, 2, 2, 2};
  const View<const int32_t, 1> v(ids.data(), {8});
  const Mask m = documents(v);
  const MaskShape s{2, 2, 8, 8};
  EXPECT_TRUE(matches_rule(m, s, allowed_rule([&](int64_t, int64_t, int64_t i, int64_t j) {
                             return ids[i] == ids[j];
                           })));
  EXPECT_TRUE(classify_exact(m, s, kTiles, true));
  const BoundMask bm = m.bind(s);
  EXPECT_EQ(bm.classify(0, 0, 0, 3, 0, 3), TileClass::Full);
  EXPECT_EQ(bm.classify(0, 0, 0, 3, 3, 5), TileClass::Empty);
  EXPECT_EQ(bm.classify(0, 0, 2, 4, 2, 4), TileClass::Partial);
  EXPECT_EQ(m.describe(), "documents((8,))");
}

TEST(Documents, UnsortedPerBatchInt64Ids) {
  // Ids need not be sorted nor contiguous: documents may interleave.
  const std::vector<int64_t> ids{5, 5, 3, 5, 3, 9, -1,  //
                                 2, 2, 2, 2, 2, 2, 2};
  const View<const int64_t, 2> v(ids.data(), {2, 7});
  const Mask m = documents(v);
  const MaskShape s{2, 1, 7, 7};
  EXPECT_TRUE(matches_rule(m, s, allowed_rule([&](int64_t b, int64_t, int64_t i, int64_t j) {
                             return ids[b * 7 + i] == ids[b * 7 + j];
                           })));
  EXPECT_TRUE(classify_exact(m, s, kTiles, true));
  const BoundMask bm = m.bind(s);
  // {5, 3} x {5, 3}: the tile shares ids but is not Full.
  EXPECT_EQ(bm.classify(0, 0, 0, 3, 3, 5), TileClass::Partial);
  EXPECT_EQ(bm.classify(0, 0, 5, 7, 0, 2), TileClass::Empty);
  EXPECT_EQ(bm.classify(1, 0, 0, 7, 0, 7), TileClass::Full);
}

TEST(Documents, CrossAttention) {
  const std::vector<int32_t> qid{0, 0, 1, 2};        // (Lq) shared
  const std::vector<int32_t> kid{0, 1, 1, 1, 2, 2,   //
                                 7, 0, 2, 2, 0, 1};  // (B, Lk)
  const Mask m = documents(View<const int32_t, 1>(qid.data(), {4}),
                           View<const int32_t, 2>(kid.data(), {2, 6}));
  const MaskShape s{2, 3, 4, 6};
  EXPECT_TRUE(matches_rule(m, s, allowed_rule([&](int64_t b, int64_t, int64_t i, int64_t j) {
                             return qid[i] == kid[b * 6 + j];
                           })));
  EXPECT_TRUE(classify_exact(m, s, kTiles, true));
}

TEST(Documents, RandomIdsClassifyExactly) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t b = 1 + rng() % 2, l = 1 + rng() % 10, ndoc = 1 + rng() % 4;
    const bool sorted = trial % 2 == 0;
    Tensor<int32_t> ids({b, l});
    for (int64_t k = 0; k < ids.numel(); ++k) ids.data()[k] = static_cast<int32_t>(rng() % ndoc);
    if (sorted)
      for (int64_t r = 0; r < b; ++r) std::sort(ids.data() + r * l, ids.data() + (r + 1) * l);
    const Mask m = documents(ids);
    const MaskShape s{b, 2, l, l};
    EXPECT_TRUE(matches_rule(m, s, allowed_rule([&](int64_t bb, int64_t, int64_t i, int64_t j) {
                               return ids.data()[bb * l + i] == ids.data()[bb * l + j];
                             })));
    EXPECT_TRUE(classify_exact(m, s, kTiles, true));
  }
}

TEST(Documents, BadInput) {
  float f[4] = {};
  EXPECT_TRUE(throws_error_naming([&] { documents(View<const float, 1>(f, {4})); },
                                  "documents: ids: expected dtype int32 or int64"));
  int32_t x[8] = {};
  EXPECT_TRUE(throws_error_naming(
      [&] {
        documents(View<const int32_t, 3>(x, {2, 2, 2}));
      },
      "documents: ids: expected rank 1"));
  EXPECT_TRUE(throws_error_naming([&] { documents(AnyView{}); }, "documents: ids"));
  EXPECT_TRUE(throws_error_naming(
      [&] { documents(View<const int32_t, 1>(x, {4}), View<const float, 1>(f, {4})); },
      "documents: key_ids"));
  const Mask self = documents(View<const int32_t, 1>(x, {4}));
  // Self-attention needs Lq == Lk == L.
  EXPECT_TRUE(throws_error_naming([&] { self.bind({1, 1, 4, 5}); }, "mask: documents"));
  EXPECT_TRUE(throws_error_naming([&] { self.bind({1, 1, 3, 3}); }, "mask: documents"));
  // (B, L) ids with another B.
  const Mask per_batch = documents(View<const int32_t, 2>(x, {2, 4}));
  EXPECT_TRUE(throws_error_naming([&] { per_batch.bind({3, 1, 4, 4}); }, "(B = 3, L)"));
  const Mask cross = documents(View<const int32_t, 1>(x, {4}), View<const int32_t, 2>(x, {2, 4}));
  EXPECT_TRUE(throws_error_naming([&] { cross.bind({2, 1, 5, 4}); }, "documents query_ids"));
  EXPECT_TRUE(throws_error_naming([&] { cross.bind({3, 1, 4, 4}); }, "documents key_ids"));
}

}  // namespace
}  // namespace maskattn
