// The flash backend against the reference backend, on every SIMD target the
// kernels were compiled for that this CPU runs (AVX3, AVX2, EMU128 here):
// random masks of every kind and combination, GQA/MQA, Dv != D, head_mask,
// dropout, softcap, scale, every EmptyRows policy, strided BHLD and BLHD
// inputs, odd sizes, bfloat16 inputs, key ranges split across threads,
// determinism and concurrent calls.
//
// Tolerances (fp32): out within 1e-5 of the output's scale (max |out| of the
// reference, at least 1); lse within 1e-5 of max(1, |lse|); weights within
// 1e-6 (1 + w) while the logits stay within +-8 (unit-variance data at the
// default scale) — beyond, a float32 score itself carries |s| 2^-24 of
// rounding, which exp() turns into a relative error of the weight, so the
// bound grows with max |lse| / 8. bf16 inputs: scores are exact bf16
// products summed in fp32, but the probabilities meet v rounded to bfloat16
// (relative error 2^-9), so out is within 4e-3 of max |v|; weights and lse as
// fp32.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "attention/backend_compare.hpp"
#include "attention/flash_kernels.hpp"
#include "kernels/simd_target_suite.hpp"
#include "kernels/simd_targets.hpp"
#include "mask/random_masks.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::Bf16Copy;
using testing_attention::Buffer4;
using testing_attention::Layout;
using testing_attention::Shape;
using testing_attention::shape_text;

using testing_attention::max_abs;
using testing_attention::same_within;
using testing_attention::ScopedThreads;

// Everything one comparison needs: inputs in a layout, a mask and options.
struct Case {
  Shape s;
  Layout layout = Layout::BHLD;
  Mask mask;
  AttentionOptions opts;
  bool weights = true;
  bool bf16 = false;
  unsigned seed = 1;
  double scale_q = 1.0;  // multiplies q (large logits)
};

// Results of one backend.
struct Result {
  Tensor<float> out, weights, lse;
};

class Inputs {
 public:
  explicit Inputs(const Case& c)
      : q_({c.s.batch, c.s.hq, c.s.lq, c.s.d}, c.layout),
        k_({c.s.batch, c.s.hkv, c.s.lk, c.s.d}, c.layout),
        v_({c.s.batch, c.s.hkv, c.s.lk, c.s.dv}, c.layout) {
    std::mt19937 rng(c.seed);
    q_.fill_normal(rng);
    k_.fill_normal(rng);
    v_.fill_normal(rng);
    if (c.scale_q != 1.0) {
      const View<float, 4> q = q_.view();
      for (int64_t a = 0; a < q.size(0); ++a)
        for (int64_t b = 0; b < q.size(1); ++b)
          for (int64_t i = 0; i < q.size(2); ++i)
            for (int64_t d = 0; d < q.size(3); ++d) q(a, b, i, d) *= static_cast<float>(c.scale_q);
    }
  }

  Result run(const Case& c, Backend backend) const {
    Result r{Tensor<float>({c.s.batch, c.s.hq, c.s.lq, c.s.dv}),
             c.weights ? Tensor<float>({c.s.batch, c.s.hq, c.s.lq, c.s.lk}) : Tensor<float>(),
             Tensor<float>({c.s.batch, c.s.hq, c.s.lq})};
    // Sentinels: every element must be written.
    std::fill(r.out.begin(), r.out.end(), -777.0f);
    std::fill(r.weights.begin(), r.weights.end(), -777.0f);
    std::fill(r.lse.begin(), r.lse.end(), -777.0f);
    AttentionOptions o = c.opts;
    o.backend = backend;
    const View<float, 4> w = c.weights ? r.weights.view<4>() : View<float, 4>();
    if (c.bf16) {
      const Bf16Copy q(q_), k(k_), v(v_);
      attention(q.view(), k.view(), v.view(), r.out.view<4>(), c.mask, o, w, r.lse.view<3>());
    } else {
      attention(q_.cview(), k_.cview(), v_.cview(), r.out.view<4>(), c.mask, o, w, r.lse.view<3>());
    }
    return r;
  }

  double v_scale() const { return std::max(1.0, max_abs(v_.cview())); }

