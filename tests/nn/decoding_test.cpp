// Incremental decoding with a KvCache: every step's outputs equal what the
// decoder gives for the whole sequences under the look-ahead mask (tolerance
// 1e-5: the same arithmetic in another order), for a batch of sequences at
// different positions; and the cache's errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "maskattn/nn/kv_cache.hpp"
#include "maskattn/nn/transformer.hpp"
#include "throws_error.hpp"

namespace maskattn::nn {
namespace {

using testing_errors::throws_error_naming;

constexpr double kTol = 1e-5;
constexpr int64_t kE = 16, kHeads = 4, kLayers = 2, kBatch = 3, kT = 7, kS = 5;

TransformerDecoder make_decoder(bool batch_first, bool norm_first) {
  TransformerLayerOptions o;
  o.dim_feedforward = 32;
  o.dropout = 0.0;
  o.batch_first = batch_first;
  o.norm_first = norm_first;
  o.activation = Activation::GELU;
  TransformerDecoder decoder(TransformerDecoderLayer(kE, kHeads, o), kLayers, LayerNorm(kE));
  // Every parameter random (biases and norms included: zeros and ones would hide mistakes).
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  for (auto& [name, p] : decoder.named_parameters())
    for (float& x : *p) x = normal(rng);
  decoder.eval();
  return decoder;
}

// (A, B, E) with A, B = positions, batch (or batch, positions with batch_first).
Tensor<float> random_seq(int64_t len, bool batch_first, uint32_t seed) {
  Tensor<float> t(batch_first ? std::vector<int64_t>{kBatch, len, kE}
                              : std::vector<int64_t>{len, kBatch, kE});
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& x : t) x = normal(rng);
  return t;
}

// The token of sequence b at position l.
float* at(Tensor<float>& t, bool batch_first, int64_t b, int64_t l) {
  View<float, 3> v = t.view<3>();
  return batch_first ? v.row(b, l) : v.row(l, b);
}

struct Problem {
  bool batch_first;
  bool norm_first;
};

class Decoding : public ::testing::TestWithParam<Problem> {
 protected:
  void SetUp() override {
    const Problem p = GetParam();
    bf_ = p.batch_first;
    tgt_ = random_seq(kT, bf_, 1);
    memory_ = random_seq(kS, bf_, 2);
    // Memory padding: sequence b has memory_lengths_[b] real positions.
    memory_padding_ = Tensor<bool>({kBatch, kS});
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t j = memory_lengths_[b]; j < kS; ++j) memory_padding_.data()[b * kS + j] = true;
    memory_masks_.key_padding_mask = memory_padding_;
    // The reference: whole sequences, look-ahead mask.
    full_ = Tensor<float>(tgt_.shape());
    AttentionMasks tgt_masks;
    tgt_masks.is_causal = true;
    decoder_.forward(tgt_.view<3>(), memory_.view<3>(), full_.view<3>(), tgt_masks, memory_masks_);
  }

  // Max |step output of sequence b, position l - full output| over the features.
  double diff(const float* step, int64_t b, int64_t l) {
    const float* want = at(full_, bf_, b, l);
    double d = 0.0;
    for (int64_t e = 0; e < kE; ++e) d = std::max(d, std::abs(double{step[e]} - want[e]));
    return d;
  }

  bool bf_ = false;
  TransformerDecoder decoder_ = make_decoder(GetParam().batch_first, GetParam().norm_first);
  Tensor<float> tgt_, memory_, full_;
  Tensor<bool> memory_padding_;
  AttentionMasks memory_masks_;
  const int64_t memory_lengths_[kBatch] = {5, 3, 4};
};

TEST_P(Decoding, OneTokenAtATimeEqualsTheWholeSequence) {
  KvCache cache(decoder_, kBatch, kT);
  for (int64_t l = 0; l < kT; ++l) {
    Tensor<float> step = random_seq(1, bf_, 99), out = random_seq(1, bf_, 98);
    for (int64_t b = 0; b < kBatch; ++b) std::copy_n(at(tgt_, bf_, b, l), kE, at(step, bf_, b, 0));
    decoder_.decode_step(step.view<3>(), memory_.view<3>(), out.view<3>(), cache, memory_masks_);
    for (int64_t b = 0; b < kBatch; ++b)
      EXPECT_LE(diff(at(out, bf_, b, 0), b, l), kTol) << "sequence " << b << ", position " << l;
  }
  for (int64_t len : cache.lengths()) EXPECT_EQ(len, kT);
}

