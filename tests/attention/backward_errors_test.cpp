// Bad input to attention_backward(): every check is a maskattn::Error for the
// named argument, thrown before any gradient is written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::throws_error_for;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kUntouched = -7.0f;

// A valid call, (B, Hq, Hkv, Lq, Lk, D, Dv) = (2, 4, 2, 3, 5, 4, 6), that each
// test breaks in one place. Every buffer lives in one arena so that overlaps
// can be built from its views; the gradients come last.
struct Call {
  static constexpr int64_t kB = 2, kHq = 4, kHkv = 2, kLq = 3, kLk = 5, kD = 4, kDv = 6;
  static constexpr int64_t kQ = kB * kHq * kLq * kD, kK = kB * kHkv * kLk * kD,
                           kV = kB * kHkv * kLk * kDv, kOut = kB * kHq * kLq * kDv,
                           kLse = kB * kHq * kLq;
  std::vector<float> arena =
      std::vector<float>(kQ + kK + kV + 2 * kOut + kLse + kQ + kK + kV, 0.5f);
  float* qp = arena.data();
  float* kp = qp + kQ;
  float* vp = kp + kK;
  float* op = vp + kV;
  float* gp = op + kOut;  // dout
  float* lp = gp + kOut;
  float* dqp = lp + kLse;
  float* dkp = dqp + kQ;
  float* dvp = dkp + kK;

  View<const float, 4> q{qp, {kB, kHq, kLq, kD}};
  View<const float, 4> k{kp, {kB, kHkv, kLk, kD}};
  View<const float, 4> v{vp, {kB, kHkv, kLk, kDv}};
  View<const float, 4> out{op, {kB, kHq, kLq, kDv}};
  View<const float, 4> dout{gp, {kB, kHq, kLq, kDv}};
  View<const float, 3> lse{lp, {kB, kHq, kLq}};
  View<float, 4> dq{dqp, {kB, kHq, kLq, kD}};
  View<float, 4> dk{dkp, {kB, kHkv, kLk, kD}};
  View<float, 4> dv{dvp, {kB, kHkv, kLk, kDv}};
  Mask mask = causal();
  AttentionOptions opts;

  Call() { std::fill(dqp, dvp + kV, kUntouched); }

  void operator()() const { attention_backward(q, k, v, out, lse, dout, dq, dk, dv, mask, opts); }

  bool gradients_untouched() const {
    return std::all_of(dqp, dvp + kV, [](float x) { return x == kUntouched; });
  }
};

// Runs a broken call on both backends: an Error for `argument`, and nothing written.
template <class Break>
::testing::AssertionResult rejects(Break&& breaker, std::string_view argument) {
  for (Backend backend : {Backend::Reference, Backend::Flash}) {
    Call c;
    c.opts.backend = backend;
    breaker(c);
    auto r = throws_error_for(c, argument);
    if (!r) return r << " (" << backend_name(backend) << ")";
    if (!c.gradients_untouched())
      return ::testing::AssertionFailure() << "gradients written (" << backend_name(backend) << ")";
  }
  return ::testing::AssertionSuccess();
}

TEST(AttentionBackwardErrors, TheValidCallRuns) {
  for (Backend backend : {Backend::Reference, Backend::Flash}) {
    Call c;
    c.opts.backend = backend;
    c();
    EXPECT_FALSE(c.gradients_untouched());
  }
}

TEST(AttentionBackwardErrors, InputsAreCheckedAsInTheForward) {
  EXPECT_TRUE(rejects([](Call& c) { c.q = View<const float, 4>(c.qp, {2, 4, 3, 0}); }, "q"));
  EXPECT_TRUE(rejects([](Call& c) { c.q = {}; }, "q"));
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(c.kp, {2, 3, 5, 4}); }, "k"));
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(nullptr, {2, 2, 5, 4}); }, "k"));
  EXPECT_TRUE(rejects([](Call& c) { c.v = View<const float, 4>(c.vp, {2, 2, 4, 6}); }, "v"));
}

