// The flash attention backend's forward against this machine's own limits,
// measured side by side in one run, same process, same thread count (OpenMP's;
// OpenBLAS's pthreads set to it):
//
//   yardstick   fp32 GEMM 2048 x 2048 x 2048 through detail::gemm (oneDNN, in
//               process) and OpenBLAS cblas_sgemm in a child process started
//               without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (its kernels for this
//               CPU; bench/gemm_yardstick.hpp); the faster is "the sgemm rate".
//               Memory read bandwidth: every thread sums its share of a 512 MiB
//               float buffer (8 accumulators of 4 lanes; checked; bench/read_bandwidth.hpp).
//   configs     attention forward, backend Flash, fp32 unless named *16 or (g):
//                 a      B=8 H=12 L=512 D=64 causal
//                 b, b0  B=1 H=16 L=2048 D=64 causal; no mask
//                 c      B=1 H=32 L=4096 D=128 causal
//                 d      b0's shape, key_lengths: half the keys
//                 e, e0  B=1 H=16 L=4096 D=64 sliding_window(256, 0); no mask
//                 f      e0's shape, documents(): 4 documents of 1024 (not causal)
//                 g      decode: Lq=1 Lk=8192 Hq=32 Hkv=8 D=128 bf16, causal(BottomRight)
//                        (every key); g32 the same in fp32. K and V are read from
//                        memory, not cache: each call reads the next of several
//                        copies (>= 256 MiB in all, 8 x this CPU's L3)
//                 b16, b0_16, c16   b, b0, c with bf16 q/k/v
//   memory      B=1 H=8 L=32768 D=64 causal, once, in a fresh child process:
//               its peak resident set (VmHWM) after q, k, v, out are allocated
//               and touched, and after one flash call (the thread team started
//               before the first reading).
//
// Before a config is timed, flash is checked against the reference backend on
// one (b, h) slice of it (B=1, H=Hkv=1 with the same L, D and mask, inputs of its
// own; (g): one key/value group, Hq=4 Hkv=1): the max |out difference| is printed
// and the run stops above 1e-4 (fp32) or 1e-2 (bf16). Unless --quick, the
// reference backend (double precision, scalar: far too slow for the whole call)
// is then timed once more on that slice and scaled by the number of slices.
//
// Rounds: every round re-measures the yardstick and times every config once
// (round 0 warms each config up with one untimed call first). One timing is the
// median of calls repeated for at least 0.2 s (0.05 s with --quick). Reported:
// medians over rounds; ratios are taken within each round (side by side) and
// their median reported; cv = coefficient of variation of a config's time over
// rounds. On a shared machine, read differences within a few cv as noise.
//
//   bench_flash                      5 rounds, every config, reference timed (~1-2 min)
//   bench_flash --quick              2 rounds, reference only for the check (< 1 min)
//   bench_flash --configs c,c16 --rounds 9
//                                    these configs (and the baselines their ratios need);
//                                    the memory measurement only when the list names `memory`
//
// Columns of the table:
//   allowed    allowed (b, h, i, j) pairs / all pairs, counted exactly from the bound mask
//   ms, cv     flash: median time of one call over rounds, and its coefficient of variation
//   GFLOP/s    useful GFLOP/s: 4 D (allowed pairs) / time
//   /sgemm     that / the sgemm rate of the same round (median over rounds)
//   GB/s       decode only: K and V bytes read (2 Hkv Lk D element bytes) / time
//   /read      that / the read bandwidth of the same round
//   ref s      reference backend: one slice's time x slices (estimated full-call seconds)
//   speed-up   ref s / flash time
//   max|diff|  the check: max |flash - reference| on the slice
// The run ends with the ratios beside their targets (PASS / MISS).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "allowed_pairs.hpp"
#include "child_process.hpp"
#include "core/parallel_for.hpp"
#include "gemm_yardstick.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"
#include "read_bandwidth.hpp"
#include "timing.hpp"

namespace {

using bench::cv;
using bench::median;
using bench::median_call;
using bench::seconds_since;
using maskattn::Backend;
using maskattn::BFloat16;
using maskattn::Mask;
using maskattn::Tensor;
using Clock = bench::Clock;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMiB = 1024.0 * 1024.0;

[[noreturn]] void fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "bench_flash: %s\n", what.c_str());
  std::exit(1);
}

