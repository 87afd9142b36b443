// The flash backend's tile path, compiled once per SIMD target (Highway
// dynamic dispatch; see attention/flash_kernels.hpp for the entry points;
// the row path for decoding is attention/flash_rows.cpp, the steps both
// share attention/flash_steps-inl.hpp, the micro-kernels this path shares
// with the backward attention/flash_tile_kernels-inl.hpp).
//
// One task holds a block of Bq queries of one head *along the SIMD lanes*
// (two vectors) and walks the keys in tiles of Bk (FlashAttention-2, Dao 2023,
// with queries in the lanes so no step needs a horizontal reduction):
//
//   qt (D, Bq)   the block's queries, transposed and scaled, packed once
//   st (Bk, Bq)  scores of one key tile, one key per row     st = k qt
//   mt (Bk, Bq)  the mask's additive values of the tile (Partial tiles only)
//   ot (Dv, Bq)  the output accumulator, one output column per row
//   m, l (Bq)    running maximum and sum of exp(s - m) of each query
//
// per key tile [k0, k1): classify it with the mask — Empty tiles are skipped
// without a load; Full tiles need no mask values; Partial ones are trimmed to
// the keys the block may see — then
//   st = scale * k qt; st = softcap * tanh(st / softcap); st += mt
//   m' = max(m, max_j st); p = exp(st - m'); l = l e^(m - m') + sum_j p
//   ot = ot e^(m - m') + v^T (p * dropout)
// and at the end out = ot * head_mask / l, lse = m + log l. A query with no
// allowed key keeps l = 0: an empty row.
//
// Scores are kept in base-2 units (flash_steps-inl.hpp), so the exponentials
// above are 2^x in the code.
//
// bfloat16 inputs use the AVX-512 BF16 micro-kernels of kernels/bf16_dot.hpp
// on targets with 16 float lanes when the CPU has them; elsewhere each key
// tile is widened to float and runs the float micro-kernels.
#include "attention/flash_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <type_traits>

#include "core/arena.hpp"
#include "kernels/bf16_dot.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/flash_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "attention/flash_steps-inl.hpp"
#include "attention/flash_tile_kernels-inl.hpp"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- the inputs of a task, per storage type ----------------------------------

// Whether key j's weight in lane `lane` of a tile's probabilities p (row
// j - k0) is not 0: the forward's pairs that see a non-finite value (the
// reference's rule: a key of weight 0 adds nothing).
struct NonZeroWeight {
  const float* p;
  int64_t k0;
  bool operator()(int64_t j, int64_t lane) const {
    return p[(j - k0) * QueryBlockSize() + lane] != 0.0f;
  }
};

// The float micro-kernels' operands: for float inputs the rows themselves;
// for bfloat16 without the BF16 dot product, each tile widened to float.
class FloatOperands {
 public:
  FloatOperands(const AttentionCall& c, const TileTask& t, int64_t k_block, Arena::Frame& frame)
      : c_(c), b_(t.b), h_(t.h), hk_(t.h / c.group()) {
    if (c.is_bf16) kf_ = frame.alloc<float>(k_block * c.d);
    vf_ = frame.alloc<float>(k_block * c.dv);
  }

  // qt[x][lane] = scale log2(e) q[q0 + lane][x]; lanes past q1 are 0.
  void pack_queries(int64_t q0, int64_t q1, float* qt) const {
    const int64_t bq = QueryBlockSize();
    std::fill(qt, qt + c_.d * bq, 0.0f);
    const float scale = static_cast<float>(c_.scale * kLog2e);
    for (int64_t i = q0; i < q1; ++i) {
      if (c_.is_bf16) {
        const BFloat16* q = c_.bf16.q.row(b_, h_, i);
        for (int64_t x = 0; x < c_.d; ++x) qt[x * bq + (i - q0)] = scale * to_float(q[x]);
      } else {
        const float* q = c_.f32.q.row(b_, h_, i);
        for (int64_t x = 0; x < c_.d; ++x) qt[x * bq + (i - q0)] = scale * q[x];
      }
    }
  }

