// Tile sizes of the flash backend, chosen in one place.
//
// Bq (queries per tile) is not a choice: it is the register block of the
// target's micro-kernels, two vectors of float lanes (32 on AVX-512, 16 on
// AVX2), because queries live in the lanes.
//
// Bk (keys per tile) trades three costs:
//   - per tile, the online softmax rescales the (Dv, Bq) accumulator and the
//     mask classifies the tile: small tiles pay these more often;
//   - a tile the mask cuts (Partial) is computed whole: large tiles waste
//     more along a mask's edges (the diagonal of causal, the sides of a
//     sliding window, the boundaries of packed documents);
//   - the tile's key and value rows (Bk x (D + Dv) elements) are read once
//     per query block from L2, and the score tile (Bk x Bq floats) should
//     stay in L1 (32 KiB per core here) with the query block (D x Bq).
// Bk = 64 keeps the score tile at 8 KiB and the key/value rows of D = Dv = 128
// fp32 at 64 KiB (L2 is 1 MiB per core), and measured best or level with 32
// and 128 on the benchmark shapes (BENCHMARKS.md); wider heads get 32 so the
// score and query tiles still fit L1.
#include "attention/tiles.hpp"

#include <algorithm>

namespace maskattn::detail {

FlashTiles plan_tiles(int64_t d, int64_t dv, int64_t elem_bytes, int64_t q_block, int64_t lanes) {
  (void)dv;
  (void)elem_bytes;
  (void)lanes;
  constexpr int64_t kL1Bytes = 32 * 1024;
  // Query block (D x Bq floats) + score tile (Bk x Bq) within L1.
  const int64_t k_block = (d * q_block + 64 * q_block) * 4 <= kL1Bytes ? 64 : 32;
  return {q_block, k_block, 128};
}

bool use_row_path(int64_t lq, int64_t group, int64_t q_block) {
  // A tile would fill fewer than a quarter of its lanes.
  (void)group;
  return lq * 4 < q_block;
}

int64_t plan_key_splits(int64_t tasks, int64_t k_len, int64_t k_block, int64_t threads) {
  if (threads <= 1 || tasks >= 2 * threads) return 1;
  // Enough ranges for two per thread, each at least two tiles long.
  const int64_t want = (2 * threads + tasks - 1) / tasks;
  const int64_t most = std::max<int64_t>(1, k_len / (2 * k_block));
  return std::clamp<int64_t>(want, 1, most);
}

}  // namespace maskattn::detail
