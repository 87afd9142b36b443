// Non-finite inputs are propagated, never invented (attention.hpp, "Non-finite
// inputs"): a NaN or +-inf put into q, k, v or dout makes non-finite exactly
// the results the float64 textbook formula makes non-finite — the row of a
// bad query, every row that may attend a bad key, one column of the rows
// that attend a bad value — and leaves every other result finite and equal
// to the same call without it. Every backend, float32 and bfloat16 inputs,
// grouped heads, a mask that hides the bad key from some rows.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::Buffer4;
using testing_attention::Layout;
using testing_attention::naive_attention;
using testing_attention::naive_attention_backward;
using testing_attention::NaiveOptions;
using testing_attention::Rule;
using testing_attention::Shape;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// (B, Hq, Hkv, Lq, Lk, D, Dv): grouped heads, Lq != Lk, sizes past one tile.
const Shape kShape{2, 4, 2, 37, 45, 16, 12};
// key_lengths(41, 30) & causal(BottomRight): key 35 of batch 1 is padding and
// queries before it (i + 8 < 35) cannot see it either.
const std::vector<int64_t> kLengths{41, 30};
Mask the_mask() { return key_lengths(kLengths) & causal(Align::BottomRight); }
Rule the_rule() {
  return [](int64_t b, int64_t, int64_t i, int64_t j) {
    const bool ok = j < kLengths[static_cast<std::size_t>(b)] && j <= i + (kShape.lk - kShape.lq);
    return ok ? 0.0 : -testing_attention::kInf;
  };
}

// Where the bad value goes.
enum class Where { Q, K, V, Dout };
struct Poison {
  Where where;
  int64_t b, h, l, d;  // h: a query head (Q, Dout) or a key/value head (K, V)
  float value;
  std::string name() const {
    const char* w[] = {"q", "k", "v", "dout"};
    return std::string(w[static_cast<int>(where)]) + "(" + std::to_string(b) + ", " +
           std::to_string(h) + ", " + std::to_string(l) + ", " + std::to_string(d) +
           ") = " + std::to_string(value);
  }
};

std::vector<Poison> poisons() {
  return {
      {Where::Q, 1, 3, 20, 5, kNaN},  {Where::K, 0, 1, 12, 0, kNaN},
      {Where::K, 1, 0, 35, 7, kNaN},  // padding of batch 1: hidden from every row
      {Where::K, 1, 1, 3, 2, kNaN},   {Where::V, 0, 0, 40, 11, kNaN},
      {Where::V, 1, 1, 10, 4, kNaN},  {Where::Q, 0, 2, 0, 15, kInf},
      {Where::K, 0, 0, 20, 3, -kInf}, {Where::V, 1, 0, 5, 0, kInf},
  };
}

struct Inputs {
  Buffer4 q, k, v, dout;
  explicit Inputs(unsigned seed)
      : q({kShape.batch, kShape.hq, kShape.lq, kShape.d}, Layout::BHLD),
        k({kShape.batch, kShape.hkv, kShape.lk, kShape.d}, Layout::BHLD),
        v({kShape.batch, kShape.hkv, kShape.lk, kShape.dv}, Layout::BHLD),
        dout({kShape.batch, kShape.hq, kShape.lq, kShape.dv}, Layout::BHLD) {
    std::mt19937 rng(seed);
    q.fill_normal(rng), k.fill_normal(rng), v.fill_normal(rng), dout.fill_normal(rng);
  }
  void poison(const Poison& p) {
    Buffer4* t[] = {&q, &k, &v, &dout};
    t[static_cast<int>(p.where)]->view()(p.b, p.h, p.l, p.d) = p.value;
  }
  // Every element rounded to bfloat16 (what the bf16 call sees).
  void round_to_bf16() {
    for (Buffer4* t : {&q, &k, &v}) {
      const View<float, 4> x = t->view();
      for_each_index(x.shape(), [&](std::span<const int64_t> i) {
        float& e = x(i[0], i[1], i[2], i[3]);
        e = to_float(to_bfloat16(e));
      });
    }
  }
};

Tensor<BFloat16> to_bf16(const Buffer4& b) {
  const View<const float, 4> x = b.cview();
  Tensor<BFloat16> t({x.size(0), x.size(1), x.size(2), x.size(3)});
  BFloat16* o = t.data();
  for_each_index(x.shape(), [&](std::span<const int64_t> i) {
    *o++ = to_bfloat16(x(i[0], i[1], i[2], i[3]));
  });
  return t;
}

