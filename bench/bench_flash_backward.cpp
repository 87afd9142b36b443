// The flash backend's backward against this machine's sgemm rate, measured
// side by side in one run, same process, same thread count (bench/
// gemm_yardstick.hpp: oneDNN in process, OpenBLAS in a child process with its
// kernels for this CPU; the faster is "the sgemm rate", re-measured every round).
//
//   configs   attention_backward, backend Flash, fp32, from the flash forward's out and lse:
//               a   B=8 H=12 L=512 D=64 causal
//               b   B=1 H=16 L=2048 D=64 causal
//
// Before a config is timed, its backward is checked against the reference
// backend on one (b, h) slice (B=1, H=1, the same L, D and mask, inputs of
// its own): the max |difference| over dq, dk, dv relative to the largest
// reference gradient is printed and the run stops above 1e-4. Unless --quick,
// the reference backward (double precision, scalar) is timed once on that
// slice and scaled by the number of slices (B H).
//
// Rounds: every round re-measures the sgemm rate and times every config once
// (round 0 warms each up with one untimed call). One timing is the median of
// calls repeated for at least 0.2 s (0.05 s with --quick). Reported: medians
// over rounds; ratios taken within each round and their median reported; cv =
// coefficient of variation of a config's time over rounds.
//
//   bench_flash_backward                 5 rounds, reference timed (~1 min)
//   bench_flash_backward --quick         2 rounds, reference only for the check
//   bench_flash_backward --configs b --rounds 9
//
// Columns: ms, cv (flash backward time), GFLOP/s = useful FLOPs / time with
// useful FLOPs = 2.5 x the forward's 4 D (allowed pairs) = 10 D (allowed pairs)
// (five products of the tile per allowed pair, the forward's two plus three),
// /sgemm = that / the same round's sgemm rate, ref s = reference backward,
// one slice's time x slices, speed-up = ref s / flash time, rel|diff| = the check.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "allowed_pairs.hpp"
#include "core/parallel_for.hpp"
#include "gemm_yardstick.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"
#include "timing.hpp"

namespace {

using bench::median;
using maskattn::Backend;
using maskattn::Tensor;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kTarget = 0.50;  // the issue's: useful GFLOP/s >= 0.50 of the sgemm rate

[[noreturn]] void fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "bench_flash_backward: %s\n", what.c_str());
  std::exit(1);
}

struct Config {
  const char* name;
  int64_t batch, heads, len, d;
};

constexpr Config kConfigs[] = {{"a", 8, 12, 512, 64}, {"b", 1, 16, 2048, 64}};

std::string shape_text(const Config& c) {
  return "B=" + std::to_string(c.batch) + " H=" + std::to_string(c.heads) +
         " L=" + std::to_string(c.len) + " D=" + std::to_string(c.d);
}

// One shape's tensors, BHLD: inputs, the forward's out and lse, dout, gradients.
struct Problem {
  Tensor<float> q, k, v, out, lse, dout, dq, dk, dv;
  maskattn::Mask mask = maskattn::causal();

  Problem(const Config& c, unsigned seed)
      : q({c.batch, c.heads, c.len, c.d}),
        k(q.shape()),
        v(q.shape()),
        out(q.shape()),
        lse({c.batch, c.heads, c.len}),
        dout(q.shape()),
        dq(q.shape()),
        dk(q.shape()),
        dv(q.shape()) {
    uint64_t state = seed;
    auto uniform = [&state] {  // [-1, 1), splitmix64
      uint64_t z = (state += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      return static_cast<float>(static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-52 - 1.0);
    };
    for (Tensor<float>* t : {&q, &k, &v, &dout})
      for (float& x : *t) x = uniform();
    maskattn::AttentionOptions opts;
    opts.backend = Backend::Flash;
    maskattn::attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), mask, opts, {},
                        lse.view<3>());
  }

  void backward(Backend backend) {
    maskattn::AttentionOptions opts;
    opts.backend = backend;
    maskattn::attention_backward(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(),
                                 lse.view<3>(), dout.view<4>(), dq.view<4>(), dk.view<4>(),
                                 dv.view<4>(), mask, opts);
  }

  double timed_backward(Backend backend) {
    const auto start = bench::Clock::now();
    backward(backend);
    return bench::seconds_since(start);
  }
};

