// Dropout (inverted): in training mode each element is zeroed with
// probability p and the others scaled by 1/(1-p); in eval mode the identity.
// Draws are counter-based (a hash of the call's seed and the element's index),
// so a run is reproducible from Module::seed() and independent of threads.
#pragma once

#include <cstdint>

#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);  // p in [0, 1)

  // x (N, d) -> y (N, d); y may be x itself.
  void forward(View<const float, 2> x, View<float, 2> y) const;

  double p() const noexcept { return p_; }

 private:
  double p_;
};

namespace detail {
// In place: x *= keep / (1 - p), keep drawn from (seed, row * x.size(1) + col).
void apply_dropout(View<float, 2> x, double p, uint64_t seed);
}  // namespace detail

}  // namespace maskattn::nn
