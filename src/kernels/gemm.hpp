// Single-precision matrix multiply for the modules' projections, on a tuned
// GEMM library (oneDNN) — never hand-written here. Row-major, BLAS-like:
//
//   C (m, n) = alpha * op(A) (m, k) . op(B) (k, n) + beta * C
//   op(A) = A stored (m, k) with row stride lda, or A^T of A stored (k, m) when trans_a
//   op(B) = B stored (k, n) with row stride ldb, or B^T of B stored (n, k) when trans_b
//           (trans_b is PyTorch's Linear: y = x W^T with W stored (out, in))
//
// Runs on the library's one thread runtime (OpenMP). Reentrant: concurrent
// calls from several threads are fine. beta == 0 never reads C (NaN in C is
// overwritten). Sizes of 0 are fine (nothing to do; with k == 0, C = beta * C).
#pragma once

#include <cstdint>

namespace maskattn::detail {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace maskattn::detail
