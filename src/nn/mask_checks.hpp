// The arguments of one attention, layer or stack call (internal), checked by
// the outermost module of the call so that an Error names the argument its
// caller passed ("src_key_padding_mask", not the inner "key_padding_mask";
// "memory", not the cross-attention's "key").
#pragma once

#include <cstdint>
#include <string_view>

#include "maskattn/nn/multihead_attention.hpp"

namespace maskattn::nn::detail {

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
