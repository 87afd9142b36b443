// What the attention tests compare against: a naive double-precision loop
// written straight from the formula in include/maskattn/attention.hpp, with
// the mask given as an element rule written in the test (not read back from
// the library), plus strided test buffers and an Error check.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/attention.hpp"

namespace maskattn::testing_attention {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

// Additive mask value of (b, h, i, j): -inf where masked, else the bias.
using Rule = std::function<double(int64_t b, int64_t h, int64_t i, int64_t j)>;

inline Rule allow_all() {
  return [](int64_t, int64_t, int64_t, int64_t) { return 0.0; };
}

// Both must allow; biases add.
inline Rule both(Rule a, Rule b) {
  return [a = std::move(a), b = std::move(b)](int64_t bb, int64_t h, int64_t i, int64_t j) {
    const double x = a(bb, h, i, j), y = b(bb, h, i, j);
    return x == -kInf || y == -kInf ? -kInf : x + y;
  };
}

struct Shape {
  int64_t batch, hq, hkv, lq, lk, d, dv;
};

inline std::string shape_text(const Shape& s) {
  return "(B, Hq, Hkv, Lq, Lk, D, Dv) = (" + std::to_string(s.batch) + ", " + std::to_string(s.hq) +
         ", " + std::to_string(s.hkv) + ", " + std::to_string(s.lq) + ", " + std::to_string(s.lk) +
         ", " + std::to_string(s.d) + ", " + std::to_string(s.dv) + ")";
}

// How a (n0, n1, n2, n3) test buffer is laid out in memory.
enum class Layout {
  BHLD,    // contiguous
  BLHD,    // (n0, n2, n1, n3) memory viewed with transposed(1, 2)
  Padded,  // BHLD with gaps after every row and every head
};

// Owned storage viewed as (n0, n1, n2, n3) in a given layout. Gaps hold a
// sentinel so a write outside the view can be detected.
class Buffer4 {
 public:
  static constexpr float kGap = 12345.0f;

  Buffer4(const std::array<int64_t, 4>& shape, Layout layout) {
    const auto [n0, n1, n2, n3] = shape;
    switch (layout) {
      case Layout::BHLD:
        storage_.assign(static_cast<std::size_t>(n0 * n1 * n2 * n3), kGap);
        view_ = View<float, 4>(storage_.data(), shape);
        break;
      case Layout::BLHD:
        storage_.assign(static_cast<std::size_t>(n0 * n2 * n1 * n3), kGap);
        view_ = View<float, 4>(storage_.data(), {n0, n2, n1, n3}).transposed(1, 2);
        break;
      case Layout::Padded: {
        const int64_t row = n3 + 3, head = n2 * row + 5, batch = n1 * head + 2;
        storage_.assign(static_cast<std::size_t>(n0 * batch + 1), kGap);
        view_ = View<float, 4>(storage_.data(), shape, {batch, head, row, 1});
        break;
      }
    }
  }

  View<float, 4> view() const { return view_; }
  View<const float, 4> cview() const { return view_; }
  double operator()(int64_t a, int64_t b, int64_t c, int64_t d) const { return view_(a, b, c, d); }

  void fill_normal(std::mt19937& rng) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t a = 0; a < view_.size(0); ++a)
      for (int64_t b = 0; b < view_.size(1); ++b)
        for (int64_t c = 0; c < view_.size(2); ++c)
          for (int64_t d = 0; d < view_.size(3); ++d) view_(a, b, c, d) = dist(rng);
  }

  // Number of storage elements outside the view that no longer hold kGap.
  int64_t gaps_written() const {
    std::vector<char> inside(storage_.size(), 0);
    for (int64_t a = 0; a < view_.size(0); ++a)
      for (int64_t b = 0; b < view_.size(1); ++b)
        for (int64_t c = 0; c < view_.size(2); ++c)
          for (int64_t d = 0; d < view_.size(3); ++d)
            inside[static_cast<std::size_t>(&view_(a, b, c, d) - storage_.data())] = 1;
    int64_t n = 0;
    for (std::size_t x = 0; x < storage_.size(); ++x) n += !inside[x] && storage_[x] != kGap;
    return n;
  }

 private:
  std::vector<float> storage_;
  View<float, 4> view_;
};

