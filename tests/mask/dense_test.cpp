// keep / block / bias: every supported shape with PyTorch broadcasting, values
// of materialize(), exact tile classes, ownership of the data, bad input.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::classify_exact;
using oracle::kNegInf;
using oracle::matches_rule;
using oracle::throws_error_naming;

// A dense mask shape and, written out per case, which stored element
// (row-major flat index) the pair (b, h, i, j) reads.
struct Case {
  std::string name;
  std::vector<int64_t> shape;
  Dims2 dims2;
  std::function<int64_t(int64_t b, int64_t h, int64_t i, int64_t j)> index;
};

// Bound to (B, H, Lq, Lk) = (2, 3, 4, 5).
constexpr MaskShape kShape{2, 3, 4, 5};

std::vector<Case> cases() {
  using I = int64_t;
  const Dims2 qk = Dims2::QueryKey, bk = Dims2::BatchKey;
  return {
      {"(S)", {5}, qk, [](I, I, I, I j) { return j; }},
      {"(L, S)", {4, 5}, qk, [](I, I, I i, I j) { return i * 5 + j; }},
      {"(B, S) key padding", {2, 5}, bk, [](I b, I, I, I j) { return b * 5 + j; }},
      {"(B, L, S)", {2, 4, 5}, qk, [](I b, I, I i, I j) { return (b * 4 + i) * 5 + j; }},
      {"(B*H, L, S)",
       {6, 4, 5},
       qk,
       [](I b, I h, I i, I j) { return ((b * 3 + h) * 4 + i) * 5 + j; }},
      {"(1, L, S)", {1, 4, 5}, qk, [](I, I, I i, I j) { return i * 5 + j; }},
      {"(B, H, L, S)",
       {2, 3, 4, 5},
       qk,
       [](I b, I h, I i, I j) { return ((b * 3 + h) * 4 + i) * 5 + j; }},
      {"(B, 1, 1, S)", {2, 1, 1, 5}, qk, [](I b, I, I, I j) { return b * 5 + j; }},
      {"(1, H, L, 1)", {1, 3, 4, 1}, qk, [](I, I h, I i, I) { return h * 4 + i; }},
      {"(1, 1, 1, 1)", {1, 1, 1, 1}, qk, [](I, I, I, I) { return I{0}; }},
      {"(B, H, 1, S)", {2, 3, 1, 5}, qk, [](I b, I h, I, I j) { return (b * 3 + h) * 5 + j; }},
      {"(L, 1)", {4, 1}, qk, [](I, I, I i, I) { return i; }},
      {"(1, S)", {1, 5}, qk, [](I, I, I, I j) { return j; }},
      {"(B, 1) key padding", {2, 1}, bk, [](I b, I, I, I) { return b; }},
      {"(B, 1, S)", {2, 1, 5}, qk, [](I b, I, I, I j) { return b * 5 + j; }},
      {"(B*H, 1, 1)", {6, 1, 1}, qk, [](I b, I h, I, I) { return b * 3 + h; }},
  };
}

const std::vector<std::pair<int64_t, int64_t>> kTiles{{1, 1}, {2, 3}, {3, 2}, {4, 5}};

TEST(Dense, KeepBlockBiasBroadcastEveryShape) {
  std::mt19937 rng(7);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Tensor<bool> bits(c.shape);
    Tensor<float> values(c.shape);
    for (int64_t k = 0; k < bits.numel(); ++k) {
      bits.data()[k] = rng() % 3 != 0;
      values.data()[k] = rng() % 4 == 0 ? kNegInf : static_cast<float>(rng() % 17) * 0.25f - 2.0f;
    }
    const Mask mk = keep(bits, c.dims2), mb = block(bits, c.dims2), mv = bias(values, c.dims2);
    EXPECT_TRUE(matches_rule(mk, kShape, [&](int64_t b, int64_t h, int64_t i, int64_t j) {
      return bits.data()[c.index(b, h, i, j)] ? 0.0f : kNegInf;
    }));
    EXPECT_TRUE(matches_rule(mb, kShape, [&](int64_t b, int64_t h, int64_t i, int64_t j) {
      return bits.data()[c.index(b, h, i, j)] ? kNegInf : 0.0f;
    }));
    EXPECT_TRUE(matches_rule(mv, kShape, [&](int64_t b, int64_t h, int64_t i, int64_t j) {
      return values.data()[c.index(b, h, i, j)];
    }));
    for (const Mask* m : {&mk, &mb, &mv}) EXPECT_TRUE(classify_exact(*m, kShape, kTiles, true));
  }
}

