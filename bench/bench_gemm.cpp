// fp32 GEMM of the projections, C (m, n) = op(A) (m, k) . op(B) (k, n), side
// by side in one run, in GFLOP/s (2 * m * n * k per call):
//
//   gemm           maskattn::detail::gemm, what the modules call: oneDNN's matmul primitive
//                  or its dnnl_sgemm, whichever is faster for the layout (src/kernels/gemm.cpp)
//   dnnl_matmul    oneDNN's matmul primitive alone (created once per shape, as gemm caches it)
//   dnnl_sgemm     oneDNN's BLAS-like sgemm alone
//   openblas       OpenBLAS cblas_sgemm in this process: OPENBLAS_CORETYPE as the environment
//                  has it (this machine's may pin OpenBLAS to its AVX2 kernels)
//   openblas_best  the same in a child process started without OPENBLAS_CORETYPE, so that
//                  OpenBLAS picks its kernels for this CPU; the variable is read once, when
//                  OpenBLAS loads, hence a separate process, driven over a pipe call by call
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
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/parallel_for.hpp"
#include "kernels/gemm.hpp"

extern char** environ;

namespace {

// The shapes, with what they are in a Transformer of width d = 512, FFN 2048,
// 4096 tokens (batch * sequence length). Forward: y = x W^T, W stored (out, in).
struct Shape {
  const char* name;
  bool trans_a, trans_b;
  int64_t m, n, k;
};

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

double gflop(const Shape& s) { return 2.0 * static_cast<double>(s.m * s.n * s.k) * 1e-9; }

std::string shape_label(const Shape& s) {
  return std::string(s.name) + "/" + (s.trans_a ? "T" : "N") + (s.trans_b ? "T" : "N") +
         "/m:" + std::to_string(s.m) + "/n:" + std::to_string(s.n) + "/k:" + std::to_string(s.k);
}

// Dense row-major operands of one shape: A (m, k) or (k, m) when trans_a,
// B (k, n) or (n, k) when trans_b, C (m, n); uniform in [-1, 1] from a seed
// that depends only on the shape, so that the child process has the same.
// Made once per shape and kept (~0.25 GB for all), as repetitions interleave.
struct Operands {
  std::vector<float> a, b, c;
  int64_t lda = 0, ldb = 0, ldc = 0;
};

Operands& operands_for(int shape_index) {
  static std::map<int, Operands> all;
  if (auto it = all.find(shape_index); it != all.end()) return it->second;
  const Shape& s = kShapes[shape_index];
  Operands& ops = all[shape_index];
  std::mt19937 rng(static_cast<uint32_t>(shape_index + 1));
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

// Worst |C - reference| / tolerance over 16 rows spread over C, all columns
// (<= 1 passes; NaN or infinity in any element of C fails). Tolerance as in
// tests/kernels/gemm_test.cpp: 4 sqrt(k) eps sum_p |a_ip b_pj| + 2 eps |c_ij|.
double check_error(const Shape& s, const Operands& ops) {
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

// One call of a variant, C = A . B (alpha = 1, beta = 0).
using CallFn = void (*)(const Shape&, Operands&);

void call_gemm(const Shape& s, Operands& o) {
  maskattn::detail::gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, o.a.data(), o.lda, o.b.data(),
                         o.ldb, 0.0f, o.c.data(), o.ldc);
}

void call_dnnl_sgemm(const Shape& s, Operands& o) {
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

void call_dnnl_matmul(const Shape& s, Operands& o) {
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

void call_openblas(const Shape& s, Operands& o) {
  cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
              s.trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(s.m),
              static_cast<blasint>(s.n), static_cast<blasint>(s.k), 1.0f, o.a.data(),
              static_cast<blasint>(o.lda), o.b.data(), static_cast<blasint>(o.ldb), 0.0f,
              o.c.data(), static_cast<blasint>(o.ldc));
}

// Runs fn once on fresh NaN-filled C and checks it; then seconds of one call.
double checked_error(CallFn fn, int shape_index) {
  Operands& o = operands_for(shape_index);
  std::fill(o.c.begin(), o.c.end(), std::numeric_limits<float>::quiet_NaN());
  fn(kShapes[shape_index], o);
  return check_error(kShapes[shape_index], o);
}

double timed_call(CallFn fn, int shape_index) {
  Operands& o = operands_for(shape_index);
  const auto start = std::chrono::steady_clock::now();
  fn(kShapes[shape_index], o);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- the openblas_best child process ------------------------------------------
// Requests on its stdin: {op, shape index}; answers on its stdout: one double
// (op kCheck: the check error; op kRun: seconds of one timed call). Its first
// answer is OpenBLAS's core name, 64 bytes.

constexpr char kChildFlag[] = "--openblas_yardstick_child=";  // =<threads>
enum Op : int32_t { kCheck = 1, kRun = 2 };
struct Request {
  int32_t op, shape;
};

bool read_all(int fd, void* p, std::size_t n) {
  auto* bytes = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t got = read(fd, bytes, n);
    if (got <= 0) return false;
    bytes += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

bool write_all(int fd, const void* p, std::size_t n) {
  const auto* bytes = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t put = write(fd, bytes, n);
    if (put <= 0) return false;
    bytes += put;
    n -= static_cast<std::size_t>(put);
  }
  return true;
}

std::string openblas_core() { return openblas_get_corename(); }

int child_main(int threads) {
  openblas_set_num_threads(threads);
  char core[64] = {};
  std::snprintf(core, sizeof core, "%s", openblas_core().c_str());
  if (!write_all(STDOUT_FILENO, core, sizeof core)) return 1;
  Request req;
  while (read_all(STDIN_FILENO, &req, sizeof req)) {
    if (req.shape < 0 || req.shape >= kNumShapes) return 1;
    const double answer = req.op == kCheck ? checked_error(call_openblas, req.shape)
                                           : timed_call(call_openblas, req.shape);
    if (!write_all(STDOUT_FILENO, &answer, sizeof answer)) return 1;
  }
  return 0;
}

class Child {
 public:
  // Starts this program again as the yardstick child, with the environment
  // minus OPENBLAS_CORETYPE. Returns false (and stays unusable) on failure.
  bool start(int threads) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0) return false;
    if (pipe(from_child) != 0) return false;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]})
      posix_spawn_file_actions_addclose(&actions, fd);
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e)
      if (!std::string_view(*e).starts_with("OPENBLAS_CORETYPE=")) env.push_back(*e);
    env.push_back(nullptr);
    std::string exe = "/proc/self/exe", flag = kChildFlag + std::to_string(threads);
    char* argv[] = {exe.data(), flag.data(), nullptr};
    const int rc = posix_spawn(&pid_, exe.c_str(), &actions, nullptr, argv, env.data());
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
    char core[64] = {};
    if (rc != 0 || !read_all(from_, core, sizeof core)) {
      stop();
      return false;
    }
    core[sizeof core - 1] = '\0';
    core_ = core;
    return true;
  }

  std::optional<double> ask(Op op, int shape) {
    if (to_ < 0) return std::nullopt;
    const Request req{op, shape};
    double answer = 0.0;
    if (!write_all(to_, &req, sizeof req) || !read_all(from_, &answer, sizeof answer)) {
      stop();
      return std::nullopt;
    }
    return answer;
  }

  const std::string& core() const { return core_; }

  void stop() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    to_ = from_ = -1;
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  ~Child() { stop(); }

 private:
  pid_t pid_ = 0;
  int to_ = -1, from_ = -1;
  std::string core_;
};