TEST(AttentionBackwardErrors, ForwardResultsAndDout) {
  EXPECT_TRUE(rejects([](Call& c) { c.out = View<const float, 4>(c.op, {2, 4, 3, 5}); }, "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.out = {}; }, "out"));
  // lse is required: the probabilities are recomputed from it.
  EXPECT_TRUE(rejects([](Call& c) { c.lse = {}; }, "lse"));
  EXPECT_TRUE(rejects([](Call& c) { c.lse = View<const float, 3>(c.lp, {2, 4, 2}); }, "lse"));
  EXPECT_TRUE(rejects([](Call& c) { c.lse = View<const float, 3>(nullptr, {2, 4, 3}); }, "lse"));
  EXPECT_TRUE(rejects([](Call& c) { c.dout = View<const float, 4>(c.gp, {2, 2, 3, 6}); }, "dout"));
  EXPECT_TRUE(rejects([](Call& c) { c.dout = {}; }, "dout"));
}

TEST(AttentionBackwardErrors, GradientShapes) {
  EXPECT_TRUE(rejects([](Call& c) { c.dq = View<float, 4>(c.dqp, {2, 4, 3, 6}); }, "dq"));
  EXPECT_TRUE(rejects([](Call& c) { c.dq = {}; }, "dq"));
  // dk, dv are per key/value head (B, Hkv, Lk, .), not per query head.
  EXPECT_TRUE(rejects([](Call& c) { c.dk = View<float, 4>(c.dkp, {2, 4, 5, 4}); }, "dk"));
  EXPECT_TRUE(rejects([](Call& c) { c.dk = View<float, 4>(nullptr, {2, 2, 5, 4}); }, "dk"));
  EXPECT_TRUE(rejects([](Call& c) { c.dv = View<float, 4>(c.dvp, {2, 2, 5, 4}); }, "dv"));
  EXPECT_TRUE(rejects([](Call& c) { c.dv = {}; }, "dv"));
}

TEST(AttentionBackwardErrors, GradientsMustNotOverlapInputsOrEachOther) {
  // Over an input or a forward result.
  EXPECT_TRUE(rejects([](Call& c) { c.dq = View<float, 4>(c.qp + 1, {2, 4, 3, 4}); }, "dq"));
  EXPECT_TRUE(rejects([](Call& c) { c.dk = View<float, 4>(c.op, {2, 2, 5, 4}); }, "dk"));
  EXPECT_TRUE(rejects([](Call& c) { c.dv = View<float, 4>(c.gp + 3, {2, 2, 5, 6}); }, "dv"));
  EXPECT_TRUE(rejects([](Call& c) { c.dq = View<float, 4>(c.lp - 10, {2, 4, 3, 4}); }, "dq"));
  EXPECT_TRUE(rejects([](Call& c) { c.dv = View<float, 4>(c.vp, {2, 2, 5, 6}); }, "dv"));
  // Over each other.
  EXPECT_TRUE(rejects([](Call& c) { c.dk = View<float, 4>(c.dqp + 90, {2, 2, 5, 4}); }, "dk"));
  EXPECT_TRUE(rejects([](Call& c) { c.dv = View<float, 4>(c.dkp, {2, 2, 5, 6}); }, "dv"));
  // Over itself (stride 0 on the heads).
  EXPECT_TRUE(rejects(
      [](Call& c) {
        c.dq = View<float, 4>(c.dqp, {2, 4, 3, 4}, {48, 0, 4, 1});
      },
      "dq"));
  // Inputs may alias each other (q == k here), and strided gradients are fine.
  Call c;
  c.k = View<const float, 4>(c.qp, {2, 2, 5, 4});
  c.dq = View<float, 4>(c.dqp, {2, 3, 4, 4}).transposed(1, 2);
  c();
}

TEST(AttentionBackwardErrors, OptionsAndMask) {
  EXPECT_TRUE(rejects([](Call& c) { c.opts.scale = kNaN; }, "opts.scale"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.dropout_p = 1.0f; }, "opts.dropout_p"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.softcap = -1.0f; }, "opts.softcap"));
  const std::vector<float> five(5, 1.0f);
  EXPECT_TRUE(rejects([&](Call& c) { c.opts.head_mask = View<const float, 1>(five.data(), {5}); },
                      "opts.head_mask"));
  EXPECT_TRUE(
      rejects([](Call& c) { c.opts.empty_rows = static_cast<EmptyRows>(7); }, "opts.empty_rows"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.backend = static_cast<Backend>(7); }, "opts.backend"));
  EXPECT_TRUE(rejects(
      [](Call& c) {
        c.mask = key_lengths(std::vector<int64_t>{1, 2, 3});
      },
      "mask"));
  // EmptyRows::Error: the forward would have thrown for this mask; so does the backward.
  EXPECT_TRUE(rejects(
      [](Call& c) {
        c.mask = key_lengths(std::vector<int64_t>{5, 0});
        c.opts.empty_rows = EmptyRows::Error;
      },
      "mask"));
}

}  // namespace
}  // namespace maskattn
