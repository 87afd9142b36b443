// Bad input to attention(): every check is a maskattn::Error for the named
// argument, thrown before any output is written.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::throws_error_for;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr float kUntouched = -7.0f;

// A valid call, (B, Hq, Hkv, Lq, Lk, D, Dv) = (2, 4, 2, 3, 5, 4, 6), that each
// test breaks in one place. Every buffer lives in one arena so that overlaps
// can be built from its views.
struct Call {
  static constexpr int64_t kB = 2, kHq = 4, kHkv = 2, kLq = 3, kLk = 5, kD = 4, kDv = 6;
  static constexpr int64_t kQ = kB * kHq * kLq * kD, kK = kB * kHkv * kLk * kD,
                           kV = kB * kHkv * kLk * kDv, kOut = kB * kHq * kLq * kDv,
                           kW = kB * kHq * kLq * kLk, kLse = kB * kHq * kLq;
  std::vector<float> arena = std::vector<float>(kQ + kK + kV + kOut + kW + kLse, 0.5f);
  float* qp = arena.data();
  float* kp = qp + kQ;
  float* vp = kp + kK;
  float* op = vp + kV;
  float* wp = op + kOut;
  float* lp = wp + kW;

  View<const float, 4> q{qp, {kB, kHq, kLq, kD}};
  View<const float, 4> k{kp, {kB, kHkv, kLk, kD}};
  View<const float, 4> v{vp, {kB, kHkv, kLk, kDv}};
  View<float, 4> out{op, {kB, kHq, kLq, kDv}};
  View<float, 4> weights{wp, {kB, kHq, kLq, kLk}};
  View<float, 3> lse{lp, {kB, kHq, kLq}};
  Mask mask = causal();
  AttentionOptions opts;

  Call() { std::fill(op, lp + kLse, kUntouched); }

  void operator()() const { attention(q, k, v, out, mask, opts, weights, lse); }

  bool outputs_untouched() const {
    return std::all_of(op, lp + kLse, [](float x) { return x == kUntouched; });
  }
};

// Runs a broken call: an Error for `argument`, and nothing written.
template <class Break>
::testing::AssertionResult rejects(Break&& breaker, std::string_view argument) {
  Call c;
  breaker(c);
  auto r = throws_error_for(c, argument);
  if (!r) return r;
  if (!c.outputs_untouched()) return ::testing::AssertionFailure() << "outputs written";
  return ::testing::AssertionSuccess();
}

TEST(AttentionErrors, TheValidCallRuns) {
  Call c;
  c();
  EXPECT_FALSE(c.outputs_untouched());
}

TEST(AttentionErrors, Q) {
  EXPECT_TRUE(rejects([](Call& c) { c.q = View<const float, 4>(c.qp, {2, 4, 3, 0}); }, "q"));
  EXPECT_TRUE(rejects([](Call& c) { c.q = View<const float, 4>(c.qp, {2, 0, 3, 4}); }, "q"));
  EXPECT_TRUE(rejects([](Call& c) { c.q = View<const float, 4>(nullptr, {2, 4, 3, 4}); }, "q"));
  EXPECT_TRUE(rejects([](Call& c) { c.q = {}; }, "q"));
}

TEST(AttentionErrors, K) {
  // Batch differs from q's.
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(c.kp, {1, 2, 5, 4}); }, "k"));
  // Head dim differs from q's.
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(c.kp, {2, 2, 5, 3}); }, "k"));
  // Hkv does not divide Hq; Hkv = 0; Hkv > Hq.
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(c.kp, {2, 3, 5, 4}); }, "k"));
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(c.kp, {2, 0, 5, 4}); }, "k"));
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(c.kp, {2, 8, 2, 4}); }, "k"));
  EXPECT_TRUE(rejects([](Call& c) { c.k = View<const float, 4>(nullptr, {2, 2, 5, 4}); }, "k"));
  try {
    Call c;
    c.k = View<const float, 4>(c.kp, {2, 3, 5, 4});
    c();
    FAIL() << "no Error";
  } catch (const Error& e) {
    // Expected vs actual shapes.
    EXPECT_NE(std::string(e.what()).find("(2, Hkv, Lk, 4)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("got (2, 3, 5, 4)"), std::string::npos) << e.what();
  }
}

TEST(AttentionErrors, V) {
  EXPECT_TRUE(rejects([](Call& c) { c.v = View<const float, 4>(c.vp, {1, 2, 5, 6}); }, "v"));
  EXPECT_TRUE(rejects([](Call& c) { c.v = View<const float, 4>(c.vp, {2, 1, 5, 6}); }, "v"));
  EXPECT_TRUE(rejects([](Call& c) { c.v = View<const float, 4>(c.vp, {2, 2, 4, 6}); }, "v"));
  EXPECT_TRUE(rejects([](Call& c) { c.v = View<const float, 4>(c.vp, {2, 2, 5, 0}); }, "v"));
}

TEST(AttentionErrors, OutWeightsLseShapes) {
  EXPECT_TRUE(rejects([](Call& c) { c.out = View<float, 4>(c.op, {2, 4, 3, 4}); }, "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.out = View<float, 4>(c.op, {2, 2, 3, 6}); }, "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.out = View<float, 4>(c.op, {2, 4, 5, 6}); }, "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.out = {}; }, "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.weights = View<float, 4>(c.wp, {2, 4, 5, 3}); }, "weights"));
  EXPECT_TRUE(rejects([](Call& c) { c.weights = View<float, 4>(c.wp, {2, 2, 3, 5}); }, "weights"));
  EXPECT_TRUE(rejects([](Call& c) { c.lse = View<float, 3>(c.lp, {2, 4, 5}); }, "lse"));
  EXPECT_TRUE(rejects([](Call& c) { c.lse = View<float, 3>(c.lp, {1, 4, 3}); }, "lse"));
}

