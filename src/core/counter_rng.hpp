// Counter-based random numbers: a value is a pure function of (seed, counter),
// so a stream is the same whatever order or thread draws it. Used by dropout
// (counter = flat (b, h, i, j) index) and MLM masking (counter = token
// position and draw number).
//
// The mix is SplitMix64's finaliser (Steele, Lea, Flood 2014) applied twice,
// with the seed folded in between: fast, and its output passes BigCrush as a
// counter-based generator.
#pragma once

#include <cstdint>

namespace maskattn::detail {

constexpr uint64_t splitmix64(uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr uint64_t counter_hash(uint64_t seed, uint64_t counter) noexcept {
  return splitmix64(splitmix64(counter) ^ (seed * 0xD1B54A32D192ED03ull + 0x2545F4914F6CDD1Dull));
}

// Uniform in [0, 1) with 53 random bits.
constexpr double counter_uniform(uint64_t seed, uint64_t counter) noexcept {
  return static_cast<double>(counter_hash(seed, counter) >> 11) * 0x1.0p-53;
}

}  // namespace maskattn::detail
