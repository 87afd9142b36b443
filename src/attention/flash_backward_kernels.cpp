// The flash backward, compiled once per SIMD target (Highway dynamic
// dispatch; the entry point is in attention/flash_backward_kernels.hpp).
//
// FlashAttention-2's backward (Dao 2023, algorithm 2) with the queries in the
// SIMD lanes, as in the forward (attention/flash_kernels.cpp). A task owns
// one key/value head's key tiles; for each query head that reads it, each of
// its key tiles [k0, k1) and each block of Bq queries, it recomputes the
// probabilities from the forward's log-sum-exp and accumulates the three
// gradients (shapes of one tile; natural-log formulas in
// attention/reference_backward.cpp):
//
//   st  (Bk, Bq) = k qt                           scores (base 2: scale log2 e in qt)
//   st           = mask, softcap (ut = tanh)      as the forward's ScoreTransform
//   st           = 2^(st - lse2)                  P, from the saved lse (lse2 = lse log2 e)
//   dpt (Bk, Bq) = v gt                           dout_i . v_j
//   mb           = head_mask * dropout            the forward's multiplier, replayed
//   dpt          = P (dpt mb - dd) (1 - ut^2)     dS; dd_i = dout_i . out_i
//   dv  (Bk, Dv) += (P mb) gr                     gr (Bq, Dv) dout rows
//   dk  (Bk, D)  += dpt qr                        qr (Bq, D) query rows
//   dqt (D, Bq)  += k^T dpt                       (the forward's Pv micro-kernel)
//
// and at the end dq = scale dqt^T, dk = scale dk. The query blocks' packed
// operands (qt, qr, gt, gr, lse2, dd) are made once per head: O(Lq (D + Dv))
// per task, no Lq x Lk buffer. Tiles the mask removes are skipped, Partial
// ones trimmed (the forward's TrimTile, FullPrefix).
#include "attention/flash_backward_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "core/arena.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/flash_backward_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "attention/flash_steps-inl.hpp"
#include "attention/flash_tile_kernels-inl.hpp"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Keys per register block of AccumulateRows: kRowBlock x 4 column vectors of
// accumulators (24 of AVX-512's registers, 12 of AVX2's), as the forward's
// micro-kernels use them.
constexpr int kRowBlock = kBlock / 2;

// acc[kk][x] += sum_{n < nq} w[kk][n] r[n][x] for KB keys and NV column
// vectors: w's rows (one lane per query) at w + kk Bq, r's rows at r + n rs,
// acc's at acc + kk as.
template <int KB, int NV>
HWY_INLINE void AccumulateRowsBlock(const float* HWY_RESTRICT w, int64_t nq,
                                    const float* HWY_RESTRICT r, int64_t rs,
                                    float* HWY_RESTRICT acc, int64_t as) {
  static_assert(NV >= 1 && NV <= 4, "one to four column vectors");
  const DF d;
  const size_t n = hn::Lanes(d);
  const int64_t bq = QueryBlockSize();
  // One array per column vector (not a 2-D one): gcc then keeps them in registers.
  VF a0[KB], a1[KB], a2[KB], a3[KB];
#pragma GCC unroll 8
  for (int kk = 0; kk < KB; ++kk) {
    float* row = acc + kk * as;
    a0[kk] = hn::Load(d, row);
    if constexpr (NV > 1) a1[kk] = hn::Load(d, row + n);
    if constexpr (NV > 2) a2[kk] = hn::Load(d, row + 2 * n);
    if constexpr (NV > 3) a3[kk] = hn::Load(d, row + 3 * n);
  }
  for (int64_t q = 0; q < nq; ++q) {
    const float* rq = r + q * rs;
    const VF r0 = hn::Load(d, rq);
    const VF r1 = NV > 1 ? hn::Load(d, rq + n) : r0;
    const VF r2 = NV > 2 ? hn::Load(d, rq + 2 * n) : r0;
    const VF r3 = NV > 3 ? hn::Load(d, rq + 3 * n) : r0;
#pragma GCC unroll 8
    for (int kk = 0; kk < KB; ++kk) {
      const VF wb = hn::Set(d, w[kk * bq + q]);
      a0[kk] = hn::MulAdd(wb, r0, a0[kk]);
      if constexpr (NV > 1) a1[kk] = hn::MulAdd(wb, r1, a1[kk]);
      if constexpr (NV > 2) a2[kk] = hn::MulAdd(wb, r2, a2[kk]);
      if constexpr (NV > 3) a3[kk] = hn::MulAdd(wb, r3, a3[kk]);
    }
  }
#pragma GCC unroll 8
  for (int kk = 0; kk < KB; ++kk) {
    float* row = acc + kk * as;
    hn::Store(a0[kk], d, row);
    if constexpr (NV > 1) hn::Store(a1[kk], d, row + n);
    if constexpr (NV > 2) hn::Store(a2[kk], d, row + 2 * n);
    if constexpr (NV > 3) hn::Store(a3[kk], d, row + 3 * n);
  }
}

