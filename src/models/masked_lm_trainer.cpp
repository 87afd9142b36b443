#include "maskattn/models/masked_lm_trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/counter_rng.hpp"
#include "maskattn/nn/cross_entropy.hpp"

namespace maskattn::models {
namespace {

nn::AdamOptions adam_options(MaskedLm& model, const MaskedLmTrainerOptions& o) {
  if (!(std::isfinite(o.max_grad_norm) && o.max_grad_norm > 0))
    throw Error("MaskedLmTrainer: max_grad_norm", "finite and > 0",
                fmt::format("{}", o.max_grad_norm));
  o.schedule(0);  // its Error now, not at the first step
  nn::AdamOptions a;
  a.beta2 = o.beta2;
  a.weight_decay = o.weight_decay;
  a.no_weight_decay = nn::rank1_parameter_names(model);
  return a;
}

// The batch's labels as (N*L) rows, the logits' rows.
View<const int64_t, 1> label_rows(const MaskedBatch& batch) {
  return View<const int64_t, 1>(batch.labels.data(), {batch.labels.numel()});
}

}  // namespace

MaskedBatch make_masked_batch(const text::WordVocab& vocab, std::span<const std::string> sentences,
                              MlmOptions masking) {
  text::PaddedBatch padded = vocab.encode_batch(sentences);
  masking.vocab_size = vocab.size();
  masking.mask_token_id = text::WordVocab::kMask;
  masking.special_token_ids = vocab.special_ids();
  MlmResult masked = mlm_mask(padded.ids.view<2>(), masking);
  return {std::move(masked.input_ids), std::move(masked.labels), std::move(padded.lengths)};
}

SentenceSampler::SentenceSampler(std::vector<std::string> sentences, uint64_t seed)
    : sentences_(std::move(sentences)), seed_(seed) {
  if (sentences_.empty()) throw Error("SentenceSampler: sentences", "at least one", "none");
  shuffle();
}

void SentenceSampler::shuffle() {
  // Fisher-Yates with counter-based draws: (seed, epoch, i) decide the order.
  const uint64_t epoch_seed = maskattn::detail::counter_hash(seed_, static_cast<uint64_t>(epoch_));
  for (std::size_t i = sentences_.size(); i > 1; --i)
    std::swap(sentences_[i - 1], sentences_[maskattn::detail::counter_hash(epoch_seed, i) % i]);
}

std::vector<std::string> SentenceSampler::next(int64_t n) {
  if (n < 1) throw Error("SentenceSampler::next: n", ">= 1", std::to_string(n));
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(n));
  while (static_cast<int64_t>(out.size()) < n) {
    if (pos_ == sentences_.size()) {
      ++epoch_;
      pos_ = 0;
      shuffle();
    }
    out.push_back(sentences_[pos_++]);
  }
  return out;
}

MlmStats unigram_baseline(const text::WordVocab& vocab, const MaskedBatch& batch) {
  // The most frequent word (the first on a tie).
  const auto& counts = vocab.counts();
  const auto best = std::max_element(counts.begin(), counts.end()) - counts.begin();
  MlmStats stats;
  for (const int64_t label : batch.labels) {
    if (label == kIgnoreIndex) continue;
    ++stats.count;
    stats.correct += label == best ? 1 : 0;
  }
  return stats;
}

MaskedLmTrainer::MaskedLmTrainer(MaskedLm& model, const MaskedLmTrainerOptions& options)
    : model_(model),
      options_(options),
      grads_(model),
      optimizer_(model, adam_options(model, options)) {}

MlmStats MaskedLmTrainer::step(const MaskedBatch& batch) {
  const auto ids = batch.input_ids.view<2>();
  const int64_t n = ids.size(0), l = ids.size(1), v = model_.vocab_size();
  nn::ensure_shape(logits_, {n, l, v});
  model_.train();
  model_.forward(ids, batch.lengths, logits_.view<3>(), saved_);
  // The gradient replaces the logits in place: no second (N*L, V) buffer.
  const View<float, 2> rows(logits_.data(), {n * l, v});
  const nn::CrossEntropyResult ce = nn::cross_entropy(rows, label_rows(batch), {}, rows);
  grads_.zero();
  model_.backward(ids, saved_, logits_.view<3>(), grads_);
  MlmStats stats{ce.loss, ce.count, ce.correct};
  stats.grad_norm = grads_.clip_norm(options_.max_grad_norm);
  stats.lr = options_.schedule(optimizer_.steps());
  optimizer_.step(grads_, stats.lr);
  return stats;
}

MlmStats MaskedLmTrainer::evaluate(const MaskedBatch& batch) {
  const auto ids = batch.input_ids.view<2>();
  const int64_t n = ids.size(0), l = ids.size(1), v = model_.vocab_size();
  Tensor<float> logits({n, l, v});
  {
    // Eval mode for this forward; the caller's mode back even on an Error.
    struct Mode {
      MaskedLm& model;
      bool was_training = model.training();
      ~Mode() { model.train(was_training); }
    } mode{model_};
    model_.eval();
    model_.forward(ids, batch.lengths, logits.view<3>());
  }
  const nn::CrossEntropyResult ce =
      nn::cross_entropy(View<const float, 2>(logits.data(), {n * l, v}), label_rows(batch));
  return {ce.loss, ce.count, ce.correct};
}

}  // namespace maskattn::models
