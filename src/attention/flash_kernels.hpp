// The flash backend's per-target kernels (internal): each entry point runs
// one task of the tiled online softmax, dispatched at run time to the best
// SIMD target Highway compiled (attention/flash_kernels.cpp). No SIMD types
// here; the driver (attention/flash.cpp) plans the tasks and the threads.
#pragma once

#include <cstdint>

#include "attention/attention_call.hpp"

namespace maskattn::detail {

// Tile sizes of one call (chosen by plan_tiles() in attention/tiles.hpp).
struct FlashTiles {
  int64_t q_block = 0;      // Bq: queries per tile, the micro-kernel's register block
  int64_t k_block = 0;      // Bk: keys per tile
  int64_t row_k_block = 0;  // keys per block of the row path (a multiple of 16)
};

// Rows [q0, q1) (q1 - q0 <= Bq) of query head h of batch b, against keys
// [k_begin, k_end).
struct TileTask {
  int64_t b = 0, h = 0, q0 = 0, q1 = 0, k_begin = 0, k_end = 0;
};

// Rows [r0, r1) of the row path against keys [k_begin, k_end): the few
// queries (Lq small: decoding) of every query head that reads key/value head
// hk of batch b, row r being query r % Lq of head hk * (Hq / Hkv) + r / Lq.
// They share each key and value row the task loads.
struct RowTask {
  int64_t b = 0, hk = 0, r0 = 0, r1 = 0, k_begin = 0, k_end = 0;
};

// Row r of a row task: its query head and query.
struct RowQuery {
  int64_t h, i;
};
inline RowQuery row_query(const AttentionCall& c, const RowTask& t, int64_t r) {
  return {t.hk * c.group() + r / c.lq, r % c.lq};
}

// Unnormalised results of a task over part of the keys, merged later by
// log-sum-exp: per query (lane of a tile, or row of a row task) its running
// maximum m of the base-2 scores s2 = s log2 e, its sum l of 2^(s2 - m), and
// its outputs o, the sums of 2^(s2 - m) * dropout * v, output column x of query n at
// o[x * x_stride + n * n_stride].
struct PartialResult {
  float* m = nullptr;
  float* l = nullptr;
  float* o = nullptr;
  int64_t x_stride = 0, n_stride = 0;
};

// Queries per tile of the target that runs: the register block of the tile
// micro-kernels (2 vectors of float lanes).
int64_t flash_query_block();

// Writes row (b, h, i)'s c.lse (when wanted) from its maximum score m2 (in
// base-2 units, as the kernels keep scores) and sum l of 2^(s2 - m2):
// m2 ln 2 + log l, -inf for an empty row (l == 0), NaN for NaN.
void write_lse(const AttentionCall& c, int64_t b, int64_t h, int64_t i, double m2, double l);
// Name of that target ("AVX3", "AVX2", "SCALAR", ...).
const char* flash_target_name();

// Forward of one task. With partial == nullptr the task covers all keys and
// writes its rows of c.out and, when wanted, c.lse (empty rows as
// c.empty_rows says); else it writes partial.
void flash_forward_tile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t,
                        const PartialResult* partial);

// Forward of one row task (as flash_forward_tile).
void flash_forward_rows(const AttentionCall& c, const FlashTiles& tiles, const RowTask& t,
                        const PartialResult* partial);

// Attention weights of one task's rows over all keys: a first sweep over the
// key tiles finds each row's maximum score m and sum l, a second writes
// p = exp((s - m) - log l) * head_mask * dropout to c.weights (empty rows as
// c.empty_rows says). Its own m rather than the forward's: s - m is then
// exact (the same scores, bit for bit), where s - lse would carry the
// rounding of a float lse of the scores' magnitude, and the forward may have
// taken the row path, whose dot products round differently.
void flash_weights_tile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t);

}  // namespace maskattn::detail
