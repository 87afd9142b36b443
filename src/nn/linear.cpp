#include "maskattn/nn/linear.hpp"

#include <fmt/format.h>

#include <cmath>

#include "nn/init.hpp"
#include "nn/projection.hpp"

namespace maskattn::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias) {
  if (in_features < 1 || out_features < 1)
    throw Error("Linear", "in_features >= 1 and out_features >= 1",
                fmt::format("({}, {})", in_features, out_features));
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

void Linear::forward(View<const float, 2> x, View<float, 2> y) const {
  const int64_t n = x.size(0), in = in_features(), out = out_features();
  if (x.size(1) != in)
    throw Error("Linear: x", fmt::format("(N, {})", in), shape_string(x.shape()));
  if (y.size(0) != n || y.size(1) != out)
    throw Error("Linear: y", fmt::format("({}, {})", n, out), shape_string(y.shape()));
  detail::project(x, weight_.data(), has_bias() ? bias_.data() : nullptr, y);
}

}  // namespace maskattn::nn