struct Outputs {
  Tensor<float> out{kShape.batch, kShape.hq, kShape.lq, kShape.dv};
  Tensor<float> weights{kShape.batch, kShape.hq, kShape.lq, kShape.lk};
  Tensor<float> lse{kShape.batch, kShape.hq, kShape.lq};
};

Outputs forward(const Inputs& in, Backend backend, bool bf16) {
  Outputs o;
  AttentionOptions opts;
  opts.backend = backend;
  if (bf16) {
    const Tensor<BFloat16> q = to_bf16(in.q), k = to_bf16(in.k), v = to_bf16(in.v);
    attention(q.view<4>(), k.view<4>(), v.view<4>(), o.out.view<4>(), the_mask(), opts,
              o.weights.view<4>(), o.lse.view<3>());
  } else {
    attention(in.q.cview(), in.k.cview(), in.v.cview(), o.out.view<4>(), the_mask(), opts,
              o.weights.view<4>(), o.lse.view<3>());
  }
  return o;
}

// got is non-finite exactly where want is (NaN where want is NaN). Elsewhere:
// with a NaN poison, got equals clean (the same call without it) bit for bit;
// with +-inf (a score of -inf masks a key, so finite rows may change), got is
// within tol (1 + |want|) of the float64 formula.
::testing::AssertionResult propagated(const char* what, const Tensor<float>& got,
                                      const std::vector<double>& want, const Tensor<float>& clean,
                                      bool nan_poison, double tol, int64_t& bad_count) {
  for (int64_t x = 0; x < got.numel(); ++x) {
    const float g = got.data()[x];
    const double w = want[static_cast<std::size_t>(x)];
    bad_count += !std::isfinite(w);
    // +-inf: where the formula is not finite (inf - inf), any result will do.
    if (!nan_poison && !std::isfinite(w)) continue;
    if (std::isfinite(g) != std::isfinite(w))
      return ::testing::AssertionFailure()
             << what << "[" << x << "]: got " << g << ", the float64 formula gives " << w;
    if (std::isnan(w) && !std::isnan(g))
      return ::testing::AssertionFailure() << what << "[" << x << "]: got " << g << ", not NaN";
    if (std::isfinite(w)) {
      if (nan_poison && g != clean.data()[x])
        return ::testing::AssertionFailure()
               << what << "[" << x << "]: " << g << " differs from the clean call's "
               << clean.data()[x];
      if (!nan_poison && std::fabs(g - w) > tol * (1.0 + std::fabs(w)))
        return ::testing::AssertionFailure()
               << what << "[" << x << "]: " << g << ", the float64 formula gives " << w;
    }
  }
  return ::testing::AssertionSuccess();
}

// lse of an empty row is -inf in both (not "bad"): compare it as a value.
std::vector<double> lse_of(const testing_attention::Expected& e) { return e.lse; }

class NanPropagation : public ::testing::TestWithParam<Backend> {};

// q, k and v. A NaN in value j reaches only the rows that may attend key j,
// also in a partially masked flash tile whose mask hides key j from some of
// its rows (their weight 0 must not meet the NaN: 0 * NaN = NaN).
TEST_P(NanPropagation, ForwardNaNFlowsOnlyWhereItMathematicallyFlows) {
  const Backend backend = GetParam();
  for (bool bf16 : {false, true}) {
    Inputs clean_in(11);
    if (bf16) clean_in.round_to_bf16();
    const Outputs clean = forward(clean_in, backend, bf16);
    // Finite inputs give finite results (lse -inf only for empty rows: none here).
    for (const Tensor<float>* t : {&clean.out, &clean.weights, &clean.lse}) {
      for (float x : *t) ASSERT_TRUE(std::isfinite(x));
    }
    for (const Poison& p : poisons()) {
      if (p.where == Where::Dout) continue;
      SCOPED_TRACE(p.name() + (bf16 ? " (bf16)" : " (float32)"));
      Inputs in(11);
      if (bf16) in.round_to_bf16();
      in.poison(p);
      const testing_attention::Expected want =
          naive_attention(kShape, in.q, in.k, in.v, the_rule(), NaiveOptions{});
      const Outputs got = forward(in, backend, bf16);
      int64_t bad = 0;
      const bool nan = std::isnan(p.value);
      const double tol = bf16 ? 1e-2 : 1e-5;  // bf16: probabilities rounded before p @ v
      EXPECT_TRUE(propagated("out", got.out, want.out, clean.out, nan, tol, bad));
      EXPECT_TRUE(propagated("weights", got.weights, want.weights, clean.weights, nan, 1e-5, bad));
      EXPECT_TRUE(propagated("lse", got.lse, lse_of(want), clean.lse, nan, 1e-5, bad));
      // The poison at key 35 of batch 1 is padding: nothing may change.
      if (p.where == Where::K && p.l == 35) {
        EXPECT_EQ(bad, 0);
      } else {
        EXPECT_GT(bad, 0);
      }
    }
  }
}

