// The flash backward against the reference backward, on every SIMD target
// the kernels were compiled for that this CPU runs: random masks of every
// kind and combination, GQA/MQA, Dv != D, head_mask, dropout, softcap,
// scale, empty rows, strided BHLD/BLHD/padded inputs and gradients, lengths
// that are not tile multiples, key tiles split across threads, skipped tiles
// that stay skipped, determinism. Both backends read the same out and lse
// (from the flash forward), so the comparison is of the backwards alone.
//
// Tolerance: each gradient within 2e-5 of its scale (max |reference
// gradient|, at least 1) while the logits stay within +-8 (unit-variance
// data at the default scale): flash sums up to Lq x Hq / Hkv terms (dk, dv)
// or Lk terms (dq) in float32 and recomputes exp() to 2e-7, the reference
// in double. Beyond, the float32 scores and lse carry |s| 2^-24 of rounding,
// which exp() turns into a relative error of P, and the bound grows with
// max |lse| / 8, as in the forward's flash test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "attention/backend_compare.hpp"
#include "kernels/simd_target_suite.hpp"
#include "mask/random_masks.hpp"
#include "maskattn/attention.hpp"
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

struct Case {
  Shape s;
  Layout layout = Layout::BHLD;
  Mask mask;
  AttentionOptions opts;
  unsigned seed = 1;
};

using Gradients = testing_attention::GradientBuffers;

// A case's inputs, dout and forward (flash: out and lse), ready for backwards.
class Problem {
 public:
  explicit Problem(const Case& c) : c_(c), in_(c.s, c.layout, c.seed) {}

  Buffer4& k() { return in_.k; }
  Buffer4& v() { return in_.v; }

  void forward() {
    AttentionOptions o = c_.opts;
    o.backend = Backend::Flash;
    attention(in_.q.cview(), in_.k.cview(), in_.v.cview(), in_.out.view<4>(), c_.mask, o, {},
              in_.lse.view<3>());
  }

  Gradients backward(Backend backend) const {
    Gradients g(c_.s, c_.layout);
    // Sentinels: every element must be written.
    for (const Buffer4* b : {&g.dq, &g.dk, &g.dv}) {
      const View<float, 4> x = b->view();
      for (int64_t a = 0; a < x.size(0); ++a)
        for (int64_t h = 0; h < x.size(1); ++h)
          for (int64_t i = 0; i < x.size(2); ++i)
            for (int64_t d = 0; d < x.size(3); ++d) x(a, h, i, d) = -777.0f;
    }
    AttentionOptions o = c_.opts;
    o.backend = backend;
    attention_backward(in_.q.cview(), in_.k.cview(), in_.v.cview(), in_.out.view<4>(),
                       in_.lse.view<3>(), in_.g.cview(), g.dq.view(), g.dk.view(), g.dv.view(),
                       c_.mask, o);
    return g;
  }

  double lse_scale() const {
    double m = 1.0;
    for (float x : in_.lse)
      if (std::isfinite(x)) m = std::max(m, std::fabs(double(x)));
    return m;
  }

 private:
  const Case& c_;
  testing_attention::BackwardInputs in_;
};

std::string describe(const Case& c) {
  return shape_text(c.s) + " mask " + c.mask.describe() + " scale " +
         (c.opts.scale ? std::to_string(*c.opts.scale) : "default") + " softcap " +
         std::to_string(c.opts.softcap) + " dropout " + std::to_string(c.opts.dropout_p) +
         (c.opts.head_mask.empty() ? "" : " head_mask") + " layout " +
         std::to_string(static_cast<int>(c.layout));
}

// The worst |flash - reference| / scale of the running test, recorded as
// its property worst_relative_error (--gtest_output=xml shows it).
double& test_worst() {
  static double worst = 0.0;
  return worst;
}

