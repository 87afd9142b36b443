// Adapters from other libraries' mask conventions. Each reads exactly one
// documented convention and turns it into typed parts (keep / block / bias,
// causal), so the meaning of `true` is never guessed:
//
//   PyTorch nn.MultiheadAttention   bool true = masked, float additive
//   PyTorch scaled_dot_product_attention, ONNX Attention (opset 23)
//                                   bool true = may attend, float additive,
//                                   right-aligned broadcast to (B, H, L, S)
//   Hugging Face attention_mask     1 = attend; 4-D float: 0 = attend,
//                                   <= float32 lowest (finfo.min) = masked
//   Keras MultiHeadAttention        (B, T, S), 1 = attend
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "mask/dense.hpp"

namespace maskattn {
namespace {

using detail::DenseKind;

std::string index_string(std::span<const int64_t> index) {
  return fmt::format("[{}]", fmt::join(index, ", "));
}

// m with leading size-1 dimensions (stride 0) up to rank 4: PyTorch's
// right-aligned broadcasting against (B, H, L, S).
AnyView right_aligned_rank4(const AnyView& m) {
  std::vector<int64_t> shape(static_cast<std::size_t>(4 - m.rank()), 1);
  std::vector<int64_t> strides(shape.size(), 0);
  shape.insert(shape.end(), m.shape.begin(), m.shape.end());
  strides.insert(strides.end(), m.strides.begin(), m.strides.end());
  return AnyView(m.data, m.dtype, std::move(shape), std::move(strides));
}

// A 0/1 mask of any dtype as bool (1 = attend); other values are an error.
Tensor<bool> zero_one_to_bool(const AnyView& m, const std::string& arg) {
  Tensor<bool> out(m.shape);
  bool* o = out.data();
  for_each_index(m.shape, [&](std::span<const int64_t> index) {
    const double v = m.at(index);
    if (v != 0.0 && v != 1.0)
      throw Error(arg, "values 0 or 1 (1 = attend)",
                  fmt::format("{} at {}", v, index_string(index)));
    *o++ = v == 1.0;
  });
  return out;
}

// A Hugging Face 4-D float mask as bias: values at or below float32's lowest
// (torch.finfo(dtype).min, or sums of it) and -inf become -inf; the rest is
// additive. NaN and +inf are left for dense_mask to reject.
template <class T>
Tensor<T> hf_additive(const AnyView& m) {
  Tensor<T> out(m.shape);
  T* o = out.data();
  constexpr double kLowest = std::numeric_limits<float>::lowest();
  for_each_index(m.shape, [&](std::span<const int64_t> index) {
    const double v = m.at(index);
    *o++ = v <= kLowest ? -std::numeric_limits<T>::infinity() : static_cast<T>(v);
  });
  return out;
}

void check_bool_or_float(const AnyView& m, const std::string& arg, const char* expected) {
  if (m.dtype != DType::Bool && !m.is_float()) throw Error(arg, expected, m.describe());
}

// SDPA and ONNX: bool (true = attend) -> keep, float -> bias, rank 1..4
// right-aligned.
Mask attend_or_additive(const AnyView& m, const std::string& arg) {
  check_bool_or_float(m, arg, "dtype bool (true = may attend) or float32/float64 (additive)");
  if (m.rank() < 1 || m.rank() > 4)
    throw Error(arg, "rank 1..4, broadcast right-aligned against (B, H, L, S)", m.describe());
  return detail::dense_mask(right_aligned_rank4(m),
                            m.dtype == DType::Bool ? DenseKind::Keep : DenseKind::Bias,
                            Dims2::QueryKey, arg);
}

}  // namespace

Mask from_torch_mha_mask(const AnyView& attn_mask, const AnyView& key_padding_mask,
                         int64_t num_heads) {
  if (num_heads < 0)
    throw Error("from_torch_mha_mask: num_heads", "num_heads >= 0 (0 = not given)",
                std::to_string(num_heads));
  Mask r;
  if (!attn_mask.empty()) {
    const std::string arg = "from_torch_mha_mask: attn_mask";
    check_bool_or_float(attn_mask, arg, "dtype bool (true = masked) or float32/float64 (additive)");
    AnyView m = attn_mask;
    if (attn_mask.rank() == 2) {
      m = right_aligned_rank4(attn_mask);
    } else if (attn_mask.rank() == 3) {
      const int64_t x = attn_mask.shape[0];
      if (num_heads == 0)
        throw Error("from_torch_mha_mask: num_heads",
                    "the number of heads (>= 1) for a 3-D attn_mask (B*num_heads, L, S)",
                    fmt::format("0 with attn_mask {}", attn_mask.describe()));
      if (x % num_heads != 0)
        throw Error("from_torch_mha_mask: num_heads",
                    fmt::format("a divisor of attn_mask's first dim B*num_heads = {}", x),
                    std::to_string(num_heads));
      // (B*num_heads, L, S) viewed as (B, num_heads, L, S).
      const std::vector<int64_t>& st = attn_mask.strides;
      m = AnyView(attn_mask.data, attn_mask.dtype,
                  {x / num_heads, num_heads, attn_mask.shape[1], attn_mask.shape[2]},
                  {st[0] * num_heads, st[0], st[1], st[2]});
    } else {
      throw Error(arg, "rank 2 (L, S) or rank 3 (B*num_heads, L, S)", attn_mask.describe());
    }
    r &= detail::dense_mask(m, attn_mask.dtype == DType::Bool ? DenseKind::Block : DenseKind::Bias,
                            Dims2::QueryKey, arg);
  }
  if (!key_padding_mask.empty()) {
    const std::string arg = "from_torch_mha_mask: key_padding_mask";
    check_bool_or_float(key_padding_mask, arg,
                        "dtype bool (true = masked) or float32/float64 (additive)");
    if (key_padding_mask.rank() != 2)
      throw Error(arg, "rank 2 (B, S)", key_padding_mask.describe());
    r &= detail::dense_mask(
        key_padding_mask,
        key_padding_mask.dtype == DType::Bool ? DenseKind::Block : DenseKind::Bias, Dims2::BatchKey,
        arg);
  }
  return r;
}

Mask from_sdpa_mask(const AnyView& attn_mask, bool is_causal) {
  if (is_causal && !attn_mask.empty())
    throw Error("from_sdpa_mask: is_causal",
                "attn_mask absent when is_causal is true (PyTorch raises too)",
                fmt::format("is_causal with attn_mask {}", attn_mask.describe()));
  if (is_causal) return causal(Align::TopLeft);
  if (attn_mask.empty()) return Mask();
  return attend_or_additive(attn_mask, "from_sdpa_mask: attn_mask");
}

Mask from_hf_attention_mask(const AnyView& attention_mask) {
  const std::string arg = "from_hf_attention_mask: attention_mask";
  const AnyView& m = attention_mask;
  if (m.empty()) return Mask();
  if (m.rank() == 2) {
    // (B, S): 1 = token, 0 = padding.
    const Tensor<bool> b = zero_one_to_bool(m, arg);
    return detail::dense_mask(b, DenseKind::Keep, Dims2::BatchKey, arg);
  }
  if (m.rank() != 4) throw Error(arg, "rank 2 (B, S) or rank 4 (B, 1|H, L|1, S)", m.describe());
  if (m.dtype == DType::Float32)
    return detail::dense_mask(hf_additive<float>(m), DenseKind::Bias, Dims2::QueryKey, arg);
  if (m.dtype == DType::Float64)
    return detail::dense_mask(hf_additive<double>(m), DenseKind::Bias, Dims2::QueryKey, arg);
  const Tensor<bool> b = zero_one_to_bool(m, arg);
  return detail::dense_mask(b, DenseKind::Keep, Dims2::QueryKey, arg);
}

Mask from_keras_mask(const AnyView& attention_mask, bool use_causal_mask) {
  Mask r;
  if (!attention_mask.empty()) {
    const std::string arg = "from_keras_mask: attention_mask";
    const AnyView& m = attention_mask;
    if (m.rank() != 3) throw Error(arg, "rank 3 (B, T, S)", m.describe());
    const Tensor<bool> b = zero_one_to_bool(m, arg);
    // (B, T, S) viewed as (B, 1, T, S): the same mask for every head (never
    // read as B*H).
    const AnyView per_batch(b.data(), DType::Bool, {m.shape[0], 1, m.shape[1], m.shape[2]},
                            {m.shape[1] * m.shape[2], 0, m.shape[2], 1});
    r &= detail::dense_mask(per_batch, DenseKind::Keep, Dims2::QueryKey, arg);
  }
  if (use_causal_mask) r &= causal(Align::TopLeft);
  return r;
}

Mask from_onnx_attention_mask(const AnyView& attn_mask, bool is_causal) {
  Mask r;
  if (!attn_mask.empty()) r &= attend_or_additive(attn_mask, "from_onnx_attention_mask: attn_mask");
  if (is_causal) r &= causal(Align::TopLeft);
  return r;
}

}  // namespace maskattn
