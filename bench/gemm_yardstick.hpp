// fp32 GEMM as the benchmarks' yardstick: C (m, n) = op(A) (m, k) . op(B) (k, n)
// (alpha = 1, beta = 0) through maskattn::detail::gemm (oneDNN, in process) and
// through OpenBLAS cblas_sgemm in a child process whose environment lacks the
// variables that pin OpenBLAS's kernels, so that it picks its kernels for this
// CPU (it reads them once, when it loads: hence a separate process, driven
// over a pipe call by call). Every result can be checked against a
// double-precision reference before it is timed.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "kernels/gemm.hpp"
#include "timing.hpp"

namespace bench {

struct GemmShape {
  const char* name;
  bool trans_a, trans_b;
  int64_t m, n, k;
};

inline double gflop(const GemmShape& s) {
  return 2.0 * static_cast<double>(s.m * s.n * s.k) * 1e-9;
}

// Dense row-major operands: A (m, k) or (k, m) when trans_a, B (k, n) or (n, k)
// when trans_b, C (m, n); uniform in [-1, 1] from a seed, so that a child
// process makes the same.
struct GemmOperands {
  std::vector<float> a, b, c;
  int64_t lda = 0, ldb = 0, ldc = 0;
};

inline GemmOperands make_operands(const GemmShape& s, uint32_t seed) {
  GemmOperands ops;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  ops.a.resize(static_cast<std::size_t>(s.m * s.k));
  ops.b.resize(static_cast<std::size_t>(s.k * s.n));
  ops.c.assign(static_cast<std::size_t>(s.m * s.n), 0.0f);
  for (float& x : ops.a) x = uniform(rng);
  for (float& x : ops.b) x = uniform(rng);
  ops.lda = s.trans_a ? s.m : s.k;
  ops.ldb = s.trans_b ? s.k : s.n;
  ops.ldc = s.n;
  return ops;
}

// The operands of a program's list of shapes, made on first use (seed: index
// + 1) and kept, as timings come back to the same shapes.
class GemmProblems {
 public:
  explicit GemmProblems(std::span<const GemmShape> shapes) : shapes_(shapes) {}
  int size() const { return static_cast<int>(shapes_.size()); }
  const GemmShape& shape(int i) const { return shapes_[static_cast<std::size_t>(i)]; }
  GemmOperands& operands(int i) {
    auto it = made_.find(i);
    if (it == made_.end())
      it = made_.emplace(i, make_operands(shape(i), static_cast<uint32_t>(i + 1))).first;
    return it->second;
  }

 private:
  std::span<const GemmShape> shapes_;
  std::map<int, GemmOperands> made_;
};

// Worst |C - reference| / tolerance over 16 rows spread over C, all columns
// (<= 1 passes; NaN or infinity in any element of C fails). Tolerance as in
// tests/kernels/gemm_test.cpp: 4 sqrt(k) eps sum_p |a_ip b_pj| + 2 eps |c_ij|.
inline double check_error(const GemmShape& s, const GemmOperands& ops) {
  for (float x : ops.c)
    if (!std::isfinite(x)) return std::numeric_limits<double>::infinity();
  const double eps = std::numeric_limits<float>::epsilon();
  double worst = 0.0;
  for (int64_t r = 0; r < 16; ++r) {
    const int64_t i = r * (s.m - 1) / 15;
    for (int64_t j = 0; j < s.n; ++j) {
      double sum = 0.0, sum_abs = 0.0;
      for (int64_t q = 0; q < s.k; ++q) {
        const double a =
            ops.a[static_cast<std::size_t>(s.trans_a ? q * ops.lda + i : i * ops.lda + q)];
        const double b =
            ops.b[static_cast<std::size_t>(s.trans_b ? j * ops.ldb + q : q * ops.ldb + j)];
        sum += a * b;
        sum_abs += std::abs(a * b);
      }
      const double tol =
          4.0 * std::sqrt(static_cast<double>(s.k)) * eps * sum_abs + 2.0 * eps * std::abs(sum);
      const double err = std::abs(ops.c[static_cast<std::size_t>(i * ops.ldc + j)] - sum);
      worst = std::max(worst, err / tol);
    }
  }
  return worst;
}

// One call of a GEMM, C = A . B.
using GemmFn = void (*)(const GemmShape&, GemmOperands&);

inline void call_gemm(const GemmShape& s, GemmOperands& o) {
  maskattn::detail::gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, o.a.data(), o.lda, o.b.data(),
                         o.ldb, 0.0f, o.c.data(), o.ldc);
}

inline void call_openblas(const GemmShape& s, GemmOperands& o) {
  cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
              s.trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(s.m),
              static_cast<blasint>(s.n), static_cast<blasint>(s.k), 1.0f, o.a.data(),
              static_cast<blasint>(o.lda), o.b.data(), static_cast<blasint>(o.ldb), 0.0f,
              o.c.data(), static_cast<blasint>(o.ldc));
}

// Runs fn once on a NaN-filled C and checks it.
inline double checked_error(GemmFn fn, const GemmShape& s, GemmOperands& o) {
  std::fill(o.c.begin(), o.c.end(), std::numeric_limits<float>::quiet_NaN());
  fn(s, o);
  return check_error(s, o);
}

