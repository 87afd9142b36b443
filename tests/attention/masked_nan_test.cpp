// A NaN or infinite key that the mask hides from a row never reaches that
// row: flash gives the reference's NaN pattern (NaN exactly in the rows that
// may attend the key) and, in every other row, the reference's values. Flash
// added the mask's -inf to the dot product of a partial tile, and NaN + -inf
// (or +inf + -inf) is NaN: the whole row went NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn {
namespace {

// q (1, 1, L, D), k and v (1, 1, S, D), unit normal.
struct Inputs {
  static constexpr int64_t kL = 40, kS = 70, kD = 8;
  Tensor<float> q{{1, 1, kL, kD}}, k{{1, 1, kS, kD}}, v{{1, 1, kS, kD}};
  Inputs() {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal;
    for (Tensor<float>* t : {&q, &k, &v})
      for (float& x : *t) x = normal(rng);
  }
};

struct Result {
  Tensor<float> out{{1, 1, Inputs::kL, Inputs::kD}}, weights{{1, 1, Inputs::kL, Inputs::kS}};
  Tensor<float> lse{{1, 1, Inputs::kL}};
};

Result run(const Inputs& in, const Mask& mask, Backend backend) {
  Result r;
  AttentionOptions o;
  o.backend = backend;
  attention(in.q.view<4>(), in.k.view<4>(), in.v.view<4>(), r.out.view<4>(), mask, o,
            r.weights.view<4>(), r.lse.view<3>());
  return r;
}

// NaN where the reference has NaN, the reference's value (within tol) elsewhere.
::testing::AssertionResult same_pattern(const Tensor<float>& got, const Tensor<float>& want,
                                        float tol) {
  for (int64_t e = 0; e < got.numel(); ++e) {
    const float g = got.data()[e], w = want.data()[e];
    if (std::isnan(w) != std::isnan(g))
      return ::testing::AssertionFailure() << "element " << e << ": " << g << " vs " << w;
    if (!std::isnan(w) && !(g == w || std::abs(g - w) <= tol))
      return ::testing::AssertionFailure() << "element " << e << ": " << g << " vs " << w;
  }
  return ::testing::AssertionSuccess();
}

TEST(MaskedNaN, AHiddenNonFiniteKeyReachesOnlyTheRowsThatSeeIt) {
  // Key 50 is seen by rows i >= 20 (bottom-right causal: j <= i + 30) and
  // lies in a partial tile of every row below.
  const Mask mask = causal(Align::BottomRight) & key_lengths(std::vector<int64_t>{60});
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY}) {
    Inputs in;
    in.k.data()[50 * Inputs::kD + 3] = bad;
    const Result ref = run(in, mask, Backend::Reference), flash = run(in, mask, Backend::Flash);
    for (int64_t i = 0; i < 20; ++i)  // rows that hide key 50: finite
      ASSERT_TRUE(std::isfinite(flash.lse.data()[i])) << "row " << i << ", k = " << bad;
    EXPECT_TRUE(same_pattern(flash.out, ref.out, 1e-5f)) << "out, k = " << bad;
    EXPECT_TRUE(same_pattern(flash.weights, ref.weights, 1e-6f)) << "weights, k = " << bad;
    EXPECT_TRUE(same_pattern(flash.lse, ref.lse, 1e-5f)) << "lse, k = " << bad;
  }
}

}  // namespace
}  // namespace maskattn
