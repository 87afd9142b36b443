// Both backends (reference and flash, one instantiation each) against the
// write-ups' worked 2x2 example computed by hand, then random shapes,
// layouts, masks and options against the naive double-precision loop of
// attention_oracle.hpp.
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

using testing_attention::allow_all;
using testing_attention::BackendSuite;
using testing_attention::both;
using testing_attention::Buffer4;
using testing_attention::close3;
using testing_attention::close4;
using testing_attention::Expected;
using testing_attention::kInf;
using testing_attention::Layout;
using testing_attention::naive_attention;
using testing_attention::NaiveOptions;
using testing_attention::on_backend;
using testing_attention::Rule;
using testing_attention::Shape;
using testing_attention::shape_text;

class NaiveOracle : public BackendSuite {};

// Unit-variance float inputs, results accumulated in double and rounded once
// to float: 1e-5 absolute covers the rounding of outputs of magnitude <= ~10.
constexpr double kOutTol = 1e-5;
constexpr double kWeightTol = 1e-6;
constexpr double kLseTol = 1e-5;

// ---- the worked example -----------------------------------------------------

// q = [[1, 2], [3, 4]], k = [[5, 6], [7, 8]], v = [[9, 10], [11, 12]],
// (B, H, L, D) = (1, 1, 2, 2), look-ahead mask causal().
struct Worked {
  std::vector<float> q{1, 2, 3, 4}, k{5, 6, 7, 8}, v{9, 10, 11, 12};
  std::vector<float> out = std::vector<float>(4, -1.0f);
  std::vector<float> weights = std::vector<float>(4, -1.0f);
  std::vector<float> lse = std::vector<float>(2, -1.0f);

  void run(const Mask& mask) {
    attention(View<const float, 4>(q.data(), {1, 1, 2, 2}),
              View<const float, 4>(k.data(), {1, 1, 2, 2}),
              View<const float, 4>(v.data(), {1, 1, 2, 2}),
              View<float, 4>(out.data(), {1, 1, 2, 2}), mask, on_backend({}),
              View<float, 4>(weights.data(), {1, 1, 2, 2}), View<float, 3>(lse.data(), {1, 1, 2}));
  }
};

TEST_P(NaiveOracle, WorkedExampleWithLookAheadMask) {
  Worked w;
  w.run(causal());
  const double r2 = std::sqrt(2.0);
  // Row 0 sees only key 0: weight [1, 0], out = v0, lse = its one score.
  EXPECT_FLOAT_EQ(w.weights[0], 1.0f);
  EXPECT_EQ(w.weights[1], 0.0f);
  EXPECT_FLOAT_EQ(w.out[0], 9.0f);
  EXPECT_FLOAT_EQ(w.out[1], 10.0f);
  EXPECT_NEAR(w.lse[0], (1 * 5 + 2 * 6) / r2, 1e-5);  // 17 / sqrt(2)
  // Row 1 sees both keys: scores [3*5 + 4*6, 3*7 + 4*8] / sqrt(2) = [39, 53] / sqrt(2).
  const double s0 = 39 / r2, s1 = 53 / r2;
  const double p0 = 1.0 / (1.0 + std::exp(s1 - s0)), p1 = 1.0 - p0;
  EXPECT_NEAR(p0, 5.0197e-5, 1e-8);  // exp(-14/sqrt(2)) / (1 + exp(-14/sqrt(2)))
  EXPECT_NEAR(w.weights[2], p0, 1e-7);
  EXPECT_NEAR(w.weights[3], p1, 1e-6);
  EXPECT_NEAR(w.out[2], p0 * 9 + p1 * 11, 1e-5);   // ~10.9999
  EXPECT_NEAR(w.out[3], p0 * 10 + p1 * 12, 1e-5);  // ~11.9999
  EXPECT_NEAR(w.lse[1], s1 + std::log1p(std::exp(s0 - s1)), 1e-5);
}

