// MaskedLm: the backward against central finite differences of L = sum(w *
// logits) over the real positions (gradient_check.hpp), with padding and
// dropout; padding changes no real position's logits and no gradient, and the
// gradient reaching a padded input is exactly zero; the tied table's gradient
// is the output layer's share plus the input lookup's; the initialisation is
// a function of options.seed; top_predictions; errors.
//
// Tolerance 1e-3 of max(1, |fd|), as the encoder stack's (the model is that
// stack between the tied table's two uses); each check prints its worst error.
#include "maskattn/models/masked_lm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "nn/gradient_check.hpp"
#include "nn/module_fixtures.hpp"
#include "throws_error.hpp"

namespace maskattn::models {
namespace {

using testing_errors::throws_error_naming;
using testing_gradients::expect_gradient;
using testing_gradients::expect_parameter_gradients;
using testing_gradients::weighted_sum;
using testing_modules::random_tensor;
using testing_modules::randomize;

constexpr double kTol = 1e-3;
constexpr uint64_t kSeed = 21;
constexpr int64_t kVocab = 13, kPad = 0, kN = 3, kL = 5;

MaskedLmOptions small_options(double dropout) {
  MaskedLmOptions o;
  o.vocab_size = kVocab;
  o.pad_id = kPad;
  o.d_model = 8;
  o.nhead = 2;
  o.num_layers = 2;
  o.dim_feedforward = 12;
  o.dropout = dropout;
  o.max_len = 16;
  o.seed = 4;
  return o;
}

// A batch of three sentences of 5, 3 and 2 tokens; the padded positions hold
// `filler` (the pad id, or words, which the lengths must hide as well).
struct Batch {
  Tensor<int64_t> ids{kN, kL};
  std::vector<int64_t> lengths{5, 3, 2};

