// The flash backend's backward driver: plans the tasks (attention/
// flash_backward_kernels.hpp), runs them on the thread pool and, when the
// key tiles of a key/value head are split across tasks, sums their shares of
// dq in a fixed order.
//
// A task is one (batch, key/value head) — its dk and dv and the dq of the
// query heads that read it are its own, so tasks never write the same
// memory. When those tasks are too few for the threads (one long sequence,
// few heads) each is split over its key tiles, tile n going to split n mod
// splits: interleaved, so that under a causal mask every split gets early
// (much attended) and late keys alike. Each split then writes its share of
// dq to scratch, and a second pass sums the shares in split order. Same
// input, options and thread count: the same bits, whichever thread ran what.
#include "attention/flash_backward.hpp"

#include <algorithm>

#include "attention/flash_backward_kernels.hpp"
#include "attention/tiles.hpp"
#include "core/arena.hpp"
#include "core/parallel_for.hpp"

namespace maskattn::detail {

void attention_backward_flash(const BackwardCall& bc) {
  const AttentionCall& c = bc.fwd;
  const int64_t tasks = c.batch * c.hkv;
  if (tasks == 0) return;  // no gradient has an element
  if (c.lk == 0) {
    // No key: every row is empty and contributes nothing; dk and dv have no
    // element (and k, v no data: their rows must not be addressed).
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t i = 0; i < c.lq; ++i) std::fill_n(bc.dq.row(b, h, i), c.d, 0.0f);
    return;
  }
  const FlashTiles tiles = plan_backward_tiles(flash_query_block());
  const int64_t splits = plan_key_splits(tasks, c.lk, tiles.k_block, max_threads());
  auto task = [&](int64_t t, int64_t split) {
    return BackwardTask{t / c.hkv, t % c.hkv, split, splits};
  };
  if (splits == 1) {
    parallel_for_dynamic(tasks,
                         [&](int64_t t) { flash_backward_task(bc, tiles, task(t, 0), nullptr); });
    return;
  }
  // Shares of dq: (tasks, splits, Hq / Hkv, Lq, D).
  Arena::Frame frame(thread_arena());
  const int64_t share = c.group() * c.lq * c.d;
  float* shares = frame.alloc<float>(checked_mul(tasks * splits, share, "flash dq shares"));
  parallel_for_dynamic(tasks * splits, [&](int64_t x) {
    flash_backward_task(bc, tiles, task(x / splits, x % splits), shares + x * share);
  });
  parallel_for(c.batch * c.hq, [&](int64_t bh) {
    const int64_t b = bh / c.hq, h = bh % c.hq, hk = h / c.group();
    const float* first =
        shares + (b * c.hkv + hk) * splits * share + (h - hk * c.group()) * c.lq * c.d;
    for (int64_t i = 0; i < c.lq; ++i) {
      float* dq = bc.dq.row(b, h, i);
      for (int64_t x = 0; x < c.d; ++x) {
        float sum = 0.0f;
        for (int64_t s = 0; s < splits; ++s) sum += first[s * share + i * c.d + x];
        dq[x] = sum;
      }
    }
  });
}

}  // namespace maskattn::detail
