// 2^x for the softmax of the flash kernels, per SIMD target (Highway).
//
// The kernels keep scores in base-2 units (s log2 e: the scale folds
// log2 e in), so the softmax needs 2^x, which is cheaper than e^x: no
// Cody-Waite split of ln 2, one multiply fewer.
//
// Exp2NonPositive(d, x) = 2^x for the arguments a softmax produces, s - max:
// x <= 0 (small positive rounding excesses are fine: valid for x < 127),
// -inf, or NaN. It returns exactly 0 for x < -126 (where 2^x would be
// subnormal) and for -inf, so a masked score contributes exactly nothing, and
// NaN for NaN, so a NaN input still shows in the result.
//
// Method (Cephes exp2f): n = round(x), f = x - n in [-1/2, 1/2] (exact);
// 2^f = 1 + f P(f) with P Cephes' degree-5 minimax polynomial (relative error
// under 2e-7); 2^x = 2^f 2^n with 2^n built in the exponent bits.
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
HWY_INLINE V Exp2NonPositive(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V n = hn::Round(x);
  const V f = hn::Sub(x, n);
  V p = hn::Set(d, 1.535336188319500e-4f);
  p = hn::MulAdd(p, f, hn::Set(d, 1.339887440266574e-3f));
  p = hn::MulAdd(p, f, hn::Set(d, 9.618437357674640e-3f));
  p = hn::MulAdd(p, f, hn::Set(d, 5.550332471162809e-2f));
  p = hn::MulAdd(p, f, hn::Set(d, 2.402264791363012e-1f));
  p = hn::MulAdd(p, f, hn::Set(d, 6.931472028550421e-1f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.0f));
#if HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR
  // These targets convert lane by lane in C++, where float -> int of NaN is
  // undefined behaviour (UBSan reports it; found by
  // fuzz/flash_vs_reference_fuzzer): convert 0 instead. The result is NaN
  // all the same, through p (f is NaN). The SIMD targets' conversion
  // instructions define NaN (INT_MIN), so they skip the select.
  const V n_int = hn::IfThenZeroElse(hn::IsNaN(n), n);
#else
  const V n_int = n;
#endif
  const auto bits = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n_int), hn::Set(di, 127)));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -126.0f)), hn::Mul(p, hn::BitCast(d, bits)));
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#endif  // MASKATTN_KERNELS_EXP_INL_H_