  void scores(const float* qt, int64_t k0, int64_t nk, float* st) {
    if (!c_.is_bf16) {
      const Rows<float> k = rows_of(c_.f32.k, b_, hk_);
      Scores(qt, c_.d, k.row(k0), k.stride, nk, st);
      return;
    }
    WidenRows(rows_of(c_.bf16.k, b_, hk_), k0, nk, c_.d, kf_, c_.d);
    Scores(qt, c_.d, kf_, c_.d, nk, st);
  }

  // ot += v^T p over keys [k0, k0 + nk), of which [ka, k0 + nk) may have
  // weights of 0 (masked or dropped pairs): a non-finite value there reaches
  // only the lanes [0, nq) whose weight is not 0.
  void accumulate(const float* p, int64_t k0, int64_t nk, int64_t ka, int64_t nq, float* ot) {
    if (c_.is_bf16)
      accumulate(rows_of(c_.bf16.v, b_, hk_), p, k0, nk, ka, nq, ot);
    else
      accumulate(rows_of(c_.f32.v, b_, hk_), p, k0, nk, ka, nq, ot);
  }

  static constexpr bool kScaledScores = true;  // scale log2 e already in qt

 private:
  template <class T>
  void accumulate(const Rows<T>& v, const float* p, int64_t k0, int64_t nk, int64_t ka, int64_t nq,
                  float* ot) {
    const int64_t k1 = k0 + nk;
    const bool finite = ka == k1 || RowsFinite(v, ka, k1, c_.dv);
    if constexpr (std::is_same_v<T, float>) {
      if (finite) {
        Pv(p, nk, v.row(k0), v.stride, c_.dv, ot);
        return;
      }
    }
    // bfloat16 widened to float; a non-finite value zeroed, then added alone.
    CopyZeroingNonFinite(v, k0, finite ? k1 : ka, k1, c_.dv, vf_, c_.dv);
    Pv(p, nk, vf_, c_.dv, c_.dv, ot);
    if (!finite) PvNonFinite(p, v, k0, ka, k1, c_.dv, nq, NonZeroWeight{p, k0}, ot);
  }

  const AttentionCall& c_;
  int64_t b_, h_, hk_;
  float* kf_ = nullptr;  // (Bk, D) widened key tile
  float* vf_ = nullptr;  // (Bk, Dv) value tile: widened, or with non-finite elements zeroed
};

// bfloat16 inputs on AVX-512 BF16: scores and p v by vdpbf16ps.
class Bf16DotOperands {
 public:
  Bf16DotOperands(const AttentionCall& c, const TileTask& t, int64_t k_block, Arena::Frame& frame)
      : c_(c), b_(t.b), h_(t.h), hk_(t.h / c.group()) {
    const int64_t pairs = (k_block + 1) / 2;
    pp_ = frame.alloc<uint32_t>(pairs * bf16::kQueries);
    vp_ = frame.alloc<uint32_t>(pairs * c.dv);
    qt_ = frame.alloc<uint32_t>((c.d + 1) / 2 * bf16::kQueries);
  }

  // qt_[x2][lane] = (q[q0 + lane][2 x2], q[q0 + lane][2 x2 + 1]); lanes past
  // q1 and an odd D's missing element are 0. The scale is applied to the scores.
  void pack_queries(int64_t q0, int64_t q1, float*) const {
    const int64_t pairs = (c_.d + 1) / 2;
    std::fill(qt_, qt_ + pairs * bf16::kQueries, 0u);
    for (int64_t i = q0; i < q1; ++i) {
      const BFloat16* q = c_.bf16.q.row(b_, h_, i);
      for (int64_t x = 0; x < c_.d; ++x) {
        uint32_t& pair = qt_[(x / 2) * bf16::kQueries + (i - q0)];
        pair |= static_cast<uint32_t>(q[x].bits) << (16 * (x % 2));
      }
    }
  }

  void scores(const float*, int64_t k0, int64_t nk, float* st) const {
    const Rows<BFloat16> k = rows_of(c_.bf16.k, b_, hk_);
    bf16::scores(qt_, &k.row(k0)->bits, k.stride, nk, c_.d, st);
  }

