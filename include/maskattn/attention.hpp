// Scaled dot-product attention with a Mask.
//
//   q   (B, Hq,  Lq, D)     k (B, Hkv, Lk, D)     v (B, Hkv, Lk, Dv)
//   out (B, Hq,  Lq, Dv)    weights (B, Hq, Lq, Lk)    lse (B, Hq, Lq)
//
// For each batch b, query head h (key/value head h / (Hq / Hkv): grouped-query
// and multi-query attention) and query i:
//   s_j   = scale * q_i . k_j                        (scale default 1/sqrt(D))
//   s_j   = softcap * tanh(s_j / softcap)            (when softcap > 0)
//   s_j  += mask value (bias, or -inf where masked)
//   lse   = log sum_j exp(s_j)                       (natural log)
//   p_j   = exp(s_j - lse)
//   p_j  *= head_mask[b, h]                          (Hugging Face head_mask)
//   p_j  *= keep_j / (1 - dropout_p)                 (inverted dropout)
//   out_i = sum_j p_j v_j                            weights = p
// A row with no allowed key (an empty row) follows opts.empty_rows.
//
// Non-finite inputs are propagated, never invented. With finite q, k, v (and
// finite options, head mask and biases) every result is finite (an empty
// row: as opts.empty_rows says). A NaN in q[b, h, i] makes row i's out, lse
// and allowed weights NaN; a NaN in k[b, hk, j] the rows that may attend key
// j; a NaN in v[b, hk, j, x] column x of those rows' out whose weight for j
// is not 0 (a key dropout drops adds nothing, as a masked one). Nothing else
// changes (bit for bit): a key the mask hides from a row never reaches it,
// and weights the mask forbids stay exactly 0. In the backward a masked
// (query, key) pair contributes nothing either. +-inf inputs give +-inf or
// NaN where inf - inf arises, and nothing outside the rows they reach. Every
// backend keeps this contract.
//
// Views may have any non-negative strides on their first three dimensions
// (BHLD, or BLHD memory viewed with transposed(1, 2)); the last is contiguous.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "maskattn/bfloat16.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn {

// What a fully masked query row gives.
enum class EmptyRows {
  Zero,   // out 0, weights 0, lse -inf (default)
  NaN,    // out NaN, weights NaN, lse -inf: what softmax over all -inf gives
  Error,  // throw Error naming the first empty row
};

enum class Backend {
  Auto,       // the best backend for the call: flash (it serves every call)
  Reference,  // the textbook path: slow, obviously correct, the oracle
  Flash,      // fused, tiled online softmax; skips what the mask removes
};

std::string_view backend_name(Backend b);

struct AttentionOptions {
  std::optional<float> scale;  // default 1/sqrt(D); finite
  float dropout_p = 0.0f;      // in [0, 1)
  uint64_t seed = 0;           // dropout stream: same seed -> same result on any thread count
  AnyView head_mask;           // float32/float64, (Hq) or (B, Hq), finite; absent = 1
  float softcap = 0.0f;        // >= 0; 0 = off
  EmptyRows empty_rows = EmptyRows::Zero;
  Backend backend = Backend::Auto;
};

// Writes out (and weights, lse when given: an empty View means "not wanted").
// Checks every argument and throws Error naming the first bad one.
void attention(View<const float, 4> q, View<const float, 4> k, View<const float, 4> v,
               View<float, 4> out, const Mask& mask = {}, const AttentionOptions& opts = {},
               View<float, 4> weights = {}, View<float, 3> lse = {});

// The same with q, k, v stored as bfloat16: products and sums in float32
// (flash: the CPU's bf16 dot-product instructions where it has them, with the
// probabilities rounded to bfloat16 before they meet v, as GPU flash
// attention does; reference: in double), results in float32.
void attention(View<const BFloat16, 4> q, View<const BFloat16, 4> k, View<const BFloat16, 4> v,
               View<float, 4> out, const Mask& mask = {}, const AttentionOptions& opts = {},
               View<float, 4> weights = {}, View<float, 3> lse = {});

// Gradients of the float32 attention(). Takes the forward call's q, k, v,
// mask and opts (the same scale, softcap, dropout_p and seed, head_mask and
// empty_rows: the dropout is replayed from the seed), its out and lse, and
// dout, the gradient of the loss with respect to out; writes dq (like q), dk
// and dv (like k and v: a key/value head's gradient is summed over the query
// heads that read it). The probabilities are recomputed from lse, so memory
// is O(L), not O(L^2). A row with no allowed key (lse -inf) contributes
// nothing. dq, dk and dv are overwritten; they must not overlap each other
// or the inputs. opts.backend chooses the path as for attention().
void attention_backward(View<const float, 4> q, View<const float, 4> k, View<const float, 4> v,
                        View<const float, 4> out, View<const float, 3> lse,
                        View<const float, 4> dout, View<float, 4> dq, View<float, 4> dk,
                        View<float, 4> dv, const Mask& mask = {},
                        const AttentionOptions& opts = {});

// The dropout decision of attention(): true if element (b, h, i, j) is kept.
// Counter-based (a hash of seed and position), so every backend and thread
// count draws the same stream.
bool dropout_keep(uint64_t seed, float dropout_p, const MaskShape& shape, int64_t b, int64_t h,
                  int64_t i, int64_t j) noexcept;

}  // namespace maskattn