// bfloat16 copies of float buffers (contiguous BHLD, whatever the buffer's layout).
struct Bf16Copy {
  Tensor<BFloat16> t;
  explicit Bf16Copy(const Buffer4& b)
      : t({b.view().size(0), b.view().size(1), b.view().size(2), b.view().size(3)}) {
    const View<float, 4> v = b.view();
    BFloat16* p = t.data();
    for (int64_t a = 0; a < v.size(0); ++a)
      for (int64_t c = 0; c < v.size(1); ++c)
        for (int64_t d = 0; d < v.size(2); ++d)
          for (int64_t e = 0; e < v.size(3); ++e) *p++ = to_bfloat16(v(a, c, d, e));
  }
  View<const BFloat16, 4> view() const { return t.view<4>(); }
};

// Options of the naive loop, mirroring AttentionOptions.
struct NaiveOptions {
  double scale = 0.0;  // 0 = 1/sqrt(D)
  double softcap = 0.0;
  std::function<double(int64_t b, int64_t h)> head_mask;  // empty = 1
  float dropout_p = 0.0f;
  uint64_t seed = 0;
  EmptyRows empty_rows = EmptyRows::Zero;
};

// Expected results, contiguous: out (B, Hq, Lq, Dv), weights (B, Hq, Lq, Lk),
// lse (B, Hq, Lq).
struct Expected {
  std::vector<double> out, weights, lse;
};

// q, k, v: anything read as x(a, b, c, d) -> double (Buffer4, or the
// double-precision inputs of the gradient checks).
template <class In>
Expected naive_attention(const Shape& s, const In& q, const In& k, const In& v, const Rule& mask,
                         const NaiveOptions& o) {
  Expected e;
  e.out.assign(static_cast<std::size_t>(s.batch * s.hq * s.lq * s.dv), 0.0);
  e.weights.assign(static_cast<std::size_t>(s.batch * s.hq * s.lq * s.lk), 0.0);
  e.lse.assign(static_cast<std::size_t>(s.batch * s.hq * s.lq), -kInf);
  const double scale = o.scale != 0.0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(s.d));
  const MaskShape ms{s.batch, s.hq, s.lq, s.lk};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.hq; ++h) {
      const int64_t hk = h / (s.hq / s.hkv);
      for (int64_t i = 0; i < s.lq; ++i) {
        const std::size_t row = static_cast<std::size_t>((b * s.hq + h) * s.lq + i);
        std::vector<double> sc(static_cast<std::size_t>(s.lk), -kInf);
        bool any = false;
        for (int64_t j = 0; j < s.lk; ++j) {
          const double m = mask(b, h, i, j);
          if (m == -kInf) continue;
          double dot = 0.0;
          for (int64_t d = 0; d < s.d; ++d) dot += q(b, h, i, d) * k(b, hk, j, d);
          double x = scale * dot;
          if (o.softcap > 0.0) x = o.softcap * std::tanh(x / o.softcap);
          sc[static_cast<std::size_t>(j)] = x + m;
          any = true;
        }
        if (!any) {
          const double fill = o.empty_rows == EmptyRows::NaN ? nan : 0.0;
          for (int64_t d = 0; d < s.dv; ++d) e.out[row * s.dv + d] = fill;
          for (int64_t j = 0; j < s.lk; ++j) e.weights[row * s.lk + j] = fill;
          continue;
        }
        // lse = m + log sum_j exp(s_j - m), m the largest score (NaN scores
        // skipped here, they make the sum NaN): exact for scores of +-1e4 too.
        double m = -kInf;
        for (double x : sc)
          if (x > m) m = x;
        double sum = 0.0;
        for (double x : sc) sum += std::exp(x - m);
        const double lse = m + std::log(sum);
        e.lse[row] = lse;
        for (int64_t j = 0; j < s.lk; ++j) {
          if (mask(b, h, i, j) == -kInf) continue;  // exactly 0, whatever the row holds
          double p = std::exp(sc[static_cast<std::size_t>(j)] - lse);
          if (o.head_mask) p *= o.head_mask(b, h);
          if (o.dropout_p > 0.0f)
            p = dropout_keep(o.seed, o.dropout_p, ms, b, h, i, j) ? p / (1.0 - o.dropout_p) : 0.0;
          e.weights[row * s.lk + j] = p;
          for (int64_t d = 0; d < s.dv; ++d) e.out[row * s.dv + d] += p * v(b, hk, j, d);
        }
      }
    }
  return e;
}