// Seconds of one call.
inline double timed_call(GemmFn fn, const GemmShape& s, GemmOperands& o) {
  const auto start = std::chrono::steady_clock::now();
  fn(s, o);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Idle time after an OpenBLAS call before the next timing. OpenBLAS's idle
// workers spin (with sched_yield) for up to 2^28 cycles, ~0.1 s here, after
// its last call, and on 2 cores that slows whatever runs next, in this
// process or the child.
inline constexpr auto kOpenblasSettle = std::chrono::milliseconds(150);

// ---- the OpenBLAS child process -------------------------------------------------
// Started as `program --openblas_yardstick_child=<threads>` without the
// variables below. Requests on its stdin: {op, shape index}; answers on its
// stdout: one double (op kCheck: the check error; op kRun: seconds of one
// timed call). Its first answer is OpenBLAS's core name, 64 bytes.

// What pins OpenBLAS's kernels and cache blocking to another CPU's.
inline constexpr std::array<std::string_view, 2> kOpenblasPins = {"OPENBLAS_CORETYPE",
                                                                  "OPENBLAS_L2_SIZE"};
inline constexpr std::string_view kOpenblasChildFlag = "--openblas_yardstick_child=";

enum GemmOp : int32_t { kCheck = 1, kRun = 2 };
struct GemmRequest {
  int32_t op, shape;
};
struct CoreName {
  char text[64];
};

inline std::string openblas_core() { return openblas_get_corename(); }

// The thread count when this process was started as the OpenBLAS child.
inline std::optional<int> openblas_child_threads(int argc, char** argv) {
  if (argc != 2 || !std::string_view(argv[1]).starts_with(kOpenblasChildFlag)) return std::nullopt;
  return std::atoi(argv[1] + kOpenblasChildFlag.size());
}

// The child's main: answers requests until its stdin closes.
inline int serve_openblas(int threads, std::span<const GemmShape> shapes) {
  openblas_set_num_threads(threads);
  CoreName core{};
  std::snprintf(core.text, sizeof core.text, "%s", openblas_core().c_str());
  if (!answer(core)) return 1;
  GemmProblems problems(shapes);
  GemmRequest req;
  while (read_all(STDIN_FILENO, &req, sizeof req)) {
    if (req.shape < 0 || req.shape >= problems.size()) return 1;
    const GemmShape& s = problems.shape(req.shape);
    GemmOperands& o = problems.operands(req.shape);
    const double value =
        req.op == kCheck ? checked_error(call_openblas, s, o) : timed_call(call_openblas, s, o);
    if (!answer(value)) return 1;
  }
  return 0;
}

// The parent's side.
class OpenblasChild {
 public:
  // False (and unusable) on failure.
  bool start(int threads) {
    if (!process_.start(std::string(kOpenblasChildFlag) + std::to_string(threads), kOpenblasPins))
      return false;
    const std::optional<CoreName> core = process_.ask<CoreName>();
    if (!core) return false;
    core_.assign(core->text, strnlen(core->text, sizeof core->text));
    return true;
  }

  std::optional<double> ask(GemmOp op, int shape) {
    return process_.ask<double>(GemmRequest{op, shape});
  }

  const std::string& core() const { return core_; }
  void stop() { process_.stop(); }

 private:
  ChildProcess process_;
  std::string core_;
};

// ---- the sgemm rate ----------------------------------------------------------------
// fp32 GEMM 2048 x 2048 x 2048 through detail::gemm (oneDNN, in process) and
// OpenBLAS in the child; the faster of the two is "the sgemm rate". A program
// using it answers the child's command line first:
//   if (auto t = bench::openblas_child_threads(argc, argv))
//     return bench::serve_openblas(*t, bench::kSgemmSquare);

inline constexpr GemmShape kSgemmSquare[] = {{"square", false, false, 2048, 2048, 2048}};

struct SgemmRate {
  OpenblasChild openblas;  // unusable if it did not start
  bool have_openblas = false;
  GemmProblems square{kSgemmSquare};
  std::vector<double> gemm, blas, sgemm;  // GFLOP/s per measure(): oneDNN, OpenBLAS, the faster

  // Starts the child and checks both GEMMs once (exits on a wrong result).
  explicit SgemmRate(int threads) : have_openblas(openblas.start(threads)) {
    if (!(checked_error(call_gemm, kSgemmSquare[0], square.operands(0)) <= 1.0)) {
      std::fprintf(stderr, "sgemm yardstick: detail::gemm gives a wrong result\n");
      std::exit(1);
    }
    if (have_openblas) {
      const std::optional<double> e = openblas.ask(kCheck, 0);
      if (e && !(*e <= 1.0)) {
        std::fprintf(stderr, "sgemm yardstick: the OpenBLAS child gives a wrong result\n");
        std::exit(1);
      }
    }
  }

  // One more measurement of each, every timing the median of calls repeated
  // for at least min_seconds.
  void measure(double min_seconds) {
    const double flop = gflop(kSgemmSquare[0]);
    double b = std::numeric_limits<double>::quiet_NaN();
    if (have_openblas) {
      std::this_thread::sleep_for(kOpenblasSettle);  // after the last OpenMP call
      const std::optional<double> t =
          median_call([&] { return openblas.ask(kRun, 0); }, min_seconds);
      std::this_thread::sleep_for(kOpenblasSettle);  // before the next
      if (t) b = flop / *t;
    }
    const double g =
        flop /
        *median_call([&] { return timed_call(call_gemm, kSgemmSquare[0], square.operands(0)); },
                     min_seconds);
    gemm.push_back(g);
    blas.push_back(b);
    sgemm.push_back(std::isnan(b) ? g : std::max(g, b));
  }

  std::string openblas_core() const { return have_openblas ? openblas.core() : "unavailable"; }
};

}  // namespace bench
