// Masks: which (batch b, head h, query i, key j) pairs may attend, plus an
// optional additive bias.
//
// A Mask is a cheap value (copies share immutable parts) built from parts and
// combined with `&` (a pair is allowed only if every part allows it; biases
// add). Masks are typed: `keep` (true = may attend), `block` (true = masked)
// and `bias` (additive, -inf = masked) say which convention they read, and the
// `from_*` adapters name the library convention they translate.
//
// Positions: query i in [0, Lq), key j in [0, Lk). Align::TopLeft compares i
// with j directly; Align::BottomRight shifts queries by Lk - Lq so that the
// last query lines up with the last key (decoding with a KV cache). A query
// row that no key may attend to is an *empty row*; attention() defines its
// result (see EmptyRows).
//
// Enum arguments (Align, Dims2) other than their named values are Errors.
//
// A Mask is bound to a problem shape (B, H, Lq, Lk) with bind(); the bound
// mask checks that every part fits and answers, for a tile of queries x keys,
// whether it is Empty (nothing allowed), Full (everything allowed) or Partial
// — exactly — and, for one row, the additive value of each element.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn {

enum class Align { TopLeft, BottomRight };

// How a rank-2 dense mask is read: (L, S) query x key, or (B, S) key padding.
enum class Dims2 { QueryKey, BatchKey };

enum class TileClass { Empty, Full, Partial };

// Window sizes: no limit.
inline constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();

struct MaskShape {
  int64_t batch = 1;
  int64_t heads = 1;
  int64_t q_len = 0;
  int64_t k_len = 0;
};

namespace detail {
class MaskPart;
class BoundMaskPart;
}  // namespace detail

class BoundMask;

class Mask {
 public:
  // The empty mask: every pair may attend.
  Mask() = default;

  // True when the mask has no parts (allows every pair, no bias).
  bool allows_all() const noexcept { return parts_.empty(); }

  // Both must allow; biases add.
  friend Mask operator&(const Mask& a, const Mask& b);
  Mask& operator&=(const Mask& other);

  // Checks that every part fits the shape (throws Error naming "mask") and
  // prepares per-shape data (dense predicates, broadcast strides).
  BoundMask bind(const MaskShape& shape) const;

  // Dense additive matrix (B, H, Lq, Lk): 0 (or the bias) where allowed,
  // -inf where masked. For tests and pictures.
  Tensor<float> materialize(int64_t batch, int64_t heads, int64_t q_len, int64_t k_len) const;

  // "causal(top_left) & key_lengths(2)"; "all" for the empty mask.
  std::string describe() const;

  // For the library's own parts.
  explicit Mask(std::shared_ptr<const detail::MaskPart> part);
  const std::vector<std::shared_ptr<const detail::MaskPart>>& parts() const noexcept {
    return parts_;
  }

 private:
  std::vector<std::shared_ptr<const detail::MaskPart>> parts_;
};

class BoundMask {
 public:
  const MaskShape& shape() const noexcept { return shape_; }
  bool allows_all() const noexcept { return parts_.empty(); }
  // True if some allowed element may carry a non-zero bias.
  bool has_bias() const noexcept { return has_bias_; }

  // Exact classification of the tile [q_begin, q_end) x [k_begin, k_end) of
  // batch b, head h (the ranges clipped to the bound shape). An empty range
  // is Empty. Each part answers in O(1) or O(its data in the tile); when two
  // or more parts each cut the tile, Empty vs Partial takes a scan of the
  // tile until an element they all allow is found (the whole tile when
  // there is none). Every member below: Error naming b, h, i, j or the range for a
  // position outside the bound (B, H, Lq, Lk).
  TileClass classify(int64_t b, int64_t h, int64_t q_begin, int64_t q_end, int64_t k_begin,
                     int64_t k_end) const;

  // out[j - k_begin] = additive value of (b, h, i, j) for j in [k_begin, k_end):
  // -inf where masked, else the sum of the parts' biases (0 without bias),
  // saturated at float's finite range so an allowed element is never +-inf.
  void row_values(int64_t b, int64_t h, int64_t i, int64_t k_begin, int64_t k_end,
                  float* out) const;

  // The same values for a tile, key-major: out[(j - k_begin) * ld + (i - q_begin)]
  // for i in [q_begin, q_end), j in [k_begin, k_end) (ld >= q_end - q_begin).
  // The layout the fused kernel keeps its score tiles in.
  void tile_values(int64_t b, int64_t h, int64_t q_begin, int64_t q_end, int64_t k_begin,
                   int64_t k_end, float* out, int64_t ld) const;

  bool allowed(int64_t b, int64_t h, int64_t i, int64_t j) const;
  float value(int64_t b, int64_t h, int64_t i, int64_t j) const;

 private:
  friend class Mask;
  MaskShape shape_;
  bool has_bias_ = false;
  std::vector<std::shared_ptr<const detail::BoundMaskPart>> parts_;
};

// ---- parts -----------------------------------------------------------------

// Look-ahead mask: key j is visible to query i iff j <= i + offset, offset = 0
// (TopLeft) or Lk - Lq (BottomRight).
Mask causal(Align align = Align::TopLeft);

