#include "maskattn/nn/linear.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>

#include "nn/init.hpp"
#include "nn/projection.hpp"

namespace maskattn::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias) {
  if (in_features < 1 || out_features < 1)
    throw Error("Linear", "in_features >= 1 and out_features >= 1",
                fmt::format("({}, {})", in_features, out_features));
  checked_mul(checked_mul(out_features, in_features, "Linear: in_features * out_features"),
              sizeof(float), "Linear: in_features * out_features");
  weight_ = Tensor<float>({out_features, in_features});
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  detail::init_uniform(weight_, -bound, bound, seed_value());
  if (bias) {
    bias_ = Tensor<float>({out_features});
    detail::init_uniform(bias_, -bound, bound, seed_value() + 1);
  }
}

void Linear::for_each_param(const ParamFn& fn) {
  fn("weight", weight_);
  if (has_bias()) fn("bias", bias_);
}

namespace {
void check_rows(const char* name, const std::array<int64_t, 2>& shape, int64_t rows, int64_t cols) {
  if (shape[0] != rows || shape[1] != cols)
    throw Error(name, fmt::format("({}, {})", rows, cols), shape_string(shape));
}
}  // namespace

void Linear::forward(View<const float, 2> x, View<float, 2> y) const {
  const int64_t n = x.size(0), in = in_features();
  if (x.size(1) != in)
    throw Error("Linear: x", fmt::format("(N, {})", in), shape_string(x.shape()));
  check_rows("Linear: y", y.shape(), n, out_features());
  detail::project(x, weight_.data(), has_bias() ? bias_.data() : nullptr, y);
}

void Linear::forward(View<const float, 2> x, View<float, 2> y, Saved& /*saved*/) const {
  forward(x, y);
}

void Linear::backward(View<const float, 2> x, const Saved& /*saved*/, View<const float, 2> dy,
                      View<float, 2> dx, Gradients& grads) const {
  const int64_t n = x.size(0), in = in_features();
  if (x.size(1) != in)
    throw Error("Linear: x", fmt::format("(N, {})", in), shape_string(x.shape()));
  check_rows("Linear: dy", dy.shape(), n, out_features());
  if (dx.data() != nullptr) check_rows("Linear: dx", dx.shape(), n, in);
  detail::project_backward(x, weight_.data(), dy, dx, grads[weight_].data(),
                           has_bias() ? grads[bias_].data() : nullptr);
}

}  // namespace maskattn::nn
