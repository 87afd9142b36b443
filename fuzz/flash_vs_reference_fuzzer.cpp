// libFuzzer target: the flash backend against the reference backend, forward
// and (float32) backward, on fuzzed calls.
//
// One input is a call: shapes (B, Hq, Hkv, Lq, Lk, D, Dv) small enough to
// keep each input fast (L <= 64, decoding shapes up to Lk = 300, D, Dv <=
// 64; GQA and MQA through Hq = group * Hkv), layouts (BHLD, BLHD, padded,
// and key/value heads broadcast with stride 0), float32 or bfloat16 inputs
// of fuzzed magnitude (large logits included), sometimes a NaN or +-inf in
// an input, a mask (tests/mask/random_masks.hpp: every part kind and
// combination, from a fuzzed seed), and options (scale, softcap, dropout
// and its seed, head_mask (Hq) or (B, Hq) in float32 or float64, every
// EmptyRows policy, weights and lse wanted or not, the SIMD target and the
// thread count). Rarely one argument is made invalid on purpose.
//
// Findings (the target aborts with a message naming the call):
//   - an exception other than maskattn::Error; an invalid argument without an
//     Error; a valid call with one; flash and reference disagreeing on
//     whether a call is valid;
//   - flash and reference results differing beyond the tolerances of
//     tests/attention/flash_test.cpp (out 1e-5 of max |out| in float32, 4e-3
//     of max |v| with bfloat16 inputs; lse 1e-5 of max |lse|; weights 1e-6,
//     growing with max |lse| / 8) and flash_backward_test.cpp (dq, dk, dv
//     2e-5 of max |gradient|, growing likewise) on every row whose inputs are
//     finite (its query, and the keys and values it may attend: one the mask
//     hides may hold a NaN). With a NaN in q, k, v or dout, every gradient
//     the reference makes NaN must be NaN in flash and every other one
//     finite and within tolerance. Here every bound grows with S / 8, S the larger of max |lse|
//     and max |scale q.k| (raw_score_scale: under a softcap, large raw scores
//     carry the float32 rounding while lse stays small; the first long run
//     found out 5e-5 off at S ~ 2600, the rounding of float32 scores, not a
//     bug);
//   - NaN or +-inf in a result row whose inputs are finite, except the
//     documented empty-row results (EmptyRows::NaN: out and weights NaN; lse
//     -inf); a weight that is not exactly 0 where the mask forbids;
//   - an element of out, weights, lse or a gradient left unwritten, or
//     memory outside a strided output view written.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "attention/backend_compare.hpp"
#include "kernels/simd_targets.hpp"
#include "mask/random_masks.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/error.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::Buffer4;
using testing_attention::Layout;
using testing_attention::max_abs;
using testing_attention::same_within;
using testing_attention::ScopedThreads;
using testing_attention::Shape;
using testing_attention::shape_text;

constexpr float kSentinel = -777.0f;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "flash_vs_reference_fuzzer finding: %s\n", what.c_str());
  std::abort();
}

// How an input is laid out: a Buffer4 layout, or (k and v only) one head's
// storage seen by every key/value head through a stride of 0.
struct InputLayout {
  Layout layout = Layout::BHLD;
  bool broadcast_heads = false;
};

// A float32 input tensor and its bfloat16 copy (same values: the float32
// ones are rounded to bfloat16 first when the call is bf16, so both
// backends and the finiteness checks see the same numbers).
class Input {
 public:
  Input(const std::array<int64_t, 4>& shape, InputLayout l)
      : buf_({shape[0], l.broadcast_heads ? 1 : shape[1], shape[2], shape[3]}, l.layout),
        shape_(shape),
        broadcast_(l.broadcast_heads) {}

  View<float, 4> view() const {
    const View<float, 4> v = buf_.view();
    if (!broadcast_) return v;
    return View<float, 4>(v.data(), shape_, {v.stride(0), 0, v.stride(2), 1});
  }

