// The flash backend's driver: plans the tiles and the tasks, runs them on the
// thread pool, merges key-split partial results, and runs the second pass
// that writes the attention weights from the saved log-sum-exp. The tile
// loop itself is per-target SIMD code (attention/flash_kernels.cpp).
//
// Tasks are (b, h, query block) — and, when those are too few for the
// threads (one-token decoding), key ranges of each — taken dynamically, as
// a causal mask gives the query blocks uneven work. Each task writes only
// its own rows, and a merge runs in a fixed order, so results do not depend
// on which thread ran what: the same input, seed and thread count give the
// same bits.
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

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Plan {
  FlashTiles tiles;
  int64_t q_blocks = 0;  // per (b, h)
  int64_t tasks = 0;     // B * Hq * q_blocks
  int64_t splits = 1;    // key ranges per task
  int64_t split_len = 0; // keys per range (a multiple of Bk)

  TileTask task(const AttentionCall& c, int64_t t, int64_t split) const {
    const int64_t qb = t % q_blocks, bh = t / q_blocks;
    const int64_t q0 = qb * tiles.q_block;
    const int64_t k_begin = std::min(split * split_len, c.lk);
    const int64_t k_end = splits == 1 ? c.lk : std::min(k_begin + split_len, c.lk);
    return {bh / c.hq, bh % c.hq, q0, std::min(q0 + tiles.q_block, c.lq), k_begin, k_end};
  }
};

Plan make_plan(const AttentionCall& c) {
  Plan p;
  p.tiles = plan_tiles(c.d, c.dv, c.is_bf16 ? 2 : 4, flash_query_block());
  p.q_blocks = (c.lq + p.tiles.q_block - 1) / p.tiles.q_block;
  p.tasks = c.batch * c.hq * p.q_blocks;
  p.splits = plan_key_splits(p.tasks, c.lk, p.tiles.k_block, max_threads());
  const int64_t tiles_per_split =
      ((c.lk + p.tiles.k_block - 1) / p.tiles.k_block + p.splits - 1) / p.splits;
  p.split_len = tiles_per_split * p.tiles.k_block;
  return p;
}

// Combines the key ranges' partial results of task t (log-sum-exp merge,
// ranges in order) into its rows of c.out and c.lse.
void merge_partials(const AttentionCall& c, const Plan& plan, int64_t t,
                    const std::vector<PartialResult>& parts) {
  const TileTask task = plan.task(c, t, 0);
  const int64_t bq = plan.tiles.q_block;
  const double head = c.head_multiplier(task.b, task.h);
  std::vector<double> acc(static_cast<std::size_t>(c.dv));
  for (int64_t lane = 0; lane < task.q1 - task.q0; ++lane) {
    const int64_t i = task.q0 + lane;
    float* o = c.out.row(task.b, task.h, i);
    double m = -std::numeric_limits<double>::infinity();
    bool nan = false;
    for (int64_t s = 0; s < plan.splits; ++s) {
      const PartialResult& p = parts[static_cast<std::size_t>(t * plan.splits + s)];
      nan = nan || std::isnan(p.l[lane]) || std::isnan(p.m[lane]);
      if (p.l[lane] > 0.0f) m = std::max<double>(m, p.m[lane]);
    }
    if (nan || m == -std::numeric_limits<double>::infinity()) {
      const float fill = nan || c.empty_rows == EmptyRows::NaN
                             ? std::numeric_limits<float>::quiet_NaN()
                             : 0.0f;
      std::fill(o, o + c.dv, fill);
      if (!c.lse.empty()) c.lse(task.b, task.h, i) = nan ? fill : kNegInf;
      continue;
    }
    double sum = 0.0;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t s = 0; s < plan.splits; ++s) {
      const PartialResult& p = parts[static_cast<std::size_t>(t * plan.splits + s)];
      if (!(p.l[lane] > 0.0f)) continue;
      const double w = std::exp(static_cast<double>(p.m[lane]) - m);
      sum += w * p.l[lane];
      for (int64_t x = 0; x < c.dv; ++x) acc[static_cast<std::size_t>(x)] += w * p.ot[x * bq + lane];
    }
    for (int64_t x = 0; x < c.dv; ++x)
      o[x] = static_cast<float>(acc[static_cast<std::size_t>(x)] * head / sum);
    if (!c.lse.empty()) c.lse(task.b, task.h, i) = static_cast<float>(m + std::log(sum));
  }
}

}  // namespace

void attention_flash(const AttentionCall& call) {
  if (call.batch * call.hq * call.lq == 0) return;  // no rows to write
  AttentionCall c = call;
  const Plan plan = make_plan(c);

  // The weights pass needs the log-sum-exp even when the caller does not.
  Tensor<float> lse_store;
  if (!c.weights.empty() && c.lse.empty()) {
    lse_store = Tensor<float>({c.batch, c.hq, c.lq});
    c.lse = lse_store.view<3>();
  }

  if (plan.splits == 1) {
    parallel_for_dynamic(plan.tasks, [&](int64_t t) {
      flash_forward_tile(c, plan.tiles, plan.task(c, t, 0), nullptr);
    });
  } else {
    // Partial results of every (task, range): m, l (Bq) and ot (Dv, Bq).
    Arena::Frame frame(thread_arena());
    const int64_t bq = plan.tiles.q_block, n = plan.tasks * plan.splits;
    float* store = frame.alloc<float>(checked_mul(n, bq * (c.dv + 2), "flash partial results"));
    std::vector<PartialResult> parts(static_cast<std::size_t>(n));
    for (int64_t x = 0; x < n; ++x) {
      float* base = store + x * bq * (c.dv + 2);
      parts[static_cast<std::size_t>(x)] = {base, base + bq, base + 2 * bq};
    }
    parallel_for_dynamic(n, [&](int64_t x) {
      flash_forward_tile(c, plan.tiles, plan.task(c, x / plan.splits, x % plan.splits),
                         &parts[static_cast<std::size_t>(x)]);
    });
    parallel_for(plan.tasks, [&](int64_t t) { merge_partials(c, plan, t, parts); });
  }

  if (!c.weights.empty()) {
    const View<const float, 3> lse = c.lse;
    parallel_for_dynamic(plan.tasks, [&](int64_t t) {
      flash_weights_tile(c, plan.tiles, plan.task(c, t, 0), lse);
    });
  }
}

}  // namespace maskattn::detail
