// BERT masked-LM masking: reproducibility, special ids, labels, the 15 % and
// 80/10/10 statistics (5-sigma binomial bounds), uniform random ids, whole-word
// grouping, the p = 0 and p = 1 edges, bad input.
#include "maskattn/mlm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "throws_error.hpp"

namespace maskattn {
namespace {

constexpr int64_t kPad = 0, kCls = 1, kSep = 2, kMask = 3;

using testing_errors::throws_error_naming;

// |count - n p| <= 5 sigma of Binomial(n, p): fails by chance with probability
// below 1e-6, and any real bias of the size that matters is far outside.
::testing::AssertionResult within_5_sigma(int64_t count, int64_t n, double p) {
  const double mean = static_cast<double>(n) * p;
  const double sigma = std::sqrt(static_cast<double>(n) * p * (1.0 - p));
  const double diff = std::abs(static_cast<double>(count) - mean);
  if (diff <= 5.0 * sigma) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << count << " of " << n << " is " << diff / sigma << " sigma from p = " << p;
}

// (B, L) batch of BERT-like rows: [CLS] tokens... [SEP] [PAD]..., lengths
// uniform in [L/2, L], token ids uniform in [4, vocab_size).
struct Batch {
  Batch(int64_t rows, int64_t cols, int64_t vocab_size, uint32_t seed = 5)
      : rows(rows), cols(cols), ids(static_cast<std::size_t>(rows * cols)) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int64_t> token(4, vocab_size - 1);
    std::uniform_int_distribution<int64_t> length(std::max<int64_t>(2, cols / 2), cols);
    for (int64_t b = 0; b < rows; ++b) {
      const int64_t n = length(rng);
      for (int64_t l = 0; l < cols; ++l)
        at(b, l) = l == 0 ? kCls : l == n - 1 ? kSep : l >= n ? kPad : token(rng);
    }
  }
  int64_t& at(int64_t b, int64_t l) { return ids[static_cast<std::size_t>(b * cols + l)]; }
  View<const int64_t, 2> view() const { return {ids.data(), {rows, cols}}; }

