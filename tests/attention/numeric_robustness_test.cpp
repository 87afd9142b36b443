// Numeric robustness: scores of +-1e4, all-equal scores, -inf biases mixed
// with finite ones of +-5e3, fully masked rows — under every backend and
// input dtype (float32, bfloat16), forward and backward (float32): results
// finite and equal to the float64 formula (attention_oracle.hpp) within
// stated tolerances.
//
// q and k hold integers and the scale is 1, so every score (and every score
// plus an integer bias) is an integer below 2^24: exact in float32, bfloat16
// and double alike. What is left to compare is the softmax itself. Its
// error model: a score (flash: computed as sum_d (q_d scale log2 e) k_d)
// carries S 2^-24 of rounding, S the largest sum_d |q_d k_d| plus |bias|
// (here 1e4 + 5e3), which exp() turns into a relative error of the
// probabilities, so with rel = (S + 16) 2^-21 (7e-3):
//   weights: |got - want| <= rel want + 1e-7
//   out:     |got - want| <= rel max|v| (+ 2^-7 max|v| for bfloat16, whose
//            probabilities are rounded before p @ v)
//   lse:     |got - want| <= rel
//   dq, dk, dv: |got - want| <= rel max|gradient| + 2^-14
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::Buffer4;
using testing_attention::kInf;
using testing_attention::Layout;
using testing_attention::Rule;
using testing_attention::Shape;

const Shape kShape{2, 4, 2, 33, 70, 16, 16};  // grouped heads, several key tiles

struct Scenario {
  std::string name;
  Mask mask;
  Rule rule;
  // q, k: integers; v: multiples of 1/8 in [-4, 4] (exact in bfloat16).
  std::function<void(Buffer4& q, Buffer4& k, Buffer4& v, std::mt19937& rng)> fill;
};

void fill_ints(Buffer4& t, std::mt19937& rng, int lo, int hi) {
  std::uniform_int_distribution<int> u(lo, hi);
  const View<float, 4> x = t.view();
  for_each_index(x.shape(), [&](std::span<const int64_t> i) {
    x(i[0], i[1], i[2], i[3]) = static_cast<float>(u(rng));
  });
}
void fill_values(Buffer4& v, std::mt19937& rng) {
  fill_ints(v, rng, -32, 32);
  const View<float, 4> x = v.view();
  for_each_index(x.shape(), [&](std::span<const int64_t> i) { x(i[0], i[1], i[2], i[3]) /= 8.0f; });
}

// The bias of the mixed scenario: integers in [-5000, 5000], -inf at about a
// third of the pairs, and query rows 4 and 20 fully -inf (empty rows).
const std::vector<float>& mixed_bias() {
  static const std::vector<float> b = [] {
    std::vector<float> v(static_cast<std::size_t>(kShape.lq * kShape.lk));
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> u(-5000, 5000);
    for (int64_t i = 0; i < kShape.lq; ++i)
      for (int64_t j = 0; j < kShape.lk; ++j)
        v[static_cast<std::size_t>(i * kShape.lk + j)] =
            (i == 4 || i == 20 || rng() % 3 == 0) ? -std::numeric_limits<float>::infinity()
                                                  : static_cast<float>(u(rng));
    return v;
  }();
  return b;
}

