// detail::gemm against a naive double-precision loop: the four transposition
// combinations over odd sizes, leading dimensions past the row (padding
// filled with NaN, so reading it shows), alpha / beta, beta = 0 over NaN, the
// sizes 0, concurrent callers and calls from inside parallel_for. The cases
// reach both routes of gemm.cpp: the matmul primitive (dense, B transposed,
// m >= 16 unless A is transposed too) and dnnl_sgemm (everything else).
#include "kernels/gemm.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/parallel_for.hpp"

namespace maskattn::detail {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Case {
  bool trans_a = false, trans_b = false;
  int64_t m = 1, n = 1, k = 1;
  float alpha = 1.0f, beta = 0.0f;
  // Extra elements past each stored row: lda = row length of A + pad_a, etc.
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << (c.trans_a ? 'T' : 'N') << (c.trans_b ? 'T' : 'N') << " m=" << c.m << " n=" << c.n
    << " k=" << c.k << " alpha=" << c.alpha << " beta=" << c.beta << " pads=(" << c.pad_a << ", "
    << c.pad_b << ", " << c.pad_c << ")";
  return s.str();
}

// The operands of one case as stored in memory:
//   a: A (m, k) with row stride lda, or (k, m) when trans_a; likewise b with (k, n) / (n, k);
//   c: C (m, n) with row stride ldc. Padding past each row holds NaN.
struct Problem {
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c, c0;  // c0: C before the call
};

Problem make_problem(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  // rows x cols stored with row stride cols + pad: values, then NaN padding.
  auto fill = [&](int64_t rows, int64_t cols, int64_t pad, float value_if_not_random, bool random) {
    std::vector<float> v(static_cast<std::size_t>(rows * (cols + pad)), kNaN);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j)
        v[static_cast<std::size_t>(r * (cols + pad) + j)] =
            random ? uniform(rng) : value_if_not_random;
    return v;
  };
  Problem p;
  p.lda = (c.trans_a ? c.m : c.k) + c.pad_a;
  p.ldb = (c.trans_b ? c.k : c.n) + c.pad_b;
  p.ldc = c.n + c.pad_c;
  p.a = fill(c.trans_a ? c.k : c.m, c.trans_a ? c.m : c.k, c.pad_a, 0.0f, true);
  p.b = fill(c.trans_b ? c.n : c.k, c.trans_b ? c.k : c.n, c.pad_b, 0.0f, true);
  // beta == 0: C starts as NaN, which must be overwritten, never read.
  p.c = fill(c.m, c.n, c.pad_c, kNaN, c.beta != 0.0f);
  p.c0 = p.c;
  return p;
}

void run(const Case& c, Problem& p) {
  gemm(c.trans_a, c.trans_b, c.m, c.n, c.k, c.alpha, p.a.data(), p.lda, p.b.data(), p.ldb, c.beta,
       p.c.data(), p.ldc);
}

// Compares p.c with alpha * op(A) op(B) + beta * C0 computed in double.
//
// Tolerance per element (i, j): a float dot product of length k carries a
// rounding error |e| <= lambda * sqrt(k) * u * sum_p |a_ip * b_pj| with
// probability >= 1 - 2 exp(-lambda^2 / 2) whatever the summation order or
// blocking (Higham & Mary, "A new approach to probabilistic rounding error
// analysis", 2019); the deterministic bound has k in place of sqrt(k) and is
// far too loose to catch anything at k = 257. lambda = 8 in units of
// u = eps / 2 (failure probability < 1e-13 per element), so 4 * eps below;
// the two final roundings of alpha * s + beta * c add 2 * eps * (|alpha s| + |beta c|).
// With these inputs (|a|, |b| <= 1), sum_p |a b| <= k, so the tolerance is at most
// 4 * sqrt(k) * k * eps: 2e-3 at k = 257 in the worst case, typically 10x less.
::testing::AssertionResult matches_reference(const Case& c, const Problem& p) {
  const double eps = std::numeric_limits<float>::epsilon();
  auto op_a = [&](int64_t i, int64_t q) {
    return static_cast<double>(
        p.a[static_cast<std::size_t>(c.trans_a ? q * p.lda + i : i * p.lda + q)]);
  };
  auto op_b = [&](int64_t q, int64_t j) {
    return static_cast<double>(
        p.b[static_cast<std::size_t>(c.trans_b ? j * p.ldb + q : q * p.ldb + j)]);
  };
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double s = 0.0, s_abs = 0.0;
      for (int64_t q = 0; q < c.k; ++q) {
        s += op_a(i, q) * op_b(q, j);
        s_abs += std::abs(op_a(i, q) * op_b(q, j));
      }
      const double c0 = p.c0[static_cast<std::size_t>(i * p.ldc + j)];
      const double beta_c = c.beta == 0.0f ? 0.0 : c.beta * c0;
      const double want = c.alpha * s + beta_c;
      const double tol =
          4.0 * std::sqrt(static_cast<double>(c.k)) * eps * std::abs(c.alpha) * s_abs +
          2.0 * eps * (std::abs(c.alpha * s) + std::abs(beta_c));
      const double got = p.c[static_cast<std::size_t>(i * p.ldc + j)];
      if (!(std::abs(got - want) <= tol))
        return ::testing::AssertionFailure()
               << describe(c) << ": C(" << i << ", " << j << ") = " << got << ", want " << want
               << " (tolerance " << tol << ")";
    }
    // The padding of C is never written.
    for (int64_t j = c.n; j < p.ldc; ++j)
      if (!std::isnan(p.c[static_cast<std::size_t>(i * p.ldc + j)]))
        return ::testing::AssertionFailure()
               << describe(c) << ": padding C(" << i << ", " << j << ") was written";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult gemm_matches_reference(const Case& c, uint32_t seed = 1) {
  Problem p = make_problem(c, seed);
  run(c, p);
  return matches_reference(c, p);
}

