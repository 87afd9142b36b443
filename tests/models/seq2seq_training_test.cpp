// Seq2SeqTransformer training: the backward against central finite
// differences (pre- and post-norm), padding that receives no gradient, the
// look-ahead mask's leak when it is removed, and the trainer: it learns, and a
// run resumed from a checkpoint continues bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "maskattn/models/copy_task.hpp"
#include "maskattn/models/seq2seq.hpp"
#include "maskattn/models/seq2seq_trainer.hpp"
#include "nn/gradient_check.hpp"
#include "throws_error.hpp"

namespace maskattn::models {
namespace {

using testing_gradients::expect_parameter_gradients;
using testing_gradients::weighted_sum;

constexpr int64_t kVocab = 7;

Seq2SeqOptions tiny_options(bool norm_first, double dropout = 0.0) {
  Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = kVocab;
  o.transformer.d_model = 8;
  o.transformer.nhead = 2;
  o.transformer.num_encoder_layers = 1;
  o.transformer.num_decoder_layers = 1;
  o.transformer.layer.dim_feedforward = 12;
  o.transformer.layer.dropout = dropout;
  o.transformer.layer.norm_first = norm_first;
  // GELU, smooth: a ReLU kink within a finite difference's step spoils the
  // check (python/tests/test_seq2seq_training.py compares ReLU with torch).
  o.transformer.layer.activation = nn::Activation::GELU;
  o.max_len = 16;
  return o;
}

// Every parameter from one seed (the default initialisation depends on how
// many modules were built before).
void randomize(Seq2SeqTransformer& m, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  for (auto& [name, p] : m.named_parameters())
    for (float& x : *p)
      x = (name.find("norm") != std::string::npos && name.ends_with("weight")) ? 1.0f + normal(rng)
                                                                               : normal(rng);
}

struct Problem {
  Tensor<int64_t> src{{2, 5}}, tgt{{2, 4}};
  std::vector<int64_t> lengths{3, 5};
  Problem() {
    const int64_t s[] = {3, 4, 5, 0, 0, 6, 5, 4, 3, 3};
    const int64_t t[] = {1, 3, 4, 5, 1, 6, 5, 4};
    std::copy(std::begin(s), std::end(s), src.begin());
    std::copy(std::begin(t), std::end(t), tgt.begin());
  }
};

class Seq2SeqGradients : public ::testing::TestWithParam<bool> {};

TEST_P(Seq2SeqGradients, MatchFiniteDifferences) {
  Seq2SeqTransformer model(tiny_options(GetParam()));
  randomize(model, 1);
  const Problem p;
  Tensor<float> logits({2, 4, kVocab}), w({2, 4, kVocab});
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  for (float& x : w) x = normal(rng);
  Seq2SeqTransformer::Saved saved;
  model.forward(p.src.view<2>(), p.lengths, p.tgt.view<2>(), logits.view<3>(), saved);
  nn::Gradients grads(model);
  model.backward(p.src.view<2>(), p.lengths, p.tgt.view<2>(), saved, w.view<3>(), grads);
  const auto loss = [&] {
    model.forward(p.src.view<2>(), p.lengths, p.tgt.view<2>(), logits.view<3>());
    return weighted_sum(logits.data(), w.data(), logits.numel());
  };
  expect_parameter_gradients(model, grads, loss, 2e-3);
}

INSTANTIATE_TEST_SUITE_P(NormFirstOrNot, Seq2SeqGradients, ::testing::Bool());

TEST(Seq2SeqTraining, PaddingGetsNoGradient) {
  Seq2SeqTransformer model(tiny_options(true));
  randomize(model, 3);
  const Problem p;  // id 0 appears only as padding of sequence 0
  Tensor<float> logits({2, 4, kVocab}), w({2, 4, kVocab});
  std::fill(w.begin(), w.end(), 1.0f);
  Seq2SeqTransformer::Saved saved;
  model.forward(p.src.view<2>(), p.lengths, p.tgt.view<2>(), logits.view<3>(), saved);
  nn::Gradients grads(model);
  model.backward(p.src.view<2>(), p.lengths, p.tgt.view<2>(), saved, w.view<3>(), grads);
  const Tensor<float>& g = grads[*model.named_parameters()[0].second];  // src_embed.weight
  ASSERT_EQ(model.named_parameters()[0].first, "src_embed.weight");
  for (int64_t x = 0; x < 8; ++x) EXPECT_EQ(g.data()[x], 0.0f) << "padding row, column " << x;
  double other = 0.0;
  for (int64_t x = 8; x < g.numel(); ++x) other += std::abs(g.data()[x]);
  EXPECT_GT(other, 0.0);
}

// Without the look-ahead mask the logits at position t change with the
// token at t + 1; with it they do not.
TEST(Seq2SeqTraining, LookAheadMaskHidesTheNextToken) {
  for (const bool look_ahead : {true, false}) {
    Seq2SeqOptions o = tiny_options(true);
    o.look_ahead = look_ahead;
    Seq2SeqTransformer model(o);
    randomize(model, 4);
    Problem p;
    Tensor<float> a({2, 4, kVocab}), b({2, 4, kVocab});
    model.forward(p.src.view<2>(), p.lengths, p.tgt.view<2>(), a.view<3>());
    p.tgt.data()[2] = 6;  // sequence 0, position 2
    model.forward(p.src.view<2>(), p.lengths, p.tgt.view<2>(), b.view<3>());
    double before = 0.0;  // positions 0 and 1 of sequence 0
    for (int64_t x = 0; x < 2 * kVocab; ++x)
      before = std::max<double>(before, std::abs(a.data()[x] - b.data()[x]));
    if (look_ahead)
      EXPECT_EQ(before, 0.0);
    else
      EXPECT_GT(before, 1e-3);
  }
}

Seq2SeqTrainerOptions trainer_options(int64_t d_model) {
  Seq2SeqTrainerOptions t;
  t.schedule = nn::LrSchedule::noam(d_model, 1.0, 50);
  return t;
}

// The initial weights depend on how many modules the process built before
// (default seeds go in construction order), so on which tests ran first:
// the bound holds for every start measured. Over 18 starts (0-50 modules
// built before) the mean loss of the last 10 of 400 steps was 0.10-0.22 of
// the first 10's (300 steps: up to 0.28, which once failed a bound of 1/4).
TEST(Seq2SeqTrainer, LearnsToCopy) {
  const CopyTask task({8, 2, 5});
  Seq2SeqOptions o = tiny_options(true);
  o.src_vocab = o.tgt_vocab = 8;
  o.transformer.d_model = 32;
  o.transformer.nhead = 4;
  o.transformer.layer.dim_feedforward = 64;
  Seq2SeqTransformer model(o);
  model.seed(5);
  Seq2SeqTrainer trainer(model, trainer_options(32));
  double first = 0.0, last = 0.0;
  for (int64_t s = 0; s < 400; ++s) {
    const TrainStep st = trainer.step(task.batch(1, s, 32));
    EXPECT_TRUE(std::isfinite(st.loss));
    if (s < 10) first += st.loss / 10;
    if (s >= 390) last += st.loss / 10;
  }
  std::printf("    mean loss of steps 1-10: %.4f, of steps 391-400: %.4f\n", first, last);
  EXPECT_LT(last, first / 3);
  EXPECT_EQ(trainer.steps(), 400);
}

TEST(Seq2SeqTrainer, ResumedRunContinuesBitForBit) {
  const CopyTask task({kVocab, 2, 5});
  const auto make = [] {
    Seq2SeqTransformer m(tiny_options(true, /*dropout=*/0.1));
    randomize(m, 6);
    m.seed(7);
    return m;
  };
  Seq2SeqTransformer straight = make();
  {
    Seq2SeqTrainer t(straight, trainer_options(8));
    for (int64_t s = 0; s < 6; ++s) t.step(task.batch(2, s, 8));
  }
  const std::string path =
      (std::filesystem::temp_directory_path() / "maskattn_seq2seq_resume.safetensors").string();
  {
    Seq2SeqTransformer first = make();
    Seq2SeqTrainer t(first, trainer_options(8));
    for (int64_t s = 0; s < 3; ++s) t.step(task.batch(2, s, 8));
    t.save(path);
  }
  Seq2SeqTransformer resumed(tiny_options(true, 0.1));  // other weights and streams until loaded
  Seq2SeqTrainer t(resumed, trainer_options(8));
  const nn::LoadedCheckpoint c = t.load(path);
  EXPECT_EQ(c.extra.step, 3);
  for (int64_t s = c.extra.step; s < 6; ++s) t.step(task.batch(2, s, 8));
  std::filesystem::remove(path);
  const auto a = straight.named_parameters(), b = resumed.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(std::memcmp(a[i].second->data(), b[i].second->data(),
                          static_cast<std::size_t>(a[i].second->numel()) * sizeof(float)),
              0)
        << a[i].first;
}

// Regression: a batch without tensors threw std::out_of_range (the trainer
// read tgt_in.size(1) of an empty tensor) instead of an Error.
TEST(Seq2SeqTrainer, AnEmptyBatchIsAnErrorNamingIt) {
  Seq2SeqTransformer model(tiny_options(false));
  Seq2SeqTrainer trainer(model);
  try {
    trainer.step(Seq2SeqBatch{});
    FAIL() << "no Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "batch");
  }
  EXPECT_EQ(trainer.steps(), 0);
}

// Regression: an id outside the vocabulary was named "Embedding: ids[b, l]"
// whether it was in src or tgt.
TEST(Seq2SeqTraining, IdsOutOfTheVocabularyNameSrcOrTgt) {
  const Seq2SeqTransformer model(tiny_options(false));
  const int64_t good[2] = {3, 4}, bad[2] = {3, kVocab}, len[1] = {2};
  Tensor<float> logits({1, 2, kVocab});
  auto run = [&](const int64_t* src, const int64_t* tgt) {
    model.forward(View<const int64_t, 2>(src, {1, 2}), len, View<const int64_t, 2>(tgt, {1, 2}),
                  logits.view<3>());
  };
  for (auto [src, tgt, name] :
       {std::tuple{bad, good, "src[0, 1]"}, std::tuple{good, bad, "tgt[0, 1]"}}) {
    try {
      run(src, tgt);
      ADD_FAILURE() << "no Error for " << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), name);
    }
  }
}

// A label_smoothing outside [0, 1] was accepted by the trainer and refused
// by cross_entropy at the first step: now at construction, naming it.
TEST(Seq2SeqTrainer, LabelSmoothingIsCheckedAtConstruction) {
  Seq2SeqTransformer model(tiny_options(false));
  for (const double bad : {-0.1, 1.5, std::nan("")}) {
    Seq2SeqTrainerOptions o;
    o.label_smoothing = bad;
    EXPECT_TRUE(testing_errors::throws_error_naming([&] { Seq2SeqTrainer t(model, o); },
                                                    "Seq2SeqTrainer: label_smoothing"))
        << bad;
  }
}

}  // namespace
}  // namespace maskattn::models
