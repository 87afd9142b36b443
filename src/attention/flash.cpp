// The flash backend's driver: plans the tiles and the tasks, runs them on the
// thread pool, merges key-split partial results, and runs the second pass
// that writes the attention weights (flash_weights_tile). The loops
// themselves are per-target SIMD code (attention/flash_kernels.cpp,
// attention/flash_rows.cpp).
//
// Two kinds of task (flash_kernels.hpp): tiles of Bq queries of one head
// (queries in the SIMD lanes), or, when a call has only a few queries
// (decoding), rows — every (query head, query) that reads one key/value head
// — with the keys in the lanes. When those tasks are too few for the
// threads, each also gets a range of the keys, and the ranges' partial
// results are merged by log-sum-exp. Tasks are taken dynamically (a causal
// mask gives query blocks uneven work); each writes only its own rows and
// merges run in a fixed order, so the same input, seed and thread count give
// the same bits whichever thread ran what.
#include "attention/flash.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/flash_kernels.hpp"
#include "attention/tiles.hpp"
#include "core/arena.hpp"
#include "core/parallel_for.hpp"

namespace maskattn::detail {
namespace {

struct Plan {
  FlashTiles tiles;
  bool rows = false;   // the row path
  int64_t blocks = 0;  // per (b, h) query blocks; per (b, hk) row blocks
  int64_t block = 0;   // queries (tile) or rows (row path) per block
  int64_t tasks = 0;
  int64_t splits = 1;     // key ranges per task
  int64_t split_len = 0;  // keys per range (a multiple of the key block)

