// GELU and ReLU kernels on every SIMD target against std::erf in double:
// |gelu - x Phi(x)| <= 1.5e-7 max(1, |x|) over a dense sweep of [-12, 12] and
// random values, exact at 0, and the special values (+-inf, NaN, huge).
#include "kernels/activation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/simd_target_suite.hpp"
#include "kernels/simd_targets.hpp"

namespace maskattn {
namespace {

double exact_gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

class Activation : public testing_simd::TargetSuite {};
MASKATTN_INSTANTIATE_FOR_SIMD_TARGETS(Activation);

TEST_P(Activation, GeluMatchesErfInDouble) {
  std::vector<float> x;
  for (int i = -120000; i <= 120000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int i = 0; i < 100001; ++i) x.push_back(normal(rng));  // odd count: a tail
  std::vector<float> y = x;
  detail::gelu_inplace(y.data(), static_cast<int64_t>(y.size()));
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double want = exact_gelu(x[i]);
    const double err = std::fabs(y[i] - want) / std::max(1.0, std::fabs(double(x[i])));
    worst = std::max(worst, err);
    ASSERT_LE(err, 1.5e-7) << "x = " << x[i] << ": got " << y[i] << ", want " << want;
  }
  EXPECT_GT(worst, 0.0);  // a real approximation, checked
}

TEST_P(Activation, GeluSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x{0.0f,  -0.0f,  inf,   -inf, std::numeric_limits<float>::quiet_NaN(),
                       1e30f, -1e30f, -20.0f};
  detail::gelu_inplace(x.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_EQ(x[2], inf);
  EXPECT_TRUE(std::isnan(x[3]));  // -inf * Phi(-inf) = -inf * 0, as torch's gelu gives
  EXPECT_TRUE(std::isnan(x[4]));
  EXPECT_EQ(x[5], 1e30f);
  EXPECT_EQ(x[6], 0.0f);
  EXPECT_NEAR(x[7], 0.0f, 1e-30f);
}

TEST_P(Activation, ReluKeepsNaNAndClampsNegatives) {
  std::vector<float> x{-1.0f, 0.0f, 2.5f, std::numeric_limits<float>::quiet_NaN(), -0.0f};
  for (int i = 0; i < 37; ++i) x.push_back(static_cast<float>(i - 18));
  std::vector<float> y = x;
  detail::relu_inplace(y.data(), static_cast<int64_t>(y.size()));
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]))
      EXPECT_TRUE(std::isnan(y[i]));
    else
      EXPECT_EQ(y[i], x[i] > 0.0f ? x[i] : 0.0f) << i;
  }
}

}  // namespace
}  // namespace maskattn
