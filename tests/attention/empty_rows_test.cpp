// Rows with no allowed key under each EmptyRows policy: Zero (exact zeros and
// lse -inf), NaN, and Error (thrown before anything is written, naming the
// first empty row).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::Buffer4;
using testing_attention::close3;
using testing_attention::close4;
using testing_attention::Expected;
using testing_attention::kInf;
using testing_attention::Layout;
using testing_attention::naive_attention;
using testing_attention::NaiveOptions;
using testing_attention::Shape;
using testing_attention::throws_error_for;

constexpr float kNegInfF = -std::numeric_limits<float>::infinity();
constexpr float kUntouched = -7.0f;

// A problem whose outputs start as kUntouched.
struct Problem {
  explicit Problem(const Shape& s, uint32_t seed = 11)
      : shape(s),
        q({s.batch, s.hq, s.lq, s.d}, Layout::BHLD),
        k({s.batch, s.hkv, s.lk, s.d}, Layout::BLHD),
        v({s.batch, s.hkv, s.lk, s.dv}, Layout::BHLD),
        out(static_cast<std::size_t>(s.batch * s.hq * s.lq * s.dv), kUntouched),
        weights(static_cast<std::size_t>(s.batch * s.hq * s.lq * s.lk), kUntouched),
        lse(static_cast<std::size_t>(s.batch * s.hq * s.lq), kUntouched) {
    std::mt19937 rng(seed);
    q.fill_normal(rng);
    k.fill_normal(rng);
    v.fill_normal(rng);
  }

  View<float, 4> out_view() { return {out.data(), {shape.batch, shape.hq, shape.lq, shape.dv}}; }
  View<float, 4> weights_view() {
    return {weights.data(), {shape.batch, shape.hq, shape.lq, shape.lk}};
  }
  View<float, 3> lse_view() { return {lse.data(), {shape.batch, shape.hq, shape.lq}}; }

  void run(const Mask& mask, EmptyRows policy) {
    AttentionOptions opts;
    opts.empty_rows = policy;
    attention(q.cview(), k.cview(), v.cview(), out_view(), mask,
              testing_attention::on_backend(opts), weights_view(), lse_view());
  }

  bool untouched() const {
    for (const auto* buf : {&out, &weights, &lse})
      for (float x : *buf)
        if (x != kUntouched) return false;
    return true;
  }

  Shape shape;
  Buffer4 q, k, v;
  std::vector<float> out, weights, lse;
};

class EmptyRowPolicies : public testing_attention::BackendSuite {};

// query_lengths {3, 1} with Lq = 4: row 3 of batch 0 and rows 1.. of batch 1
// are empty in every head; the first in (b, h, i) order is (0, 0, 3).
const Shape kShape{2, 2, 2, 4, 5, 3, 2};
const std::vector<int64_t> kQueryLengths{3, 1};

bool row_empty(int64_t b, int64_t i) { return i >= kQueryLengths[static_cast<std::size_t>(b)]; }

TEST_P(EmptyRowPolicies, ZeroGivesExactZerosAndNegInfLse) {
  Problem p(kShape);
  p.run(query_lengths(kQueryLengths), EmptyRows::Zero);
  const Shape& s = p.shape;
  std::size_t o = 0, w = 0, l = 0;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.hq; ++h)
      for (int64_t i = 0; i < s.lq; ++i, ++l) {
        const bool empty = row_empty(b, i);
        for (int64_t d = 0; d < s.dv; ++d, ++o) {
          if (empty) {
            EXPECT_EQ(p.out[o], 0.0f) << b << h << i;
          } else {
            EXPECT_TRUE(std::isfinite(p.out[o]));
          }
        }
        double sum = 0.0;
        for (int64_t j = 0; j < s.lk; ++j, ++w) {
          if (empty) {
            EXPECT_EQ(p.weights[w], 0.0f);
          }
          sum += p.weights[w];
        }
        if (empty) {
          EXPECT_EQ(p.lse[l], kNegInfF);
        } else {
          EXPECT_NEAR(sum, 1.0, 1e-6);
        }
      }
  // The rows that are not empty are exactly the naive loop's.
  const Expected e = naive_attention(
      s, p.q, p.k, p.v,
      [](int64_t b, int64_t, int64_t i, int64_t) { return row_empty(b, i) ? -kInf : 0.0; }, {});
  EXPECT_TRUE(close4("out", p.out_view(), e.out, 1e-5));
  EXPECT_TRUE(close4("weights", p.weights_view(), e.weights, 1e-6));
  EXPECT_TRUE(close3("lse", p.lse_view(), e.lse, 1e-5));
}