  // As FloatOperands::accumulate.
  void accumulate(const float* p, int64_t k0, int64_t nk, int64_t ka, int64_t nq, float* ot) const {
    const Rows<BFloat16> v = rows_of(c_.bf16.v, b_, hk_);
    const int64_t k1 = k0 + nk;
    const bool finite = ka == k1 || RowsFinite(v, ka, k1, c_.dv);
    bf16::pack_probabilities(p, nk, pp_);
    bf16::pack_value_pairs(&v.row(k0)->bits, v.stride, nk, c_.dv, vp_);
    if (!finite) ZeroNonFinitePairs(v, k0, ka, k1, c_.dv, vp_);
    bf16::accumulate_pv(pp_, vp_, (nk + 1) / 2, c_.dv, ot);
    if (!finite) PvNonFinite(p, v, k0, ka, k1, c_.dv, nq, NonZeroWeight{p, k0}, ot);
  }

  static constexpr bool kScaledScores = false;

 private:
  const AttentionCall& c_;
  int64_t b_, h_, hk_;
  uint32_t* qt_;  // (ceil(D / 2), 32) query pairs
  uint32_t* pp_;  // (ceil(Bk / 2), 32) probability pairs
  uint32_t* vp_;  // (ceil(Bk / 2), Dv) value pairs
};

// ---- per-tile steps ----------------------------------------------------------

// The online-softmax step of one tile: st (nk, Bq) scores (times `scale`,
// > 0, still to apply) -> probabilities 2^(s - m'), m and l updated, ot (dv,
// Bq) rescaled by 2^(m - m'). A query whose maximum is still -inf (no
// allowed key yet) subtracts 0 instead, so its p and its factor are exactly
// 0, never NaN. max(s) scale = max(s scale) exactly: rounding is monotonic.
HWY_INLINE void OnlineSoftmax(float* HWY_RESTRICT st, int64_t nk, float scale,
                              float* HWY_RESTRICT m, float* HWY_RESTRICT l, float* HWY_RESTRICT ot,
                              int64_t dv) {
  const DF d;
  const size_t n = hn::Lanes(d);
  const int64_t bq = QueryBlockSize();
  const VF neg_inf = hn::Set(d, kNegInf), vscale = hn::Set(d, scale);
  for (int64_t v = 0; v < bq; v += static_cast<int64_t>(n)) {
    VF tile_max = neg_inf;
    for (int64_t j = 0; j < nk; ++j) tile_max = hn::Max(tile_max, hn::Load(d, st + j * bq + v));
    const VF m_old = hn::Load(d, m + v);
    const VF m_new = hn::Max(m_old, hn::Mul(tile_max, vscale));
    const VF m_use = hn::IfThenZeroElse(hn::Eq(m_new, neg_inf), m_new);
    VF sum = hn::Zero(d);
    for (int64_t j = 0; j < nk; ++j) {
      const VF p = Exp2NonPositive(d, hn::MulSub(hn::Load(d, st + j * bq + v), vscale, m_use));
      hn::Store(p, d, st + j * bq + v);
      sum = hn::Add(sum, p);
    }
    const VF alpha = Exp2NonPositive(d, hn::Sub(m_old, m_use));
    hn::Store(hn::MulAdd(hn::Load(d, l + v), alpha, sum), d, l + v);
    hn::Store(m_new, d, m + v);
    for (int64_t x = 0; x < dv; ++x)
      hn::Store(hn::Mul(hn::Load(d, ot + x * bq + v), alpha), d, ot + x * bq + v);
  }
}

// ---- tasks -------------------------------------------------------------------

