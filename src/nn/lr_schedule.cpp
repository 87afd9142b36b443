#include "maskattn/nn/lr_schedule.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "maskattn/error.hpp"

namespace maskattn::nn {
namespace {

double steps_taken(int64_t step, const char* fn) {
  if (step < 0) throw Error(fmt::format("{}: step", fn), "a step >= 0", fmt::format("{}", step));
  return static_cast<double>(std::max<int64_t>(step, 1));
}

void check_warmup(int64_t warmup, int64_t min, const char* fn) {
  if (warmup < min)
    throw Error(fmt::format("{}: warmup", fn), fmt::format("a number of steps >= {}", min),
                fmt::format("{}", warmup));
}

void check_positive(double x, const char* fn, const char* name) {
  if (!(std::isfinite(x) && x > 0.0))
    throw Error(fmt::format("{}: {}", fn, name), "a finite number > 0", fmt::format("{}", x));
}

}  // namespace

double noam_rate(int64_t step, int64_t d_model, double factor, int64_t warmup) {
  const char* fn = "noam_rate";
  const double s = steps_taken(step, fn);
  check_warmup(warmup, 1, fn);
  check_positive(factor, fn, "factor");
  if (d_model < 1) throw Error("noam_rate: d_model", "a width >= 1", fmt::format("{}", d_model));
  const double w = static_cast<double>(warmup);
  return factor * (std::pow(static_cast<double>(d_model), -0.5) *
                   std::min(std::pow(s, -0.5), s * std::pow(w, -1.5)));
}

double inverse_sqrt_rate(int64_t step, double peak, int64_t warmup) {
  const char* fn = "inverse_sqrt_rate";
  const double s = steps_taken(step, fn);
  check_warmup(warmup, 0, fn);
  check_positive(peak, fn, "peak");
  const double w = static_cast<double>(warmup);
  if (s < w) return peak * s / w;
  return peak * std::sqrt(std::max(w, 1.0) / s);
}

double warmup_constant_rate(int64_t step, double peak, int64_t warmup) {
  const char* fn = "warmup_constant_rate";
  const double s = steps_taken(step, fn);
  check_warmup(warmup, 0, fn);
  check_positive(peak, fn, "peak");
  const double w = static_cast<double>(warmup);
  return s < w ? peak * s / w : peak;
}

LrSchedule LrSchedule::noam(int64_t d_model, double factor, int64_t warmup) {
  noam_rate(0, d_model, factor, warmup);  // checks the arguments
  return {Kind::Noam, factor, d_model, warmup};
}

LrSchedule LrSchedule::inverse_sqrt(double peak, int64_t warmup) {
  inverse_sqrt_rate(0, peak, warmup);
  return {Kind::InverseSqrt, peak, 0, warmup};
}

LrSchedule LrSchedule::warmup_constant(double peak, int64_t warmup) {
  warmup_constant_rate(0, peak, warmup);
  return {Kind::WarmupConstant, peak, 0, warmup};
}

double LrSchedule::operator()(int64_t step) const {
  switch (kind) {
    case Kind::Noam: return noam_rate(step, d_model, factor, warmup);
    case Kind::InverseSqrt: return inverse_sqrt_rate(step, factor, warmup);
    case Kind::WarmupConstant: return warmup_constant_rate(step, factor, warmup);
  }
  return 0.0;
}

}  // namespace maskattn::nn