TEST(AttentionErrors, OutputsMustNotOverlapInputsOrEachOther) {
  // out over the tail of q (same size as out; the arena holds it).
  EXPECT_TRUE(rejects([](Call& c) { c.out = View<float, 4>(c.qp + 1, {2, 4, 3, 6}); }, "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.out = View<float, 4>(c.vp - 1, {2, 4, 3, 6}); }, "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.weights = View<float, 4>(c.kp, {2, 4, 3, 5}); }, "weights"));
  EXPECT_TRUE(rejects([](Call& c) { c.lse = View<float, 3>(c.vp + 5, {2, 4, 3}); }, "lse"));
  // Outputs overlapping each other.
  EXPECT_TRUE(rejects(
      [](Call& c) {
        c.weights = View<float, 4>(c.op + 3, {2, 4, 3, 5});
      },
      "weights"));
  EXPECT_TRUE(rejects([](Call& c) { c.lse = View<float, 3>(c.wp, {2, 4, 3}); }, "lse"));
  // An output aliasing itself (stride 0 on B: both batches write one place).
  EXPECT_TRUE(rejects(
      [](Call& c) {
        c.out = View<float, 4>(c.op, {2, 4, 3, 6}, {0, 18, 6, 1});
      },
      "out"));
  EXPECT_TRUE(rejects([](Call& c) { c.lse = View<float, 3>(c.lp, {2, 4, 3}, {12, 2, 1}); }, "lse"));
  // Strided outputs that touch no input are fine (BLHD out).
  Call c;
  c.out = View<float, 4>(c.op, {2, 3, 4, 6}).transposed(1, 2);
  c();
}

TEST(AttentionErrors, Options) {
  EXPECT_TRUE(rejects([](Call& c) { c.opts.scale = kNaN; }, "opts.scale"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.scale = kInfF; }, "opts.scale"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.scale = -kInfF; }, "opts.scale"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.dropout_p = -0.1f; }, "opts.dropout_p"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.dropout_p = 1.0f; }, "opts.dropout_p"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.dropout_p = kNaN; }, "opts.dropout_p"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.softcap = -1.0f; }, "opts.softcap"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.softcap = kInfF; }, "opts.softcap"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.softcap = kNaN; }, "opts.softcap"));
  EXPECT_TRUE(
      rejects([](Call& c) { c.opts.empty_rows = static_cast<EmptyRows>(7); }, "opts.empty_rows"));
  EXPECT_TRUE(rejects([](Call& c) { c.opts.backend = static_cast<Backend>(7); }, "opts.backend"));
}

::testing::AssertionResult rejects_head_mask(const AnyView& m) {
  return rejects([&](Call& c) { c.opts.head_mask = m; }, "opts.head_mask");
}