// ---- configurations ----------------------------------------------------------------

enum class MaskKind { None, Causal, HalfKeys, Window256, FourDocuments, AllKeys };

// q (batch, hq, lq, d), k and v (batch, hkv, lk, d).
struct Config {
  const char* name;
  int64_t batch, hq, hkv, lq, lk, d;
  bool bf16;
  MaskKind mask;
  bool decode() const { return lq == 1; }
};

constexpr Config kConfigs[] = {
    {"a", 8, 12, 12, 512, 512, 64, false, MaskKind::Causal},
    {"b", 1, 16, 16, 2048, 2048, 64, false, MaskKind::Causal},
    {"b0", 1, 16, 16, 2048, 2048, 64, false, MaskKind::None},
    {"c", 1, 32, 32, 4096, 4096, 128, false, MaskKind::Causal},
    {"d", 1, 16, 16, 2048, 2048, 64, false, MaskKind::HalfKeys},
    {"e", 1, 16, 16, 4096, 4096, 64, false, MaskKind::Window256},
    {"e0", 1, 16, 16, 4096, 4096, 64, false, MaskKind::None},
    {"f", 1, 16, 16, 4096, 4096, 64, false, MaskKind::FourDocuments},
    {"g", 1, 32, 8, 1, 8192, 128, true, MaskKind::AllKeys},
    {"g32", 1, 32, 8, 1, 8192, 128, false, MaskKind::AllKeys},
    {"b16", 1, 16, 16, 2048, 2048, 64, true, MaskKind::Causal},
    {"b0_16", 1, 16, 16, 2048, 2048, 64, true, MaskKind::None},
    {"c16", 1, 32, 32, 4096, 4096, 128, true, MaskKind::Causal},
};

// The memory measurement's shape.
constexpr Config kMemoryConfig = {"memory", 1, 8, 8, 32768, 32768, 64, false, MaskKind::Causal};
constexpr double kMemoryTargetMiB = 64.0;

const Config* find_config(std::string_view name) {
  for (const Config& c : kConfigs)
    if (name == c.name) return &c;
  return nullptr;
}

// The mask of kind for `batch` rows of len keys (self attention, Lq == Lk, but
// for AllKeys).
Mask make_mask(MaskKind kind, int64_t batch, int64_t len) {
  switch (kind) {
    case MaskKind::None: return Mask{};
    case MaskKind::Causal: return maskattn::causal();
    case MaskKind::HalfKeys:
      return maskattn::key_lengths(std::vector<int64_t>(static_cast<std::size_t>(batch), len / 2));
    case MaskKind::Window256: return maskattn::sliding_window(256, 0);
    case MaskKind::FourDocuments: {
      Tensor<int64_t> ids({len});  // copied by documents()
      for (int64_t i = 0; i < len; ++i) ids.data()[i] = i / (len / 4);
      return maskattn::documents(ids);
    }
    case MaskKind::AllKeys: return maskattn::causal(maskattn::Align::BottomRight);
  }
  return Mask{};
}

// Allowed (b, h, i, j) pairs of a config's mask, exactly.
int64_t allowed_pairs(const Config& c, const Mask& mask) {
  return bench::allowed_pairs(mask, {c.batch, c.hq, c.lq, c.lk});
}

// ---- inputs ------------------------------------------------------------------------

// Uniform in [-1, 1) from (seed, index): splitmix64.
float uniform(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + index + 1;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0);
}

template <class T>
void fill(Tensor<T>& t, uint64_t seed) {
  T* p = t.data();
  maskattn::detail::parallel_for_ranges(t.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float x = uniform(seed, static_cast<uint64_t>(i));
      if constexpr (std::is_same_v<T, BFloat16>)
        p[i] = maskattn::to_bfloat16(x);
      else
        p[i] = x;
    }
  });
}

// K and V of a decode config are read from memory: each call takes the next of
// enough copies to fill 256 MiB (8 x the 32 MiB L3 here).
constexpr double kRotateBytes = 256.0 * kMiB;

// The tensors of one shape and dtype, allocated and touched at construction:
//   q (B, Hq, Lq, D), `copies` of k and v (B, Hkv, Lk, D) used in turn, out (B, Hq, Lq, D).
template <class T>
struct Tensors {
  Tensor<T> q;
  std::vector<Tensor<T>> k, v;
  Tensor<float> out;