  explicit Batch(uint32_t filler_seed) {
    std::mt19937 rng(filler_seed);
    std::uniform_int_distribution<int64_t> word(1, kVocab - 1);
    const int64_t real[kN][kL] = {{3, 5, 7, 2, 9}, {4, 4, 11, 0, 0}, {12, 6, 0, 0, 0}};
    for (int64_t b = 0; b < kN; ++b)
      for (int64_t l = 0; l < kL; ++l)
        ids.data()[b * kL + l] = l < lengths[static_cast<std::size_t>(b)]
                                     ? real[b][l]
                                     : (filler_seed ? word(rng) : kPad);
  }
  bool real(int64_t b, int64_t l) const { return l < lengths[static_cast<std::size_t>(b)]; }
};

// Weights of the logits, zero at padded positions: what cross_entropy's
// gradient is when the padding's labels are -100.
Tensor<float> real_weights(const Batch& batch, uint32_t seed) {
  Tensor<float> w = random_tensor({kN, kL, kVocab}, seed);
  for (int64_t b = 0; b < kN; ++b)
    for (int64_t l = 0; l < kL; ++l)
      if (!batch.real(b, l)) std::fill_n(w.data() + (b * kL + l) * kVocab, kVocab, 0.0f);
  return w;
}

TEST(MaskedLm, GradientsMatchFiniteDifferencesWithPaddingAndDropout) {
  MaskedLm model(small_options(0.1));
  model.train();
  randomize(model, 30);  // no hidden 0 or 1 among the parameters
  const Batch batch(7);
  const Tensor<float> w = real_weights(batch, 31);
  Tensor<float> logits({kN, kL, kVocab});
  const auto loss = [&] {
    model.seed(kSeed);  // the same dropout draws in every forward
    model.forward(batch.ids.view<2>(), batch.lengths, logits.view<3>());
    return weighted_sum(logits.data(), w.data(), logits.numel());
  };
  model.seed(kSeed);
  MaskedLm::Saved saved;
  model.forward(batch.ids.view<2>(), batch.lengths, logits.view<3>(), saved);
  const Tensor<float> trained = logits;
  loss();
  for (int64_t i = 0; i < logits.numel(); ++i)  // the training forward is the forward
    ASSERT_EQ(logits.data()[i], trained.data()[i]) << i;
  nn::Gradients grads(model);
  model.backward(batch.ids.view<2>(), saved, w.view<3>(), grads);
  expect_parameter_gradients(model, grads, loss, kTol);
}

// dembedded against finite differences of the lookup's output: the model
// with embed(ids) * sqrt(d) replaced by a tensor e, through the same
// positions, encoder and tied output layer.
TEST(MaskedLm, EmbeddedGradientMatchesFiniteDifferencesAndIsZeroAtPadding) {
  MaskedLm model(small_options(0.0));
  model.train();
  randomize(model, 40);
  const Batch batch(8);
  const Tensor<float> w = real_weights(batch, 41);
  MaskedLm::Saved saved;
  Tensor<float> logits({kN, kL, kVocab});
  model.forward(batch.ids.view<2>(), batch.lengths, logits.view<3>(), saved);
  nn::Gradients grads(model);
  Tensor<float> dembedded({kN, kL, 8});
  model.backward(batch.ids.view<2>(), saved, w.view<3>(), grads, dembedded.view<3>());

  // The lookup's output, perturbed in place, and the rest of the model.
  Tensor<float> e({kN, kL, 8});
  model.embedding().forward(batch.ids.view<2>(), e.view<3>());
  const nn::PositionalEncoding positions(8, 0.0, 16);
  nn::AttentionMasks masks;
  masks.mask = key_lengths(batch.lengths);
  const auto loss = [&] {
    Tensor<float> x({kN, kL, 8}), h({kN, kL, 8});
    positions.forward(e.view<3>(), x.view<3>(), /*batch_first=*/true);
    model.encoder().forward(x.view<3>(), h.view<3>(), masks);
    model.embedding().unembed(View<const float, 2>(h.data(), {kN * kL, 8}),
                              View<float, 2>(logits.data(), {kN * kL, kVocab}));
    return weighted_sum(logits.data(), w.data(), logits.numel());
  };
  expect_gradient("dembedded", e.data(), dembedded.data(), e.numel(), loss, kTol);
  int64_t padded = 0;
  for (int64_t b = 0; b < kN; ++b)
    for (int64_t l = 0; l < kL; ++l)
      for (int64_t j = 0; j < 8; ++j) {
        const float g = dembedded.data()[(b * kL + l) * 8 + j];
        if (batch.real(b, l)) continue;
        ++padded;
        EXPECT_EQ(g, 0.0f) << "padded input (" << b << ", " << l << ") gets a gradient";
      }
  EXPECT_EQ(padded, 5 * 8);
}

// Whatever the padded positions hold (the pad id, or words), the real
// positions' logits and every parameter's gradient are the same to the bit,
// in eval mode and in training mode with dropout.
TEST(MaskedLm, PaddingChangesNoRealLogitAndNoGradient) {
  MaskedLm model(small_options(0.1));
  randomize(model, 50);
  const Batch padded_with_pad(0), padded_with_words(9), other_words(10);
  const Tensor<float> w = real_weights(padded_with_pad, 51);
  for (const bool training : {false, true}) {
    SCOPED_TRACE(training ? "training" : "eval");
    model.train(training);
    std::vector<Tensor<float>> logits, grads;
    for (const Batch* batch : {&padded_with_pad, &padded_with_words, &other_words}) {
      model.seed(kSeed);
      Tensor<float> out({kN, kL, kVocab});
      MaskedLm::Saved saved;
      model.forward(batch->ids.view<2>(), batch->lengths, out.view<3>(), saved);
      nn::Gradients g(model);
      model.backward(batch->ids.view<2>(), saved, w.view<3>(), g);
      logits.push_back(out);
      for (const auto& entry : g.entries()) grads.push_back(entry.grad);
    }
    for (std::size_t k = 1; k < logits.size(); ++k)
      for (int64_t b = 0; b < kN; ++b)
        for (int64_t l = 0; l < kL; ++l) {
          if (!padded_with_pad.real(b, l)) continue;
          for (int64_t v = 0; v < kVocab; ++v) {
            const int64_t i = (b * kL + l) * kVocab + v;
            ASSERT_EQ(logits[k].data()[i], logits[0].data()[i]) << b << ", " << l << ", " << v;
          }
        }
    const std::size_t per_run = grads.size() / 3;
    for (std::size_t k = 1; k < 3; ++k)
      for (std::size_t t = 0; t < per_run; ++t) {
        const Tensor<float>& a = grads[k * per_run + t];
        const Tensor<float>& ref = grads[t];
        for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data()[i], ref.data()[i]) << t;
      }
  }
  // The filler did differ (the test is not vacuous).
  EXPECT_NE(padded_with_words.ids.data()[kL * 2 - 1], other_words.ids.data()[kL * 2 - 1]);
}

// embed.weight's gradient is the output layer's share (dlogits^T h) plus the
// input lookup's (sqrt(d) dembedded scattered to the ids' rows).
TEST(MaskedLm, TiedGradientIsOutputSharePlusInputShare) {
  MaskedLm model(small_options(0.0));
  randomize(model, 60);
  const Batch batch(11);
  const Tensor<float> w = real_weights(batch, 61);
  MaskedLm::Saved saved;
  Tensor<float> logits({kN, kL, kVocab});
  model.forward(batch.ids.view<2>(), batch.lengths, logits.view<3>(), saved);
  nn::Gradients grads(model);
  Tensor<float> dembedded({kN, kL, 8});
  model.backward(batch.ids.view<2>(), saved, w.view<3>(), grads, dembedded.view<3>());

  const nn::Embedding& table = model.embedding();
  nn::Embedding copy = table;  // the same weights, gradients of its own
  nn::Gradients output_share(copy), input_share(copy);
  copy.unembed_backward(View<const float, 2>(saved.h.data(), {kN * kL, 8}),
                        View<const float, 2>(w.data(), {kN * kL, kVocab}), {}, output_share);
  copy.backward(batch.ids.view<2>(), {}, dembedded.view<3>(), input_share);
  const Tensor<float>& tied = grads[table.weight()];
  const Tensor<float>& out = output_share[copy.weight()];
  const Tensor<float>& in = input_share[copy.weight()];
  double worst = 0.0, out_norm = 0.0, in_norm = 0.0;
  for (int64_t i = 0; i < tied.numel(); ++i) {
    const double sum = static_cast<double>(out.data()[i]) + in.data()[i];
    worst = std::max(worst, std::abs(tied.data()[i] - sum) / std::max(1.0, std::abs(sum)));
    out_norm += static_cast<double>(out.data()[i]) * out.data()[i];
    in_norm += static_cast<double>(in.data()[i]) * in.data()[i];
  }
  std::printf("    tied = output + input: worst %.2e; |output| %.3g, |input| %.3g\n", worst,
              std::sqrt(out_norm), std::sqrt(in_norm));
  EXPECT_LE(worst, 1e-6);
  EXPECT_GT(std::sqrt(out_norm), 0.1);  // both shares are there
  EXPECT_GT(std::sqrt(in_norm), 0.1);
  // The pad row: the output layer's share only (the lookup gives it none).
  for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(in.data()[kPad * 8 + j], 0.0f);
}

TEST(MaskedLm, InitialisationIsTheSeeds) {
  MaskedLmOptions o = small_options(0.1);
  const MaskedLm a(o);
  const MaskedLm b(o);
  o.seed += 1;
  const MaskedLm c(o);
  const auto pa = a.named_parameters(), pb = b.named_parameters(), pc = c.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (std::size_t k = 0; k < pa.size(); ++k) {
    SCOPED_TRACE(pa[k].first);
    for (int64_t i = 0; i < pa[k].second->numel(); ++i) {
      ASSERT_EQ(pa[k].second->data()[i], pb[k].second->data()[i]);
      any_differs = any_differs || pa[k].second->data()[i] != pc[k].second->data()[i];
    }
  }
  EXPECT_TRUE(any_differs);
  // Unit-size token vectors: embed.weight N(0, 1/d), the pad row zero.
  const Tensor<float>& e = a.embedding().weight();
  double sq = 0.0;
  for (int64_t i = 8; i < e.numel(); ++i) sq += static_cast<double>(e.data()[i]) * e.data()[i];
  EXPECT_NEAR(sq / static_cast<double>(e.numel() - 8), 1.0 / 8, 0.35 / 8);
  for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(e.data()[j], 0.0f);
  EXPECT_EQ(pa.front().first, "embed.weight");
  EXPECT_EQ(pa.back().first, "encoder.norm.bias");
}

TEST(TopPredictions, SoftmaxProbabilitiesMostProbableFirstWithoutExcluded) {
  const std::vector<float> logits{0.0f, 2.0f, 1.0f, 2.0f, -1.0f};
  const std::vector<int64_t> exclude{3};
  const auto top = top_predictions(logits, 2, exclude);
  double sum = 0.0;
  for (const float z : logits) sum += std::exp(static_cast<double>(z));
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].first, 1);
  EXPECT_NEAR(top[0].second, std::exp(2.0) / sum, 1e-12);
  EXPECT_EQ(top[1].first, 2);
  EXPECT_NEAR(top[1].second, std::exp(1.0) / sum, 1e-12);
  // Ties: the lower id first; k past the vocabulary: all of it.
  const auto all = top_predictions(logits, 10);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].first, 1);
  EXPECT_EQ(all[1].first, 3);
  EXPECT_TRUE(throws_error_naming([&] { top_predictions(logits, 0); }, "k"));
}