std::vector<Scenario> scenarios() {
  const auto big = [](Buffer4& q, Buffer4& k, Buffer4& v, std::mt19937& rng) {
    fill_ints(q, rng, -25, 25), fill_ints(k, rng, -25, 25), fill_values(v, rng);
    // Query row 0 all 25, keys alternately all +25 and all -25: scores +-1e4.
    for (int64_t b = 0; b < kShape.batch; ++b) {
      for (int64_t h = 0; h < kShape.hq; ++h)
        for (int64_t d = 0; d < kShape.d; ++d) q.view()(b, h, 0, d) = 25.0f;
      for (int64_t h = 0; h < kShape.hkv; ++h)
        for (int64_t j = 0; j < kShape.lk; j += 2)
          for (int64_t d = 0; d < kShape.d; ++d) {
            k.view()(b, h, j, d) = j % 4 == 0 ? 25.0f : -25.0f;
          }
    }
  };
  const auto equal = [](Buffer4& q, Buffer4& k, Buffer4& v, std::mt19937& rng) {
    fill_ints(q, rng, -25, 25), fill_ints(k, rng, -25, 25), fill_values(v, rng);
    // Every key the same vector: in each row every score is equal (and large).
    for (int64_t b = 0; b < kShape.batch; ++b)
      for (int64_t h = 0; h < kShape.hkv; ++h)
        for (int64_t j = 1; j < kShape.lk; ++j)
          for (int64_t d = 0; d < kShape.d; ++d) k.view()(b, h, j, d) = k.view()(b, h, 0, d);
  };
  const auto causal_rule = [](int64_t, int64_t, int64_t i, int64_t j) {
    return j <= i + (kShape.lk - kShape.lq) ? 0.0 : -kInf;
  };
  const auto bias_rule = [](int64_t, int64_t, int64_t i, int64_t j) {
    return static_cast<double>(mixed_bias()[static_cast<std::size_t>(i * kShape.lk + j)]);
  };
  const std::vector<int64_t> lengths{0, 50};  // batch 0: every row empty
  const auto padding_rule = [](int64_t b, int64_t, int64_t, int64_t j) {
    return j < (b == 0 ? 0 : 50) ? 0.0 : -kInf;
  };
  const Mask bias_mask = bias(View<const float, 2>(mixed_bias().data(), {kShape.lq, kShape.lk}));
  return {
      {"logits +-1e4, no mask", Mask(), testing_attention::allow_all(), big},
      {"logits +-1e4, causal", causal(Align::BottomRight), causal_rule, big},
      {"all-equal scores, no mask", Mask(), testing_attention::allow_all(), equal},
      {"all-equal scores, causal", causal(Align::BottomRight), causal_rule, equal},
      {"-inf and +-5e3 biases, empty rows 4 and 20", bias_mask, bias_rule, big},
      {"fully masked batch (key_lengths 0)", key_lengths(lengths), padding_rule, big},
  };
}