  void fill(std::mt19937& rng, double magnitude, bool bf16) {
    const View<float, 4> v = buf_.view();
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t a = 0; a < v.size(0); ++a)
      for (int64_t b = 0; b < v.size(1); ++b)
        for (int64_t c = 0; c < v.size(2); ++c)
          for (int64_t d = 0; d < v.size(3); ++d) {
            float x = static_cast<float>(dist(rng) * magnitude);
            if (bf16) x = to_float(to_bfloat16(x));
            v(a, b, c, d) = x;
          }
  }

  // A contiguous bfloat16 copy (B, H, L, D) of view().
  Tensor<BFloat16> bf16() const {
    Tensor<BFloat16> t({shape_[0], shape_[1], shape_[2], shape_[3]});
    const View<float, 4> v = view();
    BFloat16* p = t.data();
    for (int64_t a = 0; a < shape_[0]; ++a)
      for (int64_t b = 0; b < shape_[1]; ++b)
        for (int64_t c = 0; c < shape_[2]; ++c)
          for (int64_t d = 0; d < shape_[3]; ++d) *p++ = to_bfloat16(v(a, b, c, d));
    return t;
  }

  // Whether every element of row (a, b, c) is finite.
  bool row_finite(int64_t a, int64_t b, int64_t c) const {
    const View<float, 4> v = view();
    for (int64_t d = 0; d < shape_[3]; ++d)
      if (!std::isfinite(v(a, b, c, d))) return false;
    return true;
  }

 private:
  Buffer4 buf_;
  std::array<int64_t, 4> shape_;
  bool broadcast_;
};

// One backend's results, in output buffers of a fuzzed layout pre-filled
// with a sentinel (every element must be written).
struct Result {
  Buffer4 out, weights;
  Tensor<float> lse;
  Result(const Shape& s, Layout layout, bool weights_wanted)
      : out({s.batch, s.hq, s.lq, s.dv}, layout),
        weights({s.batch, s.hq, s.lq, weights_wanted ? s.lk : 0}, layout),
        lse({s.batch, s.hq, s.lq}) {
    fill4(out);
    fill4(weights);
    std::fill(lse.begin(), lse.end(), kSentinel);
  }
  static void fill4(Buffer4& b) {
    const View<float, 4> v = b.view();
    for (int64_t a = 0; a < v.size(0); ++a)
      for (int64_t c = 0; c < v.size(1); ++c)
        for (int64_t i = 0; i < v.size(2); ++i)
          for (int64_t d = 0; d < v.size(3); ++d) v(a, c, i, d) = kSentinel;
  }
};

// Everything a call is made of.
struct Call {
  Shape s{};
  bool bf16 = false;
  InputLayout lq, lk, lv;
  Layout out_layout = Layout::BHLD;
  Mask mask;
  AttentionOptions opts;
  Tensor<float> head_mask32;
  Tensor<double> head_mask64;
  bool weights = false, lse = true;
  bool invalid = false;  // an argument was made invalid on purpose
  std::string text;
};

int64_t pick(FuzzedDataProvider& in, std::initializer_list<int64_t> values) {
  const int64_t k = in.ConsumeIntegralInRange<int64_t>(0, static_cast<int64_t>(values.size()) - 1);
  return values.begin()[k];
}

// Rarely true: make this argument invalid.
bool spoil(FuzzedDataProvider& in, Call& c) {
  if (in.ConsumeIntegral<uint8_t>() >= 3) return false;
  c.invalid = true;
  return true;
}

InputLayout input_layout(FuzzedDataProvider& in, bool kv) {
  InputLayout l;
  l.layout = static_cast<Layout>(in.ConsumeIntegralInRange<int>(0, 2));
  l.broadcast_heads = kv && in.ConsumeIntegralInRange<int>(0, 5) == 0;
  return l;
}

