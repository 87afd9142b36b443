// GELU and ReLU kernels on every SIMD target against std::erf in double:
// |gelu - x Phi(x)| <= 1.5e-7 max(1, |x|) over a dense sweep of [-12, 12] and
// random values, exact at 0, and the special values (+-inf, NaN, huge); their
// backward passes against the exact derivatives: |gelu' - (Phi + x phi)| <=
// 3e-7, relu' the 0/1 step with torch's rule at 0 and NaN.
#include "kernels/activation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/simd_target_suite.hpp"
#include "kernels/simd_targets.hpp"

namespace maskattn {
namespace {

double exact_gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
// d/dx x Phi(x) = Phi(x) + x phi(x).
double exact_gelu_derivative(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) +
         x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * 3.14159265358979323846);
}

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

TEST_P(Activation, GeluBackwardMatchesTheExactDerivative) {
  std::vector<float> x;
  for (int i = -120000; i <= 120000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int i = 0; i < 100001; ++i) x.push_back(normal(rng));
  // dy = 1 gives the derivative itself; then dy = 3 scales it.
  std::vector<float> g(x.size(), 1.0f);
  detail::gelu_backward(x.data(), g.data(), static_cast<int64_t>(x.size()));
  std::vector<float> g3(x.size(), 3.0f);
  detail::gelu_backward(x.data(), g3.data(), static_cast<int64_t>(x.size()));
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double want = exact_gelu_derivative(x[i]);
    const double err = std::fabs(g[i] - want);
    worst = std::max(worst, err);
    ASSERT_LE(err, 3e-7) << "x = " << x[i] << ": got " << g[i] << ", want " << want;
    ASSERT_NEAR(g3[i], 3.0 * want, 9e-7) << "x = " << x[i];
  }
  EXPECT_GT(worst, 0.0);
  std::printf("    worst |gelu' - exact| = %.2e\n", worst);

  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special{0.0f,  inf,   -inf, std::numeric_limits<float>::quiet_NaN(),
                             1e30f, -1e30f};
  std::vector<float> gs(special.size(), 1.0f);
  detail::gelu_backward(special.data(), gs.data(), static_cast<int64_t>(gs.size()));
  EXPECT_EQ(gs[0], 0.5f);
  EXPECT_TRUE(std::isnan(gs[1]));  // inf * phi(inf) = inf * 0, as torch's
  EXPECT_TRUE(std::isnan(gs[2]));
  EXPECT_TRUE(std::isnan(gs[3]));
  EXPECT_EQ(gs[4], 1.0f);
  EXPECT_EQ(gs[5], 0.0f);
}

TEST_P(Activation, ReluBackwardPassesDyWhereXIsPositive) {
  std::vector<float> x{-1.0f, 0.0f, 2.5f, std::numeric_limits<float>::quiet_NaN(), -0.0f};
  for (int i = 0; i < 37; ++i) x.push_back(static_cast<float>(i - 18) * 0.5f);
  std::vector<float> g(x.size());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i) + 0.25f;
  const std::vector<float> dy = g;
  detail::relu_backward(x.data(), g.data(), static_cast<int64_t>(g.size()));
  for (std::size_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(g[i], x[i] <= 0.0f ? 0.0f : dy[i]) << "x = " << x[i];  // NaN: dy passes, as torch
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
