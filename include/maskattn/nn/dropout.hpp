// Dropout (inverted): in training mode each element is zeroed with
// probability p and the others scaled by 1/(1-p); in eval mode the identity.
// Draws are counter-based (a hash of the call's seed and the element's index),
// so a run is reproducible from Module::seed() and independent of threads,
// and a backward pass replays the forward's mask from its seed alone.
#pragma once

#include <cstdint>

#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);  // p in [0, 1)

  // x (N, d) -> y (N, d); y may be x itself.
  void forward(View<const float, 2> x, View<float, 2> y) const;

  // Training (gradients.hpp). The mask is not stored: the seed of the call
  // replays it.
  struct Saved {
    bool active = false;  // training mode with p > 0 (else the identity)
    uint64_t seed = 0;    // the call's draw seed
  };
  void forward(View<const float, 2> x, View<float, 2> y, Saved& saved) const;
  // dx = dy masked and scaled as the forward's y was; dx may be dy itself.
  // No parameters, and the input is not needed (dropout is linear in x).
  void backward(const Saved& saved, View<const float, 2> dy, View<float, 2> dx) const;

  // The pieces, for modules that drop out a tensor of another shape (in
  // slices, as PositionalEncoding's (L, N, E)): draw() takes one call's seed
  // (and advances the module's stream in training mode); apply() multiplies
  // x in place by the mask of `saved`, counting elements from first_element
  // (row r, column c is element first_element + r * x.size(1) + c).
  Saved draw() const;
  void apply(View<float, 2> x, const Saved& saved, uint64_t first_element = 0) const;

  double p() const noexcept { return p_; }

 private:
  double p_;
};

}  // namespace maskattn::nn
