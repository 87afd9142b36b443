// Tile sizes of the flash backend, chosen in one place.
//
// Bq (queries per tile) is not a choice: it is the register block of the
// target's micro-kernels, two vectors of float lanes (32 on AVX-512, 16 on
// AVX2), because queries live in the lanes.
//
// Bk (keys per tile) trades three costs:
//   - per tile, the online softmax rescales the (Dv, Bq) accumulator, the
//     mask classifies the tile, and each micro-kernel call loads and stores
//     its accumulators: small tiles pay these more often;
//   - a tile the mask cuts (Partial) is computed whole but for the steps of
//     8 keys trimmed off its ends: large tiles waste a little more along a
//     mask's edges;
//   - the score tile (Bk x Bq floats) and the mask tile should stay close to
//     L1 (32 KiB per core here) with the query block (D x Bq), and the key and
//     value rows of the tile (Bk x (D + Dv) elements) in L2 (1 MiB per core).
// Measured on the benchmark shapes (bench/bench_flash, 3 rounds each, ratio
// of useful GFLOP/s to the same run's sgemm rate), Bk = 32 / 64 / 96 / 128:
//   B=1 H=16 L=2048 D=64 causal     0.74  0.79  0.79  0.83
//   B=1 H=32 L=4096 D=128 causal    0.87  0.88  0.87  0.90
//   bf16 / fp32 throughput on both  1.52, 1.59 / 1.50, 1.60 / 1.63, 1.68 / 1.61, 1.61
// and level within noise on L = 512 causal, the sliding window and packed
// documents (whose skipping the trimming keeps exact). So Bk = 128 for every
// head dim; at D = 256 the query block alone is 32 KiB, and it then lives in
// L2 like the key and value rows.
//
// The row path (decoding) reads 128 keys per block: its per-block work
// (classifying each row, one softmax step per row) is small beside 128 key
// and value rows, and the next block's keys are prefetched while this one's
// scores compute, its values while this one's values accumulate (256 keys
// per block measured level with 128 on the decode benchmark).
#include "attention/tiles.hpp"

#include <algorithm>

namespace maskattn::detail {

FlashTiles plan_tiles(int64_t q_block) { return {q_block, 128, 128}; }

FlashTiles plan_backward_tiles(int64_t q_block) { return {q_block, 64, 0}; }

bool use_row_path(int64_t lq, int64_t q_block) {
  // A tile would fill fewer than a quarter of its lanes.
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