TEST(Dense, RankThreeIsReadAsBTimesHThenB) {
  // H == 1: B*H == B, both readings agree.
  Tensor<bool> m({2, 3, 3});
  for (int64_t k = 0; k < m.numel(); ++k) m.data()[k] = k % 4 != 1;
  EXPECT_TRUE(matches_rule(keep(m), {2, 1, 3, 3}, [&](int64_t b, int64_t, int64_t i, int64_t j) {
    return m.data()[(b * 3 + i) * 3 + j] ? 0.0f : kNegInf;
  }));
  // B = 1: the first dim is H.
  EXPECT_TRUE(matches_rule(keep(m), {1, 2, 3, 3}, [&](int64_t, int64_t h, int64_t i, int64_t j) {
    return m.data()[(h * 3 + i) * 3 + j] ? 0.0f : kNegInf;
  }));
  // Neither B*H = 4 nor B = 4 nor 1.
  EXPECT_TRUE(throws_error_naming([&] { keep(m).bind({4, 4, 3, 3}); }, "mask: keep"));
}

TEST(Dense, CopiesTheData) {
  Tensor<bool> m({2, 2});
  m.data()[0] = true;
  m.data()[3] = true;
  const Mask k = keep(m);
  std::fill(m.begin(), m.end(), false);  // the caller's memory changes afterwards
  const Tensor<float> t = k.materialize(1, 1, 2, 2);
  EXPECT_EQ(t.data()[0], 0.0f);
  EXPECT_EQ(t.data()[1], kNegInf);
  EXPECT_EQ(t.data()[2], kNegInf);
  EXPECT_EQ(t.data()[3], 0.0f);
}

TEST(Dense, StridedAndFloat64Views) {
  // A (3, 4) window with row stride 6 of a larger buffer.
  double buf[18];
  for (int k = 0; k < 18; ++k)
    buf[k] = k % 5 == 0 ? -std::numeric_limits<double>::infinity() : 0.5 * k;
  const View<const double, 2> v(buf, {3, 4}, {6, 1});
  EXPECT_TRUE(matches_rule(bias(v), {1, 2, 3, 4}, [&](int64_t, int64_t, int64_t i, int64_t j) {
    return static_cast<float>(buf[i * 6 + j]);
  }));
  // A broadcast (stride 0) leading dim given as an AnyView.
  bool row[4] = {true, false, true, true};
  const AnyView rep(row, DType::Bool, {3, 4}, {0, 1});
  EXPECT_TRUE(matches_rule(keep(rep), {1, 1, 3, 4}, [&](int64_t, int64_t, int64_t, int64_t j) {
    return row[j] ? 0.0f : kNegInf;
  }));
}

TEST(Dense, HasBias) {
  Tensor<float> zeros({2, 2});
  zeros.data()[1] = kNegInf;
  EXPECT_FALSE(bias(zeros).bind({1, 1, 2, 2}).has_bias());  // 0 / -inf only: a pure mask
  Tensor<float> some({2, 2});
  some.data()[2] = -0.5f;
  EXPECT_TRUE(bias(some).bind({1, 1, 2, 2}).has_bias());
  Tensor<bool> bits({2, 2});
  EXPECT_FALSE(keep(bits).bind({1, 1, 2, 2}).has_bias());
  EXPECT_FALSE(block(bits).bind({1, 1, 2, 2}).has_bias());
}

