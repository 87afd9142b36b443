// Learning-rate schedules: the rate of each optimizer step as a function of
// the steps taken before it.
//
// `step` is Adam::steps() before the step (0 for the first one), as
// torch.optim.lr_scheduler.LambdaLR's last_epoch is: a training loop does
//
//   optimizer.step(grads, schedule(optimizer.steps()));
//
// and gets the rates of torch's LambdaLR(optimizer, lambda s: schedule(s))
// over an optimizer whose base lr is 1. Step 0 is taken as step 1 (the
// Annotated Transformer's rate() does so), so no rate is 0.
#pragma once

#include <cstdint>

namespace maskattn::nn {

// The Transformer's schedule (Vaswani et al. 2017, eq. 3; the Annotated
// Transformer's rate()):
//   factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5),  s = max(step, 1)
// a linear rise over `warmup` steps to factor / sqrt(d_model * warmup), then
// a decay as 1 / sqrt(s). Error for d_model < 1, warmup < 1, step < 0, or a
// factor that is not finite and > 0.
double noam_rate(int64_t step, int64_t d_model, double factor, int64_t warmup);

// Linear warm-up to `peak` over `warmup` steps, then peak * sqrt(warmup / s)
// (fairseq's inverse_sqrt; noam_rate is this with peak = factor /
// sqrt(d_model * warmup)); s = max(step, 1). warmup = 0: the decay from the
// first step. Error for warmup < 0, step < 0, a peak that is not finite and > 0.
double inverse_sqrt_rate(int64_t step, double peak, int64_t warmup);

// Linear warm-up to `peak` over `warmup` steps, then constant;
// s = max(step, 1). Same errors as inverse_sqrt_rate.
double warmup_constant_rate(int64_t step, double peak, int64_t warmup);

// One of the schedules above as a value a training loop carries.
struct LrSchedule {
  enum class Kind { Noam, InverseSqrt, WarmupConstant };
  Kind kind = Kind::Noam;
  double factor = 1.0;    // Noam: the factor; the others: the peak rate
  int64_t d_model = 512;  // Noam only
  int64_t warmup = 4000;

  static LrSchedule noam(int64_t d_model, double factor, int64_t warmup);
  static LrSchedule inverse_sqrt(double peak, int64_t warmup);
  static LrSchedule warmup_constant(double peak, int64_t warmup);

  // The rate after `step` steps (errors as the functions above).
  double operator()(int64_t step) const;
};

}  // namespace maskattn::nn
