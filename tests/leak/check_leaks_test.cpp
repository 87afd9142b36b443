// check_leaks(): the leaks it reports are exactly the pairs that the
// expectation hides and the mask under test allows (an oracle from the two
// masks' element tests), on both backends and on random masks; the classic
// failures (an inverted boolean, a look-ahead mask misaligned for Lq != Lk,
// padding left unmasked, a window one key too wide) are caught and named;
// correct masks pass; padding takes O(log L) runs, a diagonal about 1.25 L;
// bad arguments are Errors naming them.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "mask/random_masks.hpp"
#include "maskattn/leak_check.hpp"
#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;
using Pair = std::tuple<int64_t, int64_t, int64_t, int64_t>;

// The pairs that leak by definition: hidden by `expect`, allowed by `mask`.
std::set<Pair> oracle_leaks(const Mask& mask, const Mask& expect, const MaskShape& s) {
  const BoundMask m = mask.bind(s), e = expect.bind(s);
  std::set<Pair> leaks;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i)
        for (int64_t j = 0; j < s.k_len; ++j)
          if (!e.allowed(b, h, i, j) && m.allowed(b, h, i, j)) leaks.insert({b, h, i, j});
  return leaks;
}

int64_t oracle_count(const Mask& mask, const MaskShape& s, bool want_allowed, const Mask& other,
                     bool other_allowed) {
  const BoundMask m = mask.bind(s), o = other.bind(s);
  int64_t n = 0;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i)
        for (int64_t j = 0; j < s.k_len; ++j)
          n += m.allowed(b, h, i, j) == want_allowed && o.allowed(b, h, i, j) == other_allowed;
  return n;
}

std::set<Pair> reported(const LeakReport& r) {
  std::set<Pair> leaks;
  for (const Leak& l : r.leaks) leaks.insert({l.b, l.h, l.i, l.j});
  return leaks;
}

LeakCheckOptions list_all(Backend backend = Backend::Auto) {
  LeakCheckOptions o;
  o.max_listed = std::numeric_limits<int32_t>::max();
  o.attention.backend = backend;
  return o;
}

// Every count of the report against the oracle.
void expect_exact(const Mask& mask, const Mask& expect, const MaskShape& s,
                  const LeakCheckOptions& opts) {
  const LeakReport r = check_leaks(mask, expect, s, opts);
  const std::set<Pair> want = oracle_leaks(mask, expect, s);
  EXPECT_EQ(reported(r), want) << mask.describe() << " vs " << expect.describe();
  EXPECT_EQ(r.leak_count, static_cast<int64_t>(want.size()));
  EXPECT_EQ(r.hidden_pairs, oracle_count(expect, s, false, expect, false));
  EXPECT_EQ(r.over_masked, oracle_count(mask, s, false, expect, true));
  EXPECT_EQ(r.leaks_found(), !want.empty());
  for (const Leak& l : r.leaks) EXPECT_GT(l.change, 0.0f);
}

TEST(CheckLeaks, CorrectCausalMaskPasses) {
  const MaskShape s{2, 3, 40, 40};
  for (Backend backend : {Backend::Reference, Backend::Flash}) {
    const LeakReport r = check_leaks(causal(), causal(), s, list_all(backend));
    EXPECT_FALSE(r.leaks_found());
    EXPECT_EQ(r.hidden_pairs, 2 * 3 * 40 * 39 / 2);
    EXPECT_EQ(r.over_masked, 0);
    EXPECT_TRUE(r.leaks.empty());
    EXPECT_EQ(r.max_change, 0.0f);
  }
}

// The write-ups' bug: the look-ahead pattern (true = may attend) read as
// "true = masked". Every query but the last sees only its future.
TEST(CheckLeaks, InvertedBooleanLeaksEveryFutureKey) {
  constexpr int64_t L = 48;
  const Tensor<bool> lower = subsequent_mask(L);
  const Mask inverted = block(lower.view<3>());
  const MaskShape s{2, 2, L, L};
  const LeakReport r = check_leaks(inverted, causal(), s, list_all());
  EXPECT_EQ(r.leak_count, 2 * 2 * L * (L - 1) / 2);
  EXPECT_EQ(r.leak_count, r.hidden_pairs);
  EXPECT_EQ(r.over_masked, 2 * 2 * L * (L + 1) / 2);
  EXPECT_EQ(reported(r), oracle_leaks(inverted, causal(), s));
  // The same array read as it was meant passes.
  EXPECT_FALSE(check_leaks(keep(lower.view<3>()), causal(), s).leaks_found());
}

