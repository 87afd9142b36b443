// Masked-LM training of a MaskedLm: batches of sentences masked by mlm_mask
// (mlm.hpp), and one training step made of the library's parts —
//
//   forward (training mode) -> cross_entropy(logits, labels, ignore_index -100)
//   -> backward -> clip_norm -> AdamW at a warm-up schedule's rate
//
// (docs/training.md). Only the chosen tokens are predicted: every other
// position, padding included, has label -100 and adds nothing to the loss or
// its gradient.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "maskattn/mlm.hpp"
#include "maskattn/models/masked_lm.hpp"
#include "maskattn/nn/adam.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/lr_schedule.hpp"
#include "maskattn/text/word_vocab.hpp"

namespace maskattn::models {

// Sentences as a masked, right-padded batch.
struct MaskedBatch {
  Tensor<int64_t> input_ids;     // (N, L): the words after masking, then padding
  Tensor<int64_t> labels;        // (N, L): the original id where chosen, else kIgnoreIndex
  std::vector<int64_t> lengths;  // (N): words of each sentence
};

// vocab.encode_batch(sentences), then mlm_mask with `masking`'s
// probabilities and seed; its vocab_size, mask_token_id and special_token_ids
// are the vocabulary's (the padding is never chosen).
MaskedBatch make_masked_batch(const text::WordVocab& vocab, std::span<const std::string> sentences,
                              MlmOptions masking);

// Training sentences in batches: every epoch each sentence once, in an order
// shuffled from the seed (the same on every platform).
class SentenceSampler {
 public:
  // Error for no sentences.
  SentenceSampler(std::vector<std::string> sentences, uint64_t seed);
  // The next n sentences (n >= 1), crossing into the next epoch as needed.
  std::vector<std::string> next(int64_t n);
  int64_t epoch() const noexcept { return epoch_; }

 private:
  void shuffle();

  std::vector<std::string> sentences_;
  uint64_t seed_;
  int64_t epoch_ = 0;
  std::size_t pos_ = 0;
};

struct MaskedLmTrainerOptions {
  // The rate of step s: linear warm-up, then 1/sqrt(s).
  nn::LrSchedule schedule = nn::LrSchedule::inverse_sqrt(/*peak=*/2e-3, /*warmup=*/100);
  double weight_decay = 0.01;  // AdamW's; biases and LayerNorm weights exempt
  double beta2 = 0.98;         // as BERT and the Transformer paper
  double max_grad_norm = 1.0;  // clip_norm before every step
};

// What a step or an evaluation measured over the batch's chosen tokens.
struct MlmStats {
  double loss = 0.0;     // mean cross-entropy over the chosen tokens
  int64_t count = 0;     // chosen tokens
  int64_t correct = 0;   // of those, predicted right (the argmax is the label)
  double grad_norm = 0;  // step(): the gradients' norm before clipping
  double lr = 0;         // step(): the rate the step used
  double accuracy() const noexcept {
    return count > 0 ? static_cast<double>(correct) / static_cast<double>(count) : 0.0;
  }
};

// The unigram baseline on a batch: every chosen token predicted as the
// vocabulary's most frequent word, what a model that ignores the context does
// best (count and correct; no loss).
MlmStats unigram_baseline(const text::WordVocab& vocab, const MaskedBatch& batch);

class MaskedLmTrainer {
 public:
  // AdamW over `model` (which must outlive this). Error for options the
  // optimizer or the schedule rejects, or max_grad_norm not finite and > 0.
  MaskedLmTrainer(MaskedLm& model, const MaskedLmTrainerOptions& options = {});

  // One training step (the model in training mode: dropout on).
  MlmStats step(const MaskedBatch& batch);
  // Loss and accuracy on a batch, in eval mode (no dropout, no update); the
  // model's mode is restored.
  MlmStats evaluate(const MaskedBatch& batch);

  int64_t steps() const noexcept { return optimizer_.steps(); }
  nn::AdamW& optimizer() noexcept { return optimizer_; }
  const MaskedLmTrainerOptions& options() const noexcept { return options_; }

 private:
  MaskedLm& model_;
  MaskedLmTrainerOptions options_;
  nn::Gradients grads_;
  nn::AdamW optimizer_;
  MaskedLm::Saved saved_;
  Tensor<float> logits_;  // (N, L, V): the logits, then their gradient in place
};

}  // namespace maskattn::models