template <int NV>
HWY_INLINE void AccumulateRowsColumns(const float* HWY_RESTRICT w, int64_t nk, int64_t nq,
                                      const float* HWY_RESTRICT r, int64_t width,
                                      float* HWY_RESTRICT acc) {
  const int64_t bq = QueryBlockSize();
  int64_t j = 0;
  for (; j + kRowBlock <= nk; j += kRowBlock)
    AccumulateRowsBlock<kRowBlock, NV>(w + j * bq, nq, r, width, acc + j * width, width);
  for (; j + 4 <= nk; j += 4)
    AccumulateRowsBlock<4, NV>(w + j * bq, nq, r, width, acc + j * width, width);
  for (; j + 2 <= nk; j += 2)
    AccumulateRowsBlock<2, NV>(w + j * bq, nq, r, width, acc + j * width, width);
  for (; j < nk; ++j) AccumulateRowsBlock<1, NV>(w + j * bq, nq, r, width, acc + j * width, width);
}

// acc (nk, width) += w^T r: w (nk, Bq) lane weights of queries [0, nq), r
// (Bq, width) rows, width a multiple of the lanes (rows zero-padded).
//
// This and the tile's other products are functions of their own, not
// inlined into the task: inlined, gcc spilled the micro-kernels'
// accumulators to the stack and the backward took twice the time.
HWY_NOINLINE void AccumulateRows(const float* HWY_RESTRICT w, int64_t nk, int64_t nq,
                                 const float* HWY_RESTRICT r, int64_t width,
                                 float* HWY_RESTRICT acc) {
  const int64_t n = static_cast<int64_t>(hn::Lanes(DF()));
  int64_t x = 0;
  for (; x + 4 * n <= width; x += 4 * n) AccumulateRowsColumns<4>(w, nk, nq, r + x, width, acc + x);
  for (; x + 2 * n <= width; x += 2 * n) AccumulateRowsColumns<2>(w, nk, nq, r + x, width, acc + x);
  for (; x < width; x += n) AccumulateRowsColumns<1>(w, nk, nq, r + x, width, acc + x);
}

// st (nk, Bq) = k qt and dqt (D, Bq) += k^T ds: the forward's micro-kernels.
HWY_NOINLINE void TileScores(const float* HWY_RESTRICT qt, int64_t dim, const float* k, int64_t ks,
                             int64_t nk, float* HWY_RESTRICT st) {
  Scores(qt, dim, k, ks, nk, st);
}
HWY_NOINLINE void TileDq(const float* HWY_RESTRICT ds, int64_t nk, const float* k, int64_t ks,
                         int64_t dim, float* HWY_RESTRICT dqt) {
  Pv(ds, nk, k, ks, dim, dqt);
}