TEST_P(NaiveOracle, WorkedExampleInvertedMaskGivesZerosNotNaN) {
  // The pitfall: keep = (triu(ones, 1) == 0) inverted, i.e. only the future
  // is visible. Row 0 sees only key 1; row 1 sees nothing: zeros, lse -inf.
  Worked w;
  const bool future[4] = {false, true, false, false};
  w.run(keep(View<const bool, 2>(future, {2, 2})));
  EXPECT_FLOAT_EQ(w.out[0], 11.0f);
  EXPECT_FLOAT_EQ(w.out[1], 12.0f);
  EXPECT_EQ(w.weights[0], 0.0f);
  EXPECT_FLOAT_EQ(w.weights[1], 1.0f);
  EXPECT_EQ(w.out[2], 0.0f);
  EXPECT_EQ(w.out[3], 0.0f);
  EXPECT_EQ(w.weights[2], 0.0f);
  EXPECT_EQ(w.weights[3], 0.0f);
  EXPECT_EQ(w.lse[1], -std::numeric_limits<float>::infinity());
}

TEST(AttentionBackends, Names) {
  EXPECT_EQ(backend_name(Backend::Auto), "auto");
  EXPECT_EQ(backend_name(Backend::Reference), "reference");
  EXPECT_EQ(backend_name(Backend::Flash), "flash");
}

// ---- random problems against the naive loop ----------------------------------

// A mask and the rule the test expects it to mean.
struct NamedMask {
  std::string name;
  Mask mask;
  Rule rule;
};

Rule band_rule(int64_t left, int64_t right, int64_t offset) {
  return [=](int64_t, int64_t, int64_t i, int64_t j) {
    const int64_t d = j - (i + offset);  // distance right of the aligned diagonal
    return (left == kUnbounded || -d <= left) && (right == kUnbounded || d <= right) ? 0.0 : -kInf;
  };
}

std::vector<NamedMask> masks_for(const Shape& s, std::mt19937& rng) {
  const int64_t br = s.lk - s.lq;  // bottom-right offset
  std::uniform_int_distribution<int64_t> klen(0, s.lk), qlen(0, s.lq);
  std::vector<int64_t> kl, ql;
  for (int64_t b = 0; b < s.batch; ++b) {
    kl.push_back(klen(rng));
    ql.push_back(qlen(rng));
  }
  const Rule key_rule = [kl](int64_t b, int64_t, int64_t, int64_t j) {
    return j < kl[static_cast<std::size_t>(b)] ? 0.0 : -kInf;
  };
  const Rule query_rule = [ql](int64_t b, int64_t, int64_t i, int64_t) {
    return i < ql[static_cast<std::size_t>(b)] ? 0.0 : -kInf;
  };
  const Rule prefix_rule = [br](int64_t, int64_t, int64_t i, int64_t j) {
    return j < 2 || j <= i + br ? 0.0 : -kInf;
  };
  // Dense additive bias (Lq, Lk) in [-2, 2], shared by batch and heads.
  auto bias_data = std::make_shared<std::vector<float>>(static_cast<std::size_t>(s.lq * s.lk));
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (float& x : *bias_data) x = u(rng);
  const Rule bias_rule = [bias_data, lk = s.lk](int64_t, int64_t, int64_t i, int64_t j) {
    return static_cast<double>((*bias_data)[static_cast<std::size_t>(i * lk + j)]);
  };

  std::vector<NamedMask> m;
  m.push_back({"all", Mask{}, allow_all()});
  m.push_back({"causal(top_left)", causal(Align::TopLeft), band_rule(kUnbounded, 0, 0)});
  m.push_back({"causal(bottom_right)", causal(Align::BottomRight), band_rule(kUnbounded, 0, br)});
  m.push_back({"key_lengths", key_lengths(kl), key_rule});
  m.push_back({"query_lengths", query_lengths(ql), query_rule});
  m.push_back({"sliding_window(2, 1)", sliding_window(2, 1), band_rule(2, 1, 0)});
  m.push_back({"sliding_window(1, 0, bottom_right)", sliding_window(1, 0, Align::BottomRight),
               band_rule(1, 0, br)});
  m.push_back({"prefix_lm(2, bottom_right)", prefix_lm(2, Align::BottomRight), prefix_rule});
  m.push_back({"causal & key_lengths", causal() & key_lengths(kl),
               both(band_rule(kUnbounded, 0, 0), key_rule)});
  m.push_back({"sliding_window & query_lengths & key_lengths",
               sliding_window(3, 0, Align::BottomRight) & query_lengths(ql) & key_lengths(kl),
               both(both(band_rule(3, 0, br), query_rule), key_rule)});
  m.push_back({"bias & causal",
               bias(View<const float, 2>(bias_data->data(), {s.lq, s.lk})) & causal(),
               both(bias_rule, band_rule(kUnbounded, 0, 0))});
  return m;
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s{
      // B, Hq, Hkv, Lq, Lk, D, Dv
      {2, 3, 3, 5, 7, 4, 4},  // plain multi-head
      {1, 1, 1, 1, 1, 1, 1},  // L = 1, D = 1
      {2, 2, 2, 4, 4, 1, 3},  // D = 1
      {1, 2, 2, 3, 9, 8, 8},  // Lq < Lk
      {2, 1, 1, 9, 3, 5, 5},  // Lq > Lk
      {2, 4, 2, 6, 6, 8, 8},  // GQA, 2 query heads per kv head
      {1, 4, 1, 5, 7, 8, 5},  // MQA (Hkv = 1), Dv != D
      {2, 2, 1, 4, 5, 3, 7},  // Dv > D
  };
  return s;
}

