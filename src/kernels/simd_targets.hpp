// The SIMD targets the library's Highway kernels were compiled for (flash
// attention, activations), for tests that run a kernel on every one
// (internal).
#pragma once

#include <cstdint>
#include <vector>

namespace maskattn::detail {

// Highway's HWY_* target bits compiled and supported by this CPU, best first.
std::vector<int64_t> simd_targets();
// Makes run-time dispatch use `target` (0: back to the best).
void force_simd_target(int64_t target);
// "AVX3", "AVX2", "SCALAR", ...
const char* simd_target_name(int64_t target);

}  // namespace maskattn::detail