Call make_call(FuzzedDataProvider& in) {
  Call c;
  const int64_t hkv = in.ConsumeIntegralInRange<int64_t>(1, 3);
  const int64_t group = pick(in, {1, 1, 2, 3, 4});
  const bool decoding = in.ConsumeIntegralInRange<int>(0, 5) == 0;
  c.s.batch = in.ConsumeIntegralInRange<int64_t>(1, 2);
  c.s.hkv = hkv;
  c.s.hq = hkv * group;
  c.s.lq = decoding ? in.ConsumeIntegralInRange<int64_t>(1, 4)
                    : pick(in, {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 48, 63, 64});
  c.s.lk = decoding ? in.ConsumeIntegralInRange<int64_t>(1, 300)
                    : pick(in, {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 48, 63, 64});
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) c.s.lk = c.s.lq;  // self attention (documents)
  c.s.d = pick(in, {1, 2, 3, 4, 7, 8, 16, 17, 24, 32, 33, 64});
  c.s.dv = in.ConsumeBool() ? c.s.d : pick(in, {1, 3, 8, 16, 24, 64});
  c.bf16 = in.ConsumeIntegralInRange<int>(0, 3) == 0;
  c.lq = input_layout(in, false), c.lk = input_layout(in, true), c.lv = input_layout(in, true);
  c.out_layout = static_cast<Layout>(in.ConsumeIntegralInRange<int>(0, 2));

  const MaskShape ms{c.s.batch, c.s.hq, c.s.lq, c.s.lk};
  if (in.ConsumeIntegralInRange<int>(0, 7) != 0) {
    oracle::RandomMasks r(in.ConsumeIntegral<uint32_t>());
    c.mask = r.mask(ms);
  }

  AttentionOptions& o = c.opts;
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: o.scale = 0.05f * static_cast<float>(in.ConsumeIntegralInRange<int>(0, 40)); break;
    case 1: o.scale = -0.5f; break;
    case 2: o.scale = 4.0f; break;
    default: break;
  }
  if (spoil(in, c)) o.scale = std::numeric_limits<float>::infinity();
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0)
    o.softcap = static_cast<float>(pick(in, {1, 5, 30}));
  if (spoil(in, c)) o.softcap = -1.0f;
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
    o.dropout_p = 0.1f * static_cast<float>(in.ConsumeIntegralInRange<int>(1, 6));
    o.seed = in.ConsumeIntegral<uint64_t>();
  }
  if (spoil(in, c)) o.dropout_p = in.ConsumeBool() ? 1.0f : std::numeric_limits<float>::quiet_NaN();
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
    const bool per_batch = in.ConsumeBool();
    std::vector<int64_t> shape =
        per_batch ? std::vector<int64_t>{c.s.batch, c.s.hq} : std::vector<int64_t>{c.s.hq};
    if (spoil(in, c)) shape.back() += 1;
    std::vector<double> values;
    for (int64_t n = per_batch ? c.s.batch * shape.back() : shape.back(); n > 0; --n)
      values.push_back(0.25 * static_cast<double>(in.ConsumeIntegralInRange<int>(-2, 6)));
    if (spoil(in, c)) values[0] = std::numeric_limits<double>::quiet_NaN();
    if (in.ConsumeBool()) {
      c.head_mask32 = Tensor<float>(shape);
      std::copy(values.begin(), values.end(), c.head_mask32.begin());
      o.head_mask = c.head_mask32;
    } else {
      c.head_mask64 = Tensor<double>(shape);
      std::copy(values.begin(), values.end(), c.head_mask64.begin());
      o.head_mask = c.head_mask64;
    }
  }
  o.empty_rows = static_cast<EmptyRows>(pick(in, {0, 0, 1, 1, 2}));
  c.weights = in.ConsumeBool();
  c.lse = in.ConsumeIntegralInRange<int>(0, 3) != 0;

  c.text = shape_text(c.s) + (c.bf16 ? " bf16" : " f32") + " mask " + c.mask.describe() +
           " scale " + (o.scale ? std::to_string(*o.scale) : "default") + " softcap " +
           std::to_string(o.softcap) + " dropout " + std::to_string(o.dropout_p) + " seed " +
           std::to_string(o.seed) + (o.head_mask.empty() ? "" : " head_mask") + " empty_rows " +
           std::to_string(static_cast<int>(o.empty_rows)) + " layouts q/k/v/out " +
           std::to_string(static_cast<int>(c.lq.layout)) + "/" + (c.lk.broadcast_heads ? "b" : "") +
           std::to_string(static_cast<int>(c.lk.layout)) + "/" + (c.lv.broadcast_heads ? "b" : "") +
           std::to_string(static_cast<int>(c.lv.layout)) + "/" +
           std::to_string(static_cast<int>(c.out_layout)) + (c.weights ? " weights" : "") +
           (c.lse ? " lse" : "");
  return c;
}

