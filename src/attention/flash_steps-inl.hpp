// The steps the flash backend's tile path (attention/flash_kernels.cpp) and
// row path (attention/flash_rows.cpp) share, per SIMD target: rows of an
// input, the change of raw dot products into base-2 scores, what an empty
// row holds, whether bfloat16 inputs take the BF16 dot-product kernels.
//
// Scores are kept in base-2 units, s log2 e (folded into the scale, the
// softcap and the mask's values), so that every exponential is a 2^x
// (kernels/exp-inl.hpp); running maxima are in those units too.
//
// Per-target include guard (Highway's toggle idiom).
#if defined(MASKATTN_ATTENTION_FLASH_STEPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MASKATTN_ATTENTION_FLASH_STEPS_INL_H_
#undef MASKATTN_ATTENTION_FLASH_STEPS_INL_H_
#else
#define MASKATTN_ATTENTION_FLASH_STEPS_INL_H_
#endif

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

#include "attention/attention_call.hpp"
#include "attention/flash_kernels.hpp"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/bf16_dot.hpp"
#include "kernels/exp-inl.hpp"
#include "kernels/load_tail-inl.hpp"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr double kLog2e = 1.4426950408889634;  // scores in base-2 units: s log2 e

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr bool kHasBf16Dot = true;  // 16 float lanes: bf16::kQueries == Bq
#else
constexpr bool kHasBf16Dot = false;
#endif

HWY_INLINE int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Rows of one (b, head) of a 4-D input: row j at base + j * stride.
template <class T>
struct Rows {
  const T* base;
  int64_t stride;
  const T* row(int64_t j) const { return base + j * stride; }
};

template <class T>
Rows<T> rows_of(const View<const T, 4>& x, int64_t b, int64_t h) {
  return {x.row(b, h, 0), x.stride(2)};
}

// tanh(x), NaN for NaN. On EMU128 and SCALAR, Highway's Tanh converts its
// argument lane by lane in C++, where float -> int of NaN is undefined
// behaviour (UBSan reports it; found by fuzz/flash_vs_reference_fuzzer with a
// NaN input and a softcap): those targets take tanh of 0 there and put the
// NaN back. The SIMD targets' conversions define NaN and skip the selects.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V TanhKeepingNaN(D d, V x) {
#if HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR
  const auto nan = hn::IsNaN(x);
  return hn::IfThenElse(nan, x, hn::Tanh(d, hn::IfThenZeroElse(nan, x)));
#else
  return hn::Tanh(d, x);
#endif
}

// How raw dot products become base-2 scores: s2 = scale2 * dot (scale2 =
// scale log2 e, or 1 when the operands carry it), then the softcap in base-2
// units (cap2 = softcap log2 e: cap2 tanh(s2 / cap2) is softcap tanh(s /
// softcap) log2 e), then + the mask's value times log2 e.
struct ScoreTransform {
  float scale2 = 1.0f;
  float cap2 = 0.0f;  // 0: no softcap
  bool bias = false;  // the mask may carry non-zero biases

  ScoreTransform(const AttentionCall& c, bool operands_scaled)
      : scale2(operands_scaled ? 1.0f : static_cast<float>(c.scale * kLog2e)),
        cap2(static_cast<float>(c.softcap * kLog2e)),
        bias(c.mask->has_bias()) {}

  // Whether finish() must run over a tile without mask values (a softcap, or
  // a scale OnlineSoftmax cannot apply: it folds only a positive one into the
  // maximum), and the scale left for OnlineSoftmax after finish() did or did
  // not run (masked: it did).
  bool needed() const { return cap2 > 0.0f || scale2 <= 0.0f; }
  float pending(bool masked) const { return masked || needed() ? 1.0f : scale2; }