// Gradients of naive_attention (no softcap, head mask or dropout) in double,
// from the textbook formulas: with p the forward's probabilities,
//   dv_j += p_ij dout_i,  dP_ij = dout_i . v_j,  Di = sum_j p_ij dP_ij,
//   dS_ij = p_ij (dP_ij - Di),  dq_i = scale sum_j dS_ij k_j,  dk_j += scale dS_ij q_i
// over allowed (i, j) only (a masked pair contributes nothing, NaN or not).
// dq (B, Hq, Lq, D), dk (B, Hkv, Lk, D), dv (B, Hkv, Lk, Dv), contiguous.
struct ExpectedGradients {
  std::vector<double> dq, dk, dv;
};
template <class In>
ExpectedGradients naive_attention_backward(const Shape& s, const In& q, const In& k, const In& v,
                                           const In& dout, const Rule& mask, double scale_opt) {
  NaiveOptions o;
  o.scale = scale_opt;
  const Expected f = naive_attention(s, q, k, v, mask, o);
  const double scale = scale_opt != 0.0 ? scale_opt : 1.0 / std::sqrt(static_cast<double>(s.d));
  ExpectedGradients g;
  g.dq.assign(static_cast<std::size_t>(s.batch * s.hq * s.lq * s.d), 0.0);
  g.dk.assign(static_cast<std::size_t>(s.batch * s.hkv * s.lk * s.d), 0.0);
  g.dv.assign(static_cast<std::size_t>(s.batch * s.hkv * s.lk * s.dv), 0.0);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.hq; ++h) {
      const int64_t hk = h / (s.hq / s.hkv);
      for (int64_t i = 0; i < s.lq; ++i) {
        const std::size_t row = static_cast<std::size_t>((b * s.hq + h) * s.lq + i);
        std::vector<double> dp(static_cast<std::size_t>(s.lk), 0.0);
        double di = 0.0;
        for (int64_t j = 0; j < s.lk; ++j) {
          if (mask(b, h, i, j) == -kInf) continue;
          const double p = f.weights[row * s.lk + j];
          double x = 0.0;
          for (int64_t e = 0; e < s.dv; ++e) {
            x += dout(b, h, i, e) * v(b, hk, j, e);
            g.dv[static_cast<std::size_t>(((b * s.hkv + hk) * s.lk + j) * s.dv + e)] +=
                p * dout(b, h, i, e);
          }
          dp[static_cast<std::size_t>(j)] = x;
          di += p * x;
        }
        for (int64_t j = 0; j < s.lk; ++j) {
          if (mask(b, h, i, j) == -kInf) continue;
          const double ds = f.weights[row * s.lk + j] * (dp[static_cast<std::size_t>(j)] - di);
          for (int64_t e = 0; e < s.d; ++e) {
            g.dq[row * s.d + e] += scale * ds * k(b, hk, j, e);
            g.dk[static_cast<std::size_t>(((b * s.hkv + hk) * s.lk + j) * s.d + e)] +=
                scale * ds * q(b, h, i, e);
          }
        }
      }
    }
  return g;
}

