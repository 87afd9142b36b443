// The first `count` elements of an array into a vector, the other lanes 0,
// without reading past p[count - 1] on any SIMD target (Highway).
//
// hn::MaskedLoad is not enough: on targets where HWY_MEM_OPS_MIGHT_FAULT
// (EMU128, the portable fallback clang builds) it reads every lane and masks
// afterwards, so the tail of a caller's buffer was read past its end (found
// by fuzz/flash_vs_reference_fuzzer under ASan). There the tail goes through
// a zeroed stack buffer (hn::SafeCopyN copies element by element); elsewhere
// MaskedLoad is a real masked load that never touches the masked-off lanes.
//
// Per-target include guard (Highway's toggle idiom): included once per
// target by a file that includes hwy/foreach_target.h.
#if defined(MASKATTN_KERNELS_LOAD_TAIL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MASKATTN_KERNELS_LOAD_TAIL_INL_H_
#undef MASKATTN_KERNELS_LOAD_TAIL_INL_H_
#else
#define MASKATTN_KERNELS_LOAD_TAIL_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// count <= Lanes(d).
template <class D>
HWY_INLINE hn::Vec<D> LoadFirstN(D d, const hn::TFromD<D>* HWY_RESTRICT p, size_t count) {
#if HWY_MEM_OPS_MIGHT_FAULT
  HWY_ALIGN hn::TFromD<D> buf[HWY_MAX_BYTES / sizeof(hn::TFromD<D>)] = {};
  hn::SafeCopyN(count, d, p, buf);
  return hn::Load(d, buf);
#else
  return hn::MaskedLoad(hn::FirstN(d, count), d, p);
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#endif  // MASKATTN_KERNELS_LOAD_TAIL_INL_H_
