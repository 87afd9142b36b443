// Embedding: a lookup table of vectors, PyTorch's torch.nn.Embedding, with the
// original Transformer's sqrt(d_model) scale as an option.
#pragma once

#include <cstdint>
#include <optional>

#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

class Embedding : public Module {
 public:
  // Parameter "weight" (num_embeddings, embedding_dim), initialised N(0, 1)
  // as torch does (the padding_idx row zero; a negative padding_idx counts
  // from the end, as torch's). scale_by_sqrt_dim multiplies
  // every looked-up vector by sqrt(embedding_dim) (Vaswani et al. 2017, 3.4).
  Embedding(int64_t num_embeddings, int64_t embedding_dim,
            std::optional<int64_t> padding_idx = std::nullopt, bool scale_by_sqrt_dim = false);

  // ids (B, L) in [0, num_embeddings) -> out (B, L, embedding_dim).
  void forward(View<const int64_t, 2> ids, View<float, 3> out) const;

  int64_t num_embeddings() const noexcept { return weight_.size(0); }
  int64_t embedding_dim() const noexcept { return weight_.size(1); }
  Tensor<float>& weight() noexcept { return weight_; }
  const Tensor<float>& weight() const noexcept { return weight_; }

 protected:
  void for_each_param(const ParamFn& fn) override;

 private:
  Tensor<float> weight_;
  std::optional<int64_t> padding_idx_;
  float scale_ = 1.0f;
};

}  // namespace maskattn::nn
