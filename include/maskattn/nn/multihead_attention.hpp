// MultiheadAttention with PyTorch's parameters and behaviour
// (torch.nn.MultiheadAttention), plus what PyTorch lacks: any Mask,
// grouped-query attention (num_kv_heads) and a head mask.
//
//   q = query W_q^T + b_q   k = key W_k^T + b_k   v = value W_v^T + b_v
//   split heads (D = embed_dim / num_heads); [append bias_k/bias_v; append a
//   zero key/value]; attention(q, k, v, mask) per head; concat; out_proj.
//
// Parameters (state_dict names as torch's):
//   in_proj_weight (E + 2*Hkv*D, E)      when kdim == vdim == E (E = embed_dim)
//   q_proj_weight (E, E), k_proj_weight (Hkv*D, kdim), v_proj_weight (Hkv*D, vdim)  otherwise
//   in_proj_bias (E + 2*Hkv*D)           with bias
//   bias_k, bias_v (1, 1, Hkv*D)         with add_bias_kv
//   out_proj.weight (E, E), out_proj.bias (E)
// With num_kv_heads == num_heads (the default) Hkv*D = E: exactly torch's.
//
// Masks come the way torch takes them (attn_mask, key_padding_mask: bool
// True = masked, or float additive; read by from_torch_mha_mask) and/or as any
// maskattn Mask; all apply (&). Keys added by add_bias_kv / add_zero_attn are
// never masked by attn_mask / key_padding_mask / is_causal (torch pads its
// masks for them); a Mask covers all S' = S + (added) keys, the added ones last.
// A query row with no allowed key gives zeros (torch gives NaN there).
//
// Training (the contract of nn/gradients.hpp): forward(..., Saved&) and
// backward(). Everything forward() takes trains — packed or separate
// projections, biases, bias_k/bias_v, add_zero_attn, num_kv_heads, both
// layouts, every mask, head_mask, attention dropout (in training mode, replayed
// from the saved seed) — except the weights output (need_weights is not read:
// training needs no weights). The cached halves (project_kv, attend) are for
// decoding and have no backward.
#pragma once

#include <cstdint>
#include <optional>

#include "maskattn/mask.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

struct MultiheadAttentionOptions {
  double dropout = 0.0;  // on the attention weights, in training mode
  bool bias = true;
  bool add_bias_kv = false;
  bool add_zero_attn = false;
  std::optional<int64_t> kdim;          // default embed_dim
  std::optional<int64_t> vdim;          // default embed_dim
  bool batch_first = false;             // (N, L, E) instead of (L, N, E)
  std::optional<int64_t> num_kv_heads;  // default num_heads; must divide it
};

// The masks of one call; every field may be left empty.
struct AttentionMasks {
  AnyView attn_mask;         // (L, S) or (N*num_heads, L, S): bool True = masked, or float
  AnyView key_padding_mask;  // (N, S): bool True = padding, or float additive
  bool is_causal = false;    // adds causal() (top-left); may come with or without attn_mask
  Mask mask;                 // any Mask over (N, num_heads, L, S') (S' = key_len(S))
};

struct MultiheadAttentionCall {
  bool need_weights = true;          // fill `weights`
  bool average_attn_weights = true;  // weights averaged over heads: (N, 1, L, S')
  AnyView head_mask;                 // (num_heads) or (N, num_heads) multipliers
};