// The backend the oracle suites run on: they are instantiated once per
// backend (BackendSuite), and every call goes through on_backend().
inline Backend& backend_under_test() {
  static Backend b = Backend::Reference;
  return b;
}
inline AttentionOptions on_backend(AttentionOptions o) {
  o.backend = backend_under_test();
  return o;
}
class BackendSuite : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { backend_under_test() = GetParam(); }
  void TearDown() override { backend_under_test() = Backend::Reference; }
};
inline std::string backend_label(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(backend_name(info.param));
}
#define MASKATTN_INSTANTIATE_FOR_BACKENDS(suite)                                                   \
  INSTANTIATE_TEST_SUITE_P(Backends, suite, ::testing::Values(Backend::Reference, Backend::Flash), \
                           ::maskattn::testing_attention::backend_label)

// |got - want| <= tol for every element of a (n0, n1, n2, n3) view against a
// contiguous expectation; NaN matches NaN, -inf matches -inf.
inline ::testing::AssertionResult close4(std::string_view what, View<const float, 4> got,
                                         const std::vector<double>& want, double tol) {
  const auto [n0, n1, n2, n3] = got.shape();
  std::size_t x = 0;
  for (int64_t a = 0; a < n0; ++a)
    for (int64_t b = 0; b < n1; ++b)
      for (int64_t c = 0; c < n2; ++c)
        for (int64_t d = 0; d < n3; ++d, ++x) {
          const double g = got(a, b, c, d), w = want[x];
          const bool ok = std::isnan(w)   ? std::isnan(g)
                          : std::isinf(w) ? g == w
                                          : std::fabs(g - w) <= tol;
          if (!ok)
            return ::testing::AssertionFailure()
                   << what << "(" << a << ", " << b << ", " << c << ", " << d << "): expected " << w
                   << ", got " << g << " (tol " << tol << ")";
        }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult close3(std::string_view what, View<const float, 3> got,
                                         const std::vector<double>& want, double tol) {
  const auto [n0, n1, n2] = got.shape();
  return close4(what,
                View<const float, 4>(got.data(), {n0, n1, n2, 1},
                                     {got.stride(0), got.stride(1), got.stride(2), 1}),
                want, tol);
}

// f() throws maskattn::Error for `argument` (or a qualified form of it, as
// "mask: keep" for "mask"), and what() names it.
template <class F>
::testing::AssertionResult throws_error_for(F&& f, std::string_view argument) {
  try {
    f();
  } catch (const Error& e) {
    const std::string_view arg = e.argument();
    const bool named = arg == argument || (arg.substr(0, argument.size()) == argument &&
                                           arg.substr(argument.size(), 2) == ": ");
    const std::string needle = "maskattn: " + std::string(arg) + ":";
    if (named && std::string_view(e.what()).find(needle) == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "Error for \"" << e.argument() << "\", wanted \"" << argument << "\": " << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not a maskattn::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception (wanted one for \"" << argument << "\")";
}

// The gradients of a backward problem, laid out like its q, k and v.
struct GradientBuffers {
  Buffer4 dq, dk, dv;
  GradientBuffers(const Shape& s, Layout layout)
      : dq({s.batch, s.hq, s.lq, s.d}, layout),
        dk({s.batch, s.hkv, s.lk, s.d}, layout),
        dv({s.batch, s.hkv, s.lk, s.dv}, layout) {}
};

// A backward problem's inputs: q, k, v and dout (g), unit normal from `seed`
// in that order, and room for the forward's out and lse.
struct BackwardInputs {
  Buffer4 q, k, v, g;
  Tensor<float> out, lse;
  BackwardInputs(const Shape& s, Layout layout, unsigned seed)
      : q({s.batch, s.hq, s.lq, s.d}, layout),
        k({s.batch, s.hkv, s.lk, s.d}, layout),
        v({s.batch, s.hkv, s.lk, s.dv}, layout),
        g({s.batch, s.hq, s.lq, s.dv}, layout),
        out({s.batch, s.hq, s.lq, s.dv}),
        lse({s.batch, s.hq, s.lq}) {
    std::mt19937 rng(seed);
    q.fill_normal(rng);
    k.fill_normal(rng);
    v.fill_normal(rng);
    g.fill_normal(rng);
  }
};

}  // namespace maskattn::testing_attention