template <class Operands>
void ForwardTask(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t,
                 const PartialResult* partial) {
  const int64_t bq = QueryBlockSize(), bk = tiles.k_block, nq = t.q1 - t.q0;
  Arena::Frame frame(thread_arena());
  float* qt = frame.alloc<float>(c.d * bq);   // (D, Bq)
  float* st = frame.alloc<float>(bk * bq);    // (Bk, Bq)
  float* mt = frame.alloc<float>(bk * bq);    // (Bk, Bq)
  float* ot = frame.alloc<float>(c.dv * bq);  // (Dv, Bq)
  float* m = frame.alloc<float>(bq);
  float* l = frame.alloc<float>(bq);
  Operands ops(c, t, bk, frame);
  ops.pack_queries(t.q0, t.q1, qt);
  // tile_values() writes lanes [0, nq) of the mask tile: the others must be 0.
  if (nq < bq) std::fill(mt, mt + bk * bq, 0.0f);
  std::fill(ot, ot + c.dv * bq, 0.0f);
  std::fill(m, m + bq, kNegInf);
  std::fill(l, l + bq, 0.0f);
  const ScoreTransform tf(c, Operands::kScaledScores);

  for (int64_t tile = t.k_begin; tile < t.k_end; tile += bk) {
    int64_t k0 = tile, k1 = std::min(tile + bk, t.k_end);
    TileClass cls = c.mask->classify(t.b, t.h, t.q0, t.q1, k0, k1);
    if (cls == TileClass::Empty) continue;
    if (cls == TileClass::Partial) cls = TrimTile(*c.mask, t.b, t.h, t.q0, t.q1, k0, k1);
    const int64_t nk = k1 - k0;
    ops.scores(qt, k0, nk, st);
    const bool masked = cls == TileClass::Partial || tf.bias;
    int64_t ka = k1;  // keys [ka, k1) may have pairs of weight 0
    if (masked) {
      // Mask values only where the tile is cut: rows [ka, k1).
      ka = tf.bias ? k0 : FullPrefix(*c.mask, t.b, t.h, t.q0, t.q1, k0, k1);
      const int64_t cut = (ka - k0) * bq;
      c.mask->tile_values(t.b, t.h, t.q0, t.q1, ka, k1, mt + cut, bq);
      tf.finish(st, cut, nullptr);
      tf.finish(st + cut, (k1 - ka) * bq, mt + cut);
    } else if (tf.needed()) {
      tf.finish(st, nk * bq, nullptr);
    }
    OnlineSoftmax(st, nk, tf.pending(masked), m, l, ot, c.dv);
    if (c.dropout_p > 0.0f) {
      ApplyDropout(c, t.b, t.h, t.q0, nq, k0, nk, st);
      ka = k0;
    }
    ops.accumulate(st, k0, nk, ka, nq, ot);
  }

  if (partial != nullptr) {  // (x_stride, n_stride) = (Bq, 1): ot as it is
    std::copy(m, m + bq, partial->m);
    std::copy(l, l + bq, partial->l);
    std::copy(ot, ot + c.dv * bq, partial->o);
    return;
  }
  for (int64_t lane = 0; lane < nq; ++lane)
    WriteOutputRow(c, t.b, t.h, t.q0 + lane, m[lane], l[lane], ot + lane, bq);
}

