// See simd_targets.hpp. Compiled with the library's HWY_DISABLED_TARGETS, so
// HWY_TARGETS here is the set every kernel file was compiled for.
#include "kernels/simd_targets.hpp"

#include "hwy/highway.h"
#include "hwy/targets.h"

namespace maskattn::detail {

std::vector<int64_t> simd_targets() { return hwy::SupportedAndGeneratedTargets(); }
void force_simd_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }
const char* simd_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace maskattn::detail