// Runs attention() and compares out, weights and lse with the naive loop.
// `in` lays out q, k, v; `out_layout` out and weights.
::testing::AssertionResult matches_naive(const Shape& s, Layout in, Layout out_layout,
                                         const NamedMask& m, const AttentionOptions& opts,
                                         const NaiveOptions& naive, std::mt19937& rng) {
  Buffer4 q({s.batch, s.hq, s.lq, s.d}, in), k({s.batch, s.hkv, s.lk, s.d}, in),
      v({s.batch, s.hkv, s.lk, s.dv}, in);
  q.fill_normal(rng);
  k.fill_normal(rng);
  v.fill_normal(rng);
  Buffer4 out({s.batch, s.hq, s.lq, s.dv}, out_layout);
  Buffer4 weights({s.batch, s.hq, s.lq, s.lk}, out_layout);
  // lse (B, Hq, Lq): Lq is contiguous; non-BHLD layouts leave gaps between heads.
  const int64_t head_stride = out_layout == Layout::BHLD ? s.lq : s.lq + 2;
  std::vector<float> lse_storage(static_cast<std::size_t>(s.batch * s.hq * head_stride),
                                 Buffer4::kGap);
  const View<float, 3> lse(lse_storage.data(), {s.batch, s.hq, s.lq},
                           {s.hq * head_stride, head_stride, 1});
  attention(q.cview(), k.cview(), v.cview(), out.view(), m.mask, on_backend(opts), weights.view(),
            lse);
  const Expected e = naive_attention(s, q, k, v, m.rule, naive);
  const std::string where = shape_text(s) + ", mask " + m.name + ": ";
  if (auto r = close4(where + "out", out.cview(), e.out, kOutTol); !r) return r;
  if (auto r = close4(where + "weights", weights.cview(), e.weights, kWeightTol); !r) return r;
  if (auto r = close3(where + "lse", lse, e.lse, kLseTol); !r) return r;
  int64_t lse_gaps = 0;
  for (std::size_t x = 0; x < lse_storage.size(); ++x)
    lse_gaps += static_cast<int64_t>(x) % head_stride >= s.lq && lse_storage[x] != Buffer4::kGap;
  if (out.gaps_written() + weights.gaps_written() + lse_gaps != 0)
    return ::testing::AssertionFailure() << where << "wrote outside the output views";
  return ::testing::AssertionSuccess();
}

