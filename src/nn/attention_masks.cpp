#include "nn/attention_masks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

namespace maskattn::nn::detail {
namespace {

using maskattn::detail::Arena;

// Sequence length and batch of x.
struct SeqDims {
  int64_t len, batch;
};

SeqDims check_sequence(const View<const float, 3>& x, std::string_view name, int64_t d_model,
                       bool batch_first) {
  if (x.size(2) != d_model)
    throw Error(name,
                fmt::format("{}{}) with E = d_model", batch_first ? "(N, L, " : "(L, N, ", d_model),
                shape_string(x.shape()));
  return batch_first ? SeqDims{x.size(1), x.size(0)} : SeqDims{x.size(0), x.size(1)};
}

// m (..., S) with `pad` more key columns that mask nothing (false / 0.0) —
// torch pads attn_mask and key_padding_mask so for the keys add_bias_kv and
// add_zero_attn append. Other dtypes are passed on as they are (the adapter
// rejects them).
AnyView pad_keys(const AnyView& m, int64_t pad, Arena::Frame& frame) {
  if (m.empty() || pad == 0) return m;
  const std::size_t elem = m.dtype == DType::Bool      ? sizeof(bool)
                           : m.dtype == DType::Float32 ? sizeof(float)
                           : m.dtype == DType::Float64 ? sizeof(double)
                                                       : 0;
  if (elem == 0) return m;
  std::vector<int64_t> shape = m.shape;
  const int64_t src_cols = shape.back();
  shape.back() += pad;
  std::byte* out = frame.alloc<std::byte>(
      checked_mul(checked_numel(shape, "padded mask"), static_cast<int64_t>(elem), "padded mask"));
  int64_t at = 0;
  for_each_index(shape, [&](std::span<const int64_t> index) {
    const double x = index.back() < src_cols ? m.at(index) : 0.0;
    if (m.dtype == DType::Bool) reinterpret_cast<bool*>(out)[at] = x != 0.0;
    if (m.dtype == DType::Float32) reinterpret_cast<float*>(out)[at] = static_cast<float>(x);
    if (m.dtype == DType::Float64) reinterpret_cast<double*>(out)[at] = x;
    ++at;
  });
  return AnyView(out, m.dtype, shape, AnyView::contiguous_strides(shape));
}

}  // namespace

Mask combined_mask(const AttentionMasks& masks, int64_t heads, int64_t l, int64_t s,
                   int64_t extra_keys, maskattn::detail::Arena::Frame& frame) {
  Mask mask = masks.mask;
  if (!masks.attn_mask.empty() || !masks.key_padding_mask.empty())
    mask &= from_torch_mha_mask(pad_keys(masks.attn_mask, extra_keys, frame),
                                pad_keys(masks.key_padding_mask, extra_keys, frame), heads);
  if (masks.is_causal) {
    if (extra_keys == 0) {
      mask &= causal();
    } else {
      // The look-ahead mask over the S source keys; the appended keys stay
      // visible to every query.
      const int64_t s2 = s + extra_keys;
      bool* allowed = frame.alloc<bool>(l * s2);
      for (int64_t i = 0; i < l; ++i)
        for (int64_t j = 0; j < s2; ++j) allowed[i * s2 + j] = j <= i || j >= s;
      mask &= keep(View<const bool, 2>(allowed, {l, s2}));
    }
  }
  return mask;
}

AttentionMasks combined(const AttentionMasks& masks, int64_t heads, int64_t l, int64_t s) {
  maskattn::detail::Arena::Frame frame(maskattn::detail::thread_arena());
  AttentionMasks out;
  out.mask = combined_mask(masks, heads, l, s, 0, frame);
  return out;
}

namespace {

// A torch-convention mask's dtype and values, checked here where the caller's
// name for it is known (the adapter that reads it later would name itself,
// "from_torch_mha_mask: attn_mask", for a decoder's tgt_mask and memory_mask
// alike): bool, or float32/float64 additive without NaN or +inf.
void check_torch_mask_values(const AnyView& m, std::string_view name) {
  if (m.dtype != DType::Bool && !m.is_float())
    throw Error(name, "dtype bool (True = masked) or float32/float64 (additive)", m.describe());
  if (!m.is_float()) return;
  for_each_index(m.shape, [&](std::span<const int64_t> index) {
    const double x = m.at(index);
    if (std::isnan(x) || x == std::numeric_limits<double>::infinity())
      throw Error(name, "finite values or -inf (masked)", fmt::format("{} in {}", x, m.describe()));
  });
}

}  // namespace

void check_attention_masks(const AttentionMasks& masks, int64_t n, int64_t heads, int64_t l,
                           int64_t s, std::string_view attn_name, std::string_view padding_name) {
  const AnyView& am = masks.attn_mask;
  if (!am.empty()) {
    check_torch_mask_values(am, attn_name);
    const bool ok = (am.rank() == 2 && am.shape == std::vector<int64_t>{l, s}) ||
                    (am.rank() == 3 && am.shape == std::vector<int64_t>{n * heads, l, s});
    if (!ok)
      throw Error(attn_name, fmt::format("({}, {}) or ({}, {}, {})", l, s, n * heads, l, s),
                  am.describe());
  }
  const AnyView& kpm = masks.key_padding_mask;
  if (!kpm.empty()) check_torch_mask_values(kpm, padding_name);
  if (!kpm.empty() && kpm.shape != std::vector<int64_t>{n, s})
    throw Error(padding_name, fmt::format("({}, {})", n, s), kpm.describe());
}

void check_encoder_call(const View<const float, 3>& src, const AttentionMasks& masks,
                        int64_t d_model, int64_t heads, bool batch_first,
                        const EncoderNames& names) {
  const SeqDims d = check_sequence(src, names.src, d_model, batch_first);
  check_attention_masks(masks, d.batch, heads, d.len, d.len, names.mask, names.padding);
}

void check_decoder_call(const View<const float, 3>& tgt, const View<const float, 3>& memory,
                        const AttentionMasks& tgt_masks, const AttentionMasks& memory_masks,
                        int64_t d_model, int64_t heads, bool batch_first) {
  const SeqDims t = check_sequence(tgt, "tgt", d_model, batch_first);
  const SeqDims m = check_sequence(memory, "memory", d_model, batch_first);
  if (m.batch != t.batch)
    throw Error("memory", fmt::format("the batch of tgt ({})", t.batch),
                shape_string(memory.shape()));
  check_attention_masks(tgt_masks, t.batch, heads, t.len, t.len, "tgt_mask",
                        "tgt_key_padding_mask");
  check_attention_masks(memory_masks, t.batch, heads, t.len, m.len, "memory_mask",
                        "memory_key_padding_mask");
}

}  // namespace maskattn::nn::detail