 private:
  Buffer4 q_, k_, v_;
};

// Runs flash and reference on the case and compares every output.
::testing::AssertionResult flash_matches_reference(const Case& c) {
  const Inputs in(c);
  const Result f = in.run(c, Backend::Flash);
  const Result r = in.run(c, Backend::Reference);
  const std::string what =
      shape_text(c.s) + " mask " + c.mask.describe() + (c.bf16 ? " bf16" : "") + " scale " +
      (c.opts.scale ? std::to_string(*c.opts.scale) : "default") + " softcap " +
      std::to_string(c.opts.softcap) + " dropout " + std::to_string(c.opts.dropout_p) +
      (c.opts.head_mask.empty() ? "" : " head_mask") + " layout " +
      std::to_string(static_cast<int>(c.layout));
  const double out_tol =
      c.bf16 ? 4e-3 * in.v_scale() : 1e-5 * std::max(1.0, max_abs(r.out.view<4>()));
  auto res = same_within<4>(what + " out", f.out.view<4>(), r.out.view<4>(), out_tol);
  if (!res) return res;
  double lse_scale = 1.0;
  for (float x : r.lse)
    if (std::isfinite(x)) lse_scale = std::max(lse_scale, std::fabs(double(x)));
  res = same_within<3>(what + " lse", f.lse.view<3>(), r.lse.view<3>(), 1e-5 * lse_scale);
  if (!res) return res;
  if (c.weights) {
    const double w_tol = 1e-6 * std::max(1.0, lse_scale / 8.0);
    res = same_within<4>(what + " weights", f.weights.view<4>(), r.weights.view<4>(), w_tol, w_tol);
    if (!res) return res;
    // Where the mask forbids, the weight is exactly 0 (or NaN in an empty row
    // under EmptyRows::NaN), never a tiny leak.
    const BoundMask bound = c.mask.bind({c.s.batch, c.s.hq, c.s.lq, c.s.lk});
    const View<const float, 4> w = f.weights.view<4>();
    for (int64_t b = 0; b < c.s.batch; ++b)
      for (int64_t h = 0; h < c.s.hq; ++h)
        for (int64_t i = 0; i < c.s.lq; ++i)
          for (int64_t j = 0; j < c.s.lk; ++j)
            if (!bound.allowed(b, h, i, j) && !(w(b, h, i, j) == 0.0f || std::isnan(w(b, h, i, j))))
              return ::testing::AssertionFailure()
                     << what << ": weight " << w(b, h, i, j) << " at masked (" << b << ", " << h
                     << ", " << i << ", " << j << ")";
  }
  return ::testing::AssertionSuccess();
}

class Flash : public testing_simd::TargetSuite {};
MASKATTN_INSTANTIATE_FOR_SIMD_TARGETS(Flash);

TEST_P(Flash, RunsOnTheTargetAsked) {
  const std::vector<int64_t> all = detail::simd_targets();
  ASSERT_FALSE(all.empty());
  // Two vectors of float lanes: 16 on AVX3, 8 on AVX2, 1 on SCALAR.
  const std::string name = detail::simd_target_name(GetParam());
  const int64_t lanes = name == "AVX3" ? 16 : name == "AVX2" ? 8 : name == "SCALAR" ? 1 : 0;
  if (lanes > 0) {
    EXPECT_EQ(detail::flash_query_block(), 2 * lanes) << name;
  }
  // The kernels' own name of the target is the one the suite was named after.
  EXPECT_STREQ(detail::flash_target_name(), detail::simd_target_name(GetParam()));
}

