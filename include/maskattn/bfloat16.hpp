// bfloat16: the upper 16 bits of an IEEE float32 (8 exponent bits, 7 mantissa
// bits). attention() takes q, k, v stored as bfloat16 and computes in float32
// (see attention.hpp); this is the storage type and its conversions.
#pragma once

#include <bit>
#include <cstdint>

namespace maskattn {

struct BFloat16 {
  uint16_t bits = 0;
};

// Exact: every bfloat16 is a float32.
constexpr float to_float(BFloat16 x) noexcept {
  return std::bit_cast<float>(static_cast<uint32_t>(x.bits) << 16);
}

// Round to nearest, ties to even (what PyTorch's .to(torch.bfloat16) does);
// NaN stays NaN (quiet), +-inf stays +-inf, values past bfloat16's range round
// to +-inf.
constexpr BFloat16 to_bfloat16(float f) noexcept {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return BFloat16{static_cast<uint16_t>((u + rounding) >> 16)};
}

}  // namespace maskattn
