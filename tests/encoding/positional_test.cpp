// Sinusoidal positional encoding: the write-ups' PE (8, 4) against the paper's
// formula, hand-known values, both layouts, another base, offsets, bad input.
#include "maskattn/positional.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string_view>
#include <vector>

#include "throws_error.hpp"

namespace maskattn {
namespace {

// Values are computed in double and stored as float: off by at most half a
// float ulp of a number in [-1, 1] (6e-8).
constexpr double kTol = 1e-7;

using testing_errors::throws_error_naming;

float at(const Tensor<float>& t, int64_t r, int64_t c) { return t.data()[r * t.size(1) + c]; }

TEST(Positional, WriteUpsEightByFourMatchesThePaperFormula) {
  const int64_t length = 8, d = 4;
  const Tensor<float> pe = sinusoidal_encoding(length, d);
  ASSERT_EQ(pe.shape(), (std::vector<int64_t>{length, d}));
  for (int64_t pos = 0; pos < length; ++pos) {
    for (int64_t i = 0; i < d / 2; ++i) {
      // PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))
      const double angle = static_cast<double>(pos) /
                           std::pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(d));
      EXPECT_NEAR(at(pe, pos, 2 * i), std::sin(angle), kTol) << "pos " << pos << " i " << i;
      EXPECT_NEAR(at(pe, pos, 2 * i + 1), std::cos(angle), kTol) << "pos " << pos << " i " << i;
    }
  }
}

TEST(Positional, HandKnownValues) {
  // Position 0: every angle is 0, so sin = 0 and cos = 1.
  const Tensor<float> pe = sinusoidal_encoding(2, 6);
  for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(at(pe, 0, c), c % 2 == 0 ? 0.0f : 1.0f) << c;
  // Position 1, d = 4: frequencies 10000^0 = 1 and 10000^(2/4) = 100.
  const Tensor<float> pe4 = sinusoidal_encoding(2, 4);
  EXPECT_NEAR(at(pe4, 1, 0), std::sin(1.0), kTol);
  EXPECT_NEAR(at(pe4, 1, 1), std::cos(1.0), kTol);
  EXPECT_NEAR(at(pe4, 1, 2), std::sin(0.01), kTol);
  EXPECT_NEAR(at(pe4, 1, 3), std::cos(0.01), kTol);
  EXPECT_NEAR(at(pe4, 1, 0), 0.8414709848, 1e-7);
  EXPECT_NEAR(at(pe4, 1, 1), 0.5403023059, 1e-7);
}

TEST(Positional, ConcatenatedHalvesAreTheInterleavedNumbersRearranged) {
  const int64_t length = 13, d = 10, half = d / 2;
  const Tensor<float> inter = sinusoidal_encoding(length, d, 10000.0, PeLayout::Interleaved);
  const Tensor<float> concat = sinusoidal_encoding(length, d, 10000.0, PeLayout::Concatenated);
  for (int64_t pos = 0; pos < length; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      EXPECT_EQ(at(concat, pos, i), at(inter, pos, 2 * i)) << pos << " " << i;
      EXPECT_EQ(at(concat, pos, half + i), at(inter, pos, 2 * i + 1)) << pos << " " << i;
    }
  }
}

TEST(Positional, AnotherBase) {
  // base 2, d = 6: divisors 2^0, 2^(1/3), 2^(2/3).
  const Tensor<float> pe = sinusoidal_encoding(5, 6, 2.0);
  for (int64_t pos = 0; pos < 5; ++pos) {
    for (int64_t i = 0; i < 3; ++i) {
      const double angle = static_cast<double>(pos) / std::pow(2.0, static_cast<double>(i) / 3.0);
      EXPECT_NEAR(at(pe, pos, 2 * i), std::sin(angle), kTol);
      EXPECT_NEAR(at(pe, pos, 2 * i + 1), std::cos(angle), kTol);
    }
  }
  // A different base gives a different table beyond column pair 0.
  const Tensor<float> paper = sinusoidal_encoding(5, 6);
  EXPECT_NE(at(pe, 3, 2), at(paper, 3, 2));
  EXPECT_EQ(at(pe, 3, 0), at(paper, 3, 0));
}