TEST_P(Flash, MatchesReferenceOnRandomMasksAndOptions) {
  oracle::RandomMasks r(1234 + static_cast<unsigned>(GetParam() % 1000));
  const int64_t dims[] = {1, 3, 8, 24, 33, 64, 80};
  for (int trial = 0; trial < 160; ++trial) {
    Case c;
    const int64_t hkv = r.uniform(1, 2), group = r.uniform(1, 3);
    c.s = {r.uniform(1, 2),
           hkv * group,
           hkv,
           r.coin(0.4) ? r.uniform(1, 7) : r.uniform(1, 70),
           r.uniform(1, 150),
           dims[r.uniform(0, 6)],
           dims[r.uniform(0, 6)]};
    if (r.coin(0.3)) c.s.lk = c.s.lq;  // self-attention shapes (documents(ids) needs Lq == Lk)
    c.layout = static_cast<Layout>(r.uniform(0, 2));
    c.mask = r.coin(0.1) ? Mask() : r.mask({c.s.batch, c.s.hq, c.s.lq, c.s.lk});
    if (r.coin(0.3)) c.opts.scale = 0.05f * static_cast<float>(r.uniform(1, 20));
    if (r.coin(0.25)) c.opts.softcap = static_cast<float>(r.uniform(1, 30));
    if (r.coin(0.25))
      c.opts.dropout_p = 0.1f * static_cast<float>(r.uniform(1, 6)), c.opts.seed = 7 + trial;
    Tensor<float> head({c.s.batch, c.s.hq});
    if (r.coin(0.25)) {
      for (float& x : head) x = 0.25f * static_cast<float>(r.uniform(0, 6));
      c.opts.head_mask = head;
    }
    c.opts.empty_rows = r.coin(0.5) ? EmptyRows::Zero : EmptyRows::NaN;
    c.weights = r.coin(0.6);
    c.seed = 100 + trial;
    ASSERT_TRUE(flash_matches_reference(c)) << "trial " << trial;
  }
}

TEST_P(Flash, HeadDimsAndLengthsOfTheIssue) {
  const int64_t dims[] = {1, 24, 80, 96, 128, 256};
  const int64_t lens[] = {1, 3, 17, 130};
  unsigned seed = 1;
  for (int64_t d : dims)
    for (int64_t l : lens) {
      Case c;
      c.s = {1, 2, 1, l, l, d, d == 80 ? 96 : d};
      c.mask = causal();
      c.seed = seed++;
      ASSERT_TRUE(flash_matches_reference(c));
    }
}

// Under the sanitizers (CI's second run) the long shapes shrink: the
// reference they are checked against runs ~20x slower there.
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kLong = 300;
#else
constexpr int64_t kLong = 1000;
#endif

TEST_P(Flash, LongSequences) {
  // L = 1000 (not a multiple of any tile), causal top-left and bottom-right,
  // padding, a window and packed documents.
  const int64_t n = kLong;
  Tensor<int64_t> ids({n});
  for (int64_t i = 0; i < n; ++i)
    ids.data()[i] = i < n / 8 ? 0 : i < 6 * n / 10 ? 1 : i < 6 * n / 10 + 1 ? 2 : 3;
  const std::vector<int64_t> lens = {n, n / 2 + 17};
  const Mask masks[] = {causal(), causal(Align::BottomRight), key_lengths(lens) & causal(),
                        sliding_window(100, 3), documents(ids)};
  unsigned seed = 9;
  for (const Mask& m : masks) {
    Case c;
    c.s = {2, 2, 1, n, n, 64, 64};
    c.mask = m;
    c.weights = false;
    c.seed = seed++;
    ASSERT_TRUE(flash_matches_reference(c));
  }
}

TEST_P(Flash, KeyRangesSplitAcrossThreads) {
  // Few queries against many keys: one (b, h, block) task, so the keys are
  // split across threads and merged by log-sum-exp.
  for (int threads : {2, 3}) {
    ScopedThreads scoped(threads);
    const std::vector<int64_t> lens = {1700};
    const Mask masks[] = {Mask(), causal(Align::BottomRight), key_lengths(lens),
                          sliding_window(300, 0, Align::BottomRight), causal()};
    for (int64_t lq : {1, 5, 33})
      for (const Mask& m : masks) {
        Case c;
        c.s = {1, 1, 1, lq, 2000, 128, 64};
        c.mask = m;
        c.opts.empty_rows = EmptyRows::NaN;
        c.weights = lq < 6;
        c.seed = static_cast<unsigned>(lq * 10 + threads);
        ASSERT_TRUE(flash_matches_reference(c)) << threads << " threads, Lq " << lq;
      }
  }
}