// Decoding with a KV cache (Lq < Lk): the expectation is bottom-right; a
// bottom-right mask where top-left was meant leaks, the other way round
// over-masks.
TEST(CheckLeaks, MisalignedLookAhead) {
  const MaskShape s{1, 2, 4, 12};
  const LeakReport leak = check_leaks(causal(Align::BottomRight), causal(Align::TopLeft), s);
  EXPECT_EQ(leak.leak_count, 2 * 4 * 8);  // query i sees i+1 .. i+8 too
  expect_exact(causal(Align::BottomRight), causal(Align::TopLeft), s, list_all());
  const LeakReport over = check_leaks(causal(Align::TopLeft), causal(Align::BottomRight), s);
  EXPECT_FALSE(over.leaks_found());
  EXPECT_EQ(over.over_masked, 2 * 4 * 8);
  ASSERT_TRUE(over.first_over_masked.has_value());
  EXPECT_EQ(*over.first_over_masked, (std::array<int64_t, 4>{0, 0, 0, 1}));
}

TEST(CheckLeaks, MissingPadding) {
  const std::vector<int64_t> lengths{5, 8, 3};
  const MaskShape s{3, 2, 8, 8};
  const Mask expect = causal() & key_lengths(lengths);
  const LeakReport r = check_leaks(causal(), expect, s, list_all());
  // Row b leaks keys lengths[b] <= j <= i.
  int64_t want = 0;
  for (int64_t len : lengths)
    for (int64_t i = 0; i < 8; ++i) want += std::max<int64_t>(0, i - len + 1);
  EXPECT_EQ(r.leak_count, 2 * want);
  for (const Leak& l : r.leaks) EXPECT_GE(l.j, lengths[static_cast<std::size_t>(l.b)]);
  expect_exact(causal(), expect, s, list_all());
  EXPECT_FALSE(check_leaks(causal() & key_lengths(lengths), expect, s).leaks_found());
}

TEST(CheckLeaks, WindowOneKeyTooWide) {
  const MaskShape s{1, 1, 40, 40};
  const LeakReport r = check_leaks(sliding_window(3, 0), sliding_window(2, 0), s, list_all());
  EXPECT_EQ(r.leak_count, 40 - 3);
  for (const Leak& l : r.leaks) EXPECT_EQ(l.j, l.i - 3);
  // One too narrow hides more than it must: no leak, over-masked.
  const LeakReport narrow = check_leaks(sliding_window(1, 0), sliding_window(2, 0), s);
  EXPECT_FALSE(narrow.leaks_found());
  EXPECT_EQ(narrow.over_masked, 40 - 2);
}

// Random masks (no bias: an allowed key always has a weight well above
// float32 resolution) and random expectations: the report is the oracle.
TEST(CheckLeaks, RandomMasksMatchTheOracle) {
  oracle::RandomMasks random(17);
  int cases = 0, with_leaks = 0;
  for (int trial = 0; cases < 40 && trial < 400; ++trial) {
    const MaskShape s{random.uniform(1, 2), random.uniform(1, 3), random.uniform(1, 40),
                      random.uniform(1, 40)};
    const Mask mask = random.mask(s), expect = random.mask(s);
    if (mask.bind(s).has_bias() || expect.bind(s).has_bias()) continue;
    const Backend backend = cases % 2 ? Backend::Flash : Backend::Reference;
    SCOPED_TRACE(::testing::Message()
                 << "trial " << trial << " " << mask.describe() << " vs " << expect.describe());
    expect_exact(mask, expect, s, list_all(backend));
    with_leaks += !oracle_leaks(mask, expect, s).empty();
    ++cases;
  }
  EXPECT_EQ(cases, 40);
  EXPECT_GE(with_leaks, 10);  // both verdicts are exercised
}

