// Gradient checks for the modules' backward passes: analytic gradients
// against central finite differences of a scalar loss.
//
// The loss is L = sum(w * y) over a module's outputs y, with w fixed random
// weights (so dL/dy = w, the d_output every backward is given), accumulated
// in double. The forwards are float32, so the step is large for a finite
// difference: with h = 1e-2 the truncation error (h^2/6 |L'''|) and the
// rounding of the float outputs (~6e-8 |y| each, divided by 2h) are both of
// order 1e-5 for the small shapes of the tests. The error of one value is
// |analytic - fd| / max(1, |fd|).
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "maskattn/nn/gradients.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::testing_gradients {

constexpr double kStep = 1e-2;

// sum(w * y) in double; y and w contiguous, n values.
inline double weighted_sum(const float* y, const float* w, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i]) * y[i];
  return sum;
}

struct Worst {
  double error = 0.0;  // the largest |analytic - fd| / max(1, |fd|)
  int64_t index = -1;  // where
  double analytic = 0.0, fd = 0.0;
  int64_t checked = 0;  // values compared

  std::string describe(const std::string& what) const {
    return fmt::format(
        "{}: worst error {:.2e} at [{}] (analytic {:.6g}, finite difference {:.6g}) "
        "over {} values",
        what, error, index, analytic, fd, checked);
  }
};

// Compares analytic[i] with the central difference of loss() in values[i],
// for every i in [0, n): each value is moved by +-step and restored (to its
// exact bits). The difference divides by the step the float values really
// took.
inline Worst finite_difference_check(float* values, const float* analytic, int64_t n,
                                     const std::function<double()>& loss, double step = kStep) {
  Worst worst;
  for (int64_t i = 0; i < n; ++i) {
    const float original = values[i];
    const auto up = static_cast<float>(original + step);
    const auto down = static_cast<float>(original - step);
    values[i] = up;
    const double l_up = loss();
    values[i] = down;
    const double l_down = loss();
    values[i] = original;
    const double fd = (l_up - l_down) / (static_cast<double>(up) - static_cast<double>(down));
    const double error = std::abs(analytic[i] - fd) / std::max(1.0, std::abs(fd));
    ++worst.checked;
    if (error > worst.error || worst.index < 0) {
      worst.error = error;
      worst.index = i;
      worst.analytic = analytic[i];
      worst.fd = fd;
    }
  }
  return worst;
}

// The check of one tensor, reported (the worst error is printed, so a run
// shows the margin) and asserted against `tolerance`.
inline void expect_gradient(const std::string& what, float* values, const float* analytic,
                            int64_t n, const std::function<double()>& loss, double tolerance,
                            double step = kStep) {
  const Worst w = finite_difference_check(values, analytic, n, loss, step);
  std::printf("    %s\n", w.describe(what).c_str());
  EXPECT_GT(w.checked, 0) << what;
  EXPECT_LE(w.error, tolerance) << w.describe(what);
}

// Every parameter of a module: gradient grads[param] against the loss.
inline void expect_parameter_gradients(nn::Module& module, const nn::Gradients& grads,
                                       const std::function<double()>& loss, double tolerance,
                                       double step = kStep) {
  for (auto& [name, param] : module.named_parameters())
    expect_gradient(name, param->data(), grads[*param].data(), param->numel(), loss, tolerance,
                    step);
}

}  // namespace maskattn::testing_gradients