constexpr int64_t kOddSizes[] = {1, 3, 17, 65, 257};

TEST(Gemm, AllTranspositionsOddSizes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t m : kOddSizes)
        for (int64_t n : kOddSizes)
          for (int64_t k : kOddSizes) {
            Case c;
            c.trans_a = ta;
            c.trans_b = tb;
            c.m = m;
            c.n = n;
            c.k = k;
            ASSERT_TRUE(gemm_matches_reference(c));
          }
}

// Shapes a little larger than oneDNN's blocks, so that both threads get work
// and blocks have remainders in every dimension.
TEST(Gemm, AllTranspositionsLargerShapes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Case c;
      c.trans_a = ta;
      c.trans_b = tb;
      c.m = 257;
      c.n = 513;
      c.k = 600;
      EXPECT_TRUE(gemm_matches_reference(c));
    }
}

// Leading dimensions past the row (the dnnl_sgemm route), one operand at a
// time and all together, including m, n or k = 1 where a stride may not matter.
TEST(Gemm, LeadingDimensionsLargerThanRows) {
  const int64_t pads[][3] = {{5, 0, 0}, {0, 7, 0}, {0, 0, 3}, {11, 2, 9}};
  const int64_t shapes[][3] = {{65, 17, 257}, {3, 257, 17}, {1, 65, 17}, {17, 1, 65}, {17, 65, 1}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const auto& pad : pads)
        for (const auto& shape : shapes) {
          Case c;
          c.trans_a = ta;
          c.trans_b = tb;
          c.m = shape[0];
          c.n = shape[1];
          c.k = shape[2];
          c.pad_a = pad[0];
          c.pad_b = pad[1];
          c.pad_c = pad[2];
          ASSERT_TRUE(gemm_matches_reference(c));
        }
}

TEST(Gemm, AlphaAndBeta) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float alpha : {1.0f, -0.5f, 2.5f})
        for (float beta : {0.0f, 1.0f, -1.5f, 0.25f})
          for (int64_t pad : {0, 4}) {
            Case c;
            c.trans_a = ta;
            c.trans_b = tb;
            c.m = 65;
            c.n = 17;
            c.k = 33;
            c.alpha = alpha;
            c.beta = beta;
            c.pad_a = c.pad_b = c.pad_c = pad;
            ASSERT_TRUE(gemm_matches_reference(c));
          }
}

// beta = 0: C full of NaN and infinities comes out finite, on both routes:
// dense NT with m >= 16 (matmul primitive), padded C, NN and small m (dnnl_sgemm).
TEST(Gemm, BetaZeroNeverReadsC) {
  struct Layout {
    bool trans_b;
    int64_t m, pad_c;
  };
  for (const Layout& layout :
       {Layout{true, 33, 0}, Layout{true, 33, 3}, Layout{false, 33, 0}, Layout{true, 3, 0}}) {
    Case c;
    c.trans_b = layout.trans_b;
    c.m = layout.m;
    c.n = 65;
    c.k = 17;
    c.pad_c = layout.pad_c;
    Problem p = make_problem(c, 7);
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = i % 2; j < c.n; j += 2)
        p.c[static_cast<std::size_t>(i * p.ldc + j)] = std::numeric_limits<float>::infinity();
    p.c0 = p.c;
    run(c, p);
    EXPECT_TRUE(matches_reference(c, p));
  }
}

