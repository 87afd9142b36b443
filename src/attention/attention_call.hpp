// The checked arguments of one attention() or attention_backward() call, as
// every backend receives them (internal). Both validate everything once, at
// the boundary; backends trust what they are given.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::detail {

// q, k, v in one storage type T (float or BFloat16).
template <class T>
struct Inputs {
  View<const T, 4> q;  // (B, Hq, Lq, D)
  View<const T, 4> k;  // (B, Hkv, Lk, D), Hq % Hkv == 0
  View<const T, 4> v;  // (B, Hkv, Lk, Dv)
};

struct AttentionCall {
  // The inputs in their storage type: f32 when !is_bf16, else bf16.
  bool is_bf16 = false;
  Inputs<float> f32;
  Inputs<BFloat16> bf16;
  int64_t batch = 0, hq = 0, hkv = 0, lq = 0, lk = 0, d = 0, dv = 0;
  View<float, 4> out;               // (B, Hq, Lq, Dv)
  View<float, 4> weights;           // (B, Hq, Lq, Lk) or empty (not wanted)
  View<float, 3> lse;               // (B, Hq, Lq) or empty (not wanted)
  const BoundMask* mask = nullptr;  // bound to (B, Hq, Lq, Lk)
  double scale = 1.0;               // finite
  double softcap = 0.0;             // finite, >= 0; 0 = off
  float dropout_p = 0.0f;           // in [0, 1)
  uint64_t seed = 0;
  std::vector<double> head_mask{};  // (B, Hq) flattened, or empty = 1 everywhere
  // Zero or NaN. EmptyRows::Error is settled before dispatch: a call that
  // reaches a backend with it has no empty rows.
  EmptyRows empty_rows = EmptyRows::Zero;

  int64_t group() const noexcept { return hq / hkv; }  // query heads per key/value head
  // What an empty row's outputs and weights hold: 0, or NaN under EmptyRows::NaN.
  float empty_fill() const noexcept {
    return empty_rows == EmptyRows::NaN ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
  }
  double head_multiplier(int64_t b, int64_t h) const noexcept {
    return head_mask.empty() ? 1.0 : head_mask[static_cast<std::size_t>(b * hq + h)];
  }
};

// The checked arguments of one attention_backward() call: the forward's call
// (inputs, mask and options; its out, weights and lse views empty), the
// forward's results and the gradient views.
struct BackwardCall {
  AttentionCall fwd;          // float32 inputs (fwd.f32)
  View<const float, 4> out;   // (B, Hq, Lq, Dv) the forward's output
  View<const float, 3> lse;   // (B, Hq, Lq) its log-sum-exp (-inf: an empty row)
  View<const float, 4> dout;  // (B, Hq, Lq, Dv) dloss / dout
  View<float, 4> dq;          // (B, Hq, Lq, D)
  View<float, 4> dk;          // (B, Hkv, Lk, D)
  View<float, 4> dv;          // (B, Hkv, Lk, Dv)
};

}  // namespace maskattn::detail