void track_worst(View<const float, 4> f, View<const float, 4> r, double scale) {
  for (int64_t a = 0; a < f.size(0); ++a)
    for (int64_t b = 0; b < f.size(1); ++b)
      for (int64_t c = 0; c < f.size(2); ++c)
        for (int64_t d = 0; d < f.size(3); ++d) {
          const double e = std::fabs(double(f(a, b, c, d)) - r(a, b, c, d)) / scale;
          if (std::isfinite(e)) test_worst() = std::max(test_worst(), e);
        }
}

// dq, dk, dv of flash within tolerance of reference's; nothing written
// outside the views.
::testing::AssertionResult grads_match(const std::string& what, const Gradients& f,
                                       const Gradients& r, double lse_scale) {
  const char* names[] = {"dq", "dk", "dv"};
  const Buffer4* fs[] = {&f.dq, &f.dk, &f.dv};
  const Buffer4* rs[] = {&r.dq, &r.dk, &r.dv};
  for (int x = 0; x < 3; ++x) {
    const double scale = std::max(1.0, max_abs(rs[x]->cview()));
    const double tol = 2e-5 * std::max(1.0, lse_scale / 8.0) * scale;
    track_worst(fs[x]->cview(), rs[x]->cview(), scale);
    auto res = same_within<4>(what + " " + names[x], fs[x]->cview(), rs[x]->cview(), tol);
    if (!res) return res;
    if (fs[x]->gaps_written() != 0)
      return ::testing::AssertionFailure() << what << " " << names[x] << ": written outside";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult flash_matches_reference(const Case& c) {
  Problem p(c);
  p.forward();
  return grads_match(describe(c), p.backward(Backend::Flash), p.backward(Backend::Reference),
                     p.lse_scale());
}

class FlashBackward : public testing_simd::TargetSuite {
 protected:
  void SetUp() override {
    TargetSuite::SetUp();
    test_worst() = 0.0;
  }
  void TearDown() override {
    char text[32];
    std::snprintf(text, sizeof text, "%.2e", test_worst());
    RecordProperty("worst_relative_error", text);
    TargetSuite::TearDown();
  }
};
MASKATTN_INSTANTIATE_FOR_SIMD_TARGETS(FlashBackward);

TEST_P(FlashBackward, MatchesReferenceOnRandomMasksAndOptions) {
  oracle::RandomMasks r(4321 + static_cast<unsigned>(GetParam() % 1000));
  const int64_t dims[] = {1, 3, 8, 24, 33, 64, 80};
  for (int trial = 0; trial < 120; ++trial) {
    Case c;
    const int64_t hkv = r.uniform(1, 2), group = r.uniform(1, 3);
    c.s = {r.uniform(1, 2),
           hkv * group,
           hkv,
           r.coin(0.3) ? r.uniform(1, 7) : r.uniform(1, 90),
           r.uniform(1, 150),
           dims[r.uniform(0, 6)],
           dims[r.uniform(0, 6)]};
    if (r.coin(0.3)) c.s.lk = c.s.lq;  // documents(ids) needs Lq == Lk
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
    c.seed = 300 + trial;
    ASSERT_TRUE(flash_matches_reference(c)) << "trial " << trial;
  }
}

// Under the sanitizers the long shapes shrink (the reference runs ~20x slower).
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kLong = 200;
#else
constexpr int64_t kLong = 600;
#endif

TEST_P(FlashBackward, LongSequencesNotTileMultiples) {
  const int64_t n = kLong;
  Tensor<int64_t> ids({n});
  for (int64_t i = 0; i < n; ++i) ids.data()[i] = i < n / 8 ? 0 : i < 6 * n / 10 ? 1 : 2;
  const std::vector<int64_t> lens = {n, n / 2 + 17};
  const Mask masks[] = {causal(), causal(Align::BottomRight), key_lengths(lens) & causal(),
                        sliding_window(100, 3), documents(ids)};
  unsigned seed = 9;
  for (const Mask& m : masks) {
    Case c;
    c.s = {2, 2, 1, n, n, 64, 64};
    c.mask = m;
    c.seed = seed++;
    ASSERT_TRUE(flash_matches_reference(c));
  }
  // Lq != Lk, bottom-right: decoding a chunk against a longer cache.
  Case c;
  c.s = {1, 4, 2, 77, n, 64, 48};
  c.mask = causal(Align::BottomRight);
  ASSERT_TRUE(flash_matches_reference(c));
}

TEST_P(FlashBackward, KeyTilesSplitAcrossThreads) {
  // One (batch, key/value head): its key tiles are split over the threads
  // and the shares of dq summed.
  for (int threads : {2, 3}) {
    ScopedThreads scoped(threads);
    const std::vector<int64_t> lens = {500};
    const Mask masks[] = {Mask(), causal(), key_lengths(lens), sliding_window(90, 0)};
    for (const Mask& m : masks) {
      Case c;
      c.s = {1, 2, 1, 300, 700, 32, 40};
      c.mask = m;
      c.opts.dropout_p = 0.1f;
      c.seed = static_cast<unsigned>(threads);
      ASSERT_TRUE(flash_matches_reference(c)) << threads << " threads";
    }
  }
}

TEST_P(FlashBackward, SkippedTilesStaySkipped) {
  // Keys past each batch's length are NaN: a tile that read them would turn
  // the gradients NaN. Lengths are multiples of the trimming step (8), so
  // every tile holding only such keys is Empty, or trimmed away.
  for (Layout layout : {Layout::BHLD, Layout::BLHD}) {
    Case c;
    c.s = {2, 2, 2, 150, 300, 32, 32};
    c.layout = layout;
    const std::vector<int64_t> lens = {64, 200};
    c.mask = key_lengths(lens) & causal(Align::BottomRight);
    Problem p(c);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t j = lens[static_cast<std::size_t>(b)]; j < 300; ++j)
          for (int64_t x = 0; x < 32; ++x)
            p.k().view()(b, h, j, x) = p.v().view()(b, h, j, x) = nan;
    p.forward();
    const Gradients f = p.backward(Backend::Flash), r = p.backward(Backend::Reference);
    ASSERT_TRUE(grads_match(describe(c), f, r, p.lse_scale()));
    // The keys no query may see get exactly 0.
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t j = lens[static_cast<std::size_t>(b)]; j < 300; ++j)
          for (int64_t x = 0; x < 32; ++x) {
            ASSERT_EQ(f.dk.view()(b, h, j, x), 0.0f);
            ASSERT_EQ(f.dv.view()(b, h, j, x), 0.0f);
          }
  }
}