// Padding is found by bisection in O(log L) runs; a diagonal needs one run
// per key and a quarter more for the ranges above the single keys.
TEST(CheckLeaks, RunsStayNearTheBound) {
  constexpr int64_t L = 256;
  const MaskShape s{2, 1, L, L};
  const std::vector<int64_t> lengths{200, 77};
  const Mask padding = key_lengths(lengths);
  const LeakReport pad = check_leaks(padding, padding, s);
  EXPECT_FALSE(pad.leaks_found());
  EXPECT_LE(pad.runs, 1 + 2 * 8 + kSplitToSingleKeys);
  const LeakReport diag = check_leaks(causal(), causal(), s);
  EXPECT_FALSE(diag.leaks_found());
  EXPECT_LE(diag.runs, 1 + L + L / 4);
  // A mask that leaks everywhere costs no more than a correct one.
  const Tensor<bool> lower = subsequent_mask(L);
  EXPECT_LE(check_leaks(block(lower.view<3>()), causal(), s).runs, 1 + L + L / 4);
}

// A finite penalty instead of -inf (a "large negative number") leaks: the
// perturbed keys are large enough to outweigh it. The tolerance says how
// large a change still counts as none.
TEST(CheckLeaks, ToleranceAndSoftPenalties) {
  constexpr int64_t L = 16;
  Tensor<float> penalty({L, L});
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = i + 1; j < L; ++j) penalty.data()[i * L + j] = -12.0f;
  const Mask soft = bias(penalty.view<2>());
  const MaskShape s{1, 1, L, L};
  const LeakReport exact = check_leaks(soft, causal(), s);
  EXPECT_EQ(exact.leak_count, L * (L - 1) / 2);
  // Smaller than an unmasked key's change, but far above float32 resolution.
  EXPECT_GT(exact.max_change, 1e-4f);
  EXPECT_LT(exact.max_change, 0.5f * check_leaks(Mask(), causal(), s).max_change);
  LeakCheckOptions loose;
  loose.tolerance = exact.max_change;  // a change <= tolerance is none
  const LeakReport within = check_leaks(soft, causal(), s, loose);
  EXPECT_FALSE(within.leaks_found());
  EXPECT_NE(leak_verdict(within).find(fmt::format("outputs within {:g}", exact.max_change)),
            std::string::npos)
      << leak_verdict(within);
  loose.tolerance = 0.999f * exact.max_change;
  EXPECT_GE(check_leaks(soft, causal(), s, loose).leak_count, 1);
}

// The call's own options: dropout is replayed from its seed, a softcap and a
// scale change no mask.
TEST(CheckLeaks, AttentionOptionsOfTheCall) {
  LeakCheckOptions o;
  o.attention.dropout_p = 0.3f;
  o.attention.seed = 9;
  o.attention.softcap = 5.0f;
  o.attention.scale = 0.7f;
  const MaskShape s{2, 2, 24, 24};
  EXPECT_FALSE(check_leaks(causal(), causal(), s, o).leaks_found());
  // A dropped weight still counts in the softmax's sum: every pair leaks.
  EXPECT_EQ(check_leaks(Mask(), causal(), s, o).leak_count, 2 * 2 * 24 * 23 / 2);
}

