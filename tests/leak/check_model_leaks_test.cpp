// check_model_leaks(): a real encoder-decoder (Seq2SeqTransformer) keeps its
// look-ahead and source-padding promises; a two-layer self-attention model
// without a mask, or with padding left out, leaks exactly the pairs it
// should (through both layers); output rows the expectation leaves empty are
// not checked; bad arguments and misbehaving models are Errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/leak_check.hpp"
#include "maskattn/models/seq2seq.hpp"
#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

constexpr int64_t kVocab = 13;

models::Seq2SeqTransformer make_seq2seq() {
  models::Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = kVocab;
  o.transformer.d_model = 16;
  o.transformer.nhead = 2;
  o.transformer.num_encoder_layers = 1;
  o.transformer.num_decoder_layers = 2;
  o.transformer.layer.dim_feedforward = 32;
  o.max_len = 32;
  models::Seq2SeqTransformer model(o);
  model.seed(7);  // parameters drawn from this seed, whatever ran before
  model.eval();
  return model;
}

Tensor<int64_t> random_tokens(int64_t batch, int64_t len, unsigned seed) {
  Tensor<int64_t> t({batch, len});
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> id(0, kVocab - 1);
  for (int64_t& x : t) x = id(rng);
  return t;
}

// Two layers of x + attention(x, x, x, mask) over a random embedding of the
// tokens: (B, L) -> (B, L, D).
class AttentionStack {
 public:
  explicit AttentionStack(Mask mask) : mask_(std::move(mask)), table_({kVocab, kDim}) {
    std::mt19937 rng(3);
    // Small embeddings keep the softmax far from saturation: through a weight
    // of e^-20 a token moves nothing in float32, and no check can see it.
    std::normal_distribution<float> normal(0.0f, 0.3f);
    for (float& x : table_) x = normal(rng);
  }
  Tensor<float> operator()(View<const int64_t, 2> tokens) const {
    const int64_t B = tokens.size(0), L = tokens.size(1);
    Tensor<float> x({B, 1, L, kDim}), y({B, 1, L, kDim});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t d = 0; d < kDim; ++d)
          x.data()[(b * L + i) * kDim + d] = table_.data()[tokens(b, i) * kDim + d];
    for (int layer = 0; layer < 2; ++layer) {
      attention(x.view<4>(), x.view<4>(), x.view<4>(), y.view<4>(), mask_);
      for (int64_t e = 0; e < x.numel(); ++e) x.data()[e] += y.data()[e];
    }
    Tensor<float> out({B, L, kDim});  // x without its head axis
    std::copy(x.begin(), x.end(), out.begin());
    return out;
  }

 private:
  static constexpr int64_t kDim = 8;
  Mask mask_;
  Tensor<float> table_;
};

ModelLeakOptions options() {
  ModelLeakOptions o;
  o.vocab_size = kVocab;
  o.max_listed = 100000;
  return o;
}

TEST(CheckModelLeaks, DecoderKeepsItsLookAheadPromise) {
  const models::Seq2SeqTransformer model = make_seq2seq();
  const Tensor<int64_t> src = random_tokens(2, 7, 1), tgt = random_tokens(2, 10, 2);
  const std::vector<int64_t> src_lengths{7, 4};
  const SequenceModel decoder = [&](View<const int64_t, 2> t) {
    Tensor<float> logits({t.size(0), t.size(1), kVocab});
    model.forward(src.view<2>(), src_lengths, t, logits.view<3>());
    return logits;
  };
  const LeakReport r = check_model_leaks(decoder, tgt.view<2>(), causal(), options());
  EXPECT_FALSE(r.leaks_found()) << describe(r);
  EXPECT_EQ(r.hidden_pairs, 2 * 10 * 9 / 2);
  EXPECT_TRUE(r.model);
  EXPECT_EQ(r.shape.q_len, 10);
  EXPECT_NE(leak_verdict(r).find("(B=2, L_out=10, L_in=10)"), std::string::npos);
}

// Source padding: no target position may read a padded source token.
TEST(CheckModelLeaks, SourcePaddingThroughTheEncoder) {
  const models::Seq2SeqTransformer model = make_seq2seq();
  const Tensor<int64_t> src = random_tokens(3, 9, 4), tgt = random_tokens(3, 5, 5);
  const std::vector<int64_t> lengths{9, 4, 6};
  const auto encoder_of = [&](std::vector<int64_t> used) -> SequenceModel {
    return [&, used](View<const int64_t, 2> s) {
      Tensor<float> logits({s.size(0), tgt.size(1), kVocab});
      model.forward(s, used, tgt.view<2>(), logits.view<3>());
      return logits;
    };
  };
  const Mask expect = key_lengths(lengths);
  const LeakReport ok = check_model_leaks(encoder_of(lengths), src.view<2>(), expect, options());
  EXPECT_FALSE(ok.leaks_found()) << describe(ok);
  EXPECT_EQ(ok.hidden_pairs, 5 * (0 + 5 + 3));
  // The lengths forgotten: every target position reads every padded token.
  const LeakReport leak =
      check_model_leaks(encoder_of({9, 9, 9}), src.view<2>(), expect, options());
  EXPECT_EQ(leak.leak_count, leak.hidden_pairs);
  for (const Leak& l : leak.leaks) EXPECT_GE(l.j, lengths[static_cast<std::size_t>(l.b)]);
}

