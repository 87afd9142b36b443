// The learning-rate schedules: Noam at steps whose values the Annotated
// Transformer's rate() gives (computed by it in Python, written here), the
// inverse square root as the same curve, warm-up + constant, and errors.
#include "maskattn/nn/lr_schedule.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

TEST(LrSchedule, NoamMatchesTheAnnotatedTransformersRate) {
  // rate(step, 512, 1.0, 4000) and rate(step, 512, 1.0, 400) in Python.
  const std::pair<int64_t, double> paper[] = {
      {0, 1.746928107421711e-07},      {1, 1.746928107421711e-07},
      {2, 3.493856214843422e-07},      {100, 1.746928107421711e-05},
      {3999, 0.0006985965501579421},   {4000, 0.0006987712429686843},
      {4001, 0.000698683912937353},    {10000, 0.00044194173824159226},
      {100000, 0.00013975424859373687}};
  for (const auto& [step, want] : paper)
    EXPECT_NEAR(nn::noam_rate(step, 512, 1.0, 4000), want, 1e-15 * want) << step;
  const std::pair<int64_t, double> annotated[] = {{0, 5.524271728019903e-06},
                                                  {200, 0.0011048543456039807},
                                                  {400, 0.0022097086912079614},
                                                  {401, 0.002206951723582652},
                                                  {1000, 0.0013975424859373686}};
  for (const auto& [step, want] : annotated)
    EXPECT_NEAR(nn::noam_rate(step, 512, 1.0, 400), want, 1e-15 * want) << step;
  EXPECT_NEAR(nn::noam_rate(400, 512, 2.0, 400), 2 * 0.0022097086912079614, 1e-17);
}

TEST(LrSchedule, NoamIsTheInverseSquareRootWithItsPeak) {
  const int64_t d = 64, warmup = 300;
  const double factor = 0.7;
  const double peak = factor / std::sqrt(static_cast<double>(d * warmup));
  for (int64_t step : {0, 1, 5, 299, 300, 301, 1000, 123456}) {
    const double noam = nn::noam_rate(step, d, factor, warmup);
    EXPECT_NEAR(nn::inverse_sqrt_rate(step, peak, warmup), noam, 1e-14 * noam) << step;
  }
  // The peak is reached at step == warmup, and the rate rises before it.
  EXPECT_NEAR(nn::noam_rate(warmup, d, factor, warmup), peak, 1e-15);
  EXPECT_LT(nn::noam_rate(warmup - 1, d, factor, warmup), peak);
  EXPECT_LT(nn::noam_rate(warmup + 1, d, factor, warmup), peak);
}

TEST(LrSchedule, InverseSqrtWithoutWarmupAndWarmupConstant) {
  EXPECT_EQ(nn::inverse_sqrt_rate(0, 0.5, 0), 0.5);
  EXPECT_EQ(nn::inverse_sqrt_rate(4, 0.5, 0), 0.25);
  EXPECT_EQ(nn::warmup_constant_rate(0, 0.5, 10), 0.05);
  EXPECT_EQ(nn::warmup_constant_rate(5, 0.5, 10), 0.25);
  EXPECT_EQ(nn::warmup_constant_rate(10, 0.5, 10), 0.5);
  EXPECT_EQ(nn::warmup_constant_rate(99999, 0.5, 10), 0.5);
  EXPECT_EQ(nn::warmup_constant_rate(3, 0.5, 0), 0.5);
}

TEST(LrSchedule, TheValueTypeCallsTheFunctions) {
  const auto noam = nn::LrSchedule::noam(512, 1.0, 4000);
  const auto isqrt = nn::LrSchedule::inverse_sqrt(1e-3, 100);
  const auto constant = nn::LrSchedule::warmup_constant(1e-3, 100);
  for (int64_t step : {0, 7, 100, 5000}) {
    EXPECT_EQ(noam(step), nn::noam_rate(step, 512, 1.0, 4000));
    EXPECT_EQ(isqrt(step), nn::inverse_sqrt_rate(step, 1e-3, 100));
    EXPECT_EQ(constant(step), nn::warmup_constant_rate(step, 1e-3, 100));
  }
}

TEST(LrSchedule, ErrorsNameTheArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(throws_error_naming([] { nn::noam_rate(-1, 512, 1.0, 4000); }, "step"));
  EXPECT_TRUE(throws_error_naming([] { nn::noam_rate(1, 0, 1.0, 4000); }, "d_model"));
  EXPECT_TRUE(throws_error_naming([] { nn::noam_rate(1, 512, 1.0, 0); }, "warmup"));
  EXPECT_TRUE(throws_error_naming([&] { nn::noam_rate(1, 512, nan, 10); }, "factor"));
  EXPECT_TRUE(throws_error_naming([] { nn::noam_rate(1, 512, 0.0, 10); }, "factor"));
  EXPECT_TRUE(throws_error_naming([] { nn::inverse_sqrt_rate(1, -1.0, 10); }, "peak"));
  EXPECT_TRUE(throws_error_naming([] { nn::inverse_sqrt_rate(1, 1.0, -1); }, "warmup"));
  EXPECT_TRUE(throws_error_naming([] { nn::warmup_constant_rate(-3, 1.0, 1); }, "step"));
  EXPECT_TRUE(throws_error_naming([] { nn::LrSchedule::noam(512, 1.0, 0); }, "warmup"));
}

}  // namespace
}  // namespace maskattn