  // s[0, count) (count a multiple of the lanes) to base-2 scores; mt, when
  // given, holds the mask's values (0 / bias where allowed, -inf masked:
  // the score becomes -inf, even a NaN one). A
  // bias is clamped to float's range after the change of units, so an
  // allowed element never reads as masked. Nothing to do without a mask, a
  // scale or a softcap. With a softcap, tanh_out (when given) receives
  // tanh(s2 / cap2), whose derivative the backward needs.
  void finish(float* HWY_RESTRICT s, int64_t count, const float* HWY_RESTRICT mt,
              float* HWY_RESTRICT tanh_out = nullptr) const {
    if (mt == nullptr && scale2 == 1.0f && cap2 == 0.0f) return;
    const DF d;
    const size_t n = hn::Lanes(d);
    const VF vscale = hn::Set(d, scale2), cap = hn::Set(d, cap2);
    const VF inv_cap = hn::Set(d, cap2 > 0.0f ? 1.0f / cap2 : 0.0f), log2e = hn::Set(d, kLog2e);
    const VF big = hn::Set(d, std::numeric_limits<float>::max()), neg_inf = hn::Set(d, kNegInf);
    for (int64_t x = 0; x < count; x += static_cast<int64_t>(n)) {
      VF v = hn::Mul(hn::Load(d, s + x), vscale);
      if (cap2 > 0.0f) {
        const VF u = TanhKeepingNaN(d, hn::Mul(v, inv_cap));
        if (tanh_out != nullptr) hn::Store(u, d, tanh_out + x);
        v = hn::Mul(cap, u);
      }
      if (mt != nullptr) {
        const VF m = hn::Load(d, mt + x);
        VF m2 = hn::Mul(m, log2e);
        if (bias)  // Min/Max with the constant first keep a NaN
          m2 = hn::IfThenElse(hn::Eq(m, neg_inf), m, hn::Max(hn::Neg(big), hn::Min(big, m2)));
        // A masked score is -inf whatever q . k was: NaN + -inf would be NaN,
        // and a NaN in a key the mask hides must not reach the row.
        v = hn::IfThenElse(hn::Eq(m, neg_inf), neg_inf, hn::Add(v, m2));
      }
      hn::Store(v, d, s + x);
    }
  }
};

// Row (b, h, i) of c.out and c.lse from its base-2 maximum m, its sum l and
// its unnormalised outputs o[x * x_stride]: o head_mask / l, or an empty row's
// fill when l == 0 (no allowed key). The tile and the row path's last step.
HWY_INLINE void WriteOutputRow(const AttentionCall& c, int64_t b, int64_t h, int64_t i, float m,
                               float l, const float* o, int64_t x_stride) {
  write_lse(c, b, h, i, m, l);
  float* out = c.out.row(b, h, i);
  if (l == 0.0f) {
    std::fill(out, out + c.dv, c.empty_fill());
    return;
  }
  const float factor = static_cast<float>(c.head_multiplier(b, h) / static_cast<double>(l));
  for (int64_t x = 0; x < c.dv; ++x) out[x] = o[x * x_stride] * factor;
}

// Rows [k0, k0 + nk) of a bfloat16 input widened to float, `width` elements
// each, into out (row stride ld >= width; the columns past width are 0): the
// float kernels' operands when the BF16 dot product is not there.
HWY_INLINE void WidenRows(const Rows<BFloat16>& r, int64_t k0, int64_t nk, int64_t width,
                          float* out, int64_t ld) {
  for (int64_t j = 0; j < nk; ++j) {
    const BFloat16* src = r.row(k0 + j);
    float* dst = out + j * ld;
    for (int64_t x = 0; x < width; ++x) dst[x] = to_float(src[x]);
    std::fill(dst + width, dst + ld, 0.0f);
  }
}

// ---- non-finite values under weights of 0 -----------------------------------
//
// The products p @ v (and the backward's) give a pair the mask hides — or
// dropout drops — a weight of exactly 0, but 0 * NaN and 0 * inf are NaN: a
// NaN or inf in such a key's row would still reach the query (attention.hpp,
// "Non-finite inputs"). Where a block has such pairs the kernels check its
// operand rows first (a pass of 1/Bq of the product's cost), and when one is
// not finite they multiply with its non-finite elements zeroed, then add each
// one's products over the pairs that keep it. Those results are not finite
// whatever the order of the sum; every other one is bit for bit what it is
// without the bad element.

HWY_INLINE bool IsFinite(float x) {
  return (std::bit_cast<uint32_t>(x) & 0x7f800000u) != 0x7f800000u;
}
HWY_INLINE bool IsFinite(BFloat16 x) { return (x.bits & 0x7f80u) != 0x7f80u; }
HWY_INLINE float ToFloat(float x) { return x; }
HWY_INLINE float ToFloat(BFloat16 x) { return to_float(x); }

