// Adam and AdamW over a module's parameters: torch.optim.Adam and
// torch.optim.AdamW (amsgrad=False, maximize=False), step for step.
//
// For each parameter p with gradient g, at step t = 1, 2, ... and rate lr:
//
//   Adam:  g <- g + weight_decay p          (L2 penalty, coupled into g)
//   AdamW: p <- p (1 - lr weight_decay)     (decoupled, Loshchilov & Hutter 2019)
//   m <- beta1 m + (1 - beta1) g            (exp_avg)
//   v <- beta2 v + (1 - beta2) g^2          (exp_avg_sq)
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// with eps outside the square root, as torch. The arithmetic is float32 in
// torch's order of operations (its lerp for m, addcmul for v, addcdiv for p);
// the bias corrections are computed in double.
//
// Parameters named in `no_weight_decay` form torch's second parameter group
// with weight_decay = 0 (GPT-2's rule: biases and LayerNorm weights;
// rank1_parameter_names() lists them).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

struct AdamOptions {
  double lr = 1e-3;  // the rate step(grads) uses; a schedule sets it (set_lr) or passes its own
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;       // true: AdamW
  std::vector<std::string> no_weight_decay;  // parameter names exempt from weight decay
};

// Names of the module's parameters of rank 1 (biases, LayerNorm weights and
// biases): the usual AdamOptions::no_weight_decay.
std::vector<std::string> rank1_parameter_names(const Module& module);

class Adam {
 public:
  // Zeroed state for every parameter of `module` (which must outlive this and
  // keep its parameter tensors). Error naming the option for lr < 0, betas
  // outside [0, 1), eps <= 0, weight_decay < 0, a non-finite value, or a
  // no_weight_decay name that is not a parameter.
  Adam(Module& module, AdamOptions options);
  virtual ~Adam() = default;
  Adam(const Adam&) = delete;
  Adam& operator=(const Adam&) = delete;

  // One step at options().lr, or at `lr` (finite, >= 0). `grads` must be
  // Gradients of the same module (Error otherwise).
  void step(const Gradients& grads);
  void step(const Gradients& grads, double lr);

  // Steps taken so far (torch's state["step"]).
  int64_t steps() const noexcept { return *step_.data(); }
  const AdamOptions& options() const noexcept { return options_; }
  void set_lr(double lr);
  // "Adam" or "AdamW".
  const char* name() const noexcept;

  // The state as tensors: "step" (int64, shape ()), and per parameter
  // "exp_avg.<name>" and "exp_avg_sq.<name>" (float32, its shape). Views of
  // the optimizer's storage, valid while it lives.
  StateDict state_dict() const;
  // Restores a state_dict(): every name, exactly those names, each of the
  // dtype and shape above (Error naming the tensor otherwise; nothing is
  // changed unless all check). The options are not part of it.
  void load_state_dict(const StateDict& state);

 protected:
  struct Slot {
    std::string name;
    Tensor<float>* param;
    Tensor<float> exp_avg;     // m, the parameter's shape
    Tensor<float> exp_avg_sq;  // v, the parameter's shape
    bool decay;                // weight_decay applies (not in no_weight_decay)
  };

 private:
  AdamOptions options_;
  std::vector<Slot> slots_;
  Tensor<int64_t> step_;  // shape (): steps taken
};

// torch.optim.AdamW: Adam with decoupled weight decay; torch's default
// weight_decay is 0.01.
class AdamW final : public Adam {
 public:
  AdamW(Module& module, AdamOptions options);
  static AdamOptions default_options();  // AdamOptions with weight_decay 0.01
};

}  // namespace maskattn::nn