struct Options {
  bool quick = false;
  int rounds = 5;
  double min_seconds = 0.2;
  std::vector<const Config*> configs;
};

std::optional<Options> parse(int argc, char** argv) {
  Options o;
  bool rounds_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      o.quick = true;
    } else if (arg == "--rounds" && i + 1 < argc) {
      o.rounds = std::atoi(argv[++i]);
      rounds_given = true;
      if (o.rounds < 1 || o.rounds > 1000) return std::nullopt;
    } else if (arg == "--configs" && i + 1 < argc) {
      for (std::string_view list = argv[++i]; !list.empty();) {
        const std::size_t comma = std::min(list.find(','), list.size());
        const Config* found = nullptr;
        for (const Config& c : kConfigs)
          if (list.substr(0, comma) == c.name) found = &c;
        if (found == nullptr) return std::nullopt;
        o.configs.push_back(found);
        list.remove_prefix(std::min(comma + 1, list.size()));
      }
    } else {
      return std::nullopt;
    }
  }
  if (o.quick) {
    o.min_seconds = 0.05;
    if (!rounds_given) o.rounds = 2;
  }
  if (o.configs.empty())
    for (const Config& c : kConfigs) o.configs.push_back(&c);
  return o;
}

struct Measured {
  const Config* config;
  std::unique_ptr<Problem> problem;
  double allowed = 0;
  double rel_diff = kNaN;
  double reference_seconds = kNaN;  // scaled to the whole call
  std::vector<double> seconds;      // flash, per round
};

double useful_gflop(const Config& c, double allowed) {
  return 2.5 * 4.0 * static_cast<double>(c.d) * allowed * 1e-9;
}

// max |a - b| / max(1, max |b|) over the three gradients.
double relative_difference(const Problem& f, const Problem& r) {
  double diff = 0.0, scale = 1.0;
  for (auto [a, b] : {std::pair{&f.dq, &r.dq}, {&f.dk, &r.dk}, {&f.dv, &r.dv}})
    for (int64_t i = 0; i < a->numel(); ++i) {
      const double e = std::abs(static_cast<double>(a->data()[i]) - b->data()[i]);
      if (std::isnan(e)) return e;
      diff = std::max(diff, e);
      scale = std::max(scale, std::abs(static_cast<double>(b->data()[i])));
    }
  return diff / scale;
}

void check_and_time_reference(Measured& m, const Options& opts) {
  const Config& c = *m.config;
  const Config s{c.name, 1, 1, c.len, c.d};
  Problem flash(s, 11), reference(s, 11);
  flash.backward(Backend::Flash);
  reference.backward(Backend::Reference);
  m.rel_diff = relative_difference(flash, reference);
  std::printf("  %s slice %s: max |flash - reference| / scale %.1e (limit 1e-4)", c.name,
              shape_text(s).c_str(), m.rel_diff);
  if (!(m.rel_diff <= 1e-4)) {
    std::printf("\n");
    fail(std::string("config ") + c.name + ": flash backward differs from reference");
  }
  if (!opts.quick) {
    const double one = reference.timed_backward(Backend::Reference);
    m.reference_seconds = one * static_cast<double>(c.batch * c.heads);
    std::printf("; reference %.3f s x %lld slices", one, static_cast<long long>(c.batch * c.heads));
  }
  std::printf("\n");
  std::fflush(stdout);
}