TEST(CheckModelLeaks, UnmaskedStackLeaksEveryFutureToken) {
  const Tensor<int64_t> tokens = random_tokens(2, 12, 6);
  const LeakReport ok =
      check_model_leaks(AttentionStack(causal()), tokens.view<2>(), causal(), options());
  EXPECT_FALSE(ok.leaks_found()) << describe(ok);
  const LeakReport leak =
      check_model_leaks(AttentionStack(Mask()), tokens.view<2>(), causal(), options());
  EXPECT_EQ(leak.leak_count, 2 * 12 * 11 / 2);
  ASSERT_EQ(leak.leaks.size(), static_cast<std::size_t>(leak.leak_count));
  EXPECT_EQ(leak.leaks.front().i, 0);
  EXPECT_EQ(leak.leaks.front().j, 1);
  // A window of one key per layer reaches two keys back through two layers:
  // the model-level expectation sliding_window(1) is broken, (2) holds.
  const AttentionStack window(sliding_window(1, 0));
  EXPECT_EQ(check_model_leaks(window, tokens.view<2>(), sliding_window(1, 0), options()).leak_count,
            2 * 10);
  EXPECT_FALSE(
      check_model_leaks(window, tokens.view<2>(), sliding_window(2, 0), options()).leaks_found());
}

// Bidirectional self-attention with padding: real positions must not read
// padded tokens; padded positions' outputs are not checked when the
// expectation leaves them empty (query_lengths), and are (their own token
// reaches them) when it does not.
TEST(CheckModelLeaks, PaddedPositionsAndQueryLengths) {
  const Tensor<int64_t> tokens = random_tokens(2, 8, 8);
  const std::vector<int64_t> lengths{5, 8};
  const Mask expect = key_lengths(lengths) & query_lengths(lengths);
  const AttentionStack padded(key_lengths(lengths));
  const LeakReport ok = check_model_leaks(padded, tokens.view<2>(), expect, options());
  EXPECT_FALSE(ok.leaks_found()) << describe(ok);
  EXPECT_EQ(ok.hidden_pairs, 5 * 3);
  const LeakReport forgot =
      check_model_leaks(AttentionStack(Mask()), tokens.view<2>(), expect, options());
  EXPECT_EQ(forgot.leak_count, 5 * 3);
  const LeakReport rows =
      check_model_leaks(padded, tokens.view<2>(), key_lengths(lengths), options());
  EXPECT_TRUE(rows.leaks_found());
  for (const Leak& l : rows.leaks) {
    EXPECT_GE(l.i, 5);
    EXPECT_GE(l.j, 5);
  }
}

TEST(CheckModelLeaks, ErrorsNameTheArgument) {
  const Tensor<int64_t> tokens = random_tokens(2, 6, 9);
  const AttentionStack model(causal());
  ModelLeakOptions o = options();
  o.vocab_size = 1;
  EXPECT_TRUE(throws_error_naming([&] { check_model_leaks(model, tokens.view<2>(), causal(), o); },
                                  "opts.vocab_size"));
  o.vocab_size = 5;  // the tokens go up to 12
  EXPECT_TRUE(throws_error_naming([&] { check_model_leaks(model, tokens.view<2>(), causal(), o); },
                                  "tokens"));
  EXPECT_TRUE(throws_error_naming(
      [&] { check_model_leaks(model, View<const int64_t, 2>(), causal(), options()); }, "tokens"));
  EXPECT_TRUE(throws_error_naming(
      [&] { check_model_leaks(SequenceModel(), tokens.view<2>(), causal(), options()); }, "model"));
  const SequenceModel flat = [](View<const int64_t, 2> t) { return Tensor<float>({t.size(0)}); };
  EXPECT_TRUE(throws_error_naming(
      [&] { check_model_leaks(flat, tokens.view<2>(), causal(), options()); }, "model output"));
  int calls = 0;
  const SequenceModel growing = [&](View<const int64_t, 2> t) {
    return Tensor<float>({t.size(0), t.size(1), 1 + calls++});
  };
  EXPECT_TRUE(throws_error_naming(
      [&] { check_model_leaks(growing, tokens.view<2>(), causal(), options()); },
      "model output: expected the same shape on every call"));
  const std::vector<int64_t> three{1, 2, 3};
  EXPECT_TRUE(throws_error_naming(
      [&] { check_model_leaks(model, tokens.view<2>(), key_lengths(three), options()); },
      "expect"));
}

// A model whose outputs are NaN (or infinite) on the tokens as given cannot
// show a dependence: NaN stays NaN whatever the tokens. It was reported "no
// leak" although every future token was read; now an Error naming the output.
TEST(CheckModelLeaks, NonFiniteOutputsAreAnErrorNotNoLeak) {
  const Tensor<int64_t> tokens = random_tokens(2, 6, 9);
  for (const float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    // out[b, i] = the sum of every token (a leak wherever j > i), with one bad value.
    const SequenceModel reads_all = [bad](View<const int64_t, 2> t) {
      Tensor<float> out({t.size(0), t.size(1), 1});
      for (int64_t b = 0; b < t.size(0); ++b) {
        float sum = 0.0f;
        for (int64_t j = 0; j < t.size(1); ++j) sum += static_cast<float>(t(b, j));
        for (int64_t i = 0; i < t.size(1); ++i) out.data()[b * t.size(1) + i] = sum;
      }
      out.data()[t.size(1) + 2] = bad;  // (b, i) = (1, 2)
      return out;
    };
    EXPECT_TRUE(throws_error_naming(
        [&] { check_model_leaks(reads_all, tokens.view<2>(), causal(), options()); },
        "model output: expected finite values"))
        << bad;
  }
}

}  // namespace
}  // namespace maskattn
