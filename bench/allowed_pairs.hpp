// Allowed (b, h, i, j) pairs of a bound mask, counted exactly and fast: the
// useful work of an attention call under that mask.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/parallel_for.hpp"
#include "maskattn/mask.hpp"

namespace bench {

// Allowed keys of row (b, h, i) in [k0, k1): ranges the mask classifies Empty
// or Full count at once; Partial ones are halved down to 256 keys, whose
// values are read and counted.
inline int64_t allowed_keys(const maskattn::BoundMask& m, int64_t b, int64_t h, int64_t i,
                            int64_t k0, int64_t k1, std::vector<float>& values) {
  switch (m.classify(b, h, i, i + 1, k0, k1)) {
    case maskattn::TileClass::Empty: return 0;
    case maskattn::TileClass::Full: return k1 - k0;
    case maskattn::TileClass::Partial: break;
  }
  if (k1 - k0 > 256) {
    const int64_t mid = k0 + (k1 - k0) / 2;
    return allowed_keys(m, b, h, i, k0, mid, values) + allowed_keys(m, b, h, i, mid, k1, values);
  }
  m.row_values(b, h, i, k0, k1, values.data());
  return std::count_if(values.begin(), values.begin() + (k1 - k0),
                       [](float x) { return x != -std::numeric_limits<float>::infinity(); });
}

// Allowed (b, h, i, j) pairs of mask bound to shape.
inline int64_t allowed_pairs(const maskattn::Mask& mask, const maskattn::MaskShape& shape) {
  const maskattn::BoundMask m = mask.bind(shape);
  const int64_t heads = shape.heads;
  std::vector<int64_t> per_head(static_cast<std::size_t>(shape.batch * heads));
  maskattn::detail::parallel_for(shape.batch * heads, [&](int64_t bh) {
    std::vector<float> values(256);
    int64_t n = 0;
    for (int64_t i = 0; i < shape.q_len; ++i)
      n += allowed_keys(m, bh / heads, bh % heads, i, 0, shape.k_len, values);
    per_head[static_cast<std::size_t>(bh)] = n;
  });
  int64_t total = 0;
  for (int64_t n : per_head) total += n;
  return total;
}

}  // namespace bench
