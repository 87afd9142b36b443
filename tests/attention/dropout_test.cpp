// Dropout: the counter-based stream (same seed -> bit-identical on any thread
// count, another seed -> another pattern), the dropped fraction, and inverted
// scaling of the kept probabilities.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::Buffer4;
using testing_attention::Layout;

// (B, Hq, Hkv, L, D) = (2, 4, 2, 64, 16), self-attention with a causal mask.
struct Result {
  static constexpr int64_t kB = 2, kHq = 4, kHkv = 2, kL = 64, kD = 16;
  std::vector<float> out = std::vector<float>(kB * kHq * kL * kD);
  std::vector<float> weights = std::vector<float>(kB * kHq * kL * kL);
  std::vector<float> lse = std::vector<float>(kB * kHq * kL);
};

class Dropout : public testing_attention::BackendSuite {
 protected:
  Dropout()
      : q_({Result::kB, Result::kHq, Result::kL, Result::kD}, Layout::BHLD),
        k_({Result::kB, Result::kHkv, Result::kL, Result::kD}, Layout::BHLD),
        v_({Result::kB, Result::kHkv, Result::kL, Result::kD}, Layout::BHLD) {
    std::mt19937 rng(21);
    q_.fill_normal(rng);
    k_.fill_normal(rng);
    v_.fill_normal(rng);
  }
  ~Dropout() override { omp_set_num_threads(threads_); }

  Result run(float p, uint64_t seed, const Mask& mask = causal()) const {
    Result r;
    AttentionOptions opts;
    opts.dropout_p = p;
    opts.seed = seed;
    attention(q_.cview(), k_.cview(), v_.cview(),
              View<float, 4>(r.out.data(), {Result::kB, Result::kHq, Result::kL, Result::kD}), mask,
              testing_attention::on_backend(opts),
              View<float, 4>(r.weights.data(), {Result::kB, Result::kHq, Result::kL, Result::kL}),
              View<float, 3>(r.lse.data(), {Result::kB, Result::kHq, Result::kL}));
    return r;
  }

  static bool identical(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  }

  const int threads_ = omp_get_max_threads();
  Buffer4 q_, k_, v_;
};

TEST_P(Dropout, SameSeedIsBitIdenticalOnOneAndTwoThreads) {
  omp_set_num_threads(1);
  const Result one = run(0.3f, 1234);
  omp_set_num_threads(2);
  const Result two = run(0.3f, 1234);
  EXPECT_TRUE(identical(one.out, two.out));
  EXPECT_TRUE(identical(one.weights, two.weights));
  EXPECT_TRUE(identical(one.lse, two.lse));
}

TEST_P(Dropout, DifferentSeedDropsDifferentElements) {
  const Result a = run(0.3f, 1), b = run(0.3f, 2);
  EXPECT_FALSE(identical(a.out, b.out));
  int64_t differ = 0;
  for (std::size_t x = 0; x < a.weights.size(); ++x)
    differ += (a.weights[x] == 0.0f) != (b.weights[x] == 0.0f);
  EXPECT_GT(differ, 1000);  // ~0.42 of the 16640 allowed pairs differ
  // The softmax itself (lse) does not depend on the seed.
  EXPECT_TRUE(identical(a.lse, b.lse));
}

TEST_P(Dropout, ZeroProbabilityIsNoDropout) {
  const Result a = run(0.0f, 1), b = run(0.0f, 99);
  EXPECT_TRUE(identical(a.out, b.out));
  EXPECT_TRUE(identical(a.weights, b.weights));
  for (int64_t j = 0; j < 100; ++j)
    EXPECT_TRUE(dropout_keep(5, 0.0f, MaskShape{1, 1, 10, 10}, 0, 0, j / 10, j % 10));
}

TEST_P(Dropout, InvertedScalingOfKeptProbabilities) {
  constexpr float kP = 0.4f;
  const Result plain = run(0.0f, 0), dropped = run(kP, 8);
  const MaskShape shape{Result::kB, Result::kHq, Result::kL, Result::kL};
  std::size_t x = 0;
  for (int64_t b = 0; b < Result::kB; ++b)
    for (int64_t h = 0; h < Result::kHq; ++h)
      for (int64_t i = 0; i < Result::kL; ++i)
        for (int64_t j = 0; j < Result::kL; ++j, ++x) {
          const double want =
              dropout_keep(8, kP, shape, b, h, i, j) ? plain.weights[x] / (1.0 - kP) : 0.0;
          ASSERT_NEAR(dropped.weights[x], want, 1e-6 * (1.0 + want))
              << "(b, h, i, j) = (" << b << ", " << h << ", " << i << ", " << j << ")";
        }
}

TEST_P(Dropout, DroppedFractionMatchesProbability) {
  // Over all (b, h, i, j) of an unmasked problem (32768 pairs, every softmax
  // probability > 0): the dropped count is Binomial(n, p); allow 5 sigma.
  for (float p : {0.1f, 0.5f, 0.9f}) {
    const Result r = run(p, 42, Mask{});
    const double n = static_cast<double>(r.weights.size());
    double dropped = 0;
    for (float w : r.weights) dropped += w == 0.0f;
    EXPECT_NEAR(dropped / n, p, 5.0 * std::sqrt(p * (1.0 - p) / n)) << "p = " << p;
  }
  // The stream itself, on 10^6 counters: within 5 sigma (0.0023 at p = 0.3).
  const MaskShape big{4, 8, 125, 250};
  double kept = 0;
  for (int64_t b = 0; b < big.batch; ++b)
    for (int64_t h = 0; h < big.heads; ++h)
      for (int64_t i = 0; i < big.q_len; ++i)
        for (int64_t j = 0; j < big.k_len; ++j) kept += dropout_keep(3, 0.3f, big, b, h, i, j);
  EXPECT_NEAR(kept / 1e6, 0.7, 5.0 * std::sqrt(0.3 * 0.7 / 1e6));
}

TEST_P(Dropout, DecisionIsAFunctionOfThePosition) {
  // Same (b, h, i, j) and shape -> same decision; the stream depends on the
  // flat position, so neighbours are not all equal.
  const MaskShape s{2, 3, 5, 7};
  int64_t kept = 0;
  for (int64_t j = 0; j < s.k_len; ++j) {
    const bool a = dropout_keep(9, 0.5f, s, 1, 2, 3, j);
    EXPECT_EQ(a, dropout_keep(9, 0.5f, s, 1, 2, 3, j));
    kept += a;
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, s.k_len);
}

MASKATTN_INSTANTIATE_FOR_BACKENDS(Dropout);

}  // namespace
}  // namespace maskattn
