// The flash backend (internal): tiled online softmax with O(L) extra memory,
// tiles the mask removes skipped, SIMD micro-kernels dispatched at run time,
// all cores. Serves every call attention() accepts.
#pragma once

#include "attention/attention_call.hpp"

namespace maskattn::detail {

void attention_flash(const AttentionCall& call);

}  // namespace maskattn::detail
