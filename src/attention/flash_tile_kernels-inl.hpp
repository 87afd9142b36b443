// The tile path's micro-kernels and tile steps, per SIMD target: what the
// forward (attention/flash_kernels.cpp) and the backward
// (attention/flash_backward_kernels.cpp) share. A tile holds Bq queries
// along the SIMD lanes (two vectors) and the keys along its rows:
//   Scores  st (nk, Bq) = k qt        qt (D, Bq) packed queries, k rows of the input
//   Pv      ot (X, Bq) += w^T x       w (nk, Bq) per-key lane weights, x rows (nk, X)
// plus the dropout of a tile and the trimming of a Partial tile.
//
// Per-target include guard (Highway's toggle idiom).
#if defined(MASKATTN_ATTENTION_FLASH_TILE_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MASKATTN_ATTENTION_FLASH_TILE_KERNELS_INL_H_
#undef MASKATTN_ATTENTION_FLASH_TILE_KERNELS_INL_H_
#else
#define MASKATTN_ATTENTION_FLASH_TILE_KERNELS_INL_H_
#endif

#include <cstdint>

#include "attention/attention_call.hpp"
#include "attention/flash_steps-inl.hpp"
#include "hwy/highway.h"
#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Register blocks: the micro-kernels hold kBlock rows (keys, or output
// columns) x 2 query vectors of accumulators — 24 of AVX-512's 32 registers,
// 12 of AVX2's 16 — plus the operands.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kBlock = 12;
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3
constexpr int kBlock = 6;
#else
constexpr int kBlock = 4;
#endif

HWY_INLINE int64_t QueryBlockSize() { return 2 * static_cast<int64_t>(hn::Lanes(DF())); }

// ---- float micro-kernels -----------------------------------------------------

// st[kk][lane] = sum_x qt[x][lane] * k[kk][x] for KB keys, key kk at k + kk * ks.
template <int KB>
HWY_INLINE void ScoresBlock(const float* HWY_RESTRICT qt, int64_t dim, const float* k, int64_t ks,
                            float* HWY_RESTRICT st) {
  const DF d;
  const size_t n = hn::Lanes(d);
  const int64_t bq = 2 * static_cast<int64_t>(n);
  VF acc0[KB], acc1[KB];
  for (int kk = 0; kk < KB; ++kk) acc0[kk] = acc1[kk] = hn::Zero(d);
  for (int64_t x = 0; x < dim; ++x) {
    const VF q0 = hn::Load(d, qt + x * bq);
    const VF q1 = hn::Load(d, qt + x * bq + n);
#pragma GCC unroll 12
    for (int kk = 0; kk < KB; ++kk) {
      const VF kb = hn::Set(d, k[kk * ks + x]);
      acc0[kk] = hn::MulAdd(q0, kb, acc0[kk]);
      acc1[kk] = hn::MulAdd(q1, kb, acc1[kk]);
    }
  }
  for (int kk = 0; kk < KB; ++kk) {
    hn::Store(acc0[kk], d, st + kk * bq);
    hn::Store(acc1[kk], d, st + kk * bq + n);
  }
}

// Scores of nk keys (rows of k, stride ks) against the packed queries.
HWY_INLINE void Scores(const float* HWY_RESTRICT qt, int64_t dim, const float* k, int64_t ks,
                       int64_t nk, float* HWY_RESTRICT st) {
  const int64_t bq = QueryBlockSize();
  int64_t j = 0;
  for (; j + kBlock <= nk; j += kBlock) ScoresBlock<kBlock>(qt, dim, k + j * ks, ks, st + j * bq);
  for (; j + 4 <= nk; j += 4) ScoresBlock<4>(qt, dim, k + j * ks, ks, st + j * bq);
  for (; j + 2 <= nk; j += 2) ScoresBlock<2>(qt, dim, k + j * ks, ks, st + j * bq);
  for (; j < nk; ++j) ScoresBlock<1>(qt, dim, k + j * ks, ks, st + j * bq);
}

// ot[x][lane] += sum_j p[j][lane] * v[j][x] for DB output columns x, value
// row j at v + j * vs.
template <int DB>
HWY_INLINE void PvBlock(const float* HWY_RESTRICT p, int64_t nk, const float* v, int64_t vs,
                        float* HWY_RESTRICT ot) {
  const DF d;
  const size_t n = hn::Lanes(d);
  const int64_t bq = 2 * static_cast<int64_t>(n);
  VF acc0[DB], acc1[DB];
  for (int x = 0; x < DB; ++x) {
    acc0[x] = hn::Load(d, ot + x * bq);
    acc1[x] = hn::Load(d, ot + x * bq + n);
  }
  for (int64_t j = 0; j < nk; ++j) {
    const VF p0 = hn::Load(d, p + j * bq);
    const VF p1 = hn::Load(d, p + j * bq + n);
    const float* vr = v + j * vs;
#pragma GCC unroll 12
    for (int x = 0; x < DB; ++x) {
      const VF vb = hn::Set(d, vr[x]);
      acc0[x] = hn::MulAdd(p0, vb, acc0[x]);
      acc1[x] = hn::MulAdd(p1, vb, acc1[x]);
    }
  }
  for (int x = 0; x < DB; ++x) {
    hn::Store(acc0[x], d, ot + x * bq);
    hn::Store(acc1[x], d, ot + x * bq + n);
  }
}