// st = 2^(st - lse2) for nk keys: the probabilities from the saved
// log-sum-exp (lse2 per lane; +inf for lanes without a query or with an
// empty row, whose probabilities are then 0).
HWY_INLINE void Probabilities(float* HWY_RESTRICT st, int64_t nk, const float* HWY_RESTRICT lse2) {
  const DF d;
  const size_t n = hn::Lanes(d);
  const int64_t bq = QueryBlockSize();
  const VF l0 = hn::Load(d, lse2), l1 = hn::Load(d, lse2 + n);
  for (int64_t j = 0; j < nk; ++j) {
    float* s = st + j * bq;
    hn::Store(Exp2NonPositive(d, hn::Sub(hn::Load(d, s), l0)), d, s);
    hn::Store(Exp2NonPositive(d, hn::Sub(hn::Load(d, s + n), l1)), d, s + n);
  }
}

// How the forward multiplied the probabilities after the softmax.
enum class Multiplier {
  None,  // 1
  Head,  // head_mask[b, h], one number
  Tile,  // head_mask[b, h] * dropout, per element (mb)
};

// The softmax backward of one tile, in place: dpt (dout . v) becomes dS =
// P (dpt m - dd) (1 - ut^2), and mb (Tile: the multipliers) becomes P m, what
// dv accumulates (Head: written to mb; None: P itself, st).
template <Multiplier kMult, bool kCap>
HWY_INLINE void SoftmaxBackward(const float* HWY_RESTRICT st, float* HWY_RESTRICT dpt,
                                float* HWY_RESTRICT mb, float head, const float* HWY_RESTRICT dd,
                                const float* HWY_RESTRICT ut, int64_t nk) {
  const DF d;
  const size_t n = hn::Lanes(d);
  const int64_t bq = QueryBlockSize();
  const VF one = hn::Set(d, 1.0f), vhead = hn::Set(d, head);
  for (int64_t v = 0; v < bq; v += static_cast<int64_t>(n)) {
    const VF dv = hn::Load(d, dd + v);
    for (int64_t j = 0; j < nk; ++j) {
      const int64_t e = j * bq + v;
      const VF p = hn::Load(d, st + e);
      VF dp = hn::Load(d, dpt + e);
      if constexpr (kMult == Multiplier::Head) {
        dp = hn::Mul(dp, vhead);
        hn::Store(hn::Mul(p, vhead), d, mb + e);
      } else if constexpr (kMult == Multiplier::Tile) {
        const VF m = hn::Load(d, mb + e);
        dp = hn::Mul(dp, m);
        hn::Store(hn::Mul(p, m), d, mb + e);
      }
      VF ds = hn::Mul(p, hn::Sub(dp, dv));
      if constexpr (kCap) {
        const VF u = hn::Load(d, ut + e);
        ds = hn::Mul(ds, hn::NegMulAdd(u, u, one));
      }
      hn::Store(ds, d, dpt + e);
    }
  }
}

template <bool kCap>
HWY_NOINLINE void SoftmaxBackwardFor(Multiplier mult, const float* st, float* dpt, float* mb,
                                     float head, const float* dd, const float* ut, int64_t nk) {
  switch (mult) {
    case Multiplier::None:
      SoftmaxBackward<Multiplier::None, kCap>(st, dpt, mb, head, dd, ut, nk);
      break;
    case Multiplier::Head:
      SoftmaxBackward<Multiplier::Head, kCap>(st, dpt, mb, head, dd, ut, nk);
      break;
    case Multiplier::Tile:
      SoftmaxBackward<Multiplier::Tile, kCap>(st, dpt, mb, head, dd, ut, nk);
      break;
  }
}

// One query head's operands, per block of Bq queries (block qb at offset
// qb times the per-block size).
struct HeadOperands {
  float* qt;     // (blocks, D, Bq) queries times scale log2 e, transposed
  float* qr;     // (blocks, Bq, Dp) query rows, zero-padded to Dp
  float* gt;     // (blocks, Dv, Bq) dout transposed
  float* gr;     // (blocks, Bq, Dvp) dout rows, zero-padded to Dvp
  float* lse2;   // (blocks, Bq) lse log2 e; +inf: no query, or an empty row
  float* dd;     // (blocks, Bq) dout . out; 0 where lse2 is +inf
  bool* finite;  // (blocks) q, dout and dd finite, lse not NaN
};