std::string number(const char* format, double v) {
  if (std::isnan(v)) return "-";
  char text[32];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (const std::optional<int> threads = bench::openblas_child_threads(argc, argv))
    return bench::serve_openblas(*threads, bench::kSgemmSquare);
  const std::optional<Options> opts = parse(argc, argv);
  if (!opts) {
    std::fprintf(stderr, "usage: bench_flash_backward [--quick] [--rounds N] [--configs a,b]\n");
    return 2;
  }
  const auto start = bench::Clock::now();
  std::signal(SIGPIPE, SIG_IGN);
  const int threads = maskattn::detail::max_threads();
  bench::SgemmRate y(threads);
  std::printf("bench_flash_backward: %d threads (OpenMP), %d rounds%s; OpenBLAS kernels %s\n",
              threads, opts->rounds, opts->quick ? ", --quick (reference not timed)" : "",
              y.openblas_core().c_str());

  std::printf("\nchecks, flash vs reference backward on one (b, h) slice of each config:\n");
  std::vector<Measured> runs;
  for (const Config* c : opts->configs) {
    Measured m{c, std::make_unique<Problem>(*c, 1), 0.0, kNaN, kNaN, {}};
    m.allowed = static_cast<double>(
        bench::allowed_pairs(m.problem->mask, {c->batch, c->heads, c->len, c->len}));
    check_and_time_reference(m, *opts);
    runs.push_back(std::move(m));
  }
  std::printf("\n");
  for (int r = 0; r < opts->rounds; ++r) {
    const auto round_start = bench::Clock::now();
    y.measure(opts->min_seconds);
    for (Measured& m : runs) {
      if (r == 0) m.problem->backward(Backend::Flash);  // warm-up
      m.seconds.push_back(*bench::median_call(
          [&] { return m.problem->timed_backward(Backend::Flash); }, opts->min_seconds));
    }
    std::printf("round %d/%d: sgemm %.1f GFLOP/s (oneDNN %.1f, OpenBLAS %s), %.1f s\n", r + 1,
                opts->rounds, y.sgemm.back(), y.gemm.back(), number("%.1f", y.blas.back()).c_str(),
                bench::seconds_since(round_start));
    std::fflush(stdout);
  }
  y.openblas.stop();

  std::printf("\nsgemm rate, median over rounds: %.1f GFLOP/s (oneDNN %.1f, OpenBLAS %s)\n",
              median(y.sgemm), median(y.gemm), number("%.1f", median(y.blas)).c_str());
  std::printf("\nflash backward, causal, medians over rounds:\n");
  std::printf("%-6s %-22s %9s %5s %8s %7s %8s %8s %9s\n", "config", "shape", "ms", "cv%", "GFLOP/s",
              "/sgemm", "ref s", "speed-up", "rel|diff|");
  for (const Measured& m : runs) {
    const Config& c = *m.config;
    const double t = median(m.seconds);
    std::vector<double> ratio;
    for (std::size_t i = 0; i < m.seconds.size(); ++i)
      ratio.push_back(useful_gflop(c, m.allowed) / m.seconds[i] / y.sgemm[i]);
    std::printf("%-6s %-22s %9.2f %5s %8.1f %7.3f %8s %8s %9.1e\n", c.name, shape_text(c).c_str(),
                t * 1e3, number("%.1f", 100 * bench::cv(m.seconds)).c_str(),
                useful_gflop(c, m.allowed) / t, median(ratio),
                number("%.2f", m.reference_seconds).c_str(),
                number("%.0f", m.reference_seconds / t).c_str(), m.rel_diff);
  }
  std::printf("\nthe issue's ratios (medians of per-round ratios) and targets:\n");
  for (const Measured& m : runs) {
    std::vector<double> ratio;
    for (std::size_t i = 0; i < m.seconds.size(); ++i)
      ratio.push_back(useful_gflop(*m.config, m.allowed) / m.seconds[i] / y.sgemm[i]);
    const double value = median(ratio);
    std::printf("  (%s) backward useful GFLOP/s / sgemm rate   %6.3f   >= %.2f   %s\n",
                m.config->name, value, kTarget, value >= kTarget ? "PASS" : "MISS");
  }
  std::printf("\ntotal %.0f s\n", bench::seconds_since(start));
  return 0;
}