struct Inputs {
  Input q, k, v;
  explicit Inputs(const Call& c)
      : q({c.s.batch, c.s.hq, c.s.lq, c.s.d}, c.lq),
        k({c.s.batch, c.s.hkv, c.s.lk, c.s.d}, c.lk),
        v({c.s.batch, c.s.hkv, c.s.lk, c.s.dv}, c.lv) {}
};

// Runs one backend; nullopt when it threw maskattn::Error (its message in *error).
std::optional<Result> run(const Call& c, const Inputs& in, Backend backend, std::string* error) {
  Result r(c.s, c.out_layout, c.weights);
  AttentionOptions o = c.opts;
  o.backend = backend;
  const View<float, 4> w = c.weights ? r.weights.view() : View<float, 4>();
  const View<float, 3> lse = c.lse ? r.lse.view<3>() : View<float, 3>();
  try {
    if (c.bf16) {
      const Tensor<BFloat16> q = in.q.bf16(), k = in.k.bf16(), v = in.v.bf16();
      attention(q.view<4>(), k.view<4>(), v.view<4>(), r.out.view(), c.mask, o, w, lse);
    } else {
      attention(in.q.view(), in.k.view(), in.v.view(), r.out.view(), c.mask, o, w, lse);
    }
  } catch (const Error& e) {
    *error = e.what();
    return std::nullopt;
  }
  return r;
}

// The largest finite |x| of lse, at least 1.
double lse_scale(const Tensor<float>& lse) {
  double m = 1.0;
  for (float x : lse)
    if (std::isfinite(x)) m = std::max(m, std::fabs(double(x)));
  return m;
}

// The largest |scale q_i . k_j| of finite inputs, masked pairs too, at least
// 1: the size of the scores before the softcap. The tests' tolerances grow
// with max |lse| / 8 because a float32 score carries |s| 2^-24 of rounding,
// which exp() turns into a relative error of the weights; under a softcap
// the scores that carry that rounding are these raw ones (tanh then bounds
// them, and lse with them), so the bound grows with the larger of the two.
double raw_score_scale(const Call& c, const Inputs& in) {
  const Shape& s = c.s;
  const double scale = c.opts.scale ? double(*c.opts.scale) : 1.0 / std::sqrt(double(s.d));
  const View<float, 4> q = in.q.view(), k = in.k.view();
  double m = 1.0;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.hq; ++h)
      for (int64_t i = 0; i < s.lq; ++i)
        for (int64_t j = 0; j < s.lk; ++j) {
          double dot = 0.0;
          for (int64_t x = 0; x < s.d; ++x)
            dot += double(q(b, h, i, x)) * k(b, h / (s.hq / s.hkv), j, x);
          if (std::isfinite(dot)) m = std::max(m, std::fabs(scale * dot));
        }
  return m;
}

// Rows whose inputs are finite: q row (b, h, i) and every key and value
// row it may attend (a NaN or inf at a key the mask hides must not reach
// it). Results are checked on these rows only. all: every input is finite;
// nan_only: every non-finite input is a NaN.
struct FiniteRows {
  std::vector<uint8_t> row;  // (B, Hq, Lq)
  bool all = true, nan_only = true;
  FiniteRows(const Call& c, const Inputs& in) {
    const Shape& s = c.s;
    const BoundMask bound = c.mask.bind({s.batch, s.hq, s.lq, s.lk});
    std::vector<uint8_t> kv(static_cast<std::size_t>(s.batch * s.hkv * s.lk), 1);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.hkv; ++h)
        for (int64_t j = 0; j < s.lk; ++j)
          kv[static_cast<std::size_t>((b * s.hkv + h) * s.lk + j)] =
              in.k.row_finite(b, h, j) && in.v.row_finite(b, h, j);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.hq; ++h)
        for (int64_t i = 0; i < s.lq; ++i) {
          bool ok = in.q.row_finite(b, h, i);
          const int64_t hk = h / (s.hq / s.hkv);
          for (int64_t j = 0; j < s.lk && ok; ++j)
            ok = kv[static_cast<std::size_t>((b * s.hkv + hk) * s.lk + j)] ||
                 !bound.allowed(b, h, i, j);
          row.push_back(ok);
        }
    for (const Input* x : {&in.q, &in.k, &in.v}) {
      const View<float, 4> v = x->view();
      for_each_index(v.shape(), [&](std::span<const int64_t> i) {
        const float e = v(i[0], i[1], i[2], i[3]);
        all = all && std::isfinite(e);
        nan_only = nan_only && (std::isfinite(e) || std::isnan(e));
      });
    }
  }
  bool operator()(const Shape& s, int64_t b, int64_t h, int64_t i) const {
    return row[static_cast<std::size_t>((b * s.hq + h) * s.lq + i)] != 0;
  }
};