TEST(Dense, Describe) {
  Tensor<bool> m({2, 1, 5});
  EXPECT_EQ(keep(m).describe(), "keep(2, 1, 5)");
  EXPECT_EQ(block(m).describe(), "block(2, 1, 5)");
}

TEST(Dense, WrongDtype) {
  Tensor<float> f({2, 2});
  Tensor<int32_t> i({2, 2});
  Tensor<bool> b({2, 2});
  EXPECT_TRUE(throws_error_naming([&] { keep(f); }, "keep: expected dtype bool"));
  EXPECT_TRUE(throws_error_naming([&] { block(i); }, "block: expected dtype bool"));
  EXPECT_TRUE(throws_error_naming([&] { bias(b); }, "bias: expected dtype float32 or float64"));
  EXPECT_TRUE(throws_error_naming([&] { bias(i); }, "bias"));
  EXPECT_TRUE(throws_error_naming([&] { keep(AnyView{}); }, "keep"));
}

TEST(Dense, WrongRank) {
  bool x[32] = {};
  EXPECT_TRUE(throws_error_naming([&] { keep(AnyView(x, DType::Bool, {}, {})); },
                                  "keep: expected rank 1..4"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        block(AnyView(x, DType::Bool, {1, 2, 2, 2, 2}, {16, 8, 4, 2, 1}));
      },
      "block: expected rank 1..4"));
}

TEST(Dense, WrongShapeAtBind) {
  Tensor<bool> ls({4, 5});
  // Lq = 3 != 4: the message names the part, the given shape and the bound shape.
  EXPECT_TRUE(throws_error_naming([&] { keep(ls).bind({2, 3, 3, 5}); }, "mask: keep"));
  EXPECT_TRUE(throws_error_naming([&] { keep(ls).bind({2, 3, 3, 5}); }, "(2, 3, 3, 5)"));
  EXPECT_TRUE(throws_error_naming([&] { keep(ls).bind({2, 3, 3, 5}); }, "got shape (4, 5)"));
  EXPECT_TRUE(throws_error_naming([&] { block(ls).bind({1, 1, 4, 6}); }, "mask: block"));
  // Key padding with the wrong batch.
  EXPECT_TRUE(throws_error_naming(
      [&] {
        keep(ls, Dims2::BatchKey).bind({3, 1, 2, 5});
      },
      "(B, S) key padding"));
  // Rank 4 with H = 2 bound to H = 3.
  Tensor<float> bhls({2, 2, 4, 5});
  EXPECT_TRUE(throws_error_naming([&] { bias(bhls).bind({2, 3, 4, 5}); }, "mask: bias"));
  EXPECT_TRUE(throws_error_naming([&] { bias(bhls).materialize(1, 2, 4, 5); }, "mask: bias"));
  // (S) of the wrong length.
  Tensor<bool> s({6});
  EXPECT_TRUE(throws_error_naming([&] { keep(s).bind({1, 1, 4, 5}); }, "got shape (6,)"));
}

TEST(Dense, NanAndPlusInfBiasAreErrorsNamingTheIndex) {
  Tensor<float> m({2, 3});
  m.data()[4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(throws_error_naming([&] { bias(m); }, "bias"));
  EXPECT_TRUE(throws_error_naming([&] { bias(m); }, "nan at [1, 1]"));
  m.data()[4] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(throws_error_naming([&] { bias(m); }, "inf at [1, 1]"));
  m.data()[4] = kNegInf;  // -inf is "masked", fine
  EXPECT_NO_THROW(bias(m));
  Tensor<double> d({3});
  d.data()[2] = 1e300;  // beyond float32: would become +inf
  EXPECT_TRUE(throws_error_naming([&] { bias(d); }, "float32 range"));
  d.data()[2] = -1e300;
  EXPECT_TRUE(throws_error_naming([&] { bias(d); }, "-1e+300 at [2]"));
}

}  // namespace
}  // namespace maskattn