  int64_t rows, cols;
  std::vector<int64_t> ids;  // (B, L)
};

MlmOptions bert_options(int64_t vocab_size, uint64_t seed = 42) {
  MlmOptions o;
  o.vocab_size = vocab_size;
  o.mask_token_id = kMask;
  o.special_token_ids = {kPad, kCls, kSep};
  o.seed = seed;
  return o;
}

bool is_special(int64_t id) { return id == kPad || id == kCls || id == kSep || id == kMask; }

std::vector<int64_t> to_vector(const Tensor<int64_t>& t) { return {t.begin(), t.end()}; }

// The contract at every position: labels hold the original id exactly where
// chosen and -100 elsewhere; unchosen ids are unchanged; specials never chosen;
// a chosen id becomes the mask token or a non-special id.
void expect_consistent(const Batch& batch, const MlmResult& r) {
  ASSERT_EQ(r.input_ids.shape(), (std::vector<int64_t>{batch.rows, batch.cols}));
  ASSERT_EQ(r.labels.shape(), (std::vector<int64_t>{batch.rows, batch.cols}));
  for (std::size_t t = 0; t < batch.ids.size(); ++t) {
    const int64_t original = batch.ids[t], out = r.input_ids.data()[t];
    const int64_t label = r.labels.data()[t];
    if (label == kIgnoreIndex) {
      EXPECT_EQ(out, original) << "unchosen token changed at " << t;
    } else {
      EXPECT_EQ(label, original) << "label is not the original id at " << t;
      EXPECT_FALSE(is_special(original)) << "special token chosen at " << t;
      EXPECT_TRUE(out == kMask || !is_special(out)) << "special id drawn at " << t;
    }
  }
}

TEST(Mlm, SameSeedSameResultOtherSeedOtherResult) {
  const Batch batch(8, 256, 1000);
  const MlmResult a = mlm_mask(batch.view(), bert_options(1000, 7));
  const MlmResult b = mlm_mask(batch.view(), bert_options(1000, 7));
  const MlmResult c = mlm_mask(batch.view(), bert_options(1000, 8));
  expect_consistent(batch, a);
  EXPECT_EQ(to_vector(a.input_ids), to_vector(b.input_ids));
  EXPECT_EQ(to_vector(a.labels), to_vector(b.labels));
  EXPECT_NE(to_vector(a.labels), to_vector(c.labels));
  EXPECT_NE(to_vector(a.input_ids), to_vector(c.input_ids));
}

TEST(Mlm, ChoiceDependsOnPositionsNotOnTheIds) {
  // Counter-based: replacing every non-special id leaves the chosen positions
  // and the mask/random/keep decisions where they were.
  Batch batch(4, 128, 500);
  const MlmResult before = mlm_mask(batch.view(), bert_options(500));
  for (int64_t& id : batch.ids)
    if (!is_special(id)) id = 4 + (id + 17) % 496;
  const MlmResult after = mlm_mask(batch.view(), bert_options(500));
  expect_consistent(batch, after);
  for (std::size_t t = 0; t < batch.ids.size(); ++t) {
    EXPECT_EQ(before.labels.data()[t] == kIgnoreIndex, after.labels.data()[t] == kIgnoreIndex);
    EXPECT_EQ(before.input_ids.data()[t] == kMask, after.input_ids.data()[t] == kMask);
  }
}

TEST(Mlm, StatisticsOfChoiceAndReplacement) {
  // 192 x 1024 tokens, about 147000 of them not special. Probabilities of a chosen token's outcome,
  // with n allowed ids (the original among them: a random draw may give it back):
  //   mask 0.8, same id 0.1 + 0.1 / n, another id 0.1 (n - 1) / n.
  const int64_t vocab = 1000, n_allowed = vocab - 4;
  const Batch batch(192, 1024, vocab);
  const MlmResult r = mlm_mask(batch.view(), bert_options(vocab, 2024));
  expect_consistent(batch, r);
  int64_t eligible = 0, chosen = 0, masked = 0, same = 0, other = 0;
  for (std::size_t t = 0; t < batch.ids.size(); ++t) {
    const int64_t original = batch.ids[t], out = r.input_ids.data()[t];
    if (is_special(original)) continue;
    ++eligible;
    if (r.labels.data()[t] == kIgnoreIndex) continue;
    ++chosen;
    masked += out == kMask;
    same += out == original;
    other += out != kMask && out != original;
  }
  ASSERT_GE(eligible, 100000);
  EXPECT_TRUE(within_5_sigma(chosen, eligible, 0.15));
  const double n = static_cast<double>(n_allowed);
  EXPECT_TRUE(within_5_sigma(masked, chosen, 0.8));
  EXPECT_TRUE(within_5_sigma(same, chosen, 0.1 + 0.1 / n));
  EXPECT_TRUE(within_5_sigma(other, chosen, 0.1 * (n - 1.0) / n));
}

TEST(Mlm, RandomIdsAreUniformOverTheNonSpecialIds) {
  // vocab 9 with specials {0, 1, 2}, mask 3 and 7 (a special in the middle):
  // allowed {4, 5, 6, 8}. Every token chosen, every chosen token replaced.
  const int64_t vocab = 9;
  std::vector<int64_t> ids(100000, 5);
  MlmOptions o = bert_options(vocab, 3);
  o.special_token_ids.push_back(7);
  o.mlm_probability = 1.0;
  o.mask_replace_prob = 0.0;
  o.random_replace_prob = 1.0;
  const MlmResult r = mlm_mask(View<const int64_t, 2>(ids.data(), {100, 1000}), o);
  std::map<int64_t, int64_t> counts;
  for (int64_t id : r.input_ids) ++counts[id];
  EXPECT_EQ(counts.size(), 4u);
  for (int64_t id : {4, 5, 6, 8})
    EXPECT_TRUE(within_5_sigma(counts[id], 100000, 0.25)) << "id " << id;
  for (int64_t label : r.labels) ASSERT_EQ(label, 5);
}

TEST(Mlm, ProbabilityZeroChoosesNothingAndOneChoosesEveryNonSpecial) {
  const Batch batch(6, 64, 300);
  MlmOptions o = bert_options(300);
  o.mlm_probability = 0.0;
  const MlmResult none = mlm_mask(batch.view(), o);
  EXPECT_EQ(to_vector(none.input_ids), batch.ids);
  for (int64_t label : none.labels) EXPECT_EQ(label, kIgnoreIndex);

  o.mlm_probability = 1.0;
  const MlmResult all = mlm_mask(batch.view(), o);
  expect_consistent(batch, all);
  for (std::size_t t = 0; t < batch.ids.size(); ++t)
    EXPECT_EQ(all.labels.data()[t], is_special(batch.ids[t]) ? kIgnoreIndex : batch.ids[t]) << t;

  // The mask token in the input counts as special: never chosen again.
  std::vector<int64_t> masks(10, kMask);
  const MlmResult again = mlm_mask(View<const int64_t, 2>(masks.data(), {2, 5}), o);
  for (int64_t label : again.labels) EXPECT_EQ(label, kIgnoreIndex);
}

TEST(Mlm, AllMaskOrAllKeep) {
  const Batch batch(4, 64, 300);
  MlmOptions o = bert_options(300);
  o.mlm_probability = 1.0;
  o.mask_replace_prob = 1.0;
  o.random_replace_prob = 0.0;
  const MlmResult masked = mlm_mask(batch.view(), o);
  for (std::size_t t = 0; t < batch.ids.size(); ++t)
    EXPECT_EQ(masked.input_ids.data()[t], is_special(batch.ids[t]) ? batch.ids[t] : kMask);
  o.mask_replace_prob = 0.0;
  const MlmResult kept = mlm_mask(batch.view(), o);
  EXPECT_EQ(to_vector(kept.input_ids), batch.ids);
  EXPECT_EQ(to_vector(kept.labels), to_vector(masked.labels));
}

// Word ids for a Batch: -1 on special tokens, words of 1..4 tokens; in every
// row, word 0 appears again as the last real token (grouping is by id, not by
// adjacency).
std::vector<int64_t> make_word_ids(Batch& batch) {
  std::vector<int64_t> words(batch.ids.size(), -1);
  std::mt19937 rng(9);
  std::uniform_int_distribution<int64_t> word_length(1, 4);
  for (int64_t b = 0; b < batch.rows; ++b) {
    int64_t word = 0, left = word_length(rng), last_real = -1;
    for (int64_t l = 0; l < batch.cols; ++l) {
      if (is_special(batch.at(b, l))) continue;
      words[static_cast<std::size_t>(b * batch.cols + l)] = word;
      last_real = l;
      if (--left == 0) {
        ++word;
        left = word_length(rng);
      }
    }
    if (last_real > 2) words[static_cast<std::size_t>(b * batch.cols + last_real)] = 0;
  }
  return words;
}

// (row, word) -> {tokens, chosen tokens}
std::map<std::pair<int64_t, int64_t>, std::pair<int, int>> word_choices(
    const Batch& batch, const std::vector<int64_t>& words, const MlmResult& r) {
  std::map<std::pair<int64_t, int64_t>, std::pair<int, int>> out;
  for (std::size_t t = 0; t < words.size(); ++t) {
    if (words[t] < 0) continue;
    auto& [tokens, chosen] = out[{static_cast<int64_t>(t) / batch.cols, words[t]}];
    ++tokens;
    chosen += r.labels.data()[t] != kIgnoreIndex;
  }
  return out;
}

TEST(Mlm, WholeWordsAreChosenTogether) {
  Batch batch(64, 512, 800);
  const std::vector<int64_t> words = make_word_ids(batch);
  MlmOptions o = bert_options(800, 11);
  o.word_ids = View<const int64_t, 2>(words.data(), {batch.rows, batch.cols});
  const MlmResult r = mlm_mask(batch.view(), o);
  expect_consistent(batch, r);

  int64_t multi_token_words = 0, chosen_words = 0;
  const auto choices = word_choices(batch, words, r);
  for (const auto& [key, count] : choices) {
    EXPECT_TRUE(count.second == 0 || count.second == count.first)
        << "row " << key.first << " word " << key.second << ": " << count.second << " of "
        << count.first << " tokens chosen";
    multi_token_words += count.first > 1;
    chosen_words += count.second > 0;
  }
  ASSERT_GT(multi_token_words, 3000);
  // One draw per word: the fraction of chosen words is the probability.
  EXPECT_TRUE(within_5_sigma(chosen_words, static_cast<int64_t>(choices.size()), 0.15));
  // Each chosen token still gets its own 80/10/10 draw: some chosen words mix
  // mask tokens and others.
  int64_t mixed = 0;
  std::map<std::pair<int64_t, int64_t>, std::set<bool>> is_mask;
  for (std::size_t t = 0; t < words.size(); ++t)
    if (words[t] >= 0 && r.labels.data()[t] != kIgnoreIndex)
      is_mask[{static_cast<int64_t>(t) / batch.cols, words[t]}].insert(r.input_ids.data()[t] ==
                                                                       kMask);
  for (const auto& [key, kinds] : is_mask) mixed += kinds.size() == 2;
  EXPECT_GT(mixed, 0);

  // Without word_ids the same tokens are chosen one by one: words split.
  o.word_ids = {};
  int64_t split = 0;
  for (const auto& [key, count] : word_choices(batch, words, mlm_mask(batch.view(), o)))
    split += count.second != 0 && count.second != count.first;
  EXPECT_GT(split, 100);
}

TEST(Mlm, TokensOutsideWordsAreChosenOnTheirOwn) {
  // Every word id -1: the same result as without word_ids.
  const Batch batch(4, 128, 400);
  const std::vector<int64_t> none(batch.ids.size(), -1);
  MlmOptions o = bert_options(400);
  const MlmResult plain = mlm_mask(batch.view(), o);
  o.word_ids = View<const int64_t, 2>(none.data(), {batch.rows, batch.cols});
  const MlmResult grouped = mlm_mask(batch.view(), o);
  EXPECT_EQ(to_vector(plain.labels), to_vector(grouped.labels));
  EXPECT_EQ(to_vector(plain.input_ids), to_vector(grouped.input_ids));
}

TEST(Mlm, EmptyBatch) {
  const MlmResult r = mlm_mask(View<const int64_t, 2>(nullptr, {0, 16}), bert_options(100));
  EXPECT_EQ(r.input_ids.shape(), (std::vector<int64_t>{0, 16}));
  EXPECT_EQ(r.labels.numel(), 0);
}

TEST(Mlm, BadInput) {
  std::vector<int64_t> ids{1, 5, 6, 2, 1, 7, 99, 2};
  const View<const int64_t, 2> tokens(ids.data(), {2, 4});
  auto fails = [&](auto&& edit, std::string_view needle) {
    MlmOptions o = bert_options(100);
    edit(o);
    return throws_error_naming([&] { mlm_mask(tokens, o); }, needle);
  };
  const double nan = std::nan("");
  EXPECT_TRUE(fails([](MlmOptions& o) { o.vocab_size = 0; }, "vocab_size"));
  EXPECT_TRUE(fails([](MlmOptions& o) { o.vocab_size = -5; }, "vocab_size"));
  EXPECT_TRUE(fails([](MlmOptions& o) { o.mask_token_id = -1; }, "mask_token_id"));
  EXPECT_TRUE(fails([](MlmOptions& o) { o.mask_token_id = 100; }, "mask_token_id"));
  EXPECT_TRUE(fails([](MlmOptions& o) { o.special_token_ids = {0, 100}; }, "special_token_ids[1]"));
  EXPECT_TRUE(fails([](MlmOptions& o) { o.special_token_ids = {-3}; }, "special_token_ids[0]"));
  for (double p : {-0.1, 1.5, nan}) {
    EXPECT_TRUE(fails([p](MlmOptions& o) { o.mlm_probability = p; }, "mlm_probability")) << p;
    EXPECT_TRUE(fails([p](MlmOptions& o) { o.mask_replace_prob = p; }, "mask_replace_prob")) << p;
    EXPECT_TRUE(fails([p](MlmOptions& o) { o.random_replace_prob = p; }, "random_replace_prob"))
        << p;
  }
  EXPECT_TRUE(fails(
      [](MlmOptions& o) {
        o.mask_replace_prob = 0.8;
        o.random_replace_prob = 0.3;
      },
      "mask_replace_prob + random_replace_prob <= 1"));
  // Token ids out of range: the message names the position.
  EXPECT_TRUE(fails([](MlmOptions& o) { o.vocab_size = 50; }, "token_ids[1, 2]"));
  ids[3] = -1;
  EXPECT_TRUE(fails([](MlmOptions&) {}, "token_ids[0, 3]"));
  ids[3] = 2;
  // word_ids: shape of token_ids, values >= -1.
  std::vector<int64_t> words{0, 0, 1, -1, 0, 1, 1, -1};
  EXPECT_TRUE(fails(
      [&](MlmOptions& o) {
        o.word_ids = View<const int64_t, 2>(words.data(), {4, 2});
      },
      "word_ids"));
  EXPECT_TRUE(fails(
      [&](MlmOptions& o) {
        o.word_ids = View<const int64_t, 2>(words.data(), {2, 3});
      },
      "word_ids"));
  words[5] = -2;
  EXPECT_TRUE(fails(
      [&](MlmOptions& o) {
        o.word_ids = View<const int64_t, 2>(words.data(), {2, 4});
      },
      "word_ids[1, 1]"));
  EXPECT_TRUE(throws_error_naming(
      [] {
        mlm_mask(View<const int64_t, 2>(nullptr, {2, 3}), bert_options(10));
      },
      "token_ids"));
  // A valid call for contrast.
  EXPECT_NO_THROW(mlm_mask(tokens, bert_options(100)));
  words[5] = 1;
  MlmOptions ok = bert_options(100);
  ok.word_ids = View<const int64_t, 2>(words.data(), {2, 4});
  EXPECT_NO_THROW(mlm_mask(tokens, ok));
}

}  // namespace
}  // namespace maskattn
