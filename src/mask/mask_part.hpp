// The parts a Mask is made of (internal).
//
// A MaskPart is an immutable description (shared by every copy of a Mask);
// bind() checks it against a problem shape and returns a BoundMaskPart that
// answers two questions for that shape:
//   classify   for a tile of queries x keys: Empty / Full / Partial, exactly,
//              considering only which pairs are allowed (biases do not count);
//   apply_row  for one query row: set masked elements to -inf and add the
//              part's bias to the allowed ones;
//   apply_tile the same for a tile stored key-major (one row per key, queries
//              along it: the layout of the flash kernel's score tiles).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "maskattn/mask.hpp"

namespace maskattn::detail {

class BoundMaskPart {
 public:
  virtual ~BoundMaskPart() = default;
  // Tile [q0, q1) x [k0, k1) of (b, h); the caller guarantees a non-empty
  // tile inside the bound shape.
  virtual TileClass classify(int64_t b, int64_t h, int64_t q0, int64_t q1, int64_t k0,
                             int64_t k1) const = 0;
  // row[j - k0] for j in [k0, k1): -inf where this part masks (b, h, i, j),
  // += bias where it allows. row already holds the other parts' values.
  virtual void apply_row(int64_t b, int64_t h, int64_t i, int64_t k0, int64_t k1,
                         float* row) const = 0;
  // tile[(j - k0) * ld + (i - q0)] for i in [q0, q1), j in [k0, k1): as
  // apply_row, one key per row of the tile.
  virtual void apply_tile(int64_t b, int64_t h, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                          float* tile, int64_t ld) const = 0;
  virtual bool has_bias() const { return false; }
};

class MaskPart {
 public:
  virtual ~MaskPart() = default;
  virtual std::string describe() const = 0;
  // Throws Error naming "mask" when the part does not fit the shape.
  virtual std::shared_ptr<const BoundMaskPart> bind(const MaskShape& shape) const = 0;
};

// Throws Error(argument) for an Align that is neither TopLeft nor BottomRight
// (a cast integer): it would silently read as BottomRight.
void check_align(Align align, std::string_view argument);

// Classification of the band lo <= j - i <= hi over a tile (exact: every
// integer j - i between k0 - (q1 - 1) and (k1 - 1) - q0 occurs in the tile).
TileClass classify_band(int64_t lo, int64_t hi, int64_t q0, int64_t q1, int64_t k0, int64_t k1);

// acc + bias for one element. A sum of finite values that overflows saturates
// at float's range: an allowed element must never read as -inf (masked, which
// classify() did not say) nor +inf (NaN after softmax). -inf in either stays.
inline float add_bias(float acc, float bias) {
  const float x = acc + bias;
  if (std::isfinite(x) || !std::isfinite(acc) || !std::isfinite(bias)) return x;
  return x > 0.0f ? std::numeric_limits<float>::max() : std::numeric_limits<float>::lowest();
}

// Classification of a tile from a count of allowed elements.
inline TileClass class_of_count(int64_t allowed, int64_t total) {
  return allowed == 0 ? TileClass::Empty : allowed == total ? TileClass::Full : TileClass::Partial;
}

}  // namespace maskattn::detail