void check_backward(Backend backend) {
  auto backward = [&](const Inputs& in, const Outputs& f) {
    std::array<Tensor<float>, 3> g{Tensor<float>({kShape.batch, kShape.hq, kShape.lq, kShape.d}),
                                   Tensor<float>({kShape.batch, kShape.hkv, kShape.lk, kShape.d}),
                                   Tensor<float>({kShape.batch, kShape.hkv, kShape.lk, kShape.dv})};
    AttentionOptions opts;
    opts.backend = backend;
    attention_backward(in.q.cview(), in.k.cview(), in.v.cview(), f.out.view<4>(), f.lse.view<3>(),
                       in.dout.cview(), g[0].view<4>(), g[1].view<4>(), g[2].view<4>(), the_mask(),
                       opts);
    return g;
  };
  const Inputs clean_in(12);
  const auto clean = backward(clean_in, forward(clean_in, backend, false));
  for (const Tensor<float>& t : clean) {
    for (float x : t) ASSERT_TRUE(std::isfinite(x));
  }
  for (const Poison& p : poisons()) {
    for (Where where : {p.where, Where::Dout}) {
      Poison pp = p;
      pp.where = where;
      if (where == Where::Dout) pp.h = p.h % kShape.hq, pp.l = p.l % kShape.lq, pp.d = p.d % 12;
      SCOPED_TRACE(pp.name());
      Inputs in(12);
      in.poison(pp);
      const testing_attention::ExpectedGradients want =
          naive_attention_backward(kShape, in.q, in.k, in.v, in.dout, the_rule(), 0.0);
      const auto got = backward(in, forward(in, backend, false));
      int64_t bad = 0;
      const bool nan = std::isnan(pp.value);
      EXPECT_TRUE(propagated("dq", got[0], want.dq, clean[0], nan, 1e-4, bad));
      EXPECT_TRUE(propagated("dk", got[1], want.dk, clean[1], nan, 1e-4, bad));
      EXPECT_TRUE(propagated("dv", got[2], want.dv, clean[2], nan, 1e-4, bad));
    }
  }
}

// The gradients: a masked pair contributes nothing, even where dP, dd or the
// saved lse is NaN or an operand row holds a NaN (flash: the pairs a tile's
// mask hides, and the lanes past its last query, take weight 0 exactly).
TEST_P(NanPropagation, BackwardNaNFlowsOnlyWhereItMathematicallyFlows) {
  check_backward(GetParam());
}

// Flash against the reference on calls the tests above do not make: the
// decoding row path (one query), dropout (the forward: a dropped key, like
// a masked one, adds nothing — the reference skips a weight of 0), a bias
// mask (ALiBi: every tile carries mask values), float32 and bfloat16. Each
// call holds a NaN and an inf in v, at keys some rows may attend and others
// not, and a NaN in dout; the results the reference makes non-finite must
// be non-finite in flash (NaN where NaN), the others within tolerance.
struct FlashCase {
  int64_t lq;
  bool bf16;
  float dropout;
  bool bias;
};

::testing::AssertionResult same_non_finite(const char* what, const Tensor<float>& got,
                                           const Tensor<float>& want, double tol) {
  int64_t non_finite = 0;
  for (int64_t x = 0; x < got.numel(); ++x) {
    const float g = got.data()[x], w = want.data()[x];
    non_finite += !std::isfinite(w);
    if (std::isnan(g) != std::isnan(w) || std::isfinite(g) != std::isfinite(w) ||
        (std::isfinite(w) && std::fabs(g - w) > tol * (1.0 + std::fabs(w))))
      return ::testing::AssertionFailure()
             << what << "[" << x << "]: flash " << g << ", reference " << w;
  }
  if (non_finite == 0) return ::testing::AssertionFailure() << what << ": nothing non-finite";
  return ::testing::AssertionSuccess();
}

