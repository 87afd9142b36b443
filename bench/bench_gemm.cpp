// fp32 GEMM of the projections, C (m, n) = op(A) (m, k) . op(B) (k, n), side
// by side in one run, in GFLOP/s (2 * m * n * k per call):
//
//   gemm           maskattn::detail::gemm, what the modules call: oneDNN's matmul primitive
//                  or its dnnl_sgemm, whichever is faster for the layout (src/kernels/gemm.cpp)
//   dnnl_matmul    oneDNN's matmul primitive alone (created once per shape, as gemm caches it)
//   dnnl_sgemm     oneDNN's BLAS-like sgemm alone
//   openblas       OpenBLAS cblas_sgemm in this process: OPENBLAS_CORETYPE as the environment
//                  has it (this machine's may pin OpenBLAS to its AVX2 kernels)
//   openblas_best  the same in a child process started without OPENBLAS_CORETYPE (and
//                  OPENBLAS_L2_SIZE), so that OpenBLAS picks its kernels for this CPU; the
//                  variables are read once, when OpenBLAS loads, hence a separate process,
//                  driven over a pipe call by call (bench/gemm_yardstick.hpp)
//
// Every variant uses the same thread count (OpenMP's, for oneDNN; OpenBLAS's pthreads set to
// it) and is checked against a double-precision reference (16 rows, all columns) before it is
// first timed. Each call is timed alone (manual time, in the process that runs it). The run
// ends with a table of medians (or single values without repetitions) and ratios. On a shared
// machine, interleave the repetitions so that a busy spell hits every variant alike:
//
//   bench_gemm --benchmark_enable_random_interleaving=true --benchmark_repetitions=9
//              --benchmark_min_time=0.1 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/parallel_for.hpp"
#include "gemm_yardstick.hpp"

namespace {

using bench::GemmOperands;
using Shape = bench::GemmShape;

// The shapes, with what they are in a Transformer of width d = 512, FFN 2048,
// 4096 tokens (batch * sequence length). Forward: y = x W^T, W stored (out, in).
constexpr Shape kShapes[] = {
    {"square", false, false, 2048, 2048, 2048},
    {"proj_d512", false, true, 4096, 512, 512},       // q/k/v/out projection
    {"ffn_up", false, true, 4096, 2048, 512},         // linear1 (2048, 512)
    {"ffn_down", false, true, 4096, 512, 2048},       // linear2 (512, 2048)
    {"qkv_128_tokens", false, true, 128, 1536, 512},  // packed in_proj, a short batch
    {"ffn_down_dx", false, false, 4096, 2048, 512},   // backward: dx = dy W
    {"ffn_down_dw", true, false, 512, 2048, 4096},    // backward: dW = dy^T x
    {"decode_1_token", false, true, 1, 512, 512},     // one token through a projection
};
constexpr int kNumShapes = static_cast<int>(std::size(kShapes));

std::string shape_label(const Shape& s) {
  return std::string(s.name) + "/" + (s.trans_a ? "T" : "N") + (s.trans_b ? "T" : "N") +
         "/m:" + std::to_string(s.m) + "/n:" + std::to_string(s.n) + "/k:" + std::to_string(s.k);
}

// Operands of every shape, made once (~0.25 GB for all), as repetitions interleave.
bench::GemmProblems& problems() {
  static bench::GemmProblems all(kShapes);
  return all;
}

void call_dnnl_sgemm(const Shape& s, GemmOperands& o) {
  dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, 1.0f, o.a.data(), o.lda,
             o.b.data(), o.ldb, 0.0f, o.c.data(), o.ldc);
}

// One matmul primitive per shape, C = op(A) op(B) on dense operands, with
// its scratchpad (user mode, as in gemm()).
struct MatmulRun {
  dnnl::matmul primitive;
  dnnl::memory::desc a, b, c;
  std::vector<std::byte> scratchpad;
  dnnl::memory::desc scratchpad_desc;
};

