// Tile sizes of the flash backend: one documented function (internal).
#pragma once

#include <cstdint>

#include "attention/flash_kernels.hpp"

namespace maskattn::detail {

// Tiles for a call on a target whose micro-kernels hold q_block queries (the
// measurements behind the sizes are in tiles.cpp).
FlashTiles plan_tiles(int64_t q_block);

// Tiles of the backward (attention/flash_backward.cpp): Bq as the forward's,
// Bk its own (row_k_block unused).
FlashTiles plan_backward_tiles(int64_t q_block);

// Rows (query head, query) per row-path task.
inline constexpr int64_t kRowsPerTask = 16;

// Whether a call with lq queries per head takes the row path (keys in the
// lanes, every query head of a key/value head in one task) rather than tiles
// of q_block queries of one head.
bool use_row_path(int64_t lq, int64_t q_block);

// Key ranges per (b, h, query block): more than one only when the call has
// too few tasks to keep `threads` threads busy (decoding one token against a
// long KV cache); the partial results are merged by log-sum-exp.
int64_t plan_key_splits(int64_t tasks, int64_t k_len, int64_t k_block, int64_t threads);

}  // namespace maskattn::detail