// Packs query head h of batch b. Lanes without a query, and empty rows
// (whose out may be NaN under EmptyRows::NaN), get dout = 0, dd = 0 and
// lse2 = +inf: they contribute nothing.
void PackHead(const BackwardCall& bc, int64_t b, int64_t h, int64_t blocks, int64_t dp, int64_t dvp,
              const HeadOperands& ops) {
  const AttentionCall& c = bc.fwd;
  const int64_t bq = QueryBlockSize();
  std::fill(ops.qt, ops.qt + blocks * c.d * bq, 0.0f);
  std::fill(ops.qr, ops.qr + blocks * bq * dp, 0.0f);
  std::fill(ops.gt, ops.gt + blocks * c.dv * bq, 0.0f);
  std::fill(ops.gr, ops.gr + blocks * bq * dvp, 0.0f);
  std::fill(ops.lse2, ops.lse2 + blocks * bq, std::numeric_limits<float>::infinity());
  std::fill(ops.dd, ops.dd + blocks * bq, 0.0f);
  const float scale2 = static_cast<float>(c.scale * kLog2e);
  const float lowest = std::numeric_limits<float>::lowest();
  for (int64_t i = 0; i < c.lq; ++i) {
    const int64_t qb = i / bq, lane = i % bq;
    const float* q = c.f32.q.row(b, h, i);
    float* qt = ops.qt + qb * c.d * bq + lane;
    float* qr = ops.qr + (qb * bq + lane) * dp;
    for (int64_t x = 0; x < c.d; ++x) qt[x * bq] = scale2 * q[x], qr[x] = q[x];
    const float lse = bc.lse(b, h, i);
    if (lse == -std::numeric_limits<float>::infinity()) continue;
    const float* g = bc.dout.row(b, h, i);
    const float* o = bc.out.row(b, h, i);
    float* gt = ops.gt + qb * c.dv * bq + lane;
    float* gr = ops.gr + (qb * bq + lane) * dvp;
    double dd = 0.0;
    for (int64_t x = 0; x < c.dv; ++x) {
      gt[x * bq] = g[x], gr[x] = g[x];
      dd += static_cast<double>(g[x]) * o[x];
    }
    ops.dd[i] = static_cast<float>(dd);
    // Kept within float's range, as the forward keeps its biases; a NaN stays.
    const float lse2 = static_cast<float>(static_cast<double>(lse) * kLog2e);
    ops.lse2[i] = std::isnan(lse2) ? lse2 : std::max(lowest, lse2);
  }
  for (int64_t qb = 0; qb < blocks; ++qb) {
    bool finite = RowsFinite(Rows<float>{ops.qr + qb * bq * dp, dp}, 0, bq, c.d) &&
                  RowsFinite(Rows<float>{ops.gr + qb * bq * dvp, dvp}, 0, bq, c.dv);
    for (int64_t lane = 0; lane < bq; ++lane)
      finite = finite && IsFinite(ops.dd[qb * bq + lane]) && !std::isnan(ops.lse2[qb * bq + lane]);
    ops.finite[qb] = finite;
  }
}

// Whether the mask allows the pair (key j, lane) of a tile of keys [k0, k1)
// and queries [q0, q0 + nq): a lane of a query, and a key before ka (the
// uncut rows) or whose mask value (mt row j - k0) is not -inf.
struct AllowedPair {
  const float* mt;
  int64_t k0, ka, nq;
  bool operator()(int64_t j, int64_t lane) const {
    return lane < nq && (j < ka || mt[(j - k0) * QueryBlockSize() + lane] != kNegInf);
  }
};

// w (nk, Bq) lane weights of keys [k0, k1) as 0 where the pair is not allowed.
void ZeroHiddenPairs(float* w, int64_t k0, int64_t k1, const AllowedPair& allowed) {
  const int64_t bq = QueryBlockSize();
  for (int64_t j = k0; j < k1; ++j)
    for (int64_t lane = 0; lane < bq; ++lane)
      if (!allowed(j, lane)) w[(j - k0) * bq + lane] = 0.0f;
}