TEST(AttentionErrors, HeadMask) {
  const std::vector<float> f(16, 1.0f);
  const std::vector<int32_t> ints(4, 1);
  const std::vector<float> with_nan{1.0f, kNaN, 1.0f, 1.0f};
  const std::vector<double> with_inf{1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, HUGE_VAL};
  // Wrong dtype.
  EXPECT_TRUE(rejects_head_mask(View<const int32_t, 1>(ints.data(), {4})));
  // Wrong shapes: (Hq + 1), (B + 1, Hq), (Hq, B), rank 3.
  EXPECT_TRUE(rejects_head_mask(View<const float, 1>(f.data(), {5})));
  EXPECT_TRUE(rejects_head_mask(View<const float, 2>(f.data(), {3, 4})));
  EXPECT_TRUE(rejects_head_mask(View<const float, 2>(f.data(), {4, 2})));
  EXPECT_TRUE(rejects_head_mask(View<const float, 3>(f.data(), {2, 4, 1})));
  // Non-finite multipliers.
  EXPECT_TRUE(rejects_head_mask(View<const float, 1>(with_nan.data(), {4})));
  EXPECT_TRUE(rejects_head_mask(View<const double, 2>(with_inf.data(), {2, 4})));
  // The valid forms run.
  Call c;
  c.opts.head_mask = View<const float, 1>(f.data(), {4});
  c();
  c.opts.head_mask = View<const double, 2>(with_inf.data(), {1, 4});
  EXPECT_TRUE(throws_error_for(c, "opts.head_mask"));  // (1, Hq) is not (B, Hq) for B = 2
}

TEST(AttentionErrors, MaskThatDoesNotFit) {
  // key_lengths for 3 batches, or a length past Lk; a dense mask of the wrong shape.
  EXPECT_TRUE(rejects(
      [](Call& c) {
        c.mask = key_lengths(std::vector<int64_t>{1, 2, 3});
      },
      "mask"));
  EXPECT_TRUE(rejects([](Call& c) { c.mask = key_lengths(std::vector<int64_t>{1, 6}); }, "mask"));
  static const bool dense[12] = {};
  EXPECT_TRUE(rejects([](Call& c) { c.mask = keep(View<const bool, 2>(dense, {4, 3})); }, "mask"));
}

TEST(AttentionErrors, Bf16InputsAreCheckedLikeFloat) {
  Tensor<BFloat16> q({2, 4, 3, 4}), k({2, 2, 5, 4}), v({2, 2, 5, 6}), k_bad_d({2, 2, 5, 3}),
      v_bad_len({2, 2, 4, 6});
  Tensor<float> out({2, 4, 3, 6}), out_bad({2, 4, 3, 5});
  auto run = [&](const Tensor<BFloat16>& kk, const Tensor<BFloat16>& vv, Tensor<float>& o,
                 AttentionOptions opts = {}) {
    attention(q.view<4>(), kk.view<4>(), vv.view<4>(), o.view<4>(), causal(), opts);
  };
  for (Backend b : {Backend::Reference, Backend::Flash}) {
    AttentionOptions opts;
    opts.backend = b;
    EXPECT_NO_THROW(run(k, v, out, opts));
    EXPECT_TRUE(throws_error_for([&] { run(k_bad_d, v, out, opts); }, "k"));
    EXPECT_TRUE(throws_error_for([&] { run(k, v_bad_len, out, opts); }, "v"));
    EXPECT_TRUE(throws_error_for([&] { run(k, v, out_bad, opts); }, "out"));
    opts.dropout_p = 1.0f;
    EXPECT_TRUE(throws_error_for([&] { run(k, v, out, opts); }, "opts.dropout_p"));
  }
}

// An output without elements is written nowhere, so its strides cannot make
// it overlap itself. MultiheadAttention with a batch of 0 hands attention() a
// BLHD view (0, H, L, D) whose L stride is 0 (H * D * 0): this was an Error
// "out: expected a view whose elements do not overlap" instead of an empty
// result.
TEST(AttentionErrors, OutputsWithoutElementsNeverOverlap) {
  const std::array<float, 4> none{};
  const View<const float, 4> q(none.data(), {0, 2, 3, 4}, {8, 4, 0, 1});
  const View<const float, 4> k(none.data(), {0, 2, 5, 4}, {8, 4, 0, 1});
  std::array<float, 4> sink{};
  const View<float, 4> out(sink.data(), {0, 2, 3, 4}, {8, 4, 0, 1});
  const View<float, 4> weights(sink.data(), {0, 2, 3, 5}, {8, 4, 0, 1});
  const View<float, 3> lse(sink.data(), {0, 2, 3}, {3, 0, 1});
  EXPECT_NO_THROW(attention(q, k, k, out, Mask(), AttentionOptions(), weights, lse));
  Tensor<float> dq({0, 2, 3, 4}), dk({0, 2, 5, 4}), dv({0, 2, 5, 4});
  const View<float, 4> dq_strided(sink.data(), {0, 2, 3, 4}, {8, 4, 0, 1});
  EXPECT_NO_THROW(attention_backward(q, k, k, View<const float, 4>(out), View<const float, 3>(lse),
                                     View<const float, 4>(out), dq_strided, dk.view<4>(),
                                     dv.view<4>(), Mask(), AttentionOptions()));
}

}  // namespace
}  // namespace maskattn
