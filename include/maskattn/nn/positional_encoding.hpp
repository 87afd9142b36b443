// PositionalEncoding: adds the sinusoidal encoding (positional.hpp) of each
// position to a sequence of embeddings, then dropout — the module of the
// PyTorch tutorial and of the write-ups. No parameters.
#pragma once

#include <cstdint>

#include "maskattn/nn/dropout.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class PositionalEncoding : public Module {
 public:
  // Encodings of positions 0 .. max_len-1 are computed once (max_len, d_model).
  PositionalEncoding(int64_t d_model, double dropout = 0.1, int64_t max_len = 5000);

  // x (L, B, d_model), or (B, L, d_model) when batch_first -> y, same shape:
  // y = dropout(x + PE[offset + l]). offset: the absolute position of the
  // first token (decoding step by step). y may be x itself.
  void forward(View<const float, 3> x, View<float, 3> y, bool batch_first = false,
               int64_t offset = 0) const;

  // Training (gradients.hpp): the dropout's draw.
  using Saved = Dropout::Saved;
  void forward(View<const float, 3> x, View<float, 3> y, bool batch_first, int64_t offset,
               Saved& saved) const;
  // dy -> dx (same shape as the forward's x; dx may be dy itself): the
  // dropout's backward, the encoding being a constant. No parameters.
  void backward(const Saved& saved, View<const float, 3> dy, View<float, 3> dx) const;

  int64_t max_len() const noexcept { return pe_.size(0); }
  int64_t d_model() const noexcept { return pe_.size(1); }

 protected:
  void for_each_child(const ChildFn& fn) override;  // "dropout"

 private:
  Tensor<float> pe_;  // (max_len, d_model)
  Dropout dropout_;
};

}  // namespace maskattn::nn