// Row (b, h, i) of a (B, H, L, N) view as a (1, 1, 1, N) view.
View<const float, 4> row4(View<const float, 4> v, int64_t b, int64_t h, int64_t i) {
  if (v.size(3) == 0) return {};  // no keys: nothing to compare (and no storage)
  return View<const float, 4>(v.row(b, h, i), {1, 1, 1, v.size(3)}, {0, 0, 0, 1});
}

void check_forward(const Call& c, const Inputs& in, const Result& f, const Result& r,
                   const FiniteRows& finite) {
  const Shape& s = c.s;
  const View<const float, 4> fo = f.out.cview(), ro = r.out.cview();
  const double ls = std::max(c.lse ? lse_scale(r.lse) : 1.0, raw_score_scale(c, in));
  const double grow = std::max(1.0, ls / 8.0);
  const double out_tol = grow * (c.bf16 ? 4e-3 * std::max(1.0, max_abs(in.v.view()))
                                        : 1e-5 * std::max(1.0, max_abs(ro)));
  const double w_tol = 1e-6 * grow;
  const BoundMask bound = c.mask.bind({s.batch, s.hq, s.lq, s.lk});
  const bool nan_rows = c.opts.empty_rows == EmptyRows::NaN;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.hq; ++h)
      for (int64_t i = 0; i < s.lq; ++i) {
        if (!finite(s, b, h, i)) continue;
        const std::string where = c.text + " row (" + std::to_string(b) + ", " + std::to_string(h) +
                                  ", " + std::to_string(i) + ")";
        const bool empty = bound.classify(b, h, i, i + 1, 0, s.lk) == TileClass::Empty;
        auto res = same_within<4>(where + " out", row4(fo, b, h, i), row4(ro, b, h, i), out_tol);
        if (!res) finding(res.message());
        // Finite, or NaN only where the documented empty-row result says so.
        for (int64_t d = 0; d < s.dv; ++d) {
          const float x = fo(b, h, i, d);
          if (empty && nan_rows ? !std::isnan(x) : !std::isfinite(x))
            finding(where + ": flash out[" + std::to_string(d) + "] = " + std::to_string(x) +
                    (empty ? " in an empty row" : " from finite inputs"));
        }
        if (c.lse) {
          const float fl = f.lse.view<3>()(b, h, i), rl = r.lse.view<3>()(b, h, i);
          const bool ok = empty ? fl == -std::numeric_limits<float>::infinity() && fl == rl
                                : std::isfinite(fl) && std::fabs(double(fl) - rl) <= 1e-5 * ls;
          if (!ok)
            finding(where + ": lse flash " + std::to_string(fl) + ", reference " +
                    std::to_string(rl) + (empty ? " (empty row: -inf)" : ""));
        }
        if (!c.weights) continue;
        const View<const float, 4> fw = f.weights.cview(), rw = r.weights.cview();
        res =
            same_within<4>(where + " weights", row4(fw, b, h, i), row4(rw, b, h, i), w_tol, w_tol);
        if (!res) finding(res.message());
        for (int64_t j = 0; j < s.lk; ++j) {
          const float w = fw(b, h, i, j);
          const bool ok = empty && nan_rows           ? std::isnan(w)
                          : bound.allowed(b, h, i, j) ? std::isfinite(w)
                                                      : w == 0.0f;
          if (!ok)
            finding(where + ": flash weight " + std::to_string(w) + " at key " + std::to_string(j) +
                    (bound.allowed(b, h, i, j) ? "" : " (masked)"));
        }
      }
  // Rows of non-finite inputs: still written.
  for (const Result* x : {&f, &r}) {
    const View<const float, 4> o = x->out.cview();
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.hq; ++h)
        for (int64_t i = 0; i < s.lq; ++i)
          for (int64_t d = 0; d < s.dv; ++d)
            if (o(b, h, i, d) == kSentinel)
              finding(c.text + ": out (" + std::to_string(b) + ", " + std::to_string(h) + ", " +
                      std::to_string(i) + ", " + std::to_string(d) + ") not written by " +
                      (x == &f ? "flash" : "reference"));
    if (x->out.gaps_written() != 0 || x->weights.gaps_written() != 0)
      finding(c.text + ": " + (x == &f ? "flash" : "reference") + " wrote outside out/weights");
  }
}

