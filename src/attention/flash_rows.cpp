// The flash backend's row path, compiled once per SIMD target (Highway
// dynamic dispatch; the entry point is in attention/flash_kernels.hpp).
//
// Decoding asks one query (or a few) of every head. Queries in the lanes
// would leave most lanes idle, so the row path puts the keys there instead:
// each task takes the rows — (query head, query) pairs — that read one
// key/value head, loads each key and value row once for all of them, and
// keeps per row s (row_k_block keys), m, l and o (Dv):
//   s_r = k q_r (dot products, reduced across lanes);
//   m' = max(m, max_j s_r); p = 2^(s_r - m'); l = l 2^(m - m') + sum_j p;
//   o_r = o_r 2^(m - m') + sum_j p_rj v_j     (base-2 scores: flash_steps-inl.hpp)
// bfloat16 inputs use kernels/bf16_dot.hpp's row kernels on AVX-512 BF16.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "attention/flash_kernels.hpp"
#include "core/arena.hpp"
#include "kernels/bf16_dot.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/flash_rows.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "attention/flash_steps-inl.hpp"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/load_tail-inl.hpp"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Brings rows [k0, k1) of width elements towards the cache, a line at a time.
template <class T>
void prefetch_rows(const Rows<T>& rows, int64_t k0, int64_t k1, int64_t width) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t j = k0; j < k1; ++j)
    for (int64_t x = 0; x < width; x += kLine) hwy::Prefetch(rows.row(j) + x);
}

// Float rows (float inputs, or bfloat16 widened per block).
class FloatRowOperands {
 public:
  FloatRowOperands(const AttentionCall& c, const RowTask& t, int64_t bk, Arena::Frame& frame)
      : c_(c), t_(t), rows_(t.r1 - t.r0) {
    const int64_t n = static_cast<int64_t>(hn::Lanes(DF()));
    dp_ = RoundUp(c.d, n);
    q_ = frame.alloc<float>(rows_ * dp_);
    if (c.is_bf16) {
      kf_ = frame.alloc<float>(bk * dp_);
      vf_ = frame.alloc<float>(bk * c.dv);
    }
    const float scale = static_cast<float>(c.scale * kLog2e);
    std::fill(q_, q_ + rows_ * dp_, 0.0f);
    for (int64_t r = 0; r < rows_; ++r) {
      const RowQuery rq = row_query(c, t, t.r0 + r);
      for (int64_t x = 0; x < c.d; ++x)
        q_[r * dp_ + x] = scale * (c.is_bf16 ? to_float(c.bf16.q.row(t.b, rq.h, rq.i)[x])
                                             : c.f32.q.row(t.b, rq.h, rq.i)[x]);
    }
  }

  // s[r * ld + j] = q_r . k_j for j < nk.
  void scores(int64_t k0, int64_t nk, float* s, int64_t ld) {
    const DF d;
    const int64_t n = static_cast<int64_t>(hn::Lanes(d));
    const float* k;
    int64_t ks;
    if (c_.is_bf16) {  // widened, zero-padded to dp_
      WidenRows(rows_of(c_.bf16.k, t_.b, t_.hk), k0, nk, c_.d, kf_, dp_);
      k = kf_, ks = dp_;
    } else {
      const Rows<float> kr = rows_of(c_.f32.k, t_.b, t_.hk);
      k = kr.row(k0), ks = kr.stride;
    }
    const int64_t full = c_.d / n * n;
    const size_t tail = static_cast<size_t>(c_.d - full);
    for (int64_t j = 0; j < nk; ++j) {
      const float* kj = k + j * ks;
      for (int64_t r = 0; r < rows_; ++r) {
        const float* qr = q_ + r * dp_;
        VF acc = hn::Zero(d);
        for (int64_t x = 0; x < full; x += n)
          acc = hn::MulAdd(hn::Load(d, qr + x), hn::LoadU(d, kj + x), acc);
        if (full < c_.d)
          acc = hn::MulAdd(hn::Load(d, qr + full), LoadFirstN(d, kj + full, tail), acc);
        s[r * ld + j] = hn::GetLane(hn::SumOfLanes(d, acc));
      }
    }
  }