class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads,
                     const MultiheadAttentionOptions& options = {});

  // query (L, N, E), key (S, N, kdim), value (S, N, vdim); (N, L, E) ... with
  // batch_first. out: like query. weights, when call.need_weights: (N, 1, L,
  // S') averaged or (N, num_heads, L, S') per head, S' = key_len(S); the
  // probabilities after dropout, as torch returns them. Any strides.
  void forward(View<const float, 3> query, View<const float, 3> key, View<const float, 3> value,
               View<float, 3> out, const AttentionMasks& masks = {},
               const MultiheadAttentionCall& call = {}, View<float, 4> weights = {}) const;

  // What the training forward records for backward(). Owns its tensors, which
  // keep their storage across calls of the same shapes.
  struct Saved {
    Tensor<float> q;          // (N, H, L, D): the projected queries, per head
    Tensor<float> k, v;       // (N, Hkv, S', D): projected keys and values, added keys last
    Tensor<float> attn;       // (L*N, E), (N*L, E) with batch_first: attention output,
                              // heads side by side (out_proj's input)
    Tensor<float> lse;        // (N, H, L): the attention's log-sum-exp
    Tensor<float> head_mask;  // call.head_mask as float32, or empty
    Mask mask;                // every mask of the call, combined, over (N, H, L, S')
    float dropout_p = 0.0f;   // the attention dropout applied (0 in eval mode)
    uint64_t seed = 0;        // the seed it was drawn from
  };

  // The training forward: forward() as above without weights (call.head_mask
  // is read, call.need_weights is not), recording in `saved` what backward()
  // needs.
  void forward(View<const float, 3> query, View<const float, 3> key, View<const float, 3> value,
               View<float, 3> out, const AttentionMasks& masks, const MultiheadAttentionCall& call,
               Saved& saved) const;

  // Gradients of the training forward: the same query, key, value and its
  // `saved`; dout, the gradient of the loss with respect to out (like query).
  // Writes dquery, dkey, dvalue (like query, key, value; an empty View: not
  // wanted) and ADDS into grads the gradients of every parameter (the packed
  // in_proj_weight or q/k/v_proj_weight, in_proj_bias, bias_k, bias_v,
  // out_proj.weight, out_proj.bias). Nothing flows to the zero key and value
  // of add_zero_attn (they are constants), nor through masked pairs.
  //
  // Self-attention (one tensor x as query, key and value): its gradient is
  // dquery + dkey + dvalue. Pass the same View as dquery, dkey and dvalue
  // (or as two of them) and backward() writes that sum into it; views that
  // differ must not overlap each other or the inputs. Any strides.
  void backward(View<const float, 3> query, View<const float, 3> key, View<const float, 3> value,
                const Saved& saved, View<const float, 3> dout, View<float, 3> dquery,
                View<float, 3> dkey, View<float, 3> dvalue, Gradients& grads) const;

  // The two halves of forward(), for decoding step by step with cached keys
  // and values (KvCache); not for modules with add_bias_kv / add_zero_attn.
  //
  // project_kv: the keys and values of key (S, N, kdim) and value (S, N,
  // vdim) ((N, S, .) with batch_first), split into heads: k_out, v_out
  // (N, Hkv, S, D).
  void project_kv(View<const float, 3> key, View<const float, 3> value, View<float, 4> k_out,
                  View<float, 4> v_out) const;
  // attend: query (L, N, E) against projected keys k and values v (N, Hkv,
  // Lk, D) under `mask` (over (N, num_heads, L, Lk)), then out_proj -> out
  // like query; weights as in forward() with S' = Lk.
  void attend(View<const float, 3> query, View<const float, 4> k, View<const float, 4> v,
              View<float, 3> out, const Mask& mask = {}, const MultiheadAttentionCall& call = {},
              View<float, 4> weights = {}) const;

  // S' = S + add_bias_kv + add_zero_attn: the keys the weights cover.
  int64_t key_len(int64_t source_len) const noexcept;

  int64_t embed_dim() const noexcept { return embed_dim_; }
  int64_t num_heads() const noexcept { return num_heads_; }
  int64_t num_kv_heads() const noexcept { return num_kv_heads_; }
  int64_t head_dim() const noexcept { return embed_dim_ / num_heads_; }
  int64_t kdim() const noexcept { return kdim_; }
  int64_t vdim() const noexcept { return vdim_; }
  bool batch_first() const noexcept { return options_.batch_first; }
  const MultiheadAttentionOptions& options() const noexcept { return options_; }
  // True when one packed in_proj_weight holds the q, k and v projections.
  bool packed() const noexcept { return in_proj_weight_.numel() > 0; }
  Linear& out_proj() noexcept { return out_proj_; }

 protected:
  void for_each_param(const ParamFn& fn) override;
  void for_each_child(const ChildFn& fn) override;  // "out_proj"

 private:
  // The q, k and v projections: weight slices (out, in) and biases (or null).
  struct Projections {
    const float *wq, *wk, *wv;  // (E, E), (Hkv*D, kdim), (Hkv*D, vdim)
    const float *bq, *bk, *bv;  // (E), (Hkv*D), (Hkv*D) or null
  };
  Projections projections() const noexcept;

  // N, L and S of a call, after checking query, key and value (Error naming
  // the first that does not fit the module).
  struct CallDims {
    int64_t n, l, s;
  };
  CallDims check_inputs(View<const float, 3> query, View<const float, 3> key,
                        View<const float, 3> value) const;

  // Both forwards: with `saved`, the training one (weights not written).
  void forward_impl(View<const float, 3> query, View<const float, 3> key,
                    View<const float, 3> value, View<float, 3> out, const AttentionMasks& masks,
                    const MultiheadAttentionCall& call, View<float, 4> weights, Saved* saved) const;

  // Attention of projected q (N, H, L, D) over k, v (N, Hkv, S', D), weights
  // when asked, then out_proj into out (like the query). With `saved`, the
  // attention output, lse, head mask and dropout are recorded there.
  void attend_heads(View<const float, 4> q, View<const float, 4> k, View<const float, 4> v,
                    const Mask& mask, const MultiheadAttentionCall& call, View<float, 4> weights,
                    View<float, 3> out, Saved* saved = nullptr) const;

  int64_t embed_dim_, num_heads_, num_kv_heads_, kdim_, vdim_;
  MultiheadAttentionOptions options_;
  Tensor<float> in_proj_weight_;                                 // packed, or empty
  Tensor<float> q_proj_weight_, k_proj_weight_, v_proj_weight_;  // separate, or empty
  Tensor<float> in_proj_bias_;                                   // or empty
  Tensor<float> bias_k_, bias_v_;                                // or empty
  Linear out_proj_;
};

}  // namespace maskattn::nn
