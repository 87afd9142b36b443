#include "maskattn/models/seq2seq_trainer.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace maskattn::models {

nn::AdamOptions Seq2SeqTrainerOptions::default_adam() {
  nn::AdamOptions o;
  o.lr = 1.0;  // the schedule gives each step its rate
  o.beta1 = 0.9;
  o.beta2 = 0.98;
  o.eps = 1e-9;
  o.weight_decay = 0.0;
  o.decoupled_weight_decay = true;
  return o;
}

Seq2SeqTrainer::Seq2SeqTrainer(Seq2SeqTransformer& model, const Seq2SeqTrainerOptions& options)
    : model_(model), options_(options), grads_(model), optimizer_(model, options.adam) {
  if (options.clip_norm < 0.0 || !(options.clip_norm == options.clip_norm))
    throw Error("Seq2SeqTrainer: clip_norm", ">= 0 (0: no clipping)",
                fmt::format("{}", options.clip_norm));
  // Checked here, not at the first step's cross_entropy.
  if (!(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0))
    throw Error("Seq2SeqTrainer: label_smoothing", "a value in [0, 1]",
                fmt::format("{}", options.label_smoothing));
  if (options.cooldown_steps < 0 || options.cooldown_steps > options.total_steps)
    throw Error("Seq2SeqTrainer: cooldown_steps", "in [0, total_steps]",
                fmt::format("{} (total_steps {})", options.cooldown_steps, options.total_steps));
  model_.train();
}

double Seq2SeqTrainer::rate(int64_t steps) const {
  const double r = options_.schedule(steps);
  const int64_t left = options_.total_steps - steps;  // this step included
  if (options_.cooldown_steps == 0 || left > options_.cooldown_steps) return r;
  return r * static_cast<double>(std::max<int64_t>(left, 1)) /
         static_cast<double>(options_.cooldown_steps);
}

TrainStep Seq2SeqTrainer::step(const Seq2SeqBatch& batch) {
  if (batch.src.rank() != 2 || batch.tgt_in.rank() != 2 || batch.batch() < 1)
    throw Error("batch", "src (N, S) and tgt_in (N, T) with N >= 1",
                fmt::format("src {}, tgt_in {}", shape_string(batch.src.shape()),
                            shape_string(batch.tgt_in.shape())));
  const int64_t n = batch.batch(), t = batch.tgt_in.size(1), vocab = model_.options().tgt_vocab;
  if (batch.tgt_out.shape() != batch.tgt_in.shape())
    throw Error("batch.tgt_out",
                fmt::format("the shape of tgt_in {}", shape_string(batch.tgt_in.shape())),
                shape_string(batch.tgt_out.shape()));
  nn::ensure_shape(logits_, {n, t, vocab});
  const View<float, 3> logits = logits_.view<3>();
  model_.forward(batch.src.view<2>(), batch.src_lengths, batch.tgt_in.view<2>(), logits, saved_);

  nn::CrossEntropyOptions ce;
  ce.ignore_index = CopyTask::kIgnore;
  ce.label_smoothing = options_.label_smoothing;
  const View<float, 2> rows(logits_.data(), {n * t, vocab});
  const nn::CrossEntropyResult loss = nn::cross_entropy(
      rows, View<const int64_t, 1>(batch.tgt_out.data(), {n * t}), ce, rows);  // gradient in place

  grads_.zero();
  model_.backward(batch.src.view<2>(), batch.src_lengths, batch.tgt_in.view<2>(), saved_, logits,
                  grads_);
  TrainStep out{loss.loss, loss.count, loss.correct, 0.0, rate(optimizer_.steps())};
  out.grad_norm = options_.clip_norm > 0.0 ? grads_.clip_norm(options_.clip_norm) : grads_.norm();
  optimizer_.step(grads_, out.lr);
  return out;
}

void Seq2SeqTrainer::save(const std::string& path, const nn::CheckpointExtra& extra) const {
  nn::CheckpointExtra e = extra;
  e.step = optimizer_.steps();
  nn::save_checkpoint(path, model_, optimizer_, e);
}

nn::LoadedCheckpoint Seq2SeqTrainer::load(const std::string& path) {
  return nn::load_checkpoint(path, model_, optimizer_);
}

}  // namespace maskattn::models