  // o[r * ldo + x] += sum_j p[r * ld + j] v_j[x], skipping weights of 0 (the
  // reference's rule: a masked or dropped key adds nothing, not even a NaN).
  void accumulate(const float* p, int64_t ld, int64_t k0, int64_t nk, float* o, int64_t ldo,
                  bool /*zero_weights*/) {
    const DF d;
    const int64_t n = static_cast<int64_t>(hn::Lanes(d));
    const float* v;
    int64_t vs;
    if (c_.is_bf16) {
      WidenRows(rows_of(c_.bf16.v, t_.b, t_.hk), k0, nk, c_.dv, vf_, c_.dv);
      v = vf_, vs = c_.dv;
    } else {
      const Rows<float> vr = rows_of(c_.f32.v, t_.b, t_.hk);
      v = vr.row(k0), vs = vr.stride;
    }
    const int64_t full = c_.dv / n * n;
    const size_t tail = static_cast<size_t>(c_.dv - full);
    for (int64_t r = 0; r < rows_; ++r) {
      float* orow = o + r * ldo;  // ldo >= dv rounded up to the lanes
      for (int64_t j = 0; j < nk; ++j) {
        const float pj = p[r * ld + j];
        if (pj == 0.0f) continue;  // masked or dropped: nothing to add
        const VF pb = hn::Set(d, pj);
        const float* vj = v + j * vs;
        for (int64_t x = 0; x < full; x += n)
          hn::Store(hn::MulAdd(pb, hn::LoadU(d, vj + x), hn::Load(d, orow + x)), d, orow + x);
        if (full < c_.dv)
          hn::Store(hn::MulAdd(pb, LoadFirstN(d, vj + full, tail), hn::Load(d, orow + full)), d,
                    orow + full);
      }
    }
  }

  void prefetch_keys(int64_t k0, int64_t k1) const {
    if (c_.is_bf16)
      prefetch_rows(rows_of(c_.bf16.k, t_.b, t_.hk), k0, k1, c_.d);
    else
      prefetch_rows(rows_of(c_.f32.k, t_.b, t_.hk), k0, k1, c_.d);
  }
  void prefetch_values(int64_t k0, int64_t k1) const {
    if (c_.is_bf16)
      prefetch_rows(rows_of(c_.bf16.v, t_.b, t_.hk), k0, k1, c_.dv);
    else
      prefetch_rows(rows_of(c_.f32.v, t_.b, t_.hk), k0, k1, c_.dv);
  }

  static constexpr bool kScaledScores = true;

 private:
  const AttentionCall& c_;
  RowTask t_;
  int64_t rows_, dp_ = 0;
  float* q_;             // (rows, dp) scaled queries, zero-padded
  float* kf_ = nullptr;  // (bk, dp) widened keys
  float* vf_ = nullptr;  // (bk, dv) widened values
};

// bfloat16 rows on AVX-512 BF16.
class Bf16DotRowOperands {
 public:
  Bf16DotRowOperands(const AttentionCall& c, const RowTask& t, int64_t bk, Arena::Frame& frame)
      : c_(c), t_(t), rows_(t.r1 - t.r0), dpad_(RoundUp(c.d, 32)), ldp_(bk / 2) {
    q_ = frame.alloc<uint16_t>(rows_ * dpad_);
    pp_ = frame.alloc<uint32_t>(rows_ * ldp_);
    vp_ = frame.alloc<uint32_t>(ldp_ * c.dv);
    std::fill(q_, q_ + rows_ * dpad_, uint16_t{0});
    for (int64_t r = 0; r < rows_; ++r) {
      const RowQuery rq = row_query(c, t, t.r0 + r);
      const BFloat16* q = c.bf16.q.row(t.b, rq.h, rq.i);
      for (int64_t x = 0; x < c.d; ++x) q_[r * dpad_ + x] = q[x].bits;
    }
  }

  void scores(int64_t k0, int64_t nk, float* s, int64_t ld) const {
    const Rows<BFloat16> k = rows_of(c_.bf16.k, t_.b, t_.hk);
    bf16::row_scores(q_, rows_, dpad_, &k.row(k0)->bits, k.stride, nk, c_.d, s, ld);
  }