  Tensors(const Config& c, int copies, uint64_t seed) : q({c.batch, c.hq, c.lq, c.d}) {
    fill(q, seed);
    for (int x = 0; x < copies; ++x) {
      k.emplace_back(std::vector<int64_t>{c.batch, c.hkv, c.lk, c.d});
      v.emplace_back(k.back().shape());
      fill(k.back(), seed + 1 + 2 * static_cast<uint64_t>(x));
      fill(v.back(), seed + 2 + 2 * static_cast<uint64_t>(x));
    }
    out = Tensor<float>({c.batch, c.hq, c.lq, c.d});
    std::fill(out.begin(), out.end(), 0.0f);
  }

  void call(int copy, const Mask& mask, Backend backend) {
    maskattn::AttentionOptions opts;
    opts.backend = backend;
    const auto x = static_cast<std::size_t>(copy);
    maskattn::attention(std::as_const(q).template view<4>(), std::as_const(k[x]).template view<4>(),
                        std::as_const(v[x]).template view<4>(), out.view<4>(), mask, opts);
  }
};

// One shape's inputs in the config's dtype; run() calls attention on the next copy.
class Problem {
 public:
  Problem(const Config& c, int copies, uint64_t seed) {
    if (c.bf16)
      bf16_ = std::make_unique<Tensors<BFloat16>>(c, copies, seed);
    else
      fp32_ = std::make_unique<Tensors<float>>(c, copies, seed);
    copies_ = copies;
  }

  void run(const Mask& mask, Backend backend) {
    if (bf16_)
      bf16_->call(next_, mask, backend);
    else
      fp32_->call(next_, mask, backend);
    next_ = (next_ + 1) % copies_;
  }

  // Seconds of one run().
  double timed_run(const Mask& mask, Backend backend) {
    const auto start = Clock::now();
    run(mask, backend);
    return seconds_since(start);
  }

  const Tensor<float>& out() const { return bf16_ ? bf16_->out : fp32_->out; }

 private:
  std::unique_ptr<Tensors<float>> fp32_;
  std::unique_ptr<Tensors<BFloat16>> bf16_;
  int copies_ = 1, next_ = 0;
};

int64_t element_bytes(const Config& c) { return c.bf16 ? 2 : 4; }

// Bytes of K and V one call reads.
double kv_bytes(const Config& c) {
  return 2.0 * static_cast<double>(c.batch * c.hkv * c.lk * c.d * element_bytes(c));
}

int copies_for(const Config& c) {
  return c.decode() ? static_cast<int>(std::ceil(kRotateBytes / kv_bytes(c))) : 1;
}

// The one (b, h) slice the reference backend runs on: B=1, H=Hkv=1; a decode
// config keeps its group of query heads per key/value head.
Config slice_of(const Config& c) {
  Config s = c;
  s.batch = 1;
  s.hkv = 1;
  s.hq = c.hq / c.hkv;
  return s;
}

int64_t slices(const Config& c) { return c.batch * c.hkv; }

// ---- the memory child process ------------------------------------------------------

constexpr std::string_view kMemoryChildFlag = "--memory_child";

struct MemoryResult {
  double inputs_mib, before_mib, after_mib, seconds;
};

// This process's peak resident set (VmHWM), MiB; NaN if unreadable.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmHWM:")) return std::stod(line.substr(6)) / 1024.0;
  return kNaN;
}

int memory_child_main() {
  const Config& c = kMemoryConfig;
  Problem problem(c, 1, 7);
  const Mask mask = make_mask(c.mask, c.batch, c.lk);
  maskattn::detail::parallel_for(maskattn::detail::max_threads(), [](int64_t) {});
  MemoryResult r{};
  r.inputs_mib = 4.0 * static_cast<double>(c.batch * c.hq * c.lq * c.d) * sizeof(float) / kMiB;
  r.before_mib = peak_rss_mib();
  r.seconds = problem.timed_run(mask, Backend::Flash);
  r.after_mib = peak_rss_mib();
  return bench::answer(r) ? 0 : 1;
}

// ---- text ------------------------------------------------------------------------------

