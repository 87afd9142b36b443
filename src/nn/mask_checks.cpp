#include "nn/mask_checks.hpp"

#include <fmt/format.h>

#include <vector>

namespace maskattn::nn::detail {
namespace {

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

}  // namespace

void check_attention_masks(const AttentionMasks& masks, int64_t n, int64_t heads, int64_t l,
                           int64_t s, std::string_view attn_name, std::string_view padding_name) {
  const AnyView& am = masks.attn_mask;
  if (!am.empty()) {
    const bool ok = (am.rank() == 2 && am.shape == std::vector<int64_t>{l, s}) ||
                    (am.rank() == 3 && am.shape == std::vector<int64_t>{n * heads, l, s});
    if (!ok)
      throw Error(attn_name, fmt::format("({}, {}) or ({}, {}, {})", l, s, n * heads, l, s),
                  am.describe());
  }
  const AnyView& kpm = masks.key_padding_mask;
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