Child& child() {
  static Child c;
  return c;
}

// ---- benchmarks ------------------------------------------------------------------

struct Variant {
  const char* name;
  CallFn fn;  // nullptr: the child process
};

constexpr Variant kVariants[] = {
    {"gemm", call_gemm},         {"dnnl_matmul", call_dnnl_matmul}, {"dnnl_sgemm", call_dnnl_sgemm},
    {"openblas", call_openblas}, {"openblas_best", nullptr},
};

// Check error of each (variant, shape), measured before its first timing
// (repetitions come back to the same pair, interleaved with others).
std::optional<double> check_once(const Variant& v, int shape_index) {
  static std::map<std::pair<const Variant*, int>, std::optional<double>> checked;
  const auto key = std::make_pair(&v, shape_index);
  if (auto it = checked.find(key); it != checked.end()) return it->second;
  return checked[key] = v.fn ? checked_error(v.fn, shape_index) : child().ask(kCheck, shape_index);
}

// Idle time before each timed repetition. OpenBLAS's idle workers spin (with
// sched_yield) for up to 2^28 cycles, ~0.1 s here, after its last call, and
// on 2 cores that slows whatever runs next, in this process or the child; so
// every variant starts after the previous one's threads have gone to sleep.
constexpr auto kSettle = std::chrono::milliseconds(150);

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
  std::this_thread::sleep_for(kSettle);
  for (auto _ : state) {
    const std::optional<double> seconds =
        v.fn ? timed_call(v.fn, shape_index) : child().ask(kRun, shape_index);
    if (!seconds) {
      state.SkipWithError("yardstick child process died");
      return;
    }
    state.SetIterationTime(*seconds);
  }
  state.counters["GFLOP"] = benchmark::Counter(gflop(kShapes[shape_index]),
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
  if (argc == 2 && std::string_view(argv[1]).starts_with(kChildFlag))
    return child_main(std::atoi(argv[1] + std::strlen(kChildFlag)));

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // The same thread count for every variant: OpenMP's, which oneDNN uses.
  const int threads = maskattn::detail::max_threads();
  std::signal(SIGPIPE, SIG_IGN);  // a dead child shows as a failed write, not a killed parent
  openblas_set_num_threads(threads);
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const std::string env_core = openblas_core();
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