// Band around the (aligned) diagonal: i' - left <= j <= i' + right with
// i' = i + offset. left, right >= 0; kUnbounded for no limit.
// causal(a) == sliding_window(kUnbounded, 0, a).
Mask sliding_window(int64_t left, int64_t right = 0, Align align = Align::TopLeft);

// Prefix-LM: the first n keys are visible to every query, the rest causally:
// j < n or j <= i + offset. n >= 0.
Mask prefix_lm(int64_t n, Align align = Align::TopLeft);

// Packed sequences (block diagonal): i and j may attend iff they carry the same
// document id. ids: int32/int64, (L) shared by the batch or (B, L); any values,
// sorted (the usual packing, fastest) or not. Self attention: Lq == Lk == L.
Mask documents(const AnyView& ids);
// Cross attention between packed sequences: query ids (Lq) or (B, Lq), key ids
// (Lk) or (B, Lk).
Mask documents(const AnyView& query_ids, const AnyView& key_ids);

// Padding from lengths: key j of batch b is visible iff j < lengths[b];
// 0 <= lengths[b] <= Lk.
Mask key_lengths(std::span<const int64_t> lengths);
// Query i of batch b attends iff i < lengths[b]; other rows are empty rows.
Mask query_lengths(std::span<const int64_t> lengths);

// Dense masks, with PyTorch broadcasting against (B, H, Lq, Lk):
//   (S)                        every row
//   (L, S)                     Dims2::QueryKey (default)
//   (B, S)                     Dims2::BatchKey: key padding
//   (B, L, S) or (B*H, L, S)   the first dim is B*H, B, or 1 (read in that
//                              order at bind(); they agree when H == 1)
//   (B, H, L, S)
// Any dimension may be 1 (broadcast). The data is copied. A shape that does
// not fit the bound (B, H, Lq, Lk) is an Error at bind().
//
// keep: dtype bool, true = may attend.
Mask keep(const AnyView& m, Dims2 dims2 = Dims2::QueryKey);
// block: dtype bool, true = masked.
Mask block(const AnyView& m, Dims2 dims2 = Dims2::QueryKey);
// bias: float32/float64 added to the scores; -inf = masked. NaN, +inf and
// finite float64 values beyond float32's range are errors.
Mask bias(const AnyView& m, Dims2 dims2 = Dims2::QueryKey);

// ALiBi: bias(b, h, i, j) = -slopes[h] * |i + offset - j|; masks nothing
// (combine with causal() for the usual decoder form). slopes: (H), finite.
Mask alibi(std::span<const float> slopes, Align align = Align::TopLeft);
// The slopes of the ALiBi paper: 2^(-8 k / H), k = 1..H (H a power of two;
// otherwise those of the largest power of two below H, then every other slope
// of twice that, as in the paper's code). num_heads >= 1.
std::vector<float> alibi_slopes(int64_t num_heads);

// Any rule, evaluated once per bound shape into a dense map.
using MaskPredicate = std::function<bool(int64_t b, int64_t h, int64_t i, int64_t j)>;
Mask predicate(MaskPredicate fn, std::string name = "predicate");

// ---- adapters: each names the convention it reads ----------------------------

// torch.nn.MultiheadAttention: attn_mask bool (true = masked) or float additive,
// (L, S) or (B*num_heads, L, S); key_padding_mask (B, S) bool (true = masked)
// or float additive. num_heads is needed for a 3-D attn_mask and must divide
// its first dim. Other dtypes (int, uint8) are errors, as in PyTorch 2.x.
// Either may be absent (empty AnyView).
Mask from_torch_mha_mask(const AnyView& attn_mask = {}, const AnyView& key_padding_mask = {},
                         int64_t num_heads = 0);

// torch.nn.functional.scaled_dot_product_attention: attn_mask bool (true = may
// attend) or float additive, rank 1..4 broadcast right-aligned against
// (B, H, L, S) — so rank 3 is (H, L, S), not (B, L, S);
// is_causal is top-left. Like PyTorch, both at once is an error.
Mask from_sdpa_mask(const AnyView& attn_mask = {}, bool is_causal = false);

// Hugging Face attention_mask: (B, S) with 1 = attend, 0 = padding (bool, int
// or float; other values are errors); or the 4-D (B, 1|H, L|1, S) form:
// bool/int 1 = attend (0/1 only), or float additive as transformers builds it
// (0 = attend; the dtype minimum, anything at or below float32's lowest value
// such as sums of minimums, and -inf = masked; other values add as a bias).
// Absent: every pair may attend.
Mask from_hf_attention_mask(const AnyView& attention_mask);

// Keras MultiHeadAttention: attention_mask (B, T, S), 1/true = attend (bool,
// int or float, 0/1 only), shared by every head (never read as B*H);
// use_causal_mask adds a top-left look-ahead mask.
Mask from_keras_mask(const AnyView& attention_mask = {}, bool use_causal_mask = false);

// ONNX Attention (opset 23): attn_mask bool (true = attend) or float additive,
// broadcast right-aligned against (B, H, Lq, Lk); is_causal (top-left) is
// applied as well as the mask, not instead of it.
Mask from_onnx_attention_mask(const AnyView& attn_mask = {}, bool is_causal = false);

// The look-ahead pattern of the write-ups: (1, size, size), true on and below
// the diagonal (true = may attend).
Tensor<bool> subsequent_mask(int64_t size);

}  // namespace maskattn
