// Gradients of a module's parameters, and the conventions of training.
//
// Training is explicit, llm.c style: every module has a forward and a
// backward, and no general autograd records anything. A module that trains
// has a nested `Saved` struct and two more members:
//
//   forward(inputs..., outputs..., Saved& saved) const
//       the forward pass (in training mode: dropout active) that also records
//       in `saved` what the backward needs beyond the inputs: normalisation
//       statistics, pre-activation values, dropout seeds, the attention's
//       output and log-sum-exp, the masks it applied. `Saved` owns its tensors
//       and keeps their storage across steps (reallocated only when a shape
//       changes), so a training loop faults in no fresh pages.
//   backward(inputs..., const Saved& saved, d_outputs..., d_inputs...,
//            Gradients& grads) const
//       takes the same inputs the forward took (unchanged since), writes the
//       gradients of the inputs (an empty View: not wanted) and ADDS the
//       gradients of the parameters into `grads` (as torch accumulates
//       .grad): zero them once per step, so tied or reused parameters sum.
//
// Both are const: a module's parameters are only read, so several threads
// may train copies of a batch's parts on one module with separate Gradients.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class Gradients {
 public:
  // One zeroed tensor per parameter of `module`, in named_parameters()
  // order. The module must outlive this and keep its parameter tensors.
  explicit Gradients(Module& module);

  // The gradient of parameter `param` (one of the module's, by address);
  // Error otherwise.
  Tensor<float>& operator[](const Tensor<float>& param);
  const Tensor<float>& operator[](const Tensor<float>& param) const;

  // name, parameter, gradient; in named_parameters() order.
  struct Entry {
    std::string name;
    Tensor<float>* param;
    Tensor<float> grad;
  };
  std::vector<Entry>& entries() noexcept { return entries_; }
  const std::vector<Entry>& entries() const noexcept { return entries_; }

  // Views of the gradients by parameter name (for saving and for tests).
  StateDict state_dict() const;

  void zero();
  // The global L2 norm over every gradient (summed in double).
  double norm() const;
  // torch.nn.utils.clip_grad_norm_: when the global norm exceeds max_norm
  // (finite, > 0), scales every gradient by max_norm / (norm + 1e-6). Returns
  // the norm before clipping. A non-finite norm is an Error (naming the first
  // gradient holding NaN or Inf): training has diverged.
  double clip_norm(double max_norm);

 private:
  std::vector<Entry> entries_;
  std::unordered_map<const Tensor<float>*, std::size_t> index_;
};

// Makes `t` a tensor of `shape` for a Saved struct: the storage it has is
// kept when the shape is already that (the steady state of a training loop),
// a new zeroed tensor otherwise.
template <class T>
void ensure_shape(Tensor<T>& t, const std::vector<int64_t>& shape) {
  if (t.shape() != shape || t.data() == nullptr) t = Tensor<T>(shape);
}

}  // namespace maskattn::nn