TEST_P(FlashBackward, EmptyRowsAndEmptyShapes) {
  // Batch 0: rows with no key; batch 1: rows past the query length.
  const std::vector<int64_t> qlens = {2, 30}, klens = {0, 40};
  for (EmptyRows policy : {EmptyRows::Zero, EmptyRows::NaN}) {
    Case c;
    c.s = {2, 3, 3, 45, 40, 16, 16};
    c.mask = query_lengths(qlens) & key_lengths(klens);
    c.opts.empty_rows = policy;
    ASSERT_TRUE(flash_matches_reference(c));
    // No keys: every row is empty, dq is 0, dk and dv have no elements.
    c.s.lk = 0;
    c.mask = Mask();
    ASSERT_TRUE(flash_matches_reference(c));
    // No queries: dk and dv are 0.
    c.s.lk = 40;
    c.s.lq = 0;
    ASSERT_TRUE(flash_matches_reference(c));
  }
}

// Regression (flash_vs_reference_fuzzer, UBSan): with no key, k and v may
// have no data at all (a null pointer, as an empty numpy array gives), and
// the flash backward addressed the rows of every (b, h) in them: a non-zero
// offset applied to a null pointer. dq must be 0 on both backends.
TEST_P(FlashBackward, NoKeysWithoutDataGiveZeroDq) {
  constexpr int64_t B = 2, H = 3, Lq = 5, D = 8;
  std::vector<float> q(B * H * Lq * D, 1.0f), out(B * H * Lq * D, 0.0f), dout(q.size(), 1.0f);
  std::vector<float> lse(B * H * Lq, -std::numeric_limits<float>::infinity());
  for (Backend backend : {Backend::Flash, Backend::Reference}) {
    std::vector<float> dq(q.size(), 7.0f);
    AttentionOptions o;
    o.backend = backend;
    attention_backward(
        View<const float, 4>(q.data(), {B, H, Lq, D}), View<const float, 4>(nullptr, {B, H, 0, D}),
        View<const float, 4>(nullptr, {B, H, 0, D}),
        View<const float, 4>(out.data(), {B, H, Lq, D}),
        View<const float, 3>(lse.data(), {B, H, Lq}),
        View<const float, 4>(dout.data(), {B, H, Lq, D}), View<float, 4>(dq.data(), {B, H, Lq, D}),
        View<float, 4>(nullptr, {B, H, 0, D}), View<float, 4>(nullptr, {B, H, 0, D}), Mask(), o);
    EXPECT_TRUE(std::all_of(dq.begin(), dq.end(), [](float x) { return x == 0.0f; }))
        << backend_name(backend);
  }
}