struct Results {
  Tensor<float> out{kShape.batch, kShape.hq, kShape.lq, kShape.dv};
  Tensor<float> weights{kShape.batch, kShape.hq, kShape.lq, kShape.lk};
  Tensor<float> lse{kShape.batch, kShape.hq, kShape.lq};
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

double max_abs(const std::vector<double>& x) {
  double m = 0.0;
  for (double e : x)
    if (std::isfinite(e)) m = std::max(m, std::fabs(e));
  return m;
}

// Every element finite (lse: -inf only where want is -inf) and within
// tol(want) of want; records the worst |error| / tol.
::testing::AssertionResult matches(const char* what, const Tensor<float>& got,
                                   const std::vector<double>& want,
                                   const std::function<double(double)>& tol, double& worst) {
  for (int64_t x = 0; x < got.numel(); ++x) {
    const double g = got.data()[x], w = want[static_cast<std::size_t>(x)];
    if (std::isinf(w) && w < 0) {
      if (g != w) return ::testing::AssertionFailure() << what << "[" << x << "] = " << g;
      continue;
    }
    if (!std::isfinite(g))
      return ::testing::AssertionFailure() << what << "[" << x << "] = " << g << " not finite";
    const double err = std::fabs(g - w), t = tol(w);
    worst = std::max(worst, err / t);
    if (err > t)
      return ::testing::AssertionFailure()
             << what << "[" << x << "] = " << g << ", float64 " << w << " (tol " << t << ")";
  }
  return ::testing::AssertionSuccess();
}

constexpr double k2m21 = 1.0 / (1 << 21), k2m14 = 1.0 / (1 << 14);

class NumericRobustness : public ::testing::TestWithParam<Backend> {};

TEST_P(NumericRobustness, ForwardMatchesFloat64Reference) {
  double worst = 0.0;
  for (const Scenario& sc : scenarios())
    for (bool bf16 : {false, true}) {
      SCOPED_TRACE(sc.name + (bf16 ? " (bf16)" : " (float32)"));
      Buffer4 q({kShape.batch, kShape.hq, kShape.lq, kShape.d}, Layout::BHLD),
          k({kShape.batch, kShape.hkv, kShape.lk, kShape.d}, Layout::BHLD),
          v({kShape.batch, kShape.hkv, kShape.lk, kShape.dv}, Layout::BHLD);
      std::mt19937 rng(7);
      sc.fill(q, k, v, rng);
      testing_attention::NaiveOptions no;
      no.scale = 1.0;
      const testing_attention::Expected want =
          testing_attention::naive_attention(kShape, q, k, v, sc.rule, no);
      Results got;
      AttentionOptions opts;
      opts.backend = GetParam();
      opts.scale = 1.0f;
      if (bf16) {
        const Tensor<BFloat16> qb = to_bf16(q), kb = to_bf16(k), vb = to_bf16(v);
        attention(qb.view<4>(), kb.view<4>(), vb.view<4>(), got.out.view<4>(), sc.mask, opts,
                  got.weights.view<4>(), got.lse.view<3>());
      } else {
        attention(q.cview(), k.cview(), v.cview(), got.out.view<4>(), sc.mask, opts,
                  got.weights.view<4>(), got.lse.view<3>());
      }
      const double s_max = 1e4 + 5000, v_max = max_abs(want.out) + 4.0;
      const double rel = (s_max + 16) * k2m21;
      EXPECT_TRUE(matches(
          "weights", got.weights, want.weights, [&](double w) { return w * rel + 1e-7; }, worst));
      EXPECT_TRUE(matches(
          "out", got.out, want.out,
          [&](double) { return rel * v_max + (bf16 ? v_max / 128 : 0.0) + 1e-7; }, worst));
      EXPECT_TRUE(matches(
          "lse", got.lse, want.lse, [&](double) { return rel; }, worst));
    }
  std::printf("[ numeric  ] %s forward: worst error / tolerance %.3g\n",
              std::string(backend_name(GetParam())).c_str(), worst);
}

TEST_P(NumericRobustness, BackwardMatchesFloat64Reference) {
  double worst = 0.0;
  for (const Scenario& sc : scenarios()) {
    SCOPED_TRACE(sc.name);
    Buffer4 q({kShape.batch, kShape.hq, kShape.lq, kShape.d}, Layout::BHLD),
        k({kShape.batch, kShape.hkv, kShape.lk, kShape.d}, Layout::BHLD),
        v({kShape.batch, kShape.hkv, kShape.lk, kShape.dv}, Layout::BHLD),
        dout({kShape.batch, kShape.hq, kShape.lq, kShape.dv}, Layout::BHLD);
    std::mt19937 rng(8);
    sc.fill(q, k, v, rng);
    fill_values(dout, rng);
    const testing_attention::ExpectedGradients want =
        testing_attention::naive_attention_backward(kShape, q, k, v, dout, sc.rule, 1.0);
    Results f;
    AttentionOptions opts;
    opts.backend = GetParam();
    opts.scale = 1.0f;
    attention(q.cview(), k.cview(), v.cview(), f.out.view<4>(), sc.mask, opts, {}, f.lse.view<3>());
    Tensor<float> dq({kShape.batch, kShape.hq, kShape.lq, kShape.d}),
        dk({kShape.batch, kShape.hkv, kShape.lk, kShape.d}),
        dv({kShape.batch, kShape.hkv, kShape.lk, kShape.dv});
    attention_backward(q.cview(), k.cview(), v.cview(), f.out.view<4>(), f.lse.view<3>(),
                       dout.cview(), dq.view<4>(), dk.view<4>(), dv.view<4>(), sc.mask, opts);
    const double rel = (1e4 + 5000 + 16) * k2m21;
    for (auto [name, got, w] : {std::tuple{"dq", &dq, &want.dq}, std::tuple{"dk", &dk, &want.dk},
                                std::tuple{"dv", &dv, &want.dv}}) {
      const double scale = max_abs(*w);
      EXPECT_TRUE(matches(
          name, *got, *w, [&](double) { return rel * scale + k2m14; }, worst));
    }
  }
  std::printf("[ numeric  ] %s backward: worst error / tolerance %.3g\n",
              std::string(backend_name(GetParam())).c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Backends, NumericRobustness,
                         ::testing::Values(Backend::Reference, Backend::Flash),
                         testing_attention::backend_label);

}  // namespace
}  // namespace maskattn