// AccumulateRows' products of the non-finite r[lane][x] (x < cols) that the
// caller zeroed: acc[j - k0][x] += w[j - k0][lane] r[lane][x] for each
// allowed pair (j, lane) of keys [k0, k1); r's and acc's rows `width` apart.
void AccumulateRowsNonFinite(const float* w, int64_t k0, int64_t k1, const float* r, int64_t width,
                             int64_t cols, const AllowedPair& allowed, float* acc) {
  const int64_t bq = QueryBlockSize();
  AddNonFinite(
      Rows<float>{r, width}, 0, allowed.nq, cols, k1 - k0,
      [&](int64_t lane, int64_t j) { return w[j * bq + lane]; },
      [&](int64_t lane, int64_t j) { return allowed(k0 + j, lane); },
      [&](int64_t x, int64_t j) -> float& { return acc[j * width + x]; });
}

// A tile's three products — dv += (P m)^T dout, dk += dS^T q, dq += k^T dS
// (P m: pm; dS: dpt; dout, q: the block's rows gr, qr; k: the tile's keys
// [allowed.k0, k1)) — where its weights of 0 (pairs the mask hides, lanes
// past the queries) may meet a non-finite operand or be NaN themselves (0
// times a non-finite dP, dd or lse): those weights set to 0, the operands'
// non-finite elements zeroed, then added alone over the allowed pairs
// (flash_steps-inl.hpp, "non-finite values"). Rare, and kept out of the
// task's loop. clean: (Bq, Dvp) + (Bq, Dp) + (Bk, D) floats of scratch.
HWY_NOINLINE void ProductsWithNonFinite(const AllowedPair& allowed, int64_t k1, float* pm,
                                        float* dpt, const float* gr, int64_t dvp, int64_t dv,
                                        const float* qr, int64_t dp, int64_t d,
                                        const Rows<float>& k, float* clean, float* dv_tile,
                                        float* dk_tile, float* dq_block) {
  const int64_t bq = QueryBlockSize(), k0 = allowed.k0, nk = k1 - k0, nq = allowed.nq;
  float *gr_clean = clean, *qr_clean = gr_clean + bq * dvp, *k_clean = qr_clean + bq * dp;
  ZeroHiddenPairs(pm, k0, k1, allowed);
  ZeroHiddenPairs(dpt, k0, k1, allowed);
  CopyZeroingNonFinite(Rows<float>{gr, dvp}, 0, 0, bq, dvp, gr_clean, dvp);
  CopyZeroingNonFinite(Rows<float>{qr, dp}, 0, 0, bq, dp, qr_clean, dp);
  CopyZeroingNonFinite(k, k0, k0, k1, d, k_clean, d);
  AccumulateRows(pm, nk, nq, gr_clean, dvp, dv_tile);
  AccumulateRowsNonFinite(pm, k0, k1, gr, dvp, dv, allowed, dv_tile);
  AccumulateRows(dpt, nk, nq, qr_clean, dp, dk_tile);
  AccumulateRowsNonFinite(dpt, k0, k1, qr, dp, d, allowed, dk_tile);
  TileDq(dpt, nk, k_clean, d, d, dq_block);
  PvNonFinite(dpt, k, k0, k0, k1, d, nq, allowed, dq_block);
}