TEST_P(NaiveOracle, MatchesNaiveLoopOverShapesLayoutsAndMasks) {
  std::mt19937 rng(1);
  for (const Shape& s : shapes())
    for (auto [in, out] :
         {std::pair{Layout::BHLD, Layout::BHLD}, std::pair{Layout::BLHD, Layout::Padded},
          std::pair{Layout::Padded, Layout::BLHD}})
      for (const NamedMask& m : masks_for(s, rng))
        EXPECT_TRUE(matches_naive(s, in, out, m, {}, {}, rng));
}

TEST_P(NaiveOracle, ScaleAndSoftcap) {
  std::mt19937 rng(2);
  for (const Shape& s : shapes())
    for (const NamedMask& m : masks_for(s, rng)) {
      AttentionOptions opts;
      opts.scale = 0.3f;
      NaiveOptions naive;
      naive.scale = 0.3f;
      EXPECT_TRUE(matches_naive(s, Layout::BHLD, Layout::BHLD, m, opts, naive, rng));
      // A large scale so that the cap (before the mask's bias) changes the scores.
      opts.scale = 3.0f;
      opts.softcap = 1.5f;
      naive.scale = 3.0f;
      naive.softcap = 1.5;
      EXPECT_TRUE(matches_naive(s, Layout::BLHD, Layout::BHLD, m, opts, naive, rng));
    }
}

TEST_P(NaiveOracle, SoftcapBoundsTheScores) {
  // All keys equal except one: with a cap c the score gap is at most 2c, so
  // the weights stay within exp(+-2c) of each other whatever the scale.
  std::vector<float> q{100.0f}, k{1.0f, -1.0f}, v{1.0f, 0.0f}, out(1), w(2);
  AttentionOptions opts;
  opts.softcap = 1.0f;
  attention(View<const float, 4>(q.data(), {1, 1, 1, 1}),
            View<const float, 4>(k.data(), {1, 1, 2, 1}),
            View<const float, 4>(v.data(), {1, 1, 2, 1}), View<float, 4>(out.data(), {1, 1, 1, 1}),
            {}, on_backend(opts), View<float, 4>(w.data(), {1, 1, 1, 2}));
  // scores 100 and -100 capped to tanh(100) ~ 1 and -1: p = sigmoid(2).
  const double p = 1.0 / (1.0 + std::exp(-2.0 * std::tanh(100.0)));
  EXPECT_NEAR(w[0], p, 1e-6);
  EXPECT_NEAR(w[1], 1.0 - p, 1e-6);
  EXPECT_NEAR(out[0], p, 1e-6);
}

TEST_P(NaiveOracle, HeadMaskPerHeadAndPerBatchHead) {
  std::mt19937 rng(3);
  for (const Shape& s : shapes()) {
    std::uniform_real_distribution<float> u(0.0f, 1.5f);
    std::vector<float> per_head(static_cast<std::size_t>(s.hq));
    for (float& x : per_head) x = u(rng);
    per_head[0] = 0.0f;  // a pruned head (Hugging Face head_mask = 0)
    std::vector<double> per_bh(static_cast<std::size_t>(s.batch * s.hq));
    for (double& x : per_bh) x = u(rng);
    for (const NamedMask& m : masks_for(s, rng)) {
      AttentionOptions opts;
      NaiveOptions naive;
      opts.head_mask = View<const float, 1>(per_head.data(), {s.hq});
      naive.head_mask = [&](int64_t, int64_t h) { return per_head[static_cast<std::size_t>(h)]; };
      EXPECT_TRUE(matches_naive(s, Layout::BHLD, Layout::Padded, m, opts, naive, rng));
      opts.head_mask = View<const double, 2>(per_bh.data(), {s.batch, s.hq});
      naive.head_mask = [&](int64_t b, int64_t h) {
        return per_bh[static_cast<std::size_t>(b * s.hq + h)];
      };
      EXPECT_TRUE(matches_naive(s, Layout::BLHD, Layout::BHLD, m, opts, naive, rng));
    }
  }
}