// The float32 backward of both backends from the flash forward's out and
// lse. finite: every input is finite (otherwise every non-finite one is a
// NaN); sometimes a NaN goes into dout. With a NaN anywhere, the gradients
// the reference makes NaN must be NaN in flash and the others finite and
// within tolerance: a NaN flows along the allowed pairs on both backends.
void check_backward(FuzzedDataProvider& rest, const Call& c, const Inputs& in, const Result& f,
                    bool finite) {
  const Shape& s = c.s;
  const Layout layout = static_cast<Layout>(rest.ConsumeIntegralInRange<int>(0, 2));
  Buffer4 dout({s.batch, s.hq, s.lq, s.dv}, layout);
  std::mt19937 rng(rest.ConsumeIntegral<uint32_t>());
  dout.fill_normal(rng);
  if (dout.cview().numel() > 0 && rest.ConsumeIntegralInRange<int>(0, 7) == 0) {
    dout.view()(rest.ConsumeIntegralInRange<int64_t>(0, s.batch - 1),
                rest.ConsumeIntegralInRange<int64_t>(0, s.hq - 1),
                rest.ConsumeIntegralInRange<int64_t>(0, s.lq - 1),
                rest.ConsumeIntegralInRange<int64_t>(0, s.dv - 1)) =
        std::numeric_limits<float>::quiet_NaN();
    finite = false;
  }
  AttentionOptions o = c.opts;
  std::array<std::optional<testing_attention::GradientBuffers>, 2> g;
  std::array<std::string, 2> errors;
  for (int x = 0; x < 2; ++x) {
    g[x].emplace(s, layout);
    for (Buffer4* b : {&g[x]->dq, &g[x]->dk, &g[x]->dv}) Result::fill4(*b);
    o.backend = x == 0 ? Backend::Flash : Backend::Reference;
    try {
      attention_backward(in.q.view(), in.k.view(), in.v.view(), f.out.cview(), f.lse.view<3>(),
                         dout.cview(), g[x]->dq.view(), g[x]->dk.view(), g[x]->dv.view(), c.mask,
                         o);
    } catch (const Error& e) {
      errors[x] = e.what();
      if (errors[x].empty()) errors[x] = "?";
    }
  }
  if (errors[0] != errors[1])
    finding(c.text + " backward: flash error \"" + errors[0] + "\", reference error \"" +
            errors[1] + "\"");
  if (!errors[0].empty()) {
    // The forward accepted these very arguments.
    finding(c.text + " backward rejected what the forward accepted: " + errors[0]);
  }
  const double ls = std::max(lse_scale(f.lse), raw_score_scale(c, in));
  const char* names[] = {"dq", "dk", "dv"};
  for (int x = 0; x < 3; ++x) {
    const Buffer4& fb = x == 0 ? g[0]->dq : x == 1 ? g[0]->dk : g[0]->dv;
    const Buffer4& rb = x == 0 ? g[1]->dq : x == 1 ? g[1]->dk : g[1]->dv;
    const double scale = std::max(1.0, max_abs(rb.cview()));
    const double tol = 2e-5 * std::max(1.0, ls / 8.0) * scale;
    auto res = same_within<4>(c.text + " backward " + names[x], fb.cview(), rb.cview(), tol);
    if (!res) finding(res.message());
    if (fb.gaps_written() != 0) finding(c.text + " backward: flash wrote outside " + names[x]);
    if (!finite) continue;
    const View<const float, 4> v = fb.cview();
    for (int64_t a = 0; a < v.size(0); ++a)
      for (int64_t b = 0; b < v.size(1); ++b)
        for (int64_t i = 0; i < v.size(2); ++i)
          for (int64_t d = 0; d < v.size(3); ++d)
            if (!std::isfinite(v(a, b, i, d)))
              finding(c.text + " backward: flash " + names[x] + " = " +
                      std::to_string(v(a, b, i, d)) + " from finite inputs");
  }
}

