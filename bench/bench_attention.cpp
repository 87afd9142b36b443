// Attention forward on small shapes, reference and flash side by side, per
// mask. (bench_flash measures the large shapes against this machine's
// limits.) Counters:
//   GFLOP         4 * B * H * Lq * Lk * D per call (QK^T and PV, 2 FLOPs per
//                 multiply-add), as a rate: what a mask-blind kernel does;
//   useful_GFLOP  the same over allowed (b, h, i, j) pairs only, as a rate:
//                 the work a mask-aware kernel cannot skip.
// Every configuration is checked once before it is timed (finite output).
//
//   bench_attention --benchmark_min_time=0.05
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"

namespace {

using maskattn::Mask;

// The masks benchmarked, by name; `make(B, L)` builds one for (B, L, L).
struct MaskCase {
  const char* name;
  std::function<Mask(int64_t batch, int64_t len)> make;
};

const std::vector<MaskCase>& mask_cases() {
  static const std::vector<MaskCase> cases{
      {"none", [](int64_t, int64_t) { return Mask{}; }},
      {"causal", [](int64_t, int64_t) { return maskattn::causal(); }},
      {"key_lengths_half",
       [](int64_t batch, int64_t len) {
         return maskattn::key_lengths(
             std::vector<int64_t>(static_cast<std::size_t>(batch), len / 2));
       }},
  };
  return cases;
}

// Allowed (b, h, i, j) pairs of `mask` for (B, H, L, L), from its dense form.
int64_t allowed_pairs(const Mask& mask, int64_t batch, int64_t heads, int64_t len) {
  const maskattn::Tensor<float> m = mask.materialize(batch, heads, len, len);
  int64_t n = 0;
  for (float x : m) n += x != -std::numeric_limits<float>::infinity();
  return n;
}

struct Problem {
  int64_t batch, heads, len, dim;
};

void run_attention(benchmark::State& state, const Problem& p, const MaskCase& mask_case,
                   maskattn::Backend backend) {
  const Mask mask = mask_case.make(p.batch, p.len);
  maskattn::Tensor<float> q({p.batch, p.heads, p.len, p.dim}), k(q.shape()), v(q.shape()),
      out(q.shape());
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = normal(rng);
  maskattn::AttentionOptions opts;
  opts.backend = backend;
  auto call = [&] {
    maskattn::attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), mask, opts);
  };

  call();
  for (float x : out)
    if (!std::isfinite(x)) {
      state.SkipWithError("non-finite output");
      return;
    }

  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double per_pair = 4.0 * static_cast<double>(p.dim) * 1e-9;
  const double total = per_pair * static_cast<double>(p.batch * p.heads * p.len * p.len);
  const double useful =
      per_pair * static_cast<double>(allowed_pairs(mask, p.batch, p.heads, p.len));
  state.counters["GFLOP"] =
      benchmark::Counter(total, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["useful_GFLOP"] =
      benchmark::Counter(useful, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (maskattn::Backend backend : {maskattn::Backend::Reference, maskattn::Backend::Flash})
    for (int64_t len : {128, 512})
      for (const MaskCase& m : mask_cases()) {
        const Problem p{1, 4, len, 64};
        const std::string name = std::string(maskattn::backend_name(backend)) + "/" + m.name +
                                 "/B:1/H:4/L:" + std::to_string(len) + "/D:64";
        benchmark::RegisterBenchmark(
            name.c_str(),
            [p, &m, backend](benchmark::State& s) { run_attention(s, p, m, backend); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
