// The checked arguments of one attention() call, as every backend receives
// them (internal). attention() validates everything once, at the boundary;
// backends trust what they are given.
#pragma once

#include <cstdint>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::detail {

struct AttentionCall {
  View<const float, 4> q;           // (B, Hq, Lq, D)
  View<const float, 4> k;           // (B, Hkv, Lk, D), Hq % Hkv == 0
  View<const float, 4> v;           // (B, Hkv, Lk, Dv)
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
};

}  // namespace maskattn::detail