  int64_t key_block() const { return rows ? tiles.row_k_block : tiles.k_block; }
  int64_t k_begin(const AttentionCall& c, int64_t split) const {
    return std::min(split * split_len, c.lk);
  }
  int64_t k_end(const AttentionCall& c, int64_t split) const {
    return splits == 1 ? c.lk : std::min(k_begin(c, split) + split_len, c.lk);
  }
  TileTask tile(const AttentionCall& c, int64_t t, int64_t split) const {
    const int64_t qb = t % blocks, bh = t / blocks, q0 = qb * block;
    return {bh / c.hq,         bh % c.hq,      q0, std::min(q0 + block, c.lq),
            k_begin(c, split), k_end(c, split)};
  }
  RowTask row(const AttentionCall& c, int64_t t, int64_t split) const {
    const int64_t rb = t % blocks, bh = t / blocks, r0 = rb * block;
    return {bh / c.hkv,        bh % c.hkv,     r0, std::min(r0 + block, c.group() * c.lq),
            k_begin(c, split), k_end(c, split)};
  }
};

// The forward's plan, or (for_weights) the weights pass's: tiles of Bq
// queries per head over all keys, whichever path the forward took.
Plan make_plan(const AttentionCall& c, bool for_weights) {
  Plan p;
  p.tiles = plan_tiles(flash_query_block());
  p.rows = !for_weights && use_row_path(c.lq, p.tiles.q_block);
  if (p.rows) {
    const int64_t rows = c.group() * c.lq;
    p.block = std::min(rows, kRowsPerTask);
    p.blocks = (rows + p.block - 1) / p.block;
    p.tasks = c.batch * c.hkv * p.blocks;
  } else {
    p.block = p.tiles.q_block;
    p.blocks = (c.lq + p.block - 1) / p.block;
    p.tasks = c.batch * c.hq * p.blocks;
  }
  p.splits = for_weights ? 1 : plan_key_splits(p.tasks, c.lk, p.key_block(), max_threads());
  const int64_t blocks_of_keys = (c.lk + p.key_block() - 1) / p.key_block();
  p.split_len = (blocks_of_keys + p.splits - 1) / p.splits * p.key_block();
  return p;
}

// One output row (b, h, i) from its key ranges' partial results (entry n of
// each), merged by log-sum-exp in range order.
void merge_row(const AttentionCall& c, const PartialResult* parts, int64_t splits, int64_t n,
               int64_t b, int64_t h, int64_t i, std::vector<double>& acc) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  float* o = c.out.row(b, h, i);
  double m = kNegInf;
  bool nan = false;
  for (int64_t s = 0; s < splits; ++s) {
    nan = nan || std::isnan(parts[s].l[n]) || std::isnan(parts[s].m[n]);
    if (parts[s].l[n] > 0.0f) m = std::max<double>(m, parts[s].m[n]);
  }
  if (nan || m == kNegInf) {  // NaN in the input, or an empty row
    const float fill = nan ? std::numeric_limits<float>::quiet_NaN() : c.empty_fill();
    std::fill(o, o + c.dv, fill);
    write_lse(c, b, h, i, nan ? fill : kNegInf, nan ? fill : 0.0);
    return;
  }
  double sum = 0.0;
  std::fill(acc.begin(), acc.end(), 0.0);
  for (int64_t s = 0; s < splits; ++s) {
    const PartialResult& p = parts[s];
    if (!(p.l[n] > 0.0f)) continue;
    const double w = std::exp2(static_cast<double>(p.m[n]) - m);  // base-2 scores
    sum += w * p.l[n];
    for (int64_t x = 0; x < c.dv; ++x)
      acc[static_cast<std::size_t>(x)] += w * p.o[x * p.x_stride + n * p.n_stride];
  }
  const double head = c.head_multiplier(b, h);
  for (int64_t x = 0; x < c.dv; ++x)
    o[x] = static_cast<float>(acc[static_cast<std::size_t>(x)] * head / sum);
  write_lse(c, b, h, i, m, sum);
}

void forward(const AttentionCall& c, const Plan& plan) {
  if (plan.splits == 1) {
    parallel_for_dynamic(plan.tasks, [&](int64_t t) {
      if (plan.rows)
        flash_forward_rows(c, plan.tiles, plan.row(c, t, 0), nullptr);
      else
        flash_forward_tile(c, plan.tiles, plan.tile(c, t, 0), nullptr);
    });
    return;
  }
  // Partial results of every (task, range): m, l (block) and o (Dv x block).
  Arena::Frame frame(thread_arena());
  const int64_t per = plan.block * (c.dv + 2), n = plan.tasks * plan.splits;
  float* store = frame.alloc<float>(checked_mul(n, per, "flash partial results"));
  std::vector<PartialResult> parts(static_cast<std::size_t>(n));
  for (int64_t x = 0; x < n; ++x) {
    float* base = store + x * per;
    parts[static_cast<std::size_t>(x)] = {base, base + plan.block, base + 2 * plan.block,
                                          plan.rows ? 1 : plan.block, plan.rows ? c.dv : 1};
  }
  parallel_for_dynamic(n, [&](int64_t x) {
    const int64_t t = x / plan.splits, s = x % plan.splits;
    if (plan.rows)
      flash_forward_rows(c, plan.tiles, plan.row(c, t, s), &parts[static_cast<std::size_t>(x)]);
    else
      flash_forward_tile(c, plan.tiles, plan.tile(c, t, s), &parts[static_cast<std::size_t>(x)]);
  });
  parallel_for(plan.tasks, [&](int64_t t) {
    std::vector<double> acc(static_cast<std::size_t>(c.dv));
    const PartialResult* p = &parts[static_cast<std::size_t>(t * plan.splits)];
    if (plan.rows) {
      const RowTask task = plan.row(c, t, 0);
      for (int64_t r = task.r0; r < task.r1; ++r) {
        const RowQuery rq = row_query(c, task, r);
        merge_row(c, p, plan.splits, r - task.r0, task.b, rq.h, rq.i, acc);
      }
    } else {
      const TileTask task = plan.tile(c, t, 0);
      for (int64_t i = task.q0; i < task.q1; ++i)
        merge_row(c, p, plan.splits, i - task.q0, task.b, task.h, i, acc);
    }
  });
}

}  // namespace

void attention_flash(const AttentionCall& c) {
  if (c.batch * c.hq * c.lq == 0) return;  // no rows to write
  forward(c, make_plan(c, false));
  if (!c.weights.empty()) {
    const Plan weights = make_plan(c, true);
    parallel_for_dynamic(weights.tasks, [&](int64_t t) {
      flash_weights_tile(c, weights.tiles, weights.tile(c, t, 0));
    });
  }
}

}  // namespace maskattn::detail