void BackwardTaskImpl(const BackwardCall& bc, const FlashTiles& tiles, const BackwardTask& t,
                      float* dq_partial) {
  const AttentionCall& c = bc.fwd;
  const int64_t n = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t bq = QueryBlockSize(), bk = tiles.k_block;
  const int64_t blocks = (c.lq + bq - 1) / bq, key_tiles = (c.lk + bk - 1) / bk;
  const int64_t own_tiles =
      key_tiles > t.split ? (key_tiles - t.split + t.splits - 1) / t.splits : 0;
  const int64_t dp = RoundUp(c.d, n), dvp = RoundUp(c.dv, n), group = c.group();
  const bool cap = c.softcap > 0.0, dropout = c.dropout_p > 0.0f;

  Arena::Frame frame(thread_arena());
  float* dk_acc = frame.alloc<float>(own_tiles * bk * dp);   // (own tiles x Bk, Dp)
  float* dv_acc = frame.alloc<float>(own_tiles * bk * dvp);  // (own tiles x Bk, Dvp)
  std::fill(dk_acc, dk_acc + own_tiles * bk * dp, 0.0f);
  std::fill(dv_acc, dv_acc + own_tiles * bk * dvp, 0.0f);
  const HeadOperands ops{frame.alloc<float>(blocks * c.d * bq),
                         frame.alloc<float>(blocks * bq * dp),
                         frame.alloc<float>(blocks * c.dv * bq),
                         frame.alloc<float>(blocks * bq * dvp),
                         frame.alloc<float>(blocks * bq),
                         frame.alloc<float>(blocks * bq),
                         frame.alloc<bool>(blocks)};
  float* dqt = frame.alloc<float>(blocks * c.d * bq);       // (blocks, D, Bq)
  float* st = frame.alloc<float>(bk * bq);                  // (Bk, Bq) scores, then P
  float* dpt = frame.alloc<float>(bk * bq);                 // (Bk, Bq) dout . v, then dS
  float* mt = frame.alloc<float>(bk * bq);                  // (Bk, Bq) mask values
  float* mb = frame.alloc<float>(bk * bq);                  // (Bk, Bq) multipliers, then P m
  float* ut = cap ? frame.alloc<float>(bk * bq) : nullptr;  // (Bk, Bq) tanh of the softcap
  const ScoreTransform tf(c, true);
  const Rows<float> k = rows_of(c.f32.k, t.b, t.hk), v = rows_of(c.f32.v, t.b, t.hk);
  // ProductsWithNonFinite's scratch, and whether each own tile's keys and
  // values are finite.
  float* clean = frame.alloc<float>(bq * (dp + dvp) + bk * c.d);
  bool* tile_finite = frame.alloc<bool>(own_tiles);
  for (int64_t own = 0; own < own_tiles; ++own) {
    const int64_t tile0 = (t.split + own * t.splits) * bk, tile1 = std::min(tile0 + bk, c.lk);
    tile_finite[own] = RowsFinite(k, tile0, tile1, c.d) && RowsFinite(v, tile0, tile1, c.dv);
  }

  for (int64_t h = t.hk * group; h < (t.hk + 1) * group; ++h) {
    PackHead(bc, t.b, h, blocks, dp, dvp, ops);
    std::fill(dqt, dqt + blocks * c.d * bq, 0.0f);
    const float head = static_cast<float>(c.head_multiplier(t.b, h));
    const Multiplier mult = dropout        ? Multiplier::Tile
                            : head != 1.0f ? Multiplier::Head
                                           : Multiplier::None;
    for (int64_t own = 0; own < own_tiles; ++own) {
      const int64_t tile0 = (t.split + own * t.splits) * bk, tile1 = std::min(tile0 + bk, c.lk);
      for (int64_t qb = 0; qb < blocks; ++qb) {
        const int64_t q0 = qb * bq, q1 = std::min(q0 + bq, c.lq), nq = q1 - q0;
        int64_t k0 = tile0, k1 = tile1;
        TileClass cls = c.mask->classify(t.b, h, q0, q1, k0, k1);
        if (cls == TileClass::Empty) continue;
        if (cls == TileClass::Partial) cls = TrimTile(*c.mask, t.b, h, q0, q1, k0, k1);
        const int64_t nk = k1 - k0;
        TileScores(ops.qt + qb * c.d * bq, c.d, k.row(k0), k.stride, nk, st);
        const bool masked = cls == TileClass::Partial || tf.bias;
        int64_t ka = k1;  // keys [ka, k1) have mask values
        if (masked) {
          // Mask values only where the tile is cut: rows [ka, k1).
          ka = tf.bias ? k0 : FullPrefix(*c.mask, t.b, h, q0, q1, k0, k1);
          const int64_t cut = (ka - k0) * bq;
          if (nq < bq) std::fill(mt + cut, mt + nk * bq, 0.0f);  // lanes tile_values leaves
          c.mask->tile_values(t.b, h, q0, q1, ka, k1, mt + cut, bq);
          tf.finish(st, cut, nullptr, ut);
          tf.finish(st + cut, nk * bq - cut, mt + cut, cap ? ut + cut : nullptr);
        } else if (cap) {
          tf.finish(st, nk * bq, nullptr, ut);
        }
        Probabilities(st, nk, ops.lse2 + qb * bq);
        TileScores(ops.gt + qb * c.dv * bq, c.dv, v.row(k0), v.stride, nk, dpt);
        if (mult == Multiplier::Tile) {
          std::fill(mb, mb + nk * bq, head);
          ApplyDropout(c, t.b, h, q0, nq, k0, nk, mb);
        }
        if (cap)
          SoftmaxBackwardFor<true>(mult, st, dpt, mb, head, ops.dd + qb * bq, ut, nk);
        else
          SoftmaxBackwardFor<false>(mult, st, dpt, mb, head, ops.dd + qb * bq, ut, nk);
        float* pm = mult == Multiplier::None ? st : mb;
        const float *gr = ops.gr + qb * bq * dvp, *qr = ops.qr + qb * bq * dp;
        float* dv_tile = dv_acc + (own * bk + k0 - tile0) * dvp;
        float* dk_tile = dk_acc + (own * bk + k0 - tile0) * dp;
        float* dq_block = dqt + qb * c.d * bq;
        // Pairs the mask hides and lanes past the queries have weights of 0
        // — or NaN, from a non-finite dP, dd or lse — which must not meet a
        // non-finite operand (flash_steps-inl.hpp, "non-finite values").
        if ((masked || nq < bq) && !(ops.finite[qb] && tile_finite[own])) {
          ProductsWithNonFinite(AllowedPair{mt, k0, ka, nq}, k1, pm, dpt, gr, dvp, c.dv, qr, dp,
                                c.d, k, clean, dv_tile, dk_tile, dq_block);
        } else {
          AccumulateRows(pm, nk, nq, gr, dvp, dv_tile);
          AccumulateRows(dpt, nk, nq, qr, dp, dk_tile);
          TileDq(dpt, nk, k.row(k0), k.stride, c.d, dq_block);
        }
      }
    }
    // dq = scale dqt^T: this head's rows, or its share of them.
    const float scale = static_cast<float>(c.scale);
    for (int64_t i = 0; i < c.lq; ++i) {
      const float* src = dqt + (i / bq) * c.d * bq + i % bq;
      float* dst = dq_partial != nullptr ? dq_partial + ((h - t.hk * group) * c.lq + i) * c.d
                                         : bc.dq.row(t.b, h, i);
      for (int64_t x = 0; x < c.d; ++x) dst[x] = scale * src[x * bq];
    }
  }

  const float scale = static_cast<float>(c.scale);
  for (int64_t own = 0; own < own_tiles; ++own) {
    const int64_t tile0 = (t.split + own * t.splits) * bk, tile1 = std::min(tile0 + bk, c.lk);
    for (int64_t j = tile0; j < tile1; ++j) {
      const float* dks = dk_acc + (own * bk + j - tile0) * dp;
      const float* dvs = dv_acc + (own * bk + j - tile0) * dvp;
      float* dk = bc.dk.row(t.b, t.hk, j);
      float* dv = bc.dv.row(t.b, t.hk, j);
      for (int64_t x = 0; x < c.d; ++x) dk[x] = scale * dks[x];
      std::copy(dvs, dvs + c.dv, dv);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace maskattn::detail {

HWY_EXPORT(BackwardTaskImpl);

void flash_backward_task(const BackwardCall& c, const FlashTiles& tiles, const BackwardTask& t,
                         float* dq_partial) {
  HWY_DYNAMIC_DISPATCH(BackwardTaskImpl)(c, tiles, t, dq_partial);
}

}  // namespace maskattn::detail
#endif  // HWY_ONCE