std::string shape_text(const Config& c) {
  auto n = [](int64_t x) { return std::to_string(x); };
  if (c.decode())
    return "B=" + n(c.batch) + " Hq=" + n(c.hq) + " Hkv=" + n(c.hkv) + " Lq=1 Lk=" + n(c.lk) +
           " D=" + n(c.d);
  if (c.hq != c.hkv || c.lq != c.lk)
    return "B=" + n(c.batch) + " Hq=" + n(c.hq) + " Hkv=" + n(c.hkv) + " Lq=" + n(c.lq) +
           " Lk=" + n(c.lk) + " D=" + n(c.d);
  return "B=" + n(c.batch) + " H=" + n(c.hq) + " L=" + n(c.lq) + " D=" + n(c.d);
}

// A printf-formatted number, or "-" for NaN (not measured).
std::string number(const char* format, double v) {
  if (std::isnan(v)) return "-";
  char text[32];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

// ---- one config's measurements -----------------------------------------------------

struct Options {
  bool quick = false;
  int rounds = 5;
  double min_seconds = 0.2;  // of one timing
  std::vector<const Config*> configs;
  bool memory = true;  // the memory measurement
};

struct Measured {
  const Config* config;
  Problem* problem;
  Mask mask;
  double allowed = 0;               // allowed (b, h, i, j) pairs
  double max_diff = kNaN;           // the check
  double reference_seconds = kNaN;  // scaled to the whole call
  std::vector<double> seconds;      // flash, per round
};

double useful_gflop(const Config& c, double allowed) {
  return 4.0 * static_cast<double>(c.d) * allowed * 1e-9;
}

double all_pairs(const Config& c) { return static_cast<double>(c.batch * c.hq * c.lq * c.lk); }

// max |a - b| over every element; NaN if either has NaN where the other differs.
double max_difference(const Tensor<float>& a, const Tensor<float>& b) {
  double diff = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double e = std::abs(static_cast<double>(a.data()[i]) - b.data()[i]);
    if (std::isnan(e)) return e;
    diff = std::max(diff, e);
  }
  return diff;
}

// Flash against reference on one slice (printed; the run stops above the
// limit); then, unless quick, the reference's time on the slice, scaled.
void check_and_time_reference(Measured& m, const Options& opts) {
  const Config& c = *m.config;
  const Config s = slice_of(c);
  Problem slice(s, 1, 11);
  const Mask mask = make_mask(s.mask, s.batch, s.lk);
  slice.run(mask, Backend::Reference);
  const Tensor<float> expected = slice.out();
  slice.run(mask, Backend::Flash);
  m.max_diff = max_difference(slice.out(), expected);
  const double limit = s.bf16 ? 1e-2 : 1e-4;
  std::printf("  %-6s slice %-34s max |flash - reference| %.1e (limit %.0e)", c.name,
              shape_text(s).c_str(), m.max_diff, limit);
  if (!(m.max_diff <= limit)) {
    std::printf("\n");
    fail(std::string("config ") + c.name + ": flash differs from reference");
  }
  if (!opts.quick) {
    const double one = slice.timed_run(mask, Backend::Reference);
    m.reference_seconds = one * static_cast<double>(slices(c));
    std::printf("; reference %.3f s x %lld slices", one, static_cast<long long>(slices(c)));
  }
  std::printf("\n");
  std::fflush(stdout);
}

// ---- the yardstick -------------------------------------------------------------------

// Measured once per round: the sgemm rate and the read bandwidth.
struct Yardstick : bench::SgemmRate {
  bench::ReadBandwidth bandwidth;
  std::vector<double> read;  // GB/s

  explicit Yardstick(int threads) : SgemmRate(threads) {}

  void measure(double min_seconds) {
    SgemmRate::measure(min_seconds);
    const std::optional<double> pass =
        median_call([&] { return bandwidth.timed_pass(); }, min_seconds);
    if (!pass) fail("read bandwidth: wrong sum");
    read.push_back(bandwidth.bytes() * 1e-9 / *pass);
  }
};

// ---- ratios and targets ----------------------------------------------------------------

enum class Measure {
  RateOverSgemm,      // useful GFLOP/s / sgemm rate
  TimeRatio,          // time / baseline's time
  ThroughputRatio,    // baseline's time / time (the same work)
  BandwidthFraction,  // K/V bytes per second / read bandwidth
};

struct Target {
  const char* config;
  const char* baseline;  // nullptr: the yardstick
  Measure measure;
  double target;  // NaN: no target, shown for information
  bool at_least;
};