HWY_INLINE void Pv(const float* HWY_RESTRICT p, int64_t nk, const float* v, int64_t vs, int64_t dv,
                   float* HWY_RESTRICT ot) {
  const int64_t bq = QueryBlockSize();
  int64_t x = 0;
  for (; x + kBlock <= dv; x += kBlock) PvBlock<kBlock>(p, nk, v + x, vs, ot + x * bq);
  for (; x + 4 <= dv; x += 4) PvBlock<4>(p, nk, v + x, vs, ot + x * bq);
  for (; x + 2 <= dv; x += 2) PvBlock<2>(p, nk, v + x, vs, ot + x * bq);
  for (; x < dv; ++x) PvBlock<1>(p, nk, v + x, vs, ot + x * bq);
}

// Pv's products of the non-finite v_j[x] of rows [ka, k1) that the caller
// zeroed: ot[x][lane] += w[j - k0][lane] v_j[x] for each lane of [0, nq)
// that keeps(j, lane) (flash_steps-inl.hpp, "non-finite values").
template <class T, class Keeps>
void PvNonFinite(const float* w, const Rows<T>& v, int64_t k0, int64_t ka, int64_t k1,
                 int64_t width, int64_t nq, const Keeps& keeps, float* ot) {
  const int64_t bq = QueryBlockSize();
  AddNonFinite(
      v, ka, k1, width, nq, [&](int64_t j, int64_t lane) { return w[(j - k0) * bq + lane]; }, keeps,
      [&](int64_t x, int64_t lane) -> float& { return ot[x * bq + lane]; });
}

// Inverted dropout on the probabilities of queries [q0, q0 + nq) x keys
// [k0, k0 + nk): the stream of dropout_keep(), as every backend draws it.
inline void ApplyDropout(const AttentionCall& c, int64_t b, int64_t h, int64_t q0, int64_t nq,
                         int64_t k0, int64_t nk, float* st) {
  const int64_t bq = QueryBlockSize();
  const float inv_keep = static_cast<float>(1.0 / (1.0 - static_cast<double>(c.dropout_p)));
  const MaskShape& shape = c.mask->shape();
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t lane = 0; lane < nq; ++lane) {
      float& p = st[j * bq + lane];
      p = dropout_keep(c.seed, c.dropout_p, shape, b, h, q0 + lane, k0 + j) ? p * inv_keep : 0.0f;
    }
}

// A Partial tile [k0, k1) shrunk to the keys some query of [q0, q1) may
// see, in steps of kTrimStep keys: the diagonal tile of a causal mask loses
// its upper half, a sliding window's tiles their keys outside the band.
// Returns the class of what remains (Full when the cut leaves no masked key).
constexpr int64_t kTrimStep = 8;

inline TileClass TrimTile(const BoundMask& mask, int64_t b, int64_t h, int64_t q0, int64_t q1,
                          int64_t& k0, int64_t& k1) {
  bool cut = false;
  while (k1 - k0 > kTrimStep && mask.classify(b, h, q0, q1, k1 - kTrimStep, k1) == TileClass::Empty)
    k1 -= kTrimStep, cut = true;
  while (k1 - k0 > kTrimStep && mask.classify(b, h, q0, q1, k0, k0 + kTrimStep) == TileClass::Empty)
    k0 += kTrimStep, cut = true;
  return cut ? mask.classify(b, h, q0, q1, k0, k1) : TileClass::Partial;
}

// The first key of a Partial tile's masked part: keys [k0, ka) are allowed
// for every query of [q0, q1) (in steps of kTrimStep), so they need no mask
// values — the rows of a causal diagonal tile below the block's first query.
inline int64_t FullPrefix(const BoundMask& mask, int64_t b, int64_t h, int64_t q0, int64_t q1,
                          int64_t k0, int64_t k1) {
  int64_t ka = k0;
  while (ka + kTrimStep < k1 && mask.classify(b, h, q0, q1, k0, ka + kTrimStep) == TileClass::Full)
    ka += kTrimStep;
  return ka;
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#endif  // MASKATTN_ATTENTION_FLASH_TILE_KERNELS_INL_H_