TEST(MaskedLm, Errors) {
  MaskedLmOptions o = small_options(0.0);
  o.vocab_size = 0;
  EXPECT_TRUE(throws_error_naming([&] { MaskedLm m(o); }, "vocab_size"));
  o = small_options(0.0);
  o.pad_id = kVocab;
  EXPECT_TRUE(throws_error_naming([&] { MaskedLm m(o); }, "pad_id"));
  o = small_options(0.0);
  o.d_model = 9;
  EXPECT_TRUE(throws_error_naming([&] { MaskedLm m(o); }, "d_model"));
  o = small_options(0.0);
  o.num_layers = 0;
  EXPECT_TRUE(throws_error_naming([&] { MaskedLm m(o); }, "num_layers"));

  MaskedLm model(small_options(0.0));
  const Batch batch(0);
  Tensor<float> logits({kN, kL, kVocab});
  std::vector<int64_t> lengths{5, 0, 2};
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(batch.ids.view<2>(), lengths, logits.view<3>()); }, "lengths[1]"));
  lengths = {5, 3};
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(batch.ids.view<2>(), lengths, logits.view<3>()); }, "lengths"));
  Tensor<float> wrong({kN, kL, kVocab + 1});
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(batch.ids.view<2>(), batch.lengths, wrong.view<3>()); }, "logits"));
  // Regression: an id outside the vocabulary was named "Embedding: ids[b, l]",
  // a part of the model, not its argument.
  Tensor<int64_t> bad_ids = batch.ids;
  bad_ids.data()[1] = kVocab;
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(bad_ids.view<2>(), batch.lengths, logits.view<3>()); },
      "maskattn: ids[0, 1]:"));
  Tensor<int64_t> long_ids({1, 17});
  Tensor<float> long_logits({1, 17, kVocab});
  const std::vector<int64_t> one{17};
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(long_ids.view<2>(), one, long_logits.view<3>()); }, "max_len"));
  Tensor<int64_t> bad = batch.ids;
  bad.data()[0] = kVocab;
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(bad.view<2>(), batch.lengths, logits.view<3>()); }, "ids[0, 0]"));
  MaskedLm::Saved saved;
  nn::Gradients grads(model);
  EXPECT_TRUE(throws_error_naming(
      [&] { model.backward(batch.ids.view<2>(), saved, logits.view<3>(), grads); }, "saved"));
}

}  // namespace
}  // namespace maskattn::models
