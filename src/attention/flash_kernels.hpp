// The flash backend's per-target kernels (internal): each entry point runs
// one task of the tiled online softmax, dispatched at run time to the best
// SIMD target Highway compiled (attention/flash_kernels.cpp). No SIMD types
// here; the driver (attention/flash.cpp) plans the tasks and the threads.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/attention_call.hpp"

namespace maskattn::detail {

// Tile sizes of one call (chosen by plan_tiles() in attention/tiles.hpp).
struct FlashTiles {
  int64_t q_block = 0;  // Bq: queries per tile, the micro-kernel's register block
  int64_t k_block = 0;  // Bk: keys per tile
};

// Rows [q0, q1) (q1 - q0 <= Bq) of query head h of batch b, against keys
// [k_begin, k_end).
struct TileTask {
  int64_t b = 0, h = 0, q0 = 0, q1 = 0, k_begin = 0, k_end = 0;
};

// Unnormalised results of a task over part of the keys, merged later by
// log-sum-exp: m (Bq) running maxima, l (Bq) sums of exp(s - m), ot (Dv, Bq)
// sums of exp(s - m) * dropout * v, queries along the rows.
struct PartialResult {
  float* m = nullptr;
  float* l = nullptr;
  float* ot = nullptr;
};

// Queries per tile of the target that runs: the register block of the tile
// micro-kernels (2 vectors of float lanes).
int64_t flash_query_block();
// Name of that target ("AVX3", "AVX2", "EMU128", ...) and whether the bf16
// micro-kernels (AVX-512 BF16) serve bfloat16 inputs on it.
const char* flash_target_name();
bool flash_uses_bf16_dot();

// For tests: the SIMD targets (Highway's HWY_* bits) the kernels were
// compiled for and this CPU runs, best first; and a way to make dispatch use
// one of them (0: back to the best).
std::vector<int64_t> flash_targets();
void force_flash_target(int64_t target);

// Forward of one task. With partial == nullptr the task covers all keys and
// writes its rows of c.out and, when wanted, c.lse (empty rows as
// c.empty_rows says); else it writes partial.
void flash_forward_tile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t,
                        const PartialResult* partial);

// Attention weights of one task's rows over all keys, from the saved
// log-sum-exp lse (B, Hq, Lq) of the forward: p = exp(s - lse) * head_mask *
// dropout, written to c.weights (empty rows as c.empty_rows says).
void flash_weights_tile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t,
                        View<const float, 3> lse);

}  // namespace maskattn::detail
