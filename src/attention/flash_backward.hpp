// The flash backend's backward (internal): FlashAttention-2's backward with
// the probabilities recomputed from the forward's log-sum-exp, O(L) extra
// memory, tiles the mask removes skipped, SIMD kernels dispatched at run
// time, all cores.
#pragma once

#include "attention/attention_call.hpp"

namespace maskattn::detail {

void attention_backward_flash(const BackwardCall& call);

}  // namespace maskattn::detail
