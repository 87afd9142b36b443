// Parameter initialisation as torch.nn does it by default, drawn from the
// library's counter-based generator (reproducible from a seed; not torch's
// numbers — load a state_dict for those).
#pragma once

#include <cstdint>

#include "maskattn/tensor.hpp"

namespace maskattn::nn::detail {

// Uniform in [lo, hi).
void init_uniform(Tensor<float>& t, double lo, double hi, uint64_t seed);
// Normal N(mean, std^2) (Box-Muller).
void init_normal(Tensor<float>& t, double mean, double std, uint64_t seed);
// Xavier/Glorot uniform for a (fan_out, fan_in) matrix: +-sqrt(6 / (fan_in + fan_out)).
void init_xavier_uniform(Tensor<float>& t, uint64_t seed);
void init_constant(Tensor<float>& t, float value);

}  // namespace maskattn::nn::detail