TEST_P(FlashBackward, GroupedHeadsSoftcapHeadMaskDropoutStrided) {
  Case c;
  c.s = {2, 6, 2, 130, 97, 80, 24};
  c.layout = Layout::Padded;
  c.mask = causal(Align::BottomRight) & key_lengths(std::vector<int64_t>{97, 50});
  Tensor<float> head({6});
  const float values[] = {1.0f, 0.0f, 0.5f, 2.0f, 1.0f, 1.25f};
  std::copy(values, values + 6, head.data());
  c.opts.head_mask = head;
  c.opts.softcap = 4.0f;
  c.opts.dropout_p = 0.25f;
  c.opts.seed = 99;
  c.opts.scale = 0.3f;
  ASSERT_TRUE(flash_matches_reference(c));
}

TEST_P(FlashBackward, DeterministicForAThreadCountAndAutoIsFlash) {
  Case c;
  c.s = {2, 4, 2, 100, 130, 64, 48};
  c.mask = causal() & key_lengths(std::vector<int64_t>{130, 77});
  c.opts.dropout_p = 0.2f;
  c.opts.seed = 11;
  Problem p(c);
  p.forward();
  auto same = [](const Gradients& a, const Gradients& b) {
    for (const auto& [x, y] : {std::pair{&a.dq, &b.dq}, {&a.dk, &b.dk}, {&a.dv, &b.dv}}) {
      const View<float, 4> u = x->view(), w = y->view();
      for (int64_t n0 = 0; n0 < u.size(0); ++n0)
        for (int64_t n1 = 0; n1 < u.size(1); ++n1)
          for (int64_t n2 = 0; n2 < u.size(2); ++n2)
            if (std::memcmp(&u(n0, n1, n2, 0), &w(n0, n1, n2, 0), u.size(3) * sizeof(float)) != 0)
              return false;
    }
    return true;
  };
  // Four tasks, not split for one or two threads: the same tasks, so the
  // same bits, whichever thread ran which.
  ScopedThreads two(2);
  const Gradients a = p.backward(Backend::Flash);
  EXPECT_TRUE(same(a, p.backward(Backend::Flash)));
  EXPECT_TRUE(same(a, p.backward(Backend::Auto)));
  ScopedThreads one(1);
  EXPECT_TRUE(same(a, p.backward(Backend::Flash)));
  // Split key tiles (three threads): run to run, the same bits too.
  ScopedThreads three(3);
  const Gradients split = p.backward(Backend::Flash);
  EXPECT_TRUE(same(split, p.backward(Backend::Flash)));
}

}  // namespace
}  // namespace maskattn