constexpr Target kTargets[] = {
    {"a", nullptr, Measure::RateOverSgemm, 0.70, true},
    {"b", nullptr, Measure::RateOverSgemm, 0.70, true},
    {"c", nullptr, Measure::RateOverSgemm, 0.70, true},
    {"d", "b0", Measure::TimeRatio, 0.55, false},
    {"e", "e0", Measure::TimeRatio, 0.10, false},
    {"f", "e0", Measure::TimeRatio, 0.30, false},
    {"b16", "b", Measure::ThroughputRatio, 1.6, true},
    {"c16", "c", Measure::ThroughputRatio, 1.6, true},
    {"b0_16", "b0", Measure::ThroughputRatio, kNaN, true},
    {"g", nullptr, Measure::BandwidthFraction, 0.60, true},
    {"g32", nullptr, Measure::BandwidthFraction, kNaN, true},
    {"g", "g32", Measure::ThroughputRatio, kNaN, true},
};

// The median over rounds of `measure` for m (against baseline when it has one).
double median_ratio(Measure measure, const Measured& m, const Measured* baseline,
                    const Yardstick& y) {
  std::vector<double> r;
  for (std::size_t i = 0; i < m.seconds.size(); ++i) {
    const double s = m.seconds[i];
    switch (measure) {
      case Measure::RateOverSgemm:
        r.push_back(useful_gflop(*m.config, m.allowed) / s / y.sgemm[i]);
        break;
      case Measure::TimeRatio: r.push_back(s / baseline->seconds[i]); break;
      case Measure::ThroughputRatio: r.push_back(baseline->seconds[i] / s); break;
      case Measure::BandwidthFraction:
        r.push_back(kv_bytes(*m.config) / s * 1e-9 / y.read[i]);
        break;
    }
  }
  return median(r);
}

std::string target_label(const Target& t) {
  const std::string c = std::string("(") + t.config + ")";
  switch (t.measure) {
    case Measure::RateOverSgemm: return c + " useful GFLOP/s / sgemm rate";
    case Measure::TimeRatio: return c + " time / (" + t.baseline + ") time";
    case Measure::ThroughputRatio: return c + " / (" + t.baseline + ") throughput";
    case Measure::BandwidthFraction: return c + " K/V GB/s / read bandwidth";
  }
  return c;
}

void print_verdict(const std::string& label, double value, double target, bool at_least) {
  std::printf("  %-44s %8.3f", label.c_str(), value);
  if (!std::isnan(target))
    std::printf("   %s %5.2f   %s", at_least ? ">=" : "<=", target,
                (at_least ? value >= target : value <= target) ? "PASS" : "MISS");
  std::printf("\n");
}

// ---- the run ---------------------------------------------------------------------------