TEST_P(Flash, DecodingWithGroupedHeadsAndBf16KeysValues) {
  for (bool bf16 : {false, true}) {
    Case c;
    c.s = {1, 8, 2, 1, 3000, 128, 128};
    c.mask = causal(Align::BottomRight);
    c.bf16 = bf16;
    c.seed = 77;
    ASSERT_TRUE(flash_matches_reference(c));
  }
}

TEST_P(Flash, Bf16InputsMatchReference) {
  oracle::RandomMasks r(55);
  for (int trial = 0; trial < 60; ++trial) {
    Case c;
    const int64_t dims[] = {1, 7, 16, 24, 64, 80, 128};
    const int64_t hkv = r.uniform(1, 2);
    c.s = {r.uniform(1, 2),       hkv * r.uniform(1, 2), hkv, r.uniform(1, 90), r.uniform(1, 130),
           dims[r.uniform(0, 6)], dims[r.uniform(0, 6)]};
    c.mask = r.mask({c.s.batch, c.s.hq, c.s.lq, c.s.lk});
    if (r.coin(0.3)) c.opts.softcap = 5.0f;
    if (r.coin(0.3)) c.opts.dropout_p = 0.3f, c.opts.seed = 3;
    c.bf16 = true;
    c.weights = r.coin(0.5);
    c.seed = 500 + trial;
    ASSERT_TRUE(flash_matches_reference(c)) << "trial " << trial;
  }
}

// Found by fuzz/flash_vs_reference_fuzzer (ASan, clang build): the row path
// (few queries) loaded the last, partial vector of a key or value row with
// hn::MaskedLoad, which on EMU128 (the fallback target clang compiles) reads
// every lane, past the end of the caller's buffer when D or Dv is not a
// multiple of the lanes. Buffer4 holds exactly the view's elements, so an
// over-read is a heap-buffer-overflow under ASan on that target; on the
// others the case checks the tail lanes' values.
TEST_P(Flash, RowPathTailsReadOnlyTheirRow) {
  for (int64_t d : {1, 3, 5, 17})
    for (int64_t lk : {1, 17}) {
      Case c;
      c.s = {1, 1, 1, 2, lk, d, d + 2};
      c.seed = static_cast<unsigned>(d * 100 + lk);
      ASSERT_TRUE(flash_matches_reference(c)) << "D " << d << ", Lk " << lk;
    }
}

TEST_P(Flash, EmptyRowsUnderEveryPolicy) {
  const std::vector<int64_t> qlens = {2, 0}, klens = {0, 40};
  for (EmptyRows policy : {EmptyRows::Zero, EmptyRows::NaN}) {
    Case c;
    c.s = {2, 3, 3, 45, 40, 16, 16};
    c.mask = query_lengths(qlens) & key_lengths(klens);
    c.opts.empty_rows = policy;
    ASSERT_TRUE(flash_matches_reference(c));
    // No keys at all: every row is empty.
    c.s.lk = 0;
    c.mask = Mask();
    ASSERT_TRUE(flash_matches_reference(c));
  }
  // EmptyRows::Error throws before anything is written, on flash as on reference.
  Case c;
  c.s = {1, 1, 1, 4, 4, 8, 8};
  const Inputs in(c);
  c.mask = causal() & key_lengths(std::vector<int64_t>{0});
  c.opts.empty_rows = EmptyRows::Error;
  EXPECT_THROW(in.run(c, Backend::Flash), Error);
}

TEST_P(Flash, LargeLogitsAndMixedInfiniteBiases) {
  Case c;
  c.s = {1, 2, 2, 37, 70, 32, 32};
  c.scale_q = 300.0;  // scores of order +-1e3..1e4
  Tensor<float> b({37, 70});
  for (int64_t i = 0; i < 37 * 70; ++i)
    b.data()[i] = i % 5 == 0 ? -std::numeric_limits<float>::infinity() : float(i % 7) - 3.0f;
  c.mask = bias(b);
  ASSERT_TRUE(flash_matches_reference(c));
  c.mask = bias(b) & causal();
  c.opts.softcap = 50.0f;
  ASSERT_TRUE(flash_matches_reference(c));
}