void call_dnnl_matmul(const Shape& s, GemmOperands& o) {
  using dnnl::memory;
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  static dnnl::stream stream(engine);
  static std::map<const Shape*, MatmulRun> runs;
  auto [it, created] = runs.try_emplace(&s);
  MatmulRun& r = it->second;
  if (created) {
    const memory::dims a_strides = s.trans_a ? memory::dims{1, s.m} : memory::dims{s.k, 1};
    const memory::dims b_strides = s.trans_b ? memory::dims{1, s.k} : memory::dims{s.n, 1};
    r.a = memory::desc({s.m, s.k}, memory::data_type::f32, a_strides);
    r.b = memory::desc({s.k, s.n}, memory::data_type::f32, b_strides);
    r.c = memory::desc({s.m, s.n}, memory::data_type::f32, memory::dims{s.n, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(r.a, r.b, r.c), attr, engine);
    r.primitive = dnnl::matmul(pd);
    r.scratchpad_desc = pd.scratchpad_desc();
    r.scratchpad.resize(r.scratchpad_desc.get_size() + 64);
  }
  // 64-byte aligned, as gemm() gives it.
  void* scratchpad = r.scratchpad.data();
  std::size_t space = r.scratchpad.size();
  std::align(64, r.scratchpad_desc.get_size(), scratchpad, space);
  r.primitive.execute(stream,
                      {{DNNL_ARG_SRC, memory(r.a, engine, o.a.data())},
                       {DNNL_ARG_WEIGHTS, memory(r.b, engine, o.b.data())},
                       {DNNL_ARG_DST, memory(r.c, engine, o.c.data())},
                       {DNNL_ARG_SCRATCHPAD, memory(r.scratchpad_desc, engine, scratchpad)}});
  stream.wait();
}

double checked_error(bench::GemmFn fn, int shape_index) {
  return bench::checked_error(fn, kShapes[shape_index], problems().operands(shape_index));
}

double timed_call(bench::GemmFn fn, int shape_index) {
  return bench::timed_call(fn, kShapes[shape_index], problems().operands(shape_index));
}

bench::OpenblasChild& child() {
  static bench::OpenblasChild c;
  return c;
}

// ---- benchmarks ------------------------------------------------------------------

struct Variant {
  const char* name;
  bench::GemmFn fn;  // nullptr: the child process
};

constexpr Variant kVariants[] = {
    {"gemm", bench::call_gemm},      {"dnnl_matmul", call_dnnl_matmul},
    {"dnnl_sgemm", call_dnnl_sgemm}, {"openblas", bench::call_openblas},
    {"openblas_best", nullptr},
};

// Check error of each (variant, shape), measured before its first timing
// (repetitions come back to the same pair, interleaved with others).
std::optional<double> check_once(const Variant& v, int shape_index) {
  static std::map<std::pair<const Variant*, int>, std::optional<double>> checked;
  const auto key = std::make_pair(&v, shape_index);
  if (auto it = checked.find(key); it != checked.end()) return it->second;
  return checked[key] =
             v.fn ? checked_error(v.fn, shape_index) : child().ask(bench::kCheck, shape_index);
}

void run_variant(benchmark::State& state, const Variant& v, int shape_index) {
  const std::optional<double> error = check_once(v, shape_index);
  if (!error) {
    state.SkipWithError("yardstick child process unavailable");
    return;
  }
  if (!(*error <= 1.0)) {
    state.SkipWithError(("wrong result: error " + std::to_string(*error) + " x tolerance").c_str());
    return;
  }
  // Every variant starts after the previous one's OpenBLAS threads have gone to sleep.
  std::this_thread::sleep_for(bench::kOpenblasSettle);
  for (auto _ : state) {
    const std::optional<double> seconds =
        v.fn ? timed_call(v.fn, shape_index) : child().ask(bench::kRun, shape_index);
    if (!seconds) {
      state.SkipWithError("yardstick child process died");
      return;
    }
    state.SetIterationTime(*seconds);
  }
  state.counters["GFLOP"] = benchmark::Counter(bench::gflop(kShapes[shape_index]),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

// Console output as usual, plus the GFLOP/s of every (variant, shape) kept for
// the summary: the median when there are repetitions, else the single run.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const auto it = run.counters.find("GFLOP");
      if (it == run.counters.end()) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (median || single) rates_[run.run_name.function_name] = it->second.value;
    }
  }

  // GFLOP/s of variant on shape, or NaN when it did not run.
  double rate(const std::string& variant, const Shape& s) const {
    const auto it = rates_.find(variant + "/" + shape_label(s));
    return it == rates_.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
  }

 private:
  std::map<std::string, double> rates_;
};

void print_summary(const SummaryReporter& r, int threads, const std::string& env_core,
                   const std::string& best_core) {
  std::printf(
      "\nfp32 GEMM, %d threads, GFLOP/s (medians)\n"
      "openblas: kernels %s (OPENBLAS_CORETYPE as set); openblas_best: kernels %s (unset)\n\n",
      threads, env_core.c_str(), best_core.c_str());
  std::printf("%-40s", "shape");
  for (const Variant& v : kVariants) std::printf(" %13s", v.name);
  std::printf(" | %13s %13s %18s\n", "matmul/sgemm", "gemm/openblas", "gemm/openblas_best");
  for (const Shape& s : kShapes) {
    if (std::none_of(std::begin(kVariants), std::end(kVariants),
                     [&](const Variant& v) { return !std::isnan(r.rate(v.name, s)); }))
      continue;  // filtered out
    std::printf("%-40s", shape_label(s).c_str());
    for (const Variant& v : kVariants) std::printf(" %13.1f", r.rate(v.name, s));
    std::printf(" | %13.2f %13.2f %18.2f\n", r.rate("dnnl_matmul", s) / r.rate("dnnl_sgemm", s),
                r.rate("gemm", s) / r.rate("openblas", s),
                r.rate("gemm", s) / r.rate("openblas_best", s));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (const std::optional<int> threads = bench::openblas_child_threads(argc, argv))
    return bench::serve_openblas(*threads, kShapes);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // The same thread count for every variant: OpenMP's, which oneDNN uses.
  const int threads = maskattn::detail::max_threads();
  std::signal(SIGPIPE, SIG_IGN);  // a dead child shows as a failed write, not a killed parent
  openblas_set_num_threads(threads);
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const std::string env_core = bench::openblas_core();
  const std::string best_core = child().start(threads) ? child().core() : "unavailable";
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", coretype ? coretype : "(unset)");
  benchmark::AddCustomContext("openblas kernels", env_core);
  benchmark::AddCustomContext("openblas_best kernels", best_core);

  for (int si = 0; si < kNumShapes; ++si)
    for (const Variant& v : kVariants) {
      const std::string name = std::string(v.name) + "/" + shape_label(kShapes[si]);
      benchmark::RegisterBenchmark(name.c_str(),
                                   [&v, si](benchmark::State& s) { run_variant(s, v, si); })
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
    }

  SummaryReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                 : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::cout.flush();
  print_summary(reporter, threads, env_core, best_core);
  child().stop();
  benchmark::Shutdown();
  return 0;
}
