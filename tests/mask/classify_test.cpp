// Exhaustive tile classification: random masks (random parts, random &
// combinations, dense / predicate / documents with unsorted ids), random
// shapes, every tile of several tile sizes (1x1, non-dividing sizes, larger
// than the problem) and, for small shapes, every rectangle. The class from
// BoundMask::classify must equal the one counted from materialize().
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "mask/mask_oracle.hpp"
#include "mask/random_masks.hpp"

namespace maskattn {
namespace {

using oracle::classify_exact;
using oracle::RandomMasks;

TEST(Classify, RandomMasksSmallShapesEveryRectangle) {
  RandomMasks r(2024);
  const std::vector<std::pair<int64_t, int64_t>> tiles{{1, 1}, {1, 3}, {2, 2},  {3, 2},
                                                       {4, 4}, {3, 5}, {16, 16}};
  oracle::ClassCounts seen{};
  for (int trial = 0; trial < 500; ++trial) {
    const MaskShape s{r.uniform(1, 2), r.uniform(1, 3), r.uniform(1, 7), r.uniform(1, 7)};
    const Mask m = r.mask(s);
    ASSERT_TRUE(classify_exact(m, s, tiles, true, &seen)) << "trial " << trial;
  }
  // The generator must produce every class often, or the check proves little.
  for (int64_t n : seen) EXPECT_GT(n, 20000);
}

TEST(Classify, RandomMasksLargerShapesTileGrid) {
  RandomMasks r(77);
  const std::vector<std::pair<int64_t, int64_t>> tiles{{1, 1}, {4, 4},  {5, 7},
                                                       {8, 8}, {16, 3}, {64, 64}};
  oracle::ClassCounts seen{};
  for (int trial = 0; trial < 120; ++trial) {
    const MaskShape s{r.uniform(1, 2), r.uniform(1, 2), r.uniform(1, 40), r.uniform(1, 40)};
    const Mask m = r.mask(s);
    ASSERT_TRUE(classify_exact(m, s, tiles, false, &seen)) << "trial " << trial;
  }
  for (int64_t n : seen) EXPECT_GT(n, 2000);
}

// tile_values (the fused kernel's key-major tiles) must equal row_values
// element for element, -inf and biases alike, for every part and
// combination, on tiles that start and end anywhere.
TEST(TileValues, EqualRowValuesTransposed) {
  RandomMasks r(99);
  int64_t checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const MaskShape s{r.uniform(1, 2), r.uniform(1, 3), r.uniform(1, 23), r.uniform(1, 23)};
    const Mask m = r.mask(s);
    const BoundMask bound = m.bind(s);
    for (int t = 0; t < 6; ++t) {
      const int64_t b = r.uniform(0, s.batch - 1), h = r.uniform(0, s.heads - 1);
      const int64_t q0 = r.uniform(0, s.q_len - 1), q1 = r.uniform(q0 + 1, s.q_len);
      const int64_t k0 = r.uniform(0, s.k_len - 1), k1 = r.uniform(k0 + 1, s.k_len);
      const int64_t ld = (q1 - q0) + r.uniform(0, 3);
      std::vector<float> tile(static_cast<std::size_t>((k1 - k0) * ld), 7.0f);
      bound.tile_values(b, h, q0, q1, k0, k1, tile.data(), ld);
      std::vector<float> row(static_cast<std::size_t>(k1 - k0));
      for (int64_t i = q0; i < q1; ++i) {
        bound.row_values(b, h, i, k0, k1, row.data());
        for (int64_t j = k0; j < k1; ++j, ++checked) {
          const float got = tile[static_cast<std::size_t>((j - k0) * ld + (i - q0))];
          ASSERT_EQ(got, row[static_cast<std::size_t>(j - k0)])
              << m.describe() << " at (b, h, i, j) = (" << b << ", " << h << ", " << i << ", " << j
              << ") of " << oracle::shape_text(s) << ", trial " << trial;
        }
      }
      // Padding between rows (ld > q1 - q0) is left alone.
      for (int64_t j = 0; j < k1 - k0; ++j)
        for (int64_t x = q1 - q0; x < ld; ++x)
          ASSERT_EQ(tile[static_cast<std::size_t>(j * ld + x)], 7.0f);
    }
  }
  EXPECT_GT(checked, 25000);
}

// Regression: positions outside the bound shape were not checked: the parts
// read past their data (key_lengths of B = 1 read lengths[3] for batch 3; a
// dense (2, 2) mask asked for keys [0, 5) read past its map).
TEST(BoundMask, PositionsOutsideTheBoundShapeAreErrors) {
  using oracle::throws_error_naming;
  const bool m[4] = {true, false, true, true};
  const BoundMask lengths = key_lengths(std::vector<int64_t>{1}).bind({1, 1, 2, 2});
  const BoundMask dense = keep(View<const bool, 2>(m, {2, 2})).bind({1, 1, 2, 2});
  float out[8];
  EXPECT_TRUE(throws_error_naming([&] { lengths.row_values(3, 0, 0, 0, 2, out); }, "b"));
  EXPECT_TRUE(throws_error_naming([&] { lengths.classify(1, 0, 0, 2, 0, 2); }, "b"));
  EXPECT_TRUE(throws_error_naming([&] { dense.row_values(0, 1, 0, 0, 2, out); }, "h"));
  EXPECT_TRUE(throws_error_naming([&] { dense.row_values(0, 0, 2, 0, 2, out); }, "i"));
  EXPECT_TRUE(throws_error_naming([&] { dense.row_values(0, 0, 0, 0, 5, out); }, "k_begin, k_end"));
  EXPECT_TRUE(throws_error_naming([&] { dense.row_values(0, 0, 0, 2, 1, out); }, "k_begin, k_end"));
  EXPECT_TRUE(
      throws_error_naming([&] { dense.tile_values(0, 0, 0, 3, 0, 2, out, 4); }, "q_begin, q_end"));
  EXPECT_TRUE(throws_error_naming([&] { dense.tile_values(0, 0, 0, 2, 0, 2, out, 1); }, "ld"));
  EXPECT_TRUE(throws_error_naming([&] { dense.value(0, 0, 0, -1); }, "j"));
  EXPECT_TRUE(throws_error_naming([&] { dense.allowed(0, 0, -1, 0); }, "i"));
  // Tile ranges are clipped by classify (documented), positions inside work.
  EXPECT_EQ(dense.classify(0, 0, 0, 9, 0, 9), TileClass::Partial);
  EXPECT_FALSE(dense.allowed(0, 0, 0, 1));
}

// Two parts that each cut a tile make classify() look for an element both
// allow: on a tile as wide as int64 allows it reads a chunk at a time (it
// once made a buffer of the tile's width: std::length_error), and stops at
// the first allowed element.
TEST(BoundMask, SeveralCuttingPartsOnAHugeTile) {
  constexpr int64_t kHuge = int64_t{1} << 62, kL = kHuge / 2;
  const std::vector<int64_t> lengths{kL};
  // Row i allows keys [i - 10, i] and keys below kL.
  const BoundMask both = (sliding_window(10) & key_lengths(lengths)).bind({1, 1, kHuge, kHuge});
  EXPECT_EQ(both.classify(0, 0, 0, kHuge, 0, kHuge), TileClass::Partial);
  EXPECT_EQ(both.classify(0, 0, kL - 5, kL + 5, kL - 300, kL + 300), TileClass::Partial);
  // Each part allows some of this tile, the two together none of it: rows
  // from kL + 10 see keys from kL on only. 600 keys: three chunks a row.
  EXPECT_EQ(both.classify(0, 0, kL + 10, kL + 310, kL - 300, kL + 300), TileClass::Empty);
}

}  // namespace
}  // namespace maskattn
