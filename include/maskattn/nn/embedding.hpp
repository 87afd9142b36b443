// Embedding: a lookup table of vectors, PyTorch's torch.nn.Embedding, with the
// original Transformer's sqrt(d_model) scale as an option.
#pragma once

#include <cstdint>
#include <optional>

#include "maskattn/nn/gradients.hpp"
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

  // Training (gradients.hpp): the backward needs nothing but the ids.
  struct Saved {};
  void forward(View<const int64_t, 2> ids, View<float, 3> out, Saved& saved) const;
  // dout (B, L, embedding_dim): adds scale * dout[b, l] to row ids[b, l] of
  // the weight's gradient, except for padding_idx (its row gets none, as in
  // torch). The ids have no gradient.
  void backward(View<const int64_t, 2> ids, const Saved& saved, View<const float, 3> dout,
                Gradients& grads) const;

  // The table as the output layer, tied to the input embedding (Press & Wolf
  // 2017; Hugging Face ties lm_head to it): logits = x W^T, no bias and no
  // scale. x (N, embedding_dim) -> logits (N, num_embeddings).
  void unembed(View<const float, 2> x, View<float, 2> logits) const;
  // dlogits (N, num_embeddings) -> dx (N, embedding_dim) (empty: not
  // wanted); adds dlogits^T x to the weight's gradient, the same gradient
  // backward() adds to, so a tied model's two uses sum. Every row gets its
  // share here, padding_idx's too (torch's tied lm_head does the same).
  void unembed_backward(View<const float, 2> x, View<const float, 2> dlogits, View<float, 2> dx,
                        Gradients& grads) const;

  int64_t num_embeddings() const noexcept { return weight_.size(0); }
  int64_t embedding_dim() const noexcept { return weight_.size(1); }
  Tensor<float>& weight() noexcept { return weight_; }
  const Tensor<float>& weight() const noexcept { return weight_; }

 protected:
  void for_each_param(const ParamFn& fn) override;

 private:
  void check_unembed(const char* name, View<const float, 2> x, int64_t logits_rows,
                     int64_t logits_cols) const;

  Tensor<float> weight_;
  std::optional<int64_t> padding_idx_;
  float scale_ = 1.0f;
};

}  // namespace maskattn::nn
