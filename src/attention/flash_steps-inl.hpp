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
#include <cstdint>
#include <limits>

#include "attention/attention_call.hpp"
#include "attention/flash_kernels.hpp"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/bf16_dot.hpp"
#include "kernels/exp-inl.hpp"

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
  // exactly -inf in s, even for a NaN or infinite dot product). A
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
        const VF u = hn::Tanh(d, hn::Mul(v, inv_cap));
        if (tanh_out != nullptr) hn::Store(u, d, tanh_out + x);
        v = hn::Mul(cap, u);
      }
      if (mt != nullptr) {
        const VF m = hn::Load(d, mt + x);
        VF m2 = hn::Mul(m, log2e);
        if (bias)  // Min/Max with the constant first keep a NaN
          m2 = hn::IfThenElse(hn::Eq(m, neg_inf), m, hn::Max(hn::Neg(big), hn::Min(big, m2)));
        // A masked element is -inf whatever its dot product: NaN + -inf and
        // +inf + -inf would be NaN, carrying a NaN or infinite key the mask
        // hides into the row (the reference never reads it).
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
