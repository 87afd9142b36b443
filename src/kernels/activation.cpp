// GELU and ReLU over a buffer, and their backward passes, once per SIMD
// target (Highway dynamic dispatch). The GELU was a scalar std::erf per
// element: 13 % of a MiniLM sentence-embedding run, more than its attention.
//
// erf from erfc (Numerical Recipes, 2nd ed., 6.2: Chebyshev fit, fractional
// error < 1.2e-7 for every z >= 0):
//   t = 1 / (1 + z / 2),  erfc(z) = t exp(-z^2 + P(t)),  P a degree-9 polynomial;
//   erf(x) = sign(x) (1 - erfc(|x|)).
#include "kernels/activation.hpp"

#include <cstdint>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/activation.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/highway.h"
#include "kernels/exp-inl.hpp"
#include "kernels/load_tail-inl.hpp"

HWY_BEFORE_NAMESPACE();
namespace maskattn::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V NormalCdf(D d, V x) {
  const V z = hn::Mul(hn::Abs(x), hn::Set(d, 0.70710678118654752f));  // |x| / sqrt 2
  const V t = hn::Div(hn::Set(d, 1.0f), hn::MulAdd(z, hn::Set(d, 0.5f), hn::Set(d, 1.0f)));
  V p = hn::Set(d, 0.17087277f);
  p = hn::MulAdd(p, t, hn::Set(d, -0.82215223f));
  p = hn::MulAdd(p, t, hn::Set(d, 1.48851587f));
  p = hn::MulAdd(p, t, hn::Set(d, -1.13520398f));
  p = hn::MulAdd(p, t, hn::Set(d, 0.27886807f));
  p = hn::MulAdd(p, t, hn::Set(d, -0.18628806f));
  p = hn::MulAdd(p, t, hn::Set(d, 0.09678418f));
  p = hn::MulAdd(p, t, hn::Set(d, 0.37409196f));
  p = hn::MulAdd(p, t, hn::Set(d, 1.00002368f));
  p = hn::MulAdd(p, t, hn::Set(d, -1.26551223f));
  const V arg = hn::Sub(p, hn::Mul(z, z));  // <= 0: exp of it via 2^(arg log2 e)
  const V erfc = hn::Mul(t, Exp2NonPositive(d, hn::Mul(arg, hn::Set(d, 1.44269504088896341f))));
  // Phi(x) = (1 + erf(x / sqrt 2)) / 2: erfc(z) / 2 below 0, 1 - that above.
  const V half_erfc = hn::Mul(erfc, hn::Set(d, 0.5f));
  return hn::IfThenElse(hn::Lt(x, hn::Zero(d)), half_erfc, hn::Sub(hn::Set(d, 1.0f), half_erfc));
}

template <class D, class V = hn::Vec<D>>
HWY_INLINE V Gelu(D d, V x) {
  return hn::Mul(x, NormalCdf(d, x));
}

// d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi);
// exp(-x^2 / 2) = 2^(-x^2 log2(e) / 2).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V GeluDerivative(D d, V x) {
  const V e = Exp2NonPositive(d, hn::Mul(hn::Mul(x, x), hn::Set(d, -0.72134752044448170f)));
  const V pdf = hn::Mul(e, hn::Set(d, 0.39894228040143268f));  // 1 / sqrt(2 pi)
  return hn::MulAdd(x, pdf, NormalCdf(d, x));
}

void GeluInplace(float* HWY_RESTRICT x, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(Gelu(d, hn::LoadU(d, x + i)), d, x + i);
  if (i < n) {
    const size_t rest = static_cast<size_t>(n - i);
    hn::BlendedStore(Gelu(d, LoadFirstN(d, x + i, rest)), hn::FirstN(d, rest), d, x + i);
  }
}

void GeluBackward(const float* HWY_RESTRICT x, float* HWY_RESTRICT dy, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Mul(hn::LoadU(d, dy + i), GeluDerivative(d, hn::LoadU(d, x + i))), d, dy + i);
  if (i < n) {
    const size_t rest = static_cast<size_t>(n - i);
    const auto g =
        hn::Mul(LoadFirstN(d, dy + i, rest), GeluDerivative(d, LoadFirstN(d, x + i, rest)));
    hn::BlendedStore(g, hn::FirstN(d, rest), d, dy + i);
  }
}

void ReluBackward(const float* HWY_RESTRICT x, float* HWY_RESTRICT dy, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  // torch's threshold_backward: zero where x <= 0; a NaN x passes dy on.
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(d, x + i);
    hn::StoreU(hn::IfThenZeroElse(hn::Le(v, hn::Zero(d)), hn::LoadU(d, dy + i)), d, dy + i);
  }
  for (; i < n; ++i) dy[i] = x[i] <= 0.0f ? 0.0f : dy[i];
}

void ReluInplace(float* HWY_RESTRICT x, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  // IfThenZeroElse on x < 0 keeps NaN (a comparison with NaN is false).
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(d, x + i);
    hn::StoreU(hn::IfThenZeroElse(hn::Lt(v, hn::Zero(d)), v), d, x + i);
  }
  for (; i < n; ++i) x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

}  // namespace HWY_NAMESPACE
}  // namespace maskattn::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace maskattn::detail {

HWY_EXPORT(GeluInplace);
HWY_EXPORT(ReluInplace);
HWY_EXPORT(GeluBackward);
HWY_EXPORT(ReluBackward);

void gelu_inplace(float* x, int64_t n) { HWY_DYNAMIC_DISPATCH(GeluInplace)(x, n); }
void relu_inplace(float* x, int64_t n) { HWY_DYNAMIC_DISPATCH(ReluInplace)(x, n); }
void gelu_backward(const float* x, float* dy, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GeluBackward)(x, dy, n);
}
void relu_backward(const float* x, float* dy, int64_t n) {
  HWY_DYNAMIC_DISPATCH(ReluBackward)(x, dy, n);
}

}  // namespace maskattn::detail
#endif  // HWY_ONCE