void run_one(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::vector<int64_t> targets = detail::simd_targets();
  const int64_t target = targets[in.ConsumeIntegralInRange<std::size_t>(0, targets.size() - 1)];
  const int thread_count = in.ConsumeIntegralInRange<int>(1, 3);
  ScopedThreads threads(thread_count);
  Call c;
  try {
    c = make_call(in);
  } catch (const Error& e) {
    finding(std::string("a mask for a valid shape not built: ") + e.what());
  }
  c.text += std::string(" target ") + detail::simd_target_name(target) + " threads " +
            std::to_string(thread_count);
  Inputs inputs(c);
  {
    std::mt19937 rng(in.ConsumeIntegral<uint32_t>());
    const double magnitude = static_cast<double>(pick(in, {1, 1, 1, 3, 30}));
    inputs.q.fill(rng, magnitude, c.bf16);
    inputs.k.fill(rng, magnitude, c.bf16);
    inputs.v.fill(rng, 1.0, c.bf16);
  }
  if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {
    // One non-finite input element.
    Input* t[] = {&inputs.q, &inputs.k, &inputs.v};
    Input& x = *t[in.ConsumeIntegralInRange<int>(0, 2)];
    const View<float, 4> v = x.view();
    if (v.numel() > 0) {
      const float inf = std::numeric_limits<float>::infinity();
      const float bad = in.ConsumeBool()   ? std::numeric_limits<float>::quiet_NaN()
                        : in.ConsumeBool() ? inf
                                           : -inf;
      v(in.ConsumeIntegralInRange<int64_t>(0, v.size(0) - 1),
        in.ConsumeIntegralInRange<int64_t>(0, v.size(1) - 1),
        in.ConsumeIntegralInRange<int64_t>(0, v.size(2) - 1),
        in.ConsumeIntegralInRange<int64_t>(0, v.size(3) - 1)) = bad;
    }
  }

  detail::force_simd_target(target);
  std::string flash_error, reference_error;
  const std::optional<Result> f = run(c, inputs, Backend::Flash, &flash_error);
  detail::force_simd_target(0);
  const std::optional<Result> r = run(c, inputs, Backend::Reference, &reference_error);
  if (flash_error != reference_error)
    finding(c.text + ": flash error \"" + flash_error + "\", reference error \"" + reference_error +
            "\"");
  if (!f) {
    // An Error: right for an invalid argument or EmptyRows::Error with an
    // empty row, wrong otherwise.
    bool empty_row = false;
    if (c.opts.empty_rows == EmptyRows::Error) {
      const BoundMask bound = c.mask.bind({c.s.batch, c.s.hq, c.s.lq, c.s.lk});
      for (int64_t b = 0; b < c.s.batch && !empty_row; ++b)
        for (int64_t h = 0; h < c.s.hq && !empty_row; ++h)
          for (int64_t i = 0; i < c.s.lq && !empty_row; ++i)
            empty_row = bound.classify(b, h, i, i + 1, 0, c.s.lk) == TileClass::Empty;
    }
    if (!c.invalid && !empty_row) finding(c.text + ": a valid call rejected: " + flash_error);
    return;
  }
  if (c.invalid) finding(c.text + ": an invalid argument accepted");
  const FiniteRows finite(c, inputs);
  check_forward(c, inputs, *f, *r, finite);
  // The backward: float32 only, with lse, inputs finite or NaN, and not
  // always (it costs as much as a few forwards).
  if (!c.bf16 && c.lse && finite.nan_only && in.ConsumeBool()) {
    detail::force_simd_target(target);
    check_backward(in, c, inputs, *f, finite.all);
    detail::force_simd_target(0);
  }
}

}  // namespace
}  // namespace maskattn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  maskattn::run_one(data, size);
  return 0;
}
