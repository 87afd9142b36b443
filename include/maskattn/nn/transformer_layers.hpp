// Transformer encoder and decoder layers, as torch.nn.TransformerEncoderLayer
// and torch.nn.TransformerDecoderLayer (same parameters, names and numbers):
//
//   encoder, post-norm:  x = norm1(x + dropout1(self_attn(x)))
//                        x = norm2(x + dropout2(ff(x)))
//   encoder, norm_first: x = x + dropout1(self_attn(norm1(x)))
//                        x = x + dropout2(ff(norm2(x)))
//   decoder, post-norm:  x = norm1(x + dropout1(self_attn(x)))
//                        x = norm2(x + dropout2(multihead_attn(x, memory)))
//                        x = norm3(x + dropout3(ff(x)))
//   decoder, norm_first: the same with each norm applied to the sublayer's input
//   ff(x) = linear2(dropout(activation(linear1(x))))
//
// Activations are (L, N, E), or (N, L, E) with batch_first. The masks of each
// attention come as AttentionMasks (torch's attn_mask / key_padding_mask /
// is_causal, and/or any Mask): for the decoder's self-attention the
// look-ahead mask (tgt_mask, or is_causal, or causal()) and the target's
// padding; for its cross-attention the memory's padding.
//
// Training (nn/gradients.hpp): forward(..., Saved&) and backward(), through
// every option (post-norm and norm_first, relu and gelu, dropout in training
// mode replayed from the saved draws, every mask).
#pragma once

#include <cstdint>
#include <optional>

#include "maskattn/nn/dropout.hpp"
#include "maskattn/nn/feed_forward.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/kv_cache.hpp"
#include "maskattn/nn/layer_norm.hpp"
#include "maskattn/nn/module.hpp"
#include "maskattn/nn/multihead_attention.hpp"

namespace maskattn::nn {

// torch's constructor arguments after d_model and nhead, with its defaults.
struct TransformerLayerOptions {
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::ReLU;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;
  bool bias = true;                     // in every Linear and LayerNorm
  std::optional<int64_t> num_kv_heads;  // grouped-query attention (not in torch)
};

// What one residual block (x -> norm(x + dropout(f(x))), or x + dropout(f(norm(x)))
// with norm_first) of a layer keeps for the backward. (rows, E): the layer's
// (A, B, E) activation as A*B rows.
struct ResidualSaved {
  Tensor<float> out;     // (rows, E): the block's output, the next block's input
  Tensor<float> normed;  // (rows, E): norm_first: norm(x), f's input;
                         //            post-norm: x + dropout(f(x)), the norm's input
  LayerNorm::Saved norm;
  Dropout::Saved dropout;
};

class TransformerEncoderLayer : public Module {
 public:
  TransformerEncoderLayer(int64_t d_model, int64_t nhead,
                          const TransformerLayerOptions& options = {});

  // src (L, N, E) -> out, same shape; out may be src itself.
  void forward(View<const float, 3> src, View<float, 3> out,
               const AttentionMasks& src_masks = {}) const;

  // Training. out must not be src here (the backward reads src).
  struct Saved {
    MultiheadAttention::Saved self_attn;
    FeedForward::Saved ff;
    ResidualSaved block1, block2;  // around self_attn, around ff
  };
  void forward(View<const float, 3> src, View<float, 3> out, const AttentionMasks& src_masks,
               Saved& saved) const;
  // dout (like src) -> dsrc (like src; empty: not wanted); adds every
  // parameter's gradient. The masks are in `saved`.
  void backward(View<const float, 3> src, const Saved& saved, View<const float, 3> dout,
                View<float, 3> dsrc, Gradients& grads) const;

  int64_t d_model() const noexcept { return self_attn_.embed_dim(); }
  const TransformerLayerOptions& options() const noexcept { return options_; }
  MultiheadAttention& self_attn() noexcept { return self_attn_; }
  const MultiheadAttention& self_attn() const noexcept { return self_attn_; }

 protected:
  void for_each_child(const ChildFn& fn) override;

 private:
  // Both forwards: with `saved`, the training one.
  void forward_impl(View<const float, 3> src, View<float, 3> out, const AttentionMasks& src_masks,
                    Saved* saved) const;

  TransformerLayerOptions options_;
  MultiheadAttention self_attn_;
  FeedForward ff_;  // its children are this layer's: linear1, dropout, linear2
  LayerNorm norm1_, norm2_;
  Dropout dropout1_, dropout2_;
};

class TransformerDecoderLayer : public Module {
 public:
  TransformerDecoderLayer(int64_t d_model, int64_t nhead,
                          const TransformerLayerOptions& options = {});

  // tgt (T, N, E), memory (S, N, E) -> out like tgt; out may be tgt itself.
  void forward(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
               const AttentionMasks& tgt_masks = {}, const AttentionMasks& memory_masks = {}) const;

  // Training. out must not be tgt here (the backward reads tgt).
  struct Saved {
    MultiheadAttention::Saved self_attn, multihead_attn;
    FeedForward::Saved ff;
    ResidualSaved block1, block2, block3;  // around self_attn, multihead_attn, ff
  };
  void forward(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
               const AttentionMasks& tgt_masks, const AttentionMasks& memory_masks,
               Saved& saved) const;
  // dout (like tgt) -> dtgt (like tgt) and dmemory (like memory) (empty: not
  // wanted; both written, not added); adds every parameter's gradient.
  void backward(View<const float, 3> tgt, View<const float, 3> memory, const Saved& saved,
                View<const float, 3> dout, View<float, 3> dtgt, View<float, 3> dmemory,
                Gradients& grads) const;

  int64_t d_model() const noexcept { return self_attn_.embed_dim(); }
  const TransformerLayerOptions& options() const noexcept { return options_; }
  MultiheadAttention& self_attn() noexcept { return self_attn_; }
  const MultiheadAttention& self_attn() const noexcept { return self_attn_; }
  MultiheadAttention& multihead_attn() noexcept { return multihead_attn_; }
  const MultiheadAttention& multihead_attn() const noexcept { return multihead_attn_; }

 protected:
  void for_each_child(const ChildFn& fn) override;

 private:
  friend class TransformerDecoder;

  // The layer's arithmetic around its two attentions: sa(x, y) writes the
  // self-attention of x into y, ca(x, y) the cross-attention. With `saved`,
  // the residual blocks keep what the backward needs there (the attentions
  // keep theirs themselves).
  template <class SelfAttention, class CrossAttention>
  void run(View<const float, 3> tgt, View<float, 3> out, const SelfAttention& sa,
           const CrossAttention& ca, Saved* saved = nullptr) const;

  // One decoding step (TransformerDecoder::decode_step): tgt (T, N, E) new
  // tokens; their keys and values go into `cache` at positions lengths[b]..;
  // self_mask over (N, H, T, Lk), Lk = max(lengths) + T.
  void decode_step(View<const float, 3> tgt, View<float, 3> out, KvCache::Layer& cache,
                   std::span<const int64_t> lengths, const Mask& self_mask,
                   const Mask& memory_mask) const;

  TransformerLayerOptions options_;
  MultiheadAttention self_attn_;
  MultiheadAttention multihead_attn_;
  FeedForward ff_;
  LayerNorm norm1_, norm2_, norm3_;
  Dropout dropout1_, dropout2_, dropout3_;
};

}  // namespace maskattn::nn