// m = 0 or n = 0: nothing to do, C untouched. k = 0: C = beta * C (zeros
// over NaN when beta = 0), A and B not read.
TEST(Gemm, ZeroSizes) {
  std::vector<float> a(64, kNaN), b(64, kNaN);
  for (auto [m, n] : {std::pair<int64_t, int64_t>{0, 5}, {5, 0}, {0, 0}}) {
    std::vector<float> c(64, 7.0f);
    gemm(false, true, m, n, 4, 1.0f, a.data(), 4, b.data(), 4, 0.0f, c.data(), 8);
    for (float x : c) ASSERT_EQ(x, 7.0f) << "m=" << m << " n=" << n;
  }
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f, -2.0f}) {
        // C (3, 5) with ldc = 6; the padding column must stay NaN.
        std::vector<float> c(18, kNaN);
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 5; ++j)
            c[static_cast<std::size_t>(i * 6 + j)] = beta == 0.0f ? kNaN : float(i - j);
        gemm(ta, tb, 3, 5, 0, 1.0f, a.data(), ta ? 3 : 1, b.data(), tb ? 1 : 5, beta, c.data(), 6);
        for (int64_t i = 0; i < 3; ++i) {
          for (int64_t j = 0; j < 5; ++j)
            ASSERT_EQ(c[static_cast<std::size_t>(i * 6 + j)], beta == 0.0f ? 0.0f : beta * (i - j))
                << "k=0 beta=" << beta << " (" << i << ", " << j << ")";
          ASSERT_TRUE(std::isnan(c[static_cast<std::size_t>(i * 6 + 5)]));
        }
      }
}

// alpha = 0, as in BLAS: C = beta * C and A, B are not read (NaN in them
// does not reach C).
TEST(Gemm, AlphaZeroScalesCOnly) {
  std::vector<float> a(12, kNaN), b(20, kNaN), c(15, 2.0f);
  gemm(false, false, 3, 5, 4, 0.0f, a.data(), 4, b.data(), 5, 0.5f, c.data(), 5);
  for (float x : c) EXPECT_EQ(x, 1.0f);
}

// Several std::threads calling gemm at once, on their own data: the same
// shape in two threads (one cached primitive run concurrently), different
// shapes, both routes; every result checked.
TEST(Gemm, ConcurrentCallersFromSeveralThreads) {
  const std::vector<Case> cases = [] {
    std::vector<Case> v(7);
    v[0] = {false, true, 96, 80, 64, 1.0f, 0.0f, 0, 0, 0};
    v[1] = v[0];
    v[2] = {false, false, 65, 17, 129, 1.0f, 1.0f, 0, 0, 0};
    v[3] = {true, false, 33, 47, 200, -1.0f, 0.5f, 0, 0, 0};
    v[4] = {false, true, 96, 80, 64, 1.0f, 0.0f, 3, 0, 5};
    v[5] = {true, true, 17, 130, 31, 2.0f, 0.0f, 0, 0, 0};
    v[6] = {false, true, 5, 300, 64, 1.0f, 0.0f, 0, 0, 0};
    return v;
  }();
  constexpr int kRounds = 20;
  std::vector<std::string> failures(cases.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < cases.size(); ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds && failures[t].empty(); ++round) {
        const ::testing::AssertionResult r =
            gemm_matches_reference(cases[t], static_cast<uint32_t>(100 * t + round));
        if (!r) failures[t] = r.message();
      }
    });
  for (std::thread& th : threads) th.join();
  for (std::size_t t = 0; t < cases.size(); ++t) EXPECT_EQ(failures[t], "") << "thread " << t;
}

// gemm inside parallel_for runs on 1 thread (OpenMP nesting is off) a
// primitive split for all threads; with 1 or 3 OpenMP threads it gets
// primitives of their own. Every combination must give the same results, also
// for a shape with small m, n and long k, which oneDNN may split along k.
TEST(Gemm, InsideParallelForAndWithOtherThreadCounts) {
  for (const auto& [m, n, k] :
       {std::tuple<int64_t, int64_t, int64_t>{512, 256, 128}, {16, 64, 4096}}) {
    Case c;
    c.trans_b = true;
    c.m = m;
    c.n = n;
    c.k = k;
    SCOPED_TRACE(describe(c));
    ASSERT_TRUE(gemm_matches_reference(c, 1));
    constexpr int64_t kTasks = 4;
    std::vector<std::string> failures(kTasks);
    parallel_for(kTasks, [&](int64_t t) {
      const ::testing::AssertionResult r = gemm_matches_reference(c, static_cast<uint32_t>(t + 2));
      if (!r) failures[static_cast<std::size_t>(t)] = r.message();
    });
    for (int64_t t = 0; t < kTasks; ++t)
      EXPECT_EQ(failures[static_cast<std::size_t>(t)], "") << "task " << t;

    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const ::testing::AssertionResult one = gemm_matches_reference(c, 9);
    omp_set_num_threads(threads + 1);
    const ::testing::AssertionResult more = gemm_matches_reference(c, 10);
    omp_set_num_threads(threads);
    EXPECT_TRUE(one) << "1 thread";
    EXPECT_TRUE(more) << threads + 1 << " threads";
    EXPECT_TRUE(gemm_matches_reference(c, 11));
  }
}

}  // namespace
}  // namespace maskattn::detail