std::optional<Options> parse(int argc, char** argv) {
  Options o;
  bool rounds_given = false, configs_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      o.quick = true;
    } else if (arg == "--rounds" && i + 1 < argc) {
      o.rounds = std::atoi(argv[++i]);
      rounds_given = true;
      if (o.rounds < 1 || o.rounds > 1000) return std::nullopt;
    } else if (arg == "--configs" && i + 1 < argc) {
      std::string_view list = argv[++i];
      configs_given = true;
      o.memory = false;
      while (!list.empty()) {
        const std::size_t comma = std::min(list.find(','), list.size());
        const std::string_view name = list.substr(0, comma);
        const Config* c = find_config(name);
        if (c == nullptr && name != kMemoryConfig.name) return std::nullopt;
        if (c == nullptr)
          o.memory = true;
        else
          o.configs.push_back(c);
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
  if (!configs_given)
    for (const Config& c : kConfigs) o.configs.push_back(&c);
  if (o.configs.empty() && !o.memory) return std::nullopt;
  // The baselines that the chosen configs' ratios need.
  for (const Target& t : kTargets) {
    const bool chosen =
        std::find(o.configs.begin(), o.configs.end(), find_config(t.config)) != o.configs.end();
    if (chosen && t.baseline) o.configs.push_back(find_config(t.baseline));
  }
  // Once each, in kConfigs' order (pointers into it).
  std::sort(o.configs.begin(), o.configs.end());
  o.configs.erase(std::unique(o.configs.begin(), o.configs.end()), o.configs.end());
  return o;
}

void usage() {
  std::fprintf(stderr,
               "usage: bench_flash [--quick] [--rounds N] [--configs NAME,NAME,...]\n"
               "configs (default: all):");
  for (const Config& c : kConfigs) std::fprintf(stderr, " %s", c.name);
  std::fprintf(stderr, " %s\n", kMemoryConfig.name);
}

// Inputs (shared by the configs of one shape and dtype), masks, pair counts, checks.
std::vector<Measured> prepare(const Options& opts,
                              std::vector<std::unique_ptr<Problem>>& problems) {
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>, Problem*>
      by_shape;
  std::vector<Measured> runs;
  for (const Config* c : opts.configs) {
    Problem*& p = by_shape[{c->batch, c->hq, c->hkv, c->lq, c->lk, c->d, c->bf16}];
    if (p == nullptr)
      p = problems.emplace_back(std::make_unique<Problem>(*c, copies_for(*c), 1)).get();
    Measured m{c, p, make_mask(c->mask, c->batch, c->lk), 0.0, kNaN, kNaN, {}};
    m.allowed = static_cast<double>(allowed_pairs(*c, m.mask));
    check_and_time_reference(m, opts);
    runs.push_back(std::move(m));
  }
  return runs;
}

void run_rounds(const Options& opts, Yardstick& y, std::vector<Measured>& runs) {
  for (int r = 0; r < opts.rounds; ++r) {
    const auto start = Clock::now();
    y.measure(opts.min_seconds);
    for (Measured& m : runs) {
      if (r == 0) m.problem->run(m.mask, Backend::Flash);  // warm-up
      m.seconds.push_back(*median_call([&] { return m.problem->timed_run(m.mask, Backend::Flash); },
                                       opts.min_seconds));
    }
    std::printf(
        "round %d/%d: sgemm %.1f GFLOP/s (oneDNN %.1f, OpenBLAS %s), read %.1f GB/s, "
        "%.1f s\n",
        r + 1, opts.rounds, y.sgemm.back(), y.gemm.back(), number("%.1f", y.blas.back()).c_str(),
        y.read.back(), seconds_since(start));
    std::fflush(stdout);
  }
}

void print_yardstick(const Yardstick& y, int threads) {
  const std::string gemm_cv = number("%.1f%%", 100 * cv(y.gemm)),
                    blas_cv = number("%.1f%%", 100 * cv(y.blas)),
                    read_cv = number("%.1f%%", 100 * cv(y.read));
  std::printf("\nyardstick, medians over rounds (cv):\n");
  std::printf(
      "  fp32 GEMM 2048^3: oneDNN (detail::gemm) %.1f GFLOP/s (cv %s), OpenBLAS (%s) %s "
      "GFLOP/s (cv %s); sgemm rate %.1f GFLOP/s\n",
      median(y.gemm), gemm_cv.c_str(), y.openblas_core().c_str(),
      number("%.1f", median(y.blas)).c_str(), blas_cv.c_str(), median(y.sgemm));
  std::printf("  memory read, %d threads over 512 MiB: %.1f GB/s (cv %s)\n", threads,
              median(y.read), read_cv.c_str());
}

void print_table(const std::vector<Measured>& runs, const Yardstick& y) {
  int shape_w = 5, mask_w = 4;
  for (const Measured& m : runs) {
    shape_w = std::max(shape_w, static_cast<int>(shape_text(*m.config).size()));
    mask_w = std::max(mask_w, static_cast<int>(m.mask.describe().size()));
  }
  std::printf(
      "\nflash forward, medians over rounds; ref s = reference backend timed on one (b, h) "
      "slice, x slices\n");
  std::printf("%-6s %-*s %-4s %-*s %7s %9s %5s %8s %7s %7s %6s %8s %8s %9s\n", "config", shape_w,
              "shape", "type", mask_w, "mask", "allowed", "ms", "cv%", "GFLOP/s", "/sgemm", "GB/s",
              "/read", "ref s", "speed-up", "max|diff|");
  for (const Measured& m : runs) {
    const Config& c = *m.config;
    const double t = median(m.seconds);
    const bool decode = c.decode();
    std::printf(
        "%-6s %-*s %-4s %-*s %6.1f%% %9.3f %5s %8.1f %7.3f %7s %6s %8s %8s %9.1e\n", c.name,
        shape_w, shape_text(c).c_str(), c.bf16 ? "bf16" : "fp32", mask_w, m.mask.describe().c_str(),
        100 * m.allowed / all_pairs(c), t * 1e3, number("%.1f", 100 * cv(m.seconds)).c_str(),
        useful_gflop(c, m.allowed) / t, median_ratio(Measure::RateOverSgemm, m, nullptr, y),
        number("%.1f", decode ? kv_bytes(c) / t * 1e-9 : kNaN).c_str(),
        number("%.3f", decode ? median_ratio(Measure::BandwidthFraction, m, nullptr, y) : kNaN)
            .c_str(),
        number("%.3f", m.reference_seconds).c_str(),
        number("%.1f", m.reference_seconds / t).c_str(), m.max_diff);
  }
}

void print_targets(const std::vector<Measured>& runs, const Yardstick& y) {
  auto find_run = [&](const char* name) -> const Measured* {
    for (const Measured& m : runs)
      if (name != nullptr && std::string_view(m.config->name) == name) return &m;
    return nullptr;
  };
  for (const Target& t : kTargets) {
    const Measured* m = find_run(t.config);
    const Measured* base = find_run(t.baseline);
    if (m == nullptr || (t.baseline && base == nullptr)) continue;
    print_verdict(target_label(t), median_ratio(t.measure, *m, base, y), t.target, t.at_least);
  }
}

// The memory measurement, in a fresh process (and so a fresh address space).
std::optional<MemoryResult> measure_memory() {
  bench::ChildProcess child;
  if (!child.start(std::string(kMemoryChildFlag))) return std::nullopt;
  return child.ask<MemoryResult>();
}

void print_memory(const std::optional<MemoryResult>& memory) {
  if (!memory) {
    std::printf("  memory: the child process failed\n");
    return;
  }
  const Config& c = kMemoryConfig;
  print_verdict("memory: MiB beyond inputs and outputs", memory->after_mib - memory->before_mib,
                kMemoryTargetMiB, false);
  const double pairs = static_cast<double>(allowed_pairs(c, make_mask(c.mask, c.batch, c.lk)));
  std::printf(
      "    (%s causal fp32, one call in a fresh process: inputs and outputs %.0f MiB, "
      "peak RSS %.1f -> %.1f MiB; %.2f s, %.1f useful GFLOP/s)\n",
      shape_text(c).c_str(), memory->inputs_mib, memory->before_mib, memory->after_mib,
      memory->seconds, useful_gflop(c, pairs) / memory->seconds);
}

}  // namespace