TEST_P(EmptyRowPolicies, NaNGivesNaNOutAndWeightsAndNegInfLse) {
  Problem p(kShape);
  p.run(query_lengths(kQueryLengths), EmptyRows::NaN);
  const Shape& s = p.shape;
  NaiveOptions naive;
  naive.empty_rows = EmptyRows::NaN;
  const Expected e = naive_attention(
      s, p.q, p.k, p.v,
      [](int64_t b, int64_t, int64_t i, int64_t) { return row_empty(b, i) ? -kInf : 0.0; }, naive);
  // close4 matches NaN with NaN and -inf with -inf only.
  EXPECT_TRUE(close4("out", p.out_view(), e.out, 1e-5));
  EXPECT_TRUE(close4("weights", p.weights_view(), e.weights, 1e-6));
  EXPECT_TRUE(close3("lse", p.lse_view(), e.lse, 1e-5));
  EXPECT_TRUE(std::isnan(p.out[static_cast<std::size_t>(((1 * s.hq + 1) * s.lq + 3) * s.dv)]));
  EXPECT_FALSE(std::isnan(p.out[0]));
}

TEST_P(EmptyRowPolicies, ErrorNamesTheFirstEmptyRowAndWritesNothing) {
  Problem p(kShape);
  EXPECT_TRUE(
      throws_error_for([&] { p.run(query_lengths(kQueryLengths), EmptyRows::Error); }, "mask"));
  EXPECT_TRUE(p.untouched());
  try {
    p.run(query_lengths(kQueryLengths), EmptyRows::Error);
    FAIL() << "no Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(b, h, i) = (0, 0, 3)"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(p.untouched());
  // A bottom-right causal mask with Lq > Lk: the first Lq - Lk rows see nothing.
  Problem tall(Shape{1, 2, 1, 5, 3, 2, 2});
  try {
    tall.run(causal(Align::BottomRight), EmptyRows::Error);
    FAIL() << "no Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(b, h, i) = (0, 0, 0)"), std::string::npos) << e.what();
  }
  // key_lengths 0 in batch 1 only: every row of batch 1 is empty, first (1, 0, 0).
  Problem keys(kShape);
  try {
    keys.run(key_lengths(std::vector<int64_t>{2, 0}), EmptyRows::Error);
    FAIL() << "no Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(b, h, i) = (1, 0, 0)"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(keys.untouched());
}

TEST_P(EmptyRowPolicies, ErrorPolicyWithoutEmptyRowsComputesNormally) {
  Problem a(kShape), b(kShape);
  const Mask mask = causal() & key_lengths(std::vector<int64_t>{5, 2});
  a.run(mask, EmptyRows::Error);
  b.run(mask, EmptyRows::Zero);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.lse, b.lse);
}

TEST_P(EmptyRowPolicies, NoKeysAtAll) {
  // Lk == 0: every row is empty.
  const Shape s{2, 2, 1, 3, 0, 4, 3};
  for (EmptyRows policy : {EmptyRows::Zero, EmptyRows::NaN}) {
    Problem p(s);
    p.run({}, policy);
    for (float x : p.out) {
      if (policy == EmptyRows::Zero) {
        EXPECT_EQ(x, 0.0f);
      } else {
        EXPECT_TRUE(std::isnan(x));
      }
    }
    for (float x : p.lse) EXPECT_EQ(x, kNegInfF);
  }
  Problem p(s);
  EXPECT_TRUE(throws_error_for([&] { p.run({}, EmptyRows::Error); }, "mask"));
  EXPECT_TRUE(p.untouched());
}

TEST_P(EmptyRowPolicies, NoQueriesOrBatchIsANoOp) {
  for (const Shape& s : {Shape{2, 2, 1, 0, 4, 3, 3}, Shape{0, 2, 2, 3, 4, 3, 3}}) {
    Problem p(s);
    p.run(causal(), EmptyRows::Error);
  }
}

// Regression: an output with no element (B = 0) whose strides were derived
// from the zero size (BLHD memory of (0, L, H, D): a stride 0) was rejected
// as "overlapping itself" (MultiheadAttention with N = 0 hit it).
TEST_P(EmptyRowPolicies, AnEmptyOutputMayHaveAnyStrides) {
  Tensor<float> q({0, 2, 3, 2});
  const View<float, 4> out(q.data(), {0, 2, 3, 2}, {4, 2, 0, 1});
  AttentionOptions o;
  o.backend = GetParam();
  attention(q.view<4>(), q.view<4>(), q.view<4>(), out, causal(), o);
}

MASKATTN_INSTANTIATE_FOR_BACKENDS(EmptyRowPolicies);

}  // namespace
}  // namespace maskattn
