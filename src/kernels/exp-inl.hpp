// exp() for the softmax of the flash kernels, per SIMD target (Highway).
//
// ExpNonPositive(d, x) = e^x for the arguments a softmax produces, s - max:
// x <= 0 (small positive rounding excesses are fine: valid for x < 88),
// -inf, or NaN. It returns exactly 0 for x < -87.34 (where e^x would be
// subnormal) and for -inf, so a masked score contributes exactly nothing, and
// NaN for NaN, so a NaN input still shows in the result.
//
// Method (Cephes expf): n = round(x log2 e); r = x - n ln 2 with ln 2 split in
// two parts (Cody-Waite) so r is exact to float precision; e^r by its degree-6
// minimax polynomial on |r| <= ln(2)/2 (error under 1 ulp); e^x = e^r 2^n with
// 2^n built in the exponent bits (n in [-126, 0] for the arguments above).
//
// Per-target include guard (Highway's toggle idiom): included once per
// target by a file that includes hwy/foreach_target.h.
#if defined(MASKATTN_KERNELS_EXP_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MASKATTN_KERNELS_EXP_INL_H_
#undef MASKATTN_KERNELS_EXP_INL_H_
#else
#define MASKATTN_KERNELS_EXP_INL_H_
#endif

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpNonPositive(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V n = hn::Round(hn::Mul(x, hn::Set(d, 1.44269504088896341f)));
  V r = hn::MulAdd(n, hn::Set(d, -0.693359375f), x);  // x - n * ln2_hi
  r = hn::MulAdd(n, hn::Set(d, 2.12194440e-4f), r);   // - n * ln2_lo (ln2_lo < 0)
  V p = hn::Set(d, 1.9875691500e-4f);
  p = hn::MulAdd(p, r, hn::Set(d, 1.3981999507e-3f));
  p = hn::MulAdd(p, r, hn::Set(d, 8.3334519073e-3f));
  p = hn::MulAdd(p, r, hn::Set(d, 4.1665795894e-2f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.6666665459e-1f));
  p = hn::MulAdd(p, r, hn::Set(d, 5.0000001201e-1f));
  p = hn::MulAdd(p, hn::Mul(r, r), hn::Add(r, hn::Set(d, 1.0f)));
  const auto bits = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  const V y = hn::Mul(p, hn::BitCast(d, bits));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -87.336544f)), y);
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#endif  // MASKATTN_KERNELS_EXP_INL_H_