int main(int argc, char** argv) {
  if (const std::optional<int> threads = bench::openblas_child_threads(argc, argv))
    return bench::serve_openblas(*threads, bench::kSgemmSquare);
  if (argc == 2 && argv[1] == kMemoryChildFlag) return memory_child_main();
  const std::optional<Options> opts = parse(argc, argv);
  if (!opts) {
    usage();
    return 2;
  }
  const auto start = Clock::now();
  std::signal(SIGPIPE, SIG_IGN);  // a dead child shows as a failed call, not a killed parent

  const int threads = maskattn::detail::max_threads();
  Yardstick y(threads);
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf("bench_flash: %d threads (OpenMP), %d rounds%s\n", threads, opts->rounds,
              opts->quick ? ", --quick (reference not timed)" : "");
  std::printf("OpenBLAS yardstick: child process without OPENBLAS_CORETYPE (here %s), kernels %s\n",
              coretype ? coretype : "unset", y.openblas_core().c_str());

  std::vector<std::unique_ptr<Problem>> problems;
  std::vector<Measured> runs;
  if (!opts->configs.empty()) {
    std::printf("\nchecks, flash vs reference on one (b, h) slice of each config:\n");
    runs = prepare(*opts, problems);
    std::printf("\n");
    run_rounds(*opts, y, runs);
    y.openblas.stop();
  }
  const std::optional<MemoryResult> memory =
      opts->memory ? measure_memory() : std::optional<MemoryResult>();

  if (!runs.empty()) {
    print_yardstick(y, threads);
    print_table(runs, y);
  }
  std::printf("\nthe issue's ratios (medians of per-round ratios) and targets:\n");
  print_targets(runs, y);
  if (opts->memory) print_memory(memory);
  std::printf("\ntotal %.0f s\n", seconds_since(start));
  return 0;
}
