#include "nn/rows.hpp"

#include <algorithm>

#include "core/parallel_for.hpp"

namespace maskattn::nn::detail {

namespace {
// The row stride of x seen as (A*B, E): the second dimension's, or the
// first's when that is all there is.
template <class T>
int64_t row_stride(const View<T, 3>& x) noexcept {
  return x.size(1) > 1 ? x.stride(1) : (x.size(0) > 1 ? x.stride(0) : x.size(2));
}

// Rows at one stride, apart (a GEMM operand: stride >= row length).
template <class T>
bool collapsible(const View<T, 3>& x) noexcept {
  const bool one_stride =
      x.size(1) <= 1 || x.size(0) <= 1 || x.stride(0) == x.size(1) * x.stride(1);
  return one_stride && row_stride(x) >= x.size(2);
}

template <class T>
View<T, 2> collapse(const View<T, 3>& x) noexcept {
  return View<T, 2>(x.data(), {x.size(0) * x.size(1), x.size(2)}, {row_stride(x), 1});
}
}  // namespace

View<const float, 2> as_rows(View<const float, 3> x, maskattn::detail::Arena::Frame& frame) {
  if (collapsible(x)) return collapse(x);
  const int64_t a = x.size(0), b = x.size(1), e = x.size(2);
  float* copy = frame.alloc<float>(a * b * e);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j) {
      const float* src = x.row(i, j);
      std::copy(src, src + e, copy + (i * b + j) * e);
    }
  return View<const float, 2>(copy, {a * b, e});
}

void add_rows(View<float, 2> acc, View<const float, 2> x) {
  const int64_t cols = acc.size(1);
  maskattn::detail::parallel_for_ranges(acc.size(0), 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* a = acc.row(r);
      const float* b = x.row(r);
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) a[c] += b[c];
    }
  });
}

void copy_rows(View<const float, 2> rows, View<float, 3> out) {
  const int64_t b = out.size(1), e = out.size(2);
  for (int64_t i = 0; i < out.size(0); ++i)
    for (int64_t j = 0; j < b; ++j) std::copy_n(rows.row(i * b + j), e, out.row(i, j));
}

void copy_heads(View<const float, 4> from, View<float, 4> to) {
  const int64_t dim = from.size(3);
  for (int64_t b = 0; b < from.size(0); ++b)
    for (int64_t h = 0; h < from.size(1); ++h)
      for (int64_t i = 0; i < from.size(2); ++i)
        std::copy_n(from.row(b, h, i), dim, to.row(b, h, i));
}

void write_rows(View<float, 3> out, maskattn::detail::Arena::Frame& frame,
                const std::function<void(View<float, 2>)>& fill) {
  if (collapsible(out)) {
    fill(collapse(out));
    return;
  }
  const int64_t rows = out.size(0) * out.size(1), e = out.size(2);
  const View<float, 2> tmp(frame.alloc<float>(rows * e), {rows, e});
  fill(tmp);
  copy_rows(tmp, out);
}

}  // namespace maskattn::nn::detail