TEST_P(Flash, NaNInAQueryRowStaysInThatRow) {
  Case c;
  c.s = {1, 1, 1, 40, 50, 16, 16};
  Buffer4 q({1, 1, 40, 16}, Layout::BHLD), k({1, 1, 50, 16}, Layout::BHLD),
      v({1, 1, 50, 16}, Layout::BHLD);
  std::mt19937 rng(5);
  q.fill_normal(rng), k.fill_normal(rng), v.fill_normal(rng);
  q.view()(0, 0, 7, 3) = std::numeric_limits<float>::quiet_NaN();
  Tensor<float> out({1, 1, 40, 16});
  AttentionOptions o;
  o.backend = Backend::Flash;
  attention(q.cview(), k.cview(), v.cview(), out.view<4>(), causal(), o);
  for (int64_t i = 0; i < 40; ++i)
    for (int64_t x = 0; x < 16; ++x)
      EXPECT_EQ(std::isnan(out.view<4>()(0, 0, i, x)), i == 7) << i << ", " << x;
}

// Found by fuzz/flash_vs_reference_fuzzer (UBSan, clang build): on EMU128
// and SCALAR a NaN score reached a float -> int conversion (in 2^x of the
// softmax and in Highway's tanh of the softcap), undefined behaviour in C++.
// The NaN must still show, in its row only, with or without a softcap.
TEST_P(Flash, NaNScoresUnderSoftcapStayInTheirRow) {
  for (float softcap : {0.0f, 5.0f}) {
    Buffer4 q({1, 1, 20, 8}, Layout::BHLD), k({1, 1, 30, 8}, Layout::BHLD),
        v({1, 1, 30, 8}, Layout::BHLD);
    std::mt19937 rng(6);
    q.fill_normal(rng), k.fill_normal(rng), v.fill_normal(rng);
    q.view()(0, 0, 3, 5) = std::numeric_limits<float>::quiet_NaN();
    Tensor<float> out({1, 1, 20, 8}), lse({1, 1, 20});
    AttentionOptions o;
    o.backend = Backend::Flash;
    o.softcap = softcap;
    attention(q.cview(), k.cview(), v.cview(), out.view<4>(), causal(), o, {}, lse.view<3>());
    for (int64_t i = 0; i < 20; ++i) {
      EXPECT_EQ(std::isnan(lse.view<3>()(0, 0, i)), i == 3) << softcap << ", " << i;
      for (int64_t x = 0; x < 8; ++x)
        EXPECT_EQ(std::isnan(out.view<4>()(0, 0, i, x)), i == 3) << softcap << ", " << i;
    }
  }
}

TEST_P(Flash, DeterministicAndAutoIsFlash) {
  Case c;
  c.s = {2, 4, 2, 100, 130, 64, 48};
  c.mask = causal() & key_lengths(std::vector<int64_t>{130, 77});
  c.opts.dropout_p = 0.2f;
  c.opts.seed = 11;
  const Inputs in(c);
  const Result a = in.run(c, Backend::Flash), b = in.run(c, Backend::Flash);
  const Result automatic = in.run(c, Backend::Auto);
  EXPECT_EQ(std::memcmp(a.out.data(), b.out.data(), a.out.numel() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.weights.data(), b.weights.data(), a.weights.numel() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.out.data(), automatic.out.data(), a.out.numel() * sizeof(float)), 0);
  // Other thread counts: the same tasks, so the same bits (no key split here).
  for (int threads : {1, 3}) {
    ScopedThreads scoped(threads);
    const Result t = in.run(c, Backend::Flash);
    EXPECT_EQ(std::memcmp(a.out.data(), t.out.data(), a.out.numel() * sizeof(float)), 0) << threads;
  }
}

TEST_P(Flash, ConcurrentCallsFromSeveralThreads) {
  Case c;
  c.s = {1, 4, 4, 64, 200, 32, 32};
  c.mask = sliding_window(40, 0);
  const Inputs in(c);
  const Result want = in.run(c, Backend::Flash);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 10; ++rep) {
        const Result got = in.run(c, Backend::Flash);
        mismatches[t] +=
            std::memcmp(got.out.data(), want.out.data(), got.out.numel() * sizeof(float)) != 0;
      }
    });
  for (auto& t : threads) t.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace maskattn
