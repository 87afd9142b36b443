// Training a Seq2SeqTransformer with teacher forcing: one object holds what a
// run carries from step to step (the gradients, AdamW's state, the saved
// activations and the logits, all reused) and does a step per batch:
//
//   forward (teacher forcing) -> cross-entropy over the counted targets ->
//   backward -> clip the global gradient norm -> AdamW at the schedule's rate
#pragma once

#include <cstdint>
#include <string>

#include "maskattn/models/copy_task.hpp"
#include "maskattn/models/seq2seq.hpp"
#include "maskattn/nn/adam.hpp"
#include "maskattn/nn/checkpoint.hpp"
#include "maskattn/nn/cross_entropy.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/lr_schedule.hpp"

namespace maskattn::models {

struct Seq2SeqTrainerOptions {
  nn::AdamOptions adam = default_adam();
  nn::LrSchedule schedule = nn::LrSchedule::noam(64, 1.0, 400);
  // A linear cool-down: over the last `cooldown_steps` of `total_steps` the
  // schedule's rate is scaled down linearly towards 0 (the last step's rate is
  // 1 / cooldown_steps of the schedule's). Settles the weights a Noam rate
  // leaves moving; 0: none.
  int64_t total_steps = 0;
  int64_t cooldown_steps = 0;
  double clip_norm = 1.0;  // the global gradient norm's bound; 0: no clipping
  double label_smoothing = 0.0;

  // AdamW with the Transformer paper's betas (0.9, 0.98) and eps 1e-9, no
  // weight decay.
  static nn::AdamOptions default_adam();
};

// What one step did.
struct TrainStep {
  double loss = 0.0;     // mean cross-entropy over the counted targets
  int64_t tokens = 0;    // counted targets
  int64_t correct = 0;   // of those, predicted (argmax) right
  double grad_norm = 0;  // before clipping
  double lr = 0.0;       // the rate the step used
};

class Seq2SeqTrainer {
 public:
  // The model must outlive the trainer. Sets the model to training mode.
  Seq2SeqTrainer(Seq2SeqTransformer& model, const Seq2SeqTrainerOptions& options = {});

  TrainStep step(const Seq2SeqBatch& batch);

  // The rate of the step after `steps` steps: the schedule's, cooled down.
  double rate(int64_t steps) const;

  int64_t steps() const noexcept { return optimizer_.steps(); }
  const Seq2SeqTrainerOptions& options() const noexcept { return options_; }
  nn::Gradients& gradients() noexcept { return grads_; }
  nn::AdamW& optimizer() noexcept { return optimizer_; }
  // The activations of the last step's forward (for pictures of its attention).
  const Seq2SeqTransformer::Saved& saved() const noexcept { return saved_; }

  // The run so far (model, optimizer, dropout streams, steps) as a checkpoint,
  // and back: a resumed run continues bit for bit.
  void save(const std::string& path, const nn::CheckpointExtra& extra = {}) const;
  nn::LoadedCheckpoint load(const std::string& path);

 private:
  Seq2SeqTransformer& model_;
  Seq2SeqTrainerOptions options_;
  nn::Gradients grads_;
  nn::AdamW optimizer_;
  Seq2SeqTransformer::Saved saved_;
  Tensor<float> logits_;  // (N, T, vocab), then their gradient in place
};

}  // namespace maskattn::models