TEST(CheckLeaks, ListIsBoundedAndOrdered) {
  const MaskShape s{2, 2, 16, 16};
  LeakCheckOptions o;
  o.max_listed = 5;
  const LeakReport r = check_leaks(Mask(), causal(), s, o);
  EXPECT_EQ(r.leak_count, 2 * 2 * 16 * 15 / 2);
  ASSERT_EQ(r.leaks.size(), 5u);
  // The first five in (b, h, i, j) order: query 0 sees keys 1..5.
  for (int64_t k = 0; k < 5; ++k) {
    EXPECT_EQ(r.leaks[static_cast<std::size_t>(k)].i, 0);
    EXPECT_EQ(r.leaks[static_cast<std::size_t>(k)].j, k + 1);
  }
  const std::string text = describe(r);
  EXPECT_NE(text.find("LEAK: 480 of 480 hidden pairs of (B=2, H=2, Lq=16, Lk=16)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("... and 475 more"), std::string::npos) << text;
  o.max_listed = 0;
  EXPECT_TRUE(check_leaks(Mask(), causal(), s, o).leaks.empty());
}

TEST(CheckLeaks, VerdictWords) {
  const MaskShape s{1, 1, 8, 8};
  const LeakReport ok = check_leaks(causal(), causal(), s);
  EXPECT_EQ(leak_verdict(ok).rfind("no leak: all 28 hidden pairs of (B=1, H=1, Lq=8, Lk=8) "
                                   "checked, outputs unchanged (",
                                   0),
            0u)
      << leak_verdict(ok);
  EXPECT_EQ(leak_verdict(check_leaks(causal(), Mask(), s)).rfind("nothing checked", 0), 0u);
  const std::string over = describe(check_leaks(sliding_window(1, 0), causal(), s));
  EXPECT_NE(over.find("note: the mask also hides 21 pairs the expectation allows, the first at "
                      "(b, h, i, j) = (0, 0, 2, 0)"),
            std::string::npos)
      << over;
}

// Sizes whose product overflows int64 were an Error naming "Tensor shape"
// (the first buffer allocated); now the argument, before any allocation.
TEST(CheckLeaks, SizesWhoseProductOverflowsNameTheShape) {
  constexpr int64_t kHuge = int64_t{1} << 40;
  EXPECT_TRUE(throws_error_naming(
      [&] {
        check_leaks(causal(), causal(), {kHuge, kHuge, kHuge, kHuge});
      },
      "maskattn: shape: expected a size product that fits in int64"));
  LeakCheckOptions wide;
  wide.head_dim = kHuge;
  EXPECT_TRUE(throws_error_naming(
      [&] {
        check_leaks(causal(), causal(), {kHuge, 1, 1 << 20, 8}, wide);
      },
      "maskattn: shape: expected a size product that fits in int64"));
}

TEST(CheckLeaks, ErrorsNameTheArgument) {
  const MaskShape s{1, 1, 8, 8};
  EXPECT_TRUE(throws_error_naming([&] { check_leaks(causal(), causal(), {1, 1, 0, 8}); }, "shape"));
  // Regression: a shape whose B*H*Lq*Lk overflows was an Error naming
  // "Tensor shape", an internal buffer, not the argument.
  constexpr int64_t kHuge = int64_t{1} << 32;
  EXPECT_TRUE(throws_error_naming(
      [&] {
        check_leaks(causal(), causal(), {kHuge, kHuge, kHuge, 2});
      },
      "shape: expected a size"));
  LeakCheckOptions o;
  o.head_dim = 0;
  EXPECT_TRUE(throws_error_naming([&] { check_leaks(causal(), causal(), s, o); }, "opts.head_dim"));
  o = {};
  o.tolerance = -1.0f;
  EXPECT_TRUE(
      throws_error_naming([&] { check_leaks(causal(), causal(), s, o); }, "opts.tolerance"));
  o.tolerance = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(
      throws_error_naming([&] { check_leaks(causal(), causal(), s, o); }, "opts.tolerance"));
  o = {};
  o.max_listed = -1;
  EXPECT_TRUE(
      throws_error_naming([&] { check_leaks(causal(), causal(), s, o); }, "opts.max_listed"));
  o = {};
  o.attention.scale = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(
      throws_error_naming([&] { check_leaks(causal(), causal(), s, o); }, "opts.attention.scale"));
  const std::vector<int64_t> two{3, 4};
  EXPECT_TRUE(throws_error_naming([&] { check_leaks(causal(), key_lengths(two), s); }, "expect"));
  EXPECT_TRUE(throws_error_naming([&] { check_leaks(key_lengths(two), causal(), s); }, "mask"));
}

}  // namespace
}  // namespace maskattn
