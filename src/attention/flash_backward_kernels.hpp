// The flash backward's per-target kernel (internal): one task of the
// FlashAttention-2 backward, dispatched at run time to the best SIMD target
// Highway compiled (attention/flash_backward_kernels.cpp). No SIMD types
// here; the driver (attention/flash_backward.cpp) plans the tasks and threads.
#pragma once

#include <cstdint>

#include "attention/attention_call.hpp"
#include "attention/flash_kernels.hpp"

namespace maskattn::detail {

// Key/value head hk of batch b, its key tiles split, split + splits,
// split + 2 splits, ... (tiles of Bk keys from key 0; splits == 1: all of
// them), against every query of the query heads that read it.
struct BackwardTask {
  int64_t b = 0, hk = 0;
  int64_t split = 0, splits = 1;
};

// Gradients of one task. dk and dv of its key tiles are its own: written to
// c.dk, c.dv. dq of the group's query heads: with dq_partial == nullptr
// (the task then holds every key tile) written to c.dq; else this task's
// share of it, (Hq / Hkv, Lq, D) contiguous, written to dq_partial for the
// driver to sum over the splits.
void flash_backward_task(const BackwardCall& c, const FlashTiles& tiles, const BackwardTask& t,
                         float* dq_partial);

}  // namespace maskattn::detail
