// The masks of one attention as the modules take them (AttentionMasks), checked
// and combined (internal). Checked by the outermost module of a call, so that
// an Error names the argument its caller passed ("src_key_padding_mask", not
// the inner "key_padding_mask"; "memory", not the cross-attention's "key");
// combined into one Mask once per call of a stack, not once per layer.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/arena.hpp"
#include "maskattn/nn/multihead_attention.hpp"

namespace maskattn::nn::detail {

// masks as one Mask over (N, heads, L, S + extra_keys): torch's arrays through
// from_torch_mha_mask, is_causal (top-left over the S keys) and masks.mask.
// The extra keys (appended by add_bias_kv / add_zero_attn, last) stay visible
// to torch's masks and to is_causal, as torch pads its masks for them; a Mask
// covers them. Scratch from `frame` (the Mask copies what it keeps).
Mask combined_mask(const AttentionMasks& masks, int64_t heads, int64_t l, int64_t s,
                   int64_t extra_keys, maskattn::detail::Arena::Frame& frame);

// The same, for the layers of a stack to share: only `mask` is set.
AttentionMasks combined(const AttentionMasks& masks, int64_t heads, int64_t l, int64_t s);

// torch's rules: attn_mask (L, S) or (N*heads, L, S); key_padding_mask (N, S).
void check_attention_masks(const AttentionMasks& masks, int64_t n, int64_t heads, int64_t l,
                           int64_t s, std::string_view attn_name, std::string_view padding_name);

// The names an encoder-style call gives its arguments.
struct EncoderNames {
  std::string_view src = "src", mask = "src_mask", padding = "src_key_padding_mask";
};

// src (L, N, E) [(N, L, E) batch_first] and its self-attention masks.
void check_encoder_call(const View<const float, 3>& src, const AttentionMasks& masks,
                        int64_t d_model, int64_t heads, bool batch_first,
                        const EncoderNames& names = {});

// tgt (T, N, E), memory (S, N, E) with the same N, and both attentions' masks
// (tgt_*: (T, T) self-attention, memory_*: (T, S) cross-attention).
void check_decoder_call(const View<const float, 3>& tgt, const View<const float, 3>& memory,
                        const AttentionMasks& tgt_masks, const AttentionMasks& memory_masks,
                        int64_t d_model, int64_t heads, bool batch_first);

}  // namespace maskattn::nn::detail
