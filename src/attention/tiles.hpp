// Tile sizes of the flash backend: one documented function (internal).
#pragma once

#include <cstdint>

#include "attention/flash_kernels.hpp"

namespace maskattn::detail {

// Tiles for a call with head dims d (q, k) and dv (v), elem_bytes bytes per
// input element, on a target whose micro-kernels hold q_block queries and
// whose vectors hold `lanes` floats.
FlashTiles plan_tiles(int64_t d, int64_t dv, int64_t elem_bytes, int64_t q_block, int64_t lanes);

// Rows (query head, query) per row-path task.
inline constexpr int64_t kRowsPerTask = 16;

// Whether a call with lq queries per head and `group` query heads per
// key/value head takes the row path (keys in the lanes) rather than tiles of
// q_block queries of one head.
bool use_row_path(int64_t lq, int64_t group, int64_t q_block);

// Key ranges per (b, h, query block): more than one only when the call has
// too few tasks to keep `threads` threads busy (decoding one token against a
// long KV cache); the partial results are merged by log-sum-exp.
int64_t plan_key_splits(int64_t tasks, int64_t k_len, int64_t k_block, int64_t threads);

}  // namespace maskattn::detail