  // As FloatRowOperands::accumulate. The pairs' products cannot skip a
  // weight of 0: when the block may have some (zero_weights) and a value is
  // not finite, it is zeroed in the pairs and added alone where its weight
  // is not 0 (flash_steps-inl.hpp, "non-finite values").
  void accumulate(const float* p, int64_t ld, int64_t k0, int64_t nk, float* o, int64_t ldo,
                  bool zero_weights) const {
    const Rows<BFloat16> v = rows_of(c_.bf16.v, t_.b, t_.hk);
    const bool finite = !zero_weights || RowsFinite(v, k0, k0 + nk, c_.dv);
    bf16::pack_row_probabilities(p, ld, rows_, nk, pp_, ldp_);
    bf16::pack_value_pairs(&v.row(k0)->bits, v.stride, nk, c_.dv, vp_);
    if (!finite) ZeroNonFinitePairs(v, k0, k0, k0 + nk, c_.dv, vp_);
    bf16::row_pv(pp_, ldp_, rows_, vp_, (nk + 1) / 2, c_.dv, o, ldo);
    if (finite) return;
    const auto weight = [&](int64_t j, int64_t r) { return p[r * ld + j - k0]; };
    AddNonFinite(
        v, k0, k0 + nk, c_.dv, rows_, weight,
        [&](int64_t j, int64_t r) { return weight(j, r) != 0.0f; },
        [&](int64_t x, int64_t r) -> float& { return o[r * ldo + x]; });
  }

  void prefetch_keys(int64_t k0, int64_t k1) const {
    prefetch_rows(rows_of(c_.bf16.k, t_.b, t_.hk), k0, k1, c_.d);
  }
  void prefetch_values(int64_t k0, int64_t k1) const {
    prefetch_rows(rows_of(c_.bf16.v, t_.b, t_.hk), k0, k1, c_.dv);
  }

  static constexpr bool kScaledScores = false;

 private:
  const AttentionCall& c_;
  RowTask t_;
  int64_t rows_, dpad_, ldp_;
  uint16_t* q_;   // (rows, dpad) query bits, zero-padded
  uint32_t* pp_;  // (rows, bk / 2) probability pairs
  uint32_t* vp_;  // (bk / 2, dv) value pairs
};

// max over x[0, n) (n a multiple of the lanes).
HWY_INLINE float RowMax(const float* HWY_RESTRICT x, int64_t n) {
  const DF d;
  VF m = hn::Set(d, kNegInf);
  for (int64_t j = 0; j < n; j += static_cast<int64_t>(hn::Lanes(d)))
    m = hn::Max(m, hn::Load(d, x + j));
  return hn::GetLane(hn::MaxOfLanes(d, m));
}

