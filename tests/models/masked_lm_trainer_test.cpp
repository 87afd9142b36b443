// MaskedLmTrainer: masked batches (only chosen, non-padding tokens labelled),
// the sampler's epochs, the unigram baseline, one step's parts (loss and
// accuracy as cross_entropy computes them, the schedule's rate, the update),
// and a short training run on the built-in corpus whose held-out masked-token
// accuracy must clearly beat the unigram baseline.
#include "maskattn/models/masked_lm_trainer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "maskattn/nn/cross_entropy.hpp"
#include "maskattn/text/tiny_corpus.hpp"
#include "throws_error.hpp"

namespace maskattn::models {
namespace {

using testing_errors::throws_error_naming;
using text::WordVocab;

const std::vector<std::string> kSentences{"the cat sat", "a dog ran far away", "the cat ran",
                                          "birds sing"};

TEST(MaskedBatch, LabelsOnlyChosenWordsNeverPadding) {
  const WordVocab vocab(kSentences);
  MlmOptions masking;
  masking.mlm_probability = 0.5;
  masking.seed = 3;
  const MaskedBatch batch = make_masked_batch(vocab, kSentences, masking);
  ASSERT_EQ(batch.input_ids.shape(), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(batch.lengths, (std::vector<int64_t>{3, 5, 3, 2}));
  const text::PaddedBatch plain = vocab.encode_batch(kSentences);
  int64_t chosen = 0;
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t l = 0; l < 5; ++l) {
      const int64_t i = b * 5 + l, label = batch.labels.data()[i];
      if (l >= batch.lengths[static_cast<std::size_t>(b)]) {
        EXPECT_EQ(label, kIgnoreIndex);
        EXPECT_EQ(batch.input_ids.data()[i], WordVocab::kPad);
        continue;
      }
      if (label == kIgnoreIndex) {
        EXPECT_EQ(batch.input_ids.data()[i], plain.ids.data()[i]);  // not chosen: as it was
      } else {
        ++chosen;
        EXPECT_EQ(label, plain.ids.data()[i]);  // the original word
      }
    }
  EXPECT_GT(chosen, 0);
  // The same seed, the same masks; another seed, others.
  EXPECT_TRUE(std::equal(batch.labels.begin(), batch.labels.end(),
                         make_masked_batch(vocab, kSentences, masking).labels.begin()));
  masking.seed = 4;
  EXPECT_FALSE(std::equal(batch.labels.begin(), batch.labels.end(),
                          make_masked_batch(vocab, kSentences, masking).labels.begin()));
}

TEST(SentenceSampler, EachSentenceOncePerEpochInShuffledOrder) {
  SentenceSampler sampler(kSentences, 5);
  std::vector<std::string> first = sampler.next(4);
  EXPECT_EQ(sampler.epoch(), 0);
  const std::vector<std::string> second = sampler.next(4);
  EXPECT_EQ(sampler.epoch(), 1);
  for (auto epoch : {first, second}) {
    std::sort(epoch.begin(), epoch.end());
    std::vector<std::string> all = kSentences;
    std::sort(all.begin(), all.end());
    EXPECT_EQ(epoch, all);
  }
  // Across epochs and seeds the orders differ (over a few epochs of 4).
  std::set<std::vector<std::string>> orders{first, second};
  for (int k = 0; k < 6; ++k) orders.insert(sampler.next(4));
  EXPECT_GT(orders.size(), 2u);
  EXPECT_TRUE(throws_error_naming([&] { sampler.next(0); }, "n"));
  EXPECT_TRUE(throws_error_naming([] { SentenceSampler s({}, 1); }, "sentences"));
}

TEST(UnigramBaseline, PredictsTheMostFrequentWord) {
  const WordVocab vocab(kSentences);  // "the" (2), "cat" (2), "ran" (2): "the" first
  EXPECT_EQ(vocab.word(WordVocab::kNumSpecial), "the");
  MlmOptions masking;
  masking.mlm_probability = 1.0;  // every word chosen
  const MaskedBatch batch = make_masked_batch(vocab, kSentences, masking);
  const MlmStats s = unigram_baseline(vocab, batch);
  EXPECT_EQ(s.count, 13);
  EXPECT_EQ(s.correct, 2);
}

MaskedLmOptions small_model(int64_t vocab) {
  MaskedLmOptions o;
  o.vocab_size = vocab;
  o.d_model = 16;
  o.nhead = 2;
  o.num_layers = 1;
  o.dim_feedforward = 32;
  o.dropout = 0.0;
  o.seed = 2;
  return o;
}

TEST(MaskedLmTrainer, StepIsCrossEntropyThenClippedAdamWAtTheScheduledRate) {
  const WordVocab vocab(kSentences);
  MaskedLm model(small_model(vocab.size()));
  MaskedLmTrainerOptions o;
  o.schedule = nn::LrSchedule::inverse_sqrt(1e-2, 4);
  MaskedLmTrainer trainer(model, o);
  MlmOptions masking;
  masking.mlm_probability = 0.5;
  masking.seed = 9;
  const MaskedBatch batch = make_masked_batch(vocab, kSentences, masking);

  // The loss and accuracy of the batch before the step, computed here.
  Tensor<float> logits({4, 5, vocab.size()});
  model.forward(batch.input_ids.view<2>(), batch.lengths, logits.view<3>());
  const nn::CrossEntropyResult expected =
      nn::cross_entropy(View<const float, 2>(logits.data(), {20, vocab.size()}),
                        View<const int64_t, 1>(batch.labels.data(), {20}));
  const MlmStats eval = trainer.evaluate(batch);
  EXPECT_NEAR(eval.loss, expected.loss, 1e-12);
  EXPECT_EQ(eval.count, expected.count);
  EXPECT_EQ(eval.correct, expected.correct);

  const Tensor<float> before = model.embedding().weight();
  const MlmStats s = trainer.step(batch);
  EXPECT_NEAR(s.loss, expected.loss, 1e-12);  // dropout 0: the same forward
  EXPECT_EQ(s.count, expected.count);
  EXPECT_DOUBLE_EQ(s.lr, o.schedule(0));
  EXPECT_GT(s.grad_norm, 0.0);
  EXPECT_EQ(trainer.steps(), 1);
  EXPECT_FALSE(std::equal(before.begin(), before.end(), model.embedding().weight().begin()));
  // A few more steps on the same batch: it is learnt.
  MlmStats last = s;
  for (int k = 0; k < 30; ++k) last = trainer.step(batch);
  EXPECT_LT(last.loss, 0.5 * s.loss);
  EXPECT_DOUBLE_EQ(last.lr, o.schedule(30));
  EXPECT_TRUE(model.training());

  o.max_grad_norm = 0.0;
  EXPECT_TRUE(throws_error_naming([&] { MaskedLmTrainer t(model, o); }, "max_grad_norm"));
}

// The CLI's model and optimizer for 240 steps of 32 sentences (the CLI's
// default run is 1500): the held-out accuracy must clearly beat the unigram
// baseline ("the" for every masked word), which a model that learnt nothing
// of the context cannot. Measured: 19.6% baseline; the model 0.0% before,
// ~53% after (seeds 0-2: see the printout).
TEST(MaskedLmTrainer, ShortRunBeatsTheUnigramBaselineOnHeldOutSentences) {
  const text::TinyCorpus& corpus = text::tiny_corpus();
  const WordVocab vocab(corpus.train);
  MaskedLmOptions mo;
  mo.vocab_size = vocab.size();
  mo.dropout = 0.0;
  mo.seed = 1;
  MaskedLm model(mo);
  MaskedLmTrainerOptions to;
  to.schedule = nn::LrSchedule::inverse_sqrt(5e-3, 24);
  MaskedLmTrainer trainer(model, to);
  SentenceSampler sampler(corpus.train, 1);

  std::vector<std::string> held_out;
  for (int k = 0; k < 4; ++k)
    held_out.insert(held_out.end(), corpus.held_out.begin(), corpus.held_out.end());
  MlmOptions eval_masking;
  eval_masking.mask_replace_prob = 1.0;
  eval_masking.random_replace_prob = 0.0;
  eval_masking.seed = 77;
  const MaskedBatch eval = make_masked_batch(vocab, held_out, eval_masking);
  const MlmStats baseline = unigram_baseline(vocab, eval);
  const MlmStats before = trainer.evaluate(eval);
  for (int64_t step = 1; step <= 240; ++step) {
    MlmOptions masking;
    masking.seed = 1000 + static_cast<uint64_t>(step);
    trainer.step(make_masked_batch(vocab, sampler.next(32), masking));
  }
  const MlmStats after = trainer.evaluate(eval);
  std::printf(
      "    %lld masked held-out words: unigram baseline %.1f%%, model %.1f%% -> %.1f%% "
      "(loss %.3f -> %.3f)\n",
      static_cast<long long>(after.count), 100 * baseline.accuracy(), 100 * before.accuracy(),
      100 * after.accuracy(), before.loss, after.loss);
  EXPECT_GT(after.count, 200);
  EXPECT_EQ(after.count, baseline.count);
  EXPECT_GE(after.accuracy(), baseline.accuracy() + 0.15);
  EXPECT_LT(after.loss, before.loss - 2.0);
}

}  // namespace
}  // namespace maskattn::models