template <class Operands>
void WeightsTask(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t) {
  const DF d;
  const size_t n = hn::Lanes(d);
  const int64_t bq = QueryBlockSize(), bk = tiles.k_block, nq = t.q1 - t.q0;
  Arena::Frame frame(thread_arena());
  float* qt = frame.alloc<float>(c.d * bq);
  float* st = frame.alloc<float>(bk * bq);
  float* mt = frame.alloc<float>(bk * bq);
  float* row_m = frame.alloc<float>(bq);
  float* row_log_l = frame.alloc<float>(bq);
  Operands ops(c, t, bk, frame);
  ops.pack_queries(t.q0, t.q1, qt);
  if (nq < bq) std::fill(mt, mt + bk * bq, 0.0f);  // lanes tile_values() leaves alone
  const ScoreTransform tf(c, Operands::kScaledScores);
  const VF head = hn::Set(d, static_cast<float>(c.head_multiplier(t.b, t.h)));
  // This task's base-2 scores of key tile [k0, k1), the same in both sweeps.
  auto tile_scores = [&](int64_t k0, int64_t k1, TileClass cls) {
    ops.scores(qt, k0, k1 - k0, st);
    const bool masked = cls == TileClass::Partial || tf.bias;
    if (masked) c.mask->tile_values(t.b, t.h, t.q0, t.q1, k0, k1, mt, bq);
    tf.finish(st, (k1 - k0) * bq, masked ? mt : nullptr);
  };

  // Sweep 1: each row's m and l (the online softmax without the outputs).
  std::fill(row_m, row_m + bq, kNegInf);
  std::fill(row_log_l, row_log_l + bq, 0.0f);  // l, until the end of the sweep
  for (int64_t k0 = 0; k0 < c.lk; k0 += bk) {
    const int64_t k1 = std::min(k0 + bk, c.lk);
    const TileClass cls = c.mask->classify(t.b, t.h, t.q0, t.q1, k0, k1);
    if (cls == TileClass::Empty) continue;
    tile_scores(k0, k1, cls);
    OnlineSoftmax(st, k1 - k0, 1.0f, row_m, row_log_l, nullptr, 0);
  }
  // 2^((s - m) - log2 l): an empty row (l = 0) reads m = +inf, giving 0.
  for (int64_t lane = 0; lane < bq; ++lane) {
    const bool empty = !(row_log_l[lane] != 0.0f);  // l == 0 (NaN is not empty)
    if (empty) row_m[lane] = std::numeric_limits<float>::infinity();
    row_log_l[lane] = empty ? 0.0f : std::log2(row_log_l[lane]);
  }

  // Sweep 2: the weights.
  for (int64_t k0 = 0; k0 < c.lk; k0 += bk) {
    const int64_t k1 = std::min(k0 + bk, c.lk), nk = k1 - k0;
    const TileClass cls = c.mask->classify(t.b, t.h, t.q0, t.q1, k0, k1);
    if (cls == TileClass::Empty) {
      for (int64_t lane = 0; lane < nq; ++lane)
        std::fill_n(c.weights.row(t.b, t.h, t.q0 + lane) + k0, nk, 0.0f);
      continue;
    }
    tile_scores(k0, k1, cls);
    for (int64_t j = 0; j < nk; ++j)
      for (int64_t v = 0; v < bq; v += static_cast<int64_t>(n)) {
        float* s = st + j * bq + v;
        const VF x =
            hn::Sub(hn::Sub(hn::Load(d, s), hn::Load(d, row_m + v)), hn::Load(d, row_log_l + v));
        // A masked score (-inf) gives exactly 0, also in a row whose m is NaN.
        const VF p =
            hn::IfThenZeroElse(hn::Eq(hn::Load(d, s), hn::Set(d, kNegInf)), Exp2NonPositive(d, x));
        hn::Store(hn::Mul(p, head), d, s);
      }
    if (c.dropout_p > 0.0f) ApplyDropout(c, t.b, t.h, t.q0, nq, k0, nk, st);
    for (int64_t lane = 0; lane < nq; ++lane) {
      float* w = c.weights.row(t.b, t.h, t.q0 + lane) + k0;
      for (int64_t j = 0; j < nk; ++j) w[j] = st[j * bq + lane];
    }
  }
  if (c.empty_rows == EmptyRows::NaN)
    for (int64_t lane = 0; lane < nq; ++lane)
      if (row_m[lane] == std::numeric_limits<float>::infinity())
        std::fill_n(c.weights.row(t.b, t.h, t.q0 + lane), c.lk, c.empty_fill());
}

void ForwardTile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t,
                 const PartialResult* partial) {
  if (c.is_bf16 && UsesBf16Dot())
    ForwardTask<Bf16DotOperands>(c, tiles, t, partial);
  else
    ForwardTask<FloatOperands>(c, tiles, t, partial);
}

void WeightsTile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t) {
  if (c.is_bf16 && UsesBf16Dot())
    WeightsTask<Bf16DotOperands>(c, tiles, t);
  else
    WeightsTask<FloatOperands>(c, tiles, t);
}

int64_t QueryBlock() { return QueryBlockSize(); }
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace maskattn::detail {

HWY_EXPORT(QueryBlock);
HWY_EXPORT(TargetName);
HWY_EXPORT(ForwardTile);
HWY_EXPORT(WeightsTile);

int64_t flash_query_block() { return HWY_DYNAMIC_DISPATCH(QueryBlock)(); }

const char* flash_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

void flash_forward_tile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t,
                        const PartialResult* partial) {
  HWY_DYNAMIC_DISPATCH(ForwardTile)(c, tiles, t, partial);
}

void flash_weights_tile(const AttentionCall& c, const FlashTiles& tiles, const TileTask& t) {
  HWY_DYNAMIC_DISPATCH(WeightsTile)(c, tiles, t);
}

void write_lse(const AttentionCall& c, int64_t b, int64_t h, int64_t i, double m2, double l) {
  if (c.lse.empty()) return;
  c.lse(b, h, i) = l == 0.0 ? -std::numeric_limits<float>::infinity()
                            : static_cast<float>(m2 * std::numbers::ln2 + std::log(l));
}

}  // namespace maskattn::detail
#endif  // HWY_ONCE