// x = 2^(x - sub) in place; returns the sum.
HWY_INLINE float ExpRow(float* HWY_RESTRICT x, int64_t n, float sub) {
  const DF d;
  const VF vs = hn::Set(d, sub);
  VF sum = hn::Zero(d);
  for (int64_t j = 0; j < n; j += static_cast<int64_t>(hn::Lanes(d))) {
    const VF p = Exp2NonPositive(d, hn::Sub(hn::Load(d, x + j), vs));
    hn::Store(p, d, x + j);
    sum = hn::Add(sum, p);
  }
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

HWY_INLINE void ScaleRow(float* HWY_RESTRICT x, int64_t n, float f) {
  const DF d;
  const VF vf = hn::Set(d, f);
  for (int64_t j = 0; j < n; j += static_cast<int64_t>(hn::Lanes(d)))
    hn::Store(hn::Mul(hn::Load(d, x + j), vf), d, x + j);
}

template <class Operands>
void RowsTask(const AttentionCall& c, const FlashTiles& tiles, const RowTask& t,
              const PartialResult* partial) {
  const int64_t rows = t.r1 - t.r0, bk = tiles.row_k_block;
  const int64_t n = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t ld = RoundUp(bk, std::max<int64_t>(n, 16)), ldo = RoundUp(c.dv, n);
  Arena::Frame frame(thread_arena());
  float* s = frame.alloc<float>(rows * ld);   // (rows, ld) scores, then probabilities
  float* mrow = frame.alloc<float>(ld);       // one row's mask values
  float* o = frame.alloc<float>(rows * ldo);  // (rows, ldo) outputs
  float* m = frame.alloc<float>(rows);
  float* l = frame.alloc<float>(rows);
  TileClass* cls = frame.alloc<TileClass>(rows);
  Operands ops(c, t, bk, frame);
  std::fill(o, o + rows * ldo, 0.0f);
  std::fill(m, m + rows, kNegInf);
  std::fill(l, l + rows, 0.0f);
  const ScoreTransform tf(c, Operands::kScaledScores);
  const float inv_keep = static_cast<float>(1.0 / (1.0 - static_cast<double>(c.dropout_p)));

  for (int64_t k0 = t.k_begin; k0 < t.k_end; k0 += bk) {
    const int64_t k1 = std::min(k0 + bk, t.k_end), nk = k1 - k0, nkp = RoundUp(nk, n);
    bool any = false, all_full = !tf.bias && c.dropout_p == 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const RowQuery rq = row_query(c, t, t.r0 + r);
      cls[r] = c.mask->classify(t.b, rq.h, rq.i, rq.i + 1, k0, k1);
      any = any || cls[r] != TileClass::Empty;
      all_full = all_full && cls[r] == TileClass::Full;
    }
    if (!any) continue;
    // Decoding streams K and V from memory: ask for the next block's key
    // rows while this block's scores compute, its value rows while this
    // block's values accumulate.
    const int64_t next_end = std::min(k1 + bk, t.k_end);
    ops.prefetch_keys(k1, next_end);
    ops.scores(k0, nk, s, ld);
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = s + r * ld;
      if (cls[r] == TileClass::Empty) {
        std::fill(sr, sr + nkp, 0.0f);  // p = 0: adds nothing
        continue;
      }
      const RowQuery rq = row_query(c, t, t.r0 + r);
      const bool masked = cls[r] == TileClass::Partial || tf.bias;
      if (masked) {
        c.mask->row_values(t.b, rq.h, rq.i, k0, k1, mrow);
        std::fill(mrow + nk, mrow + nkp, 0.0f);
      }
      tf.finish(sr, nkp, masked ? mrow : nullptr);
      // Lanes past the keys: after the softcap, which would make them finite.
      std::fill(sr + nk, sr + nkp, kNegInf);
      const float m_new = std::max(m[r], RowMax(sr, nkp));
      const float m_use = m_new == kNegInf ? 0.0f : m_new;
      const float alpha = m[r] == kNegInf ? 0.0f : std::exp2(m[r] - m_use);
      const float sum = ExpRow(sr, nkp, m_use);
      l[r] = l[r] * alpha + sum;  // NaN in a score stays NaN here
      m[r] = m_new;
      if (alpha != 1.0f) ScaleRow(o + r * ldo, ldo, alpha);
      if (c.dropout_p > 0.0f)
        for (int64_t j = 0; j < nk; ++j)
          sr[j] = dropout_keep(c.seed, c.dropout_p, c.mask->shape(), t.b, rq.h, rq.i, k0 + j)
                      ? sr[j] * inv_keep
                      : 0.0f;
    }
    ops.prefetch_values(k1, next_end);
    ops.accumulate(s, ld, k0, nk, o, ldo, /*zero_weights=*/!all_full);
  }

  for (int64_t r = 0; r < rows; ++r) {
    const float* orow = o + r * ldo;
    if (partial != nullptr) {  // (x_stride, n_stride) = (1, Dv)
      partial->m[r] = m[r];
      partial->l[r] = l[r];
      std::copy(orow, orow + c.dv, partial->o + r * c.dv);
      continue;
    }
    const RowQuery rq = row_query(c, t, t.r0 + r);
    WriteOutputRow(c, t.b, rq.h, rq.i, m[r], l[r], orow, 1);
  }
}

void ForwardRows(const AttentionCall& c, const FlashTiles& tiles, const RowTask& t,
                 const PartialResult* partial) {
  if (c.is_bf16 && UsesBf16Dot())
    RowsTask<Bf16DotRowOperands>(c, tiles, t, partial);
  else
    RowsTask<FloatRowOperands>(c, tiles, t, partial);
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace maskattn::detail {

HWY_EXPORT(ForwardRows);

void flash_forward_rows(const AttentionCall& c, const FlashTiles& tiles, const RowTask& t,
                        const PartialResult* partial) {
  HWY_DYNAMIC_DISPATCH(ForwardRows)(c, tiles, t, partial);
}

}  // namespace maskattn::detail
#endif  // HWY_ONCE