TEST(NanPropagationFlash, MatchesTheReferenceOnEveryPath) {
  for (const FlashCase& fc : {FlashCase{37, false, 0.0f, false}, FlashCase{1, false, 0.0f, false},
                              FlashCase{37, true, 0.0f, false}, FlashCase{1, true, 0.0f, false},
                              FlashCase{37, false, 0.3f, false}, FlashCase{1, false, 0.3f, false},
                              FlashCase{37, true, 0.3f, false}, FlashCase{37, false, 0.0f, true},
                              FlashCase{1, true, 0.0f, true}}) {
    SCOPED_TRACE("lq " + std::to_string(fc.lq) + (fc.bf16 ? " bf16" : " float32") + " dropout " +
                 std::to_string(fc.dropout) + (fc.bias ? " alibi" : ""));
    const Shape s{2, 4, 2, fc.lq, 45, 16, 12};
    Buffer4 q({s.batch, s.hq, s.lq, s.d}, Layout::BHLD),
        k({s.batch, s.hkv, s.lk, s.d}, Layout::BHLD), v({s.batch, s.hkv, s.lk, s.dv}, Layout::BHLD),
        dout({s.batch, s.hq, s.lq, s.dv}, Layout::BHLD);
    std::mt19937 rng(13);
    q.fill_normal(rng), k.fill_normal(rng), v.fill_normal(rng), dout.fill_normal(rng);
    v.view()(1, 1, 35, 4) = kNaN;   // padding of batch 1
    v.view()(0, 0, 40, 11) = kNaN;  // allowed for some rows of batch 0 only (causal)
    v.view()(1, 0, 3, 2) = kInf;
    dout.view()(0, 1, s.lq - 1, 5) = kNaN;
    const std::vector<float> slopes{0.5f, 0.25f, 0.125f, 0.0625f};
    const Mask mask = fc.bias ? key_lengths(kLengths) & alibi(slopes, Align::BottomRight) &
                                    causal(Align::BottomRight)
                              : key_lengths(kLengths) & causal(Align::BottomRight);
    auto run = [&](Backend backend) {
      AttentionOptions opts;
      opts.backend = backend;
      opts.dropout_p = fc.dropout;
      opts.seed = 5;
      std::array<Tensor<float>, 4> r{
          Tensor<float>({s.batch, s.hq, s.lq, s.dv}), Tensor<float>({s.batch, s.hq, s.lq, s.d}),
          Tensor<float>({s.batch, s.hkv, s.lk, s.d}), Tensor<float>({s.batch, s.hkv, s.lk, s.dv})};
      Tensor<float> lse({s.batch, s.hq, s.lq});
      if (fc.bf16) {
        const Tensor<BFloat16> qb = to_bf16(q), kb = to_bf16(k), vb = to_bf16(v);
        attention(qb.view<4>(), kb.view<4>(), vb.view<4>(), r[0].view<4>(), mask, opts);
        return r;
      }
      attention(q.cview(), k.cview(), v.cview(), r[0].view<4>(), mask, opts, {}, lse.view<3>());
      attention_backward(q.cview(), k.cview(), v.cview(), r[0].view<4>(), lse.view<3>(),
                         dout.cview(), r[1].view<4>(), r[2].view<4>(), r[3].view<4>(), mask, opts);
      return r;
    };
    const auto want = run(Backend::Reference), got = run(Backend::Flash);
    const double tol = fc.bf16 ? 2e-2 : 1e-4;
    EXPECT_TRUE(same_non_finite("out", got[0], want[0], tol));
    if (fc.bf16) continue;  // no bfloat16 backward
    EXPECT_TRUE(same_non_finite("dq", got[1], want[1], tol));
    EXPECT_TRUE(same_non_finite("dk", got[2], want[2], tol));
    EXPECT_TRUE(same_non_finite("dv", got[3], want[3], tol));
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, NanPropagation,
                         ::testing::Values(Backend::Reference, Backend::Flash),
                         testing_attention::backend_label);

}  // namespace
}  // namespace maskattn