TEST(Positional, OffsetOverloadFillsRowsOfALongerTable) {
  const int64_t d = 8;
  for (PeLayout layout : {PeLayout::Interleaved, PeLayout::Concatenated}) {
    const Tensor<float> full = sinusoidal_encoding(20, d, 500.0, layout);
    // Rows 7 .. 11 written into a strided view (row stride 11 > d).
    std::vector<float> storage(5 * 11, -5.0f);
    View<float, 2> out(storage.data(), {5, d}, {11, 1});
    sinusoidal_encoding(out, 500.0, layout, 7);
    for (int64_t r = 0; r < 5; ++r) {
      for (int64_t c = 0; c < d; ++c) EXPECT_EQ(out(r, c), at(full, 7 + r, c)) << r << " " << c;
      for (int64_t c = d; c < 11; ++c)
        EXPECT_EQ(storage[static_cast<std::size_t>(r * 11 + c)], -5.0f);
    }
  }
}

TEST(Positional, LargePositionsStayAccurate) {
  // Angles in double: position 100000 at frequency 1 is still exact to float rounding.
  std::vector<float> storage(2);
  sinusoidal_encoding(View<float, 2>(storage.data(), {1, 2}), 10000.0, PeLayout::Interleaved,
                      100000);
  EXPECT_NEAR(storage[0], std::sin(100000.0), kTol);
  EXPECT_NEAR(storage[1], std::cos(100000.0), kTol);
}

TEST(Positional, EmptyLength) {
  const Tensor<float> pe = sinusoidal_encoding(0, 4);
  EXPECT_EQ(pe.shape(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(pe.numel(), 0);
}

// Regression: a PeLayout cast from another integer was read as Concatenated.
TEST(Positional, LayoutOutOfRangeIsAnError) {
  const auto bad = static_cast<PeLayout>(2);
  EXPECT_TRUE(throws_error_naming([&] { sinusoidal_encoding(2, 4, 10000.0, bad); }, "layout"));
  Tensor<float> out({2, 4});
  EXPECT_TRUE(
      throws_error_naming([&] { sinusoidal_encoding(out.view<2>(), 10000.0, bad); }, "layout"));
}

TEST(Positional, BadInput) {
  EXPECT_TRUE(throws_error_naming([] { sinusoidal_encoding(-1, 4); }, "length"));
  EXPECT_TRUE(throws_error_naming([] { sinusoidal_encoding(4, 0); }, "dim"));
  EXPECT_TRUE(throws_error_naming([] { sinusoidal_encoding(4, -2); }, "dim"));
  EXPECT_TRUE(throws_error_naming([] { sinusoidal_encoding(4, 5); }, "dim"));
  EXPECT_TRUE(throws_error_naming([] { sinusoidal_encoding(4, 5); }, "even"));
  constexpr int64_t kHuge = int64_t{1} << 40;
  EXPECT_TRUE(throws_error_naming([] { sinusoidal_encoding(kHuge, kHuge); },
                                  "length: expected a size product"));
  const double inf = std::numeric_limits<double>::infinity();
  for (double base : {1.0, 0.5, 0.0, -10.0, inf, std::nan("")})
    EXPECT_TRUE(throws_error_naming([&] { sinusoidal_encoding(4, 4, base); }, "base")) << base;

  std::vector<float> storage(4 * 6);
  EXPECT_TRUE(throws_error_naming(
      [&] {
        sinusoidal_encoding(View<float, 2>(storage.data(), {4, 5}));
      },
      "out"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        sinusoidal_encoding(View<float, 2>(storage.data(), {4, 0}));
      },
      "out"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        sinusoidal_encoding(View<float, 2>(nullptr, {4, 6}));
      },
      "out"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        sinusoidal_encoding(View<float, 2>(storage.data(), {4, 6}), 10000.0, PeLayout::Interleaved,
                            -1);
      },
      "offset"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        sinusoidal_encoding(View<float, 2>(storage.data(), {4, 6}), 10000.0, PeLayout::Interleaved,
                            std::numeric_limits<int64_t>::max() - 2);
      },
      "offset"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        sinusoidal_encoding(View<float, 2>(storage.data(), {4, 6}), 1.0);
      },
      "base"));
}

}  // namespace
}  // namespace maskattn