TEST_P(NaiveOracle, DropoutMatchesNaiveLoop) {
  std::mt19937 rng(4);
  for (const Shape& s : shapes())
    for (const NamedMask& m : masks_for(s, rng)) {
      AttentionOptions opts;
      opts.dropout_p = 0.25f;
      opts.seed = 77;
      NaiveOptions naive;
      naive.dropout_p = 0.25f;
      naive.seed = 77;
      EXPECT_TRUE(matches_naive(s, Layout::Padded, Layout::BHLD, m, opts, naive, rng));
    }
}

TEST_P(NaiveOracle, OptionalOutputsDoNotChangeOut) {
  std::mt19937 rng(5);
  const Shape s{2, 4, 2, 6, 9, 8, 4};
  Buffer4 q({s.batch, s.hq, s.lq, s.d}, Layout::BHLD), k({s.batch, s.hkv, s.lk, s.d}, Layout::BHLD),
      v({s.batch, s.hkv, s.lk, s.dv}, Layout::BHLD);
  q.fill_normal(rng);
  k.fill_normal(rng);
  v.fill_normal(rng);
  Buffer4 a({s.batch, s.hq, s.lq, s.dv}, Layout::BHLD),
      b({s.batch, s.hq, s.lq, s.dv}, Layout::BHLD);
  Buffer4 w({s.batch, s.hq, s.lq, s.lk}, Layout::BHLD);
  std::vector<float> lse(static_cast<std::size_t>(s.batch * s.hq * s.lq));
  const Mask mask = causal(Align::BottomRight);
  attention(q.cview(), k.cview(), v.cview(), a.view(), mask, on_backend({}));
  attention(q.cview(), k.cview(), v.cview(), b.view(), mask, on_backend({}), w.view(),
            View<float, 3>(lse.data(), {s.batch, s.hq, s.lq}));
  for (int64_t x = 0; x < s.batch; ++x)
    for (int64_t h = 0; h < s.hq; ++h)
      for (int64_t i = 0; i < s.lq; ++i)
        for (int64_t d = 0; d < s.dv; ++d) ASSERT_EQ(a(x, h, i, d), b(x, h, i, d));
  // Only weights, only lse.
  attention(q.cview(), k.cview(), v.cview(), b.view(), mask, on_backend({}), w.view());
  attention(q.cview(), k.cview(), v.cview(), b.view(), mask, on_backend({}), {},
            View<float, 3>(lse.data(), {s.batch, s.hq, s.lq}));
  for (int64_t d = 0; d < s.dv; ++d) EXPECT_EQ(a(1, 3, 5, d), b(1, 3, 5, d));
}

TEST_P(NaiveOracle, SameBufferForQKAndV) {
  // Self-attention reading q, k and v from one buffer is allowed (inputs may
  // alias each other; only outputs must not alias anything).
  std::mt19937 rng(6);
  const Shape s{1, 2, 2, 5, 5, 4, 4};
  Buffer4 x({s.batch, s.hq, s.lq, s.d}, Layout::BLHD);
  x.fill_normal(rng);
  Buffer4 out({s.batch, s.hq, s.lq, s.dv}, Layout::BHLD);
  attention(x.cview(), x.cview(), x.cview(), out.view(), causal(), on_backend({}));
  const Expected e = naive_attention(s, x, x, x, band_rule(kUnbounded, 0, 0), {});
  EXPECT_TRUE(close4("out", out.cview(), e.out, kOutTol));
}

MASKATTN_INSTANTIATE_FOR_BACKENDS(NaiveOracle);

}  // namespace
}  // namespace maskattn