TEST_P(Decoding, PromptsOfDifferentLengthsThenOneTokenPerStep) {
  // First step: every prompt right-padded to the longest (3); sequence b
  // advances by its own prompt length. Then one token per step, each sequence
  // at its own position.
  const std::vector<int64_t> prompt = {3, 1, 2};
  KvCache cache(decoder_, kBatch, kT);
  Tensor<float> first = random_seq(3, bf_, 3), out = random_seq(3, bf_, 4);
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t l = 0; l < prompt[static_cast<std::size_t>(b)]; ++l)
      std::copy_n(at(tgt_, bf_, b, l), kE, at(first, bf_, b, l));
  decoder_.decode_step(first.view<3>(), memory_.view<3>(), out.view<3>(), cache, memory_masks_,
                       prompt);
  for (int64_t b = 0; b < kBatch; ++b) {
    EXPECT_EQ(cache.lengths()[static_cast<std::size_t>(b)], prompt[static_cast<std::size_t>(b)]);
    for (int64_t l = 0; l < prompt[static_cast<std::size_t>(b)]; ++l)
      EXPECT_LE(diff(at(out, bf_, b, l), b, l), kTol) << "prompt of " << b << ", position " << l;
  }
  // Sequence b's next token is its own position's; stop when the shortest
  // prompt's sequence reaches the end (the others still have room).
  while (cache.lengths()[1] < kT - 2) {
    Tensor<float> step = random_seq(1, bf_, 5), step_out = random_seq(1, bf_, 6);
    std::vector<int64_t> pos(cache.lengths().begin(), cache.lengths().end());
    for (int64_t b = 0; b < kBatch; ++b)
      std::copy_n(at(tgt_, bf_, b, pos[static_cast<std::size_t>(b)]), kE, at(step, bf_, b, 0));
    decoder_.decode_step(step.view<3>(), memory_.view<3>(), step_out.view<3>(), cache,
                         memory_masks_);
    for (int64_t b = 0; b < kBatch; ++b)
      EXPECT_LE(diff(at(step_out, bf_, b, 0), b, pos[static_cast<std::size_t>(b)]), kTol)
          << "sequence " << b << ", position " << pos[static_cast<std::size_t>(b)];
  }
}

TEST_P(Decoding, SeveralTokensPerStepWhileTheLengthsAreEqual) {
  KvCache cache(decoder_, kBatch, kT);
  int64_t done = 0;
  for (int64_t t : {3, 2, 1, 1}) {
    Tensor<float> step = random_seq(t, bf_, 7), out = random_seq(t, bf_, 8);
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t i = 0; i < t; ++i)
        std::copy_n(at(tgt_, bf_, b, done + i), kE, at(step, bf_, b, i));
    decoder_.decode_step(step.view<3>(), memory_.view<3>(), out.view<3>(), cache, memory_masks_);
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t i = 0; i < t; ++i)
        EXPECT_LE(diff(at(out, bf_, b, i), b, done + i), kTol) << "position " << done + i;
    done += t;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, Decoding,
                         ::testing::Values(Problem{false, false}, Problem{true, false},
                                           Problem{false, true}, Problem{true, true}),
                         [](const auto& info) {
                           return std::string(info.param.batch_first ? "BatchFirst" : "SeqFirst") +
                                  (info.param.norm_first ? "PreNorm" : "PostNorm");
                         });

TEST(KvCache, Errors) {
  const TransformerDecoder decoder = make_decoder(false, false);
  EXPECT_TRUE(throws_error_naming([&] { KvCache(decoder, 0, 4); }, "KvCache: batch"));
  EXPECT_TRUE(throws_error_naming([&] { KvCache(decoder, 2, 0); }, "KvCache: capacity"));

  KvCache cache(decoder, kBatch, 4);
  Tensor<float> memory = random_seq(kS, false, 1);
  Tensor<float> two = random_seq(2, false, 2), two_out(two.shape());
  // Past the capacity.
  Tensor<float> five = random_seq(5, false, 3), five_out(five.shape());
  EXPECT_TRUE(throws_error_naming(
      [&] { decoder.decode_step(five.view<3>(), memory.view<3>(), five_out.view<3>(), cache); },
      "cache: expected room for 5 more tokens"));
  // Bad advance.
  const std::vector<int64_t> too_far = {3, 1, 1};
  EXPECT_TRUE(throws_error_naming(
      [&] {
        decoder.decode_step(two.view<3>(), memory.view<3>(), two_out.view<3>(), cache, {}, too_far);
      },
      "advance[0]"));
  // Unequal lengths, then a step of two tokens.
  const std::vector<int64_t> uneven = {2, 1, 0};
  decoder.decode_step(two.view<3>(), memory.view<3>(), two_out.view<3>(), cache, {}, uneven);
  EXPECT_TRUE(throws_error_naming(
      [&] { decoder.decode_step(two.view<3>(), memory.view<3>(), two_out.view<3>(), cache); },
      "one token per sequence when the sequences' lengths differ"));
  // Another memory without reset().
  Tensor<float> other = random_seq(kS, false, 4);
  Tensor<float> one = random_seq(1, false, 5), one_out(one.shape());
  EXPECT_TRUE(throws_error_naming(
      [&] { decoder.decode_step(one.view<3>(), other.view<3>(), one_out.view<3>(), cache); },
      "memory: expected the memory of the cache's first step"));
  cache.reset();
  for (int64_t len : cache.lengths()) EXPECT_EQ(len, 0);
  decoder.decode_step(one.view<3>(), other.view<3>(), one_out.view<3>(), cache);
  // A per-position memory_mask cannot follow a step.
  Tensor<bool> memory_mask({1, kS});
  AttentionMasks with_mask;
  with_mask.attn_mask = memory_mask;
  EXPECT_TRUE(throws_error_naming(
      [&] {
        decoder.decode_step(one.view<3>(), other.view<3>(), one_out.view<3>(), cache, with_mask);
      },
      "memory_masks"));
  // A cache of another batch size.
  KvCache small(decoder, 1, 4);
  EXPECT_TRUE(throws_error_naming(
      [&] { decoder.decode_step(one.view<3>(), other.view<3>(), one_out.view<3>(), small); },
      "cache: expected a KvCache for this decoder and batch 3"));
}

}  // namespace
}  // namespace maskattn::nn
