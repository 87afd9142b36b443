#include "nn/init.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/counter_rng.hpp"

namespace maskattn::nn::detail {

using maskattn::detail::counter_uniform;

void init_uniform(Tensor<float>& t, double lo, double hi, uint64_t seed) {
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] =
        static_cast<float>(lo + (hi - lo) * counter_uniform(seed, static_cast<uint64_t>(i)));
}

void init_normal(Tensor<float>& t, double mean, double std, uint64_t seed) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    const auto c = static_cast<uint64_t>(i) * 2;
    const double u1 = 1.0 - counter_uniform(seed, c);  // (0, 1]: log is finite
    const double u2 = counter_uniform(seed, c + 1);
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    t.data()[i] = static_cast<float>(mean + std * z);
  }
}

void init_xavier_uniform(Tensor<float>& t, uint64_t seed) {
  const double fan_out = static_cast<double>(t.size(0));
  const double fan_in = static_cast<double>(t.numel()) / std::max(fan_out, 1.0);
  const double a = std::sqrt(6.0 / std::max(fan_in + fan_out, 1.0));
  init_uniform(t, -a, a, seed);
}

void init_constant(Tensor<float>& t, float value) { std::fill(t.begin(), t.end(), value); }

}  // namespace maskattn::nn::detail