// Whether rows [k0, k1) of r are finite in their first `width` elements
// (float: x * 0 + acc stays 0 unless an x is NaN or inf; bfloat16: no
// element has all exponent bits set). A vector operation per vector of
// elements: 1/Bq of what p @ v spends on the same rows.
inline bool RowsFinite(const Rows<float>& r, int64_t k0, int64_t k1, int64_t width) {
  const DF d;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  const VF zero = hn::Zero(d);
  VF acc = zero;
  for (int64_t j = k0; j < k1; ++j) {
    const float* row = r.row(j);
    int64_t x = 0;
    for (; x + n <= width; x += n) acc = hn::MulAdd(hn::LoadU(d, row + x), zero, acc);
    if (x < width)
      acc = hn::MulAdd(LoadFirstN(d, row + x, static_cast<size_t>(width - x)), zero, acc);
  }
  return hn::AllFalse(d, hn::IsNaN(acc));
}

inline bool RowsFinite(const Rows<BFloat16>& r, int64_t k0, int64_t k1, int64_t width) {
  const hn::ScalableTag<uint16_t> d;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  const auto exponent = hn::Set(d, uint16_t{0x7f80});
  auto bad = hn::Zero(d);
  for (int64_t j = k0; j < k1; ++j) {
    const uint16_t* row = &r.row(j)->bits;
    int64_t x = 0;
    for (; x + n <= width; x += n)
      bad = hn::Or(bad,
                   hn::VecFromMask(d, hn::Eq(hn::And(hn::LoadU(d, row + x), exponent), exponent)));
    if (x < width) {
      const auto v = LoadFirstN(d, row + x, static_cast<size_t>(width - x));
      bad = hn::Or(bad, hn::VecFromMask(d, hn::Eq(hn::And(v, exponent), exponent)));
    }
  }
  return hn::AllFalse(d, hn::Ne(bad, hn::Zero(d)));
}

// Rows [k0, k1) of r, `width` elements each, as floats into out (row stride
// ld), the non-finite elements of rows [ka, k1) as 0.
template <class T>
void CopyZeroingNonFinite(const Rows<T>& r, int64_t k0, int64_t ka, int64_t k1, int64_t width,
                          float* out, int64_t ld) {
  for (int64_t j = k0; j < k1; ++j) {
    const T* src = r.row(j);
    float* dst = out + (j - k0) * ld;
    for (int64_t x = 0; x < width; ++x)
      dst[x] = j < ka || IsFinite(src[x]) ? ToFloat(src[x]) : 0.0f;
  }
}

// For each non-finite element e = r_a[x] (x < width) of rows a of [a0, a1)
// of r, and each b of [0, nb) that keeps(a, b): out(x, b) += w(a, b) e. The
// products a kernel left out when it multiplied with those elements zeroed;
// w and out give the layout of its weights and result.
template <class T, class W, class Keeps, class Out>
void AddNonFinite(const Rows<T>& r, int64_t a0, int64_t a1, int64_t width, int64_t nb, const W& w,
                  const Keeps& keeps, const Out& out) {
  for (int64_t a = a0; a < a1; ++a) {
    const T* row = r.row(a);
    for (int64_t x = 0; x < width; ++x) {
      if (IsFinite(row[x])) continue;
      const float e = ToFloat(row[x]);
      for (int64_t b = 0; b < nb; ++b)
        if (keeps(a, b)) out(x, b) += w(a, b) * e;
    }
  }
}

// In value pairs packed by bf16::pack_value_pairs from rows [k0, k1) of v
// (vp[(j - k0) / 2][x] holds rows j - k0 and j - k0 + 1 in its low and high
// halves), the non-finite elements of rows [ka, k1) as 0.
inline void ZeroNonFinitePairs(const Rows<BFloat16>& v, int64_t k0, int64_t ka, int64_t k1,
                               int64_t dv, uint32_t* vp) {
  for (int64_t j = ka; j < k1; ++j) {
    const BFloat16* row = v.row(j);
    const uint32_t keep = (j - k0) % 2 == 0 ? 0xffff0000u : 0x0000ffffu;
    for (int64_t x = 0; x < dv; ++x)
      if (!IsFinite(row[x])) vp[(j - k0) / 2 * dv + x] &= keep;
  }
}

// bfloat16 inputs take the BF16 dot-product kernels where this target and
// the CPU have them.
HWY_INLINE bool UsesBf16Dot() {
  static const bool available = kHasBf16Dot && bf16::available();
  return available;
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#endif  // MASKATTN_ATTENTION_FLASH_STEPS_INL_H_
