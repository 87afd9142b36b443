#include "train_copy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/leak_check.hpp"
#include "maskattn/models/seq2seq_trainer.hpp"
#include "maskattn/viz/pictures.hpp"
#include "progress.hpp"

namespace maskattn::cli {
namespace {

using models::CopyTask;

models::Seq2SeqOptions model_options(const CopyShowcaseOptions& o, bool look_ahead) {
  models::Seq2SeqOptions m;
  m.src_vocab = m.tgt_vocab = o.task.vocab;
  m.max_len = o.task.max_len + 2;
  m.look_ahead = look_ahead;
  m.transformer.d_model = o.d_model;
  m.transformer.nhead = o.heads;
  m.transformer.num_encoder_layers = m.transformer.num_decoder_layers = o.layers;
  m.transformer.layer.dim_feedforward = o.dim_feedforward;
  m.transformer.layer.dropout = o.dropout;
  m.transformer.layer.norm_first = true;  // pre-norm: steadier early training
  return m;
}

// What a run measured.
struct RunResult {
  std::vector<double> losses;  // per step
  double seconds = 0.0;        // training wall time
  double tokens_per_second = 0.0;
  int64_t exact = 0;        // held-out sequences copied exactly
  Tensor<int64_t> decoded;  // the held-out batch, greedy
};

// Mean loss over the `n` steps up to and including step `s` (1-based).
double loss_near(const std::vector<double>& losses, int64_t s, int64_t n = 20) {
  const int64_t end = std::min<int64_t>(s, static_cast<int64_t>(losses.size()));
  const int64_t begin = std::max<int64_t>(0, end - n);
  double sum = 0.0;
  for (int64_t i = begin; i < end; ++i) sum += losses[static_cast<std::size_t>(i)];
  return end > begin ? sum / static_cast<double>(end - begin) : 0.0;
}

RunResult train_and_test(models::Seq2SeqTransformer& model, const CopyShowcaseOptions& o,
                         const models::Seq2SeqBatch& heldout) {
  const CopyTask task(o.task);
  models::Seq2SeqTrainerOptions to;
  to.schedule = nn::LrSchedule::noam(o.d_model, 1.0, o.warmup);
  to.total_steps = o.steps;
  to.cooldown_steps = std::min(o.cooldown, o.steps);
  models::Seq2SeqTrainer trainer(model, to);
  RunResult r;
  ProgressBar bar("steps", stdout);
  int64_t tokens = 0;
  for (int64_t s = 0; s < o.steps; ++s) {
    const models::Seq2SeqBatch batch = task.batch(o.seed, s, o.batch);
    const models::TrainStep st = trainer.step(batch);
    r.losses.push_back(st.loss);
    // Tokens the model reads per step: source and target positions.
    tokens += batch.src.numel() + batch.tgt_in.numel();
    const double elapsed = bar.elapsed_seconds();
    bar.update(s + 1, o.steps,
               fmt::format("loss {:.4f}  {:.0f} tok/s", loss_near(r.losses, s + 1),
                           elapsed > 0 ? static_cast<double>(tokens) / elapsed : 0.0));
  }
  r.seconds = bar.elapsed_seconds();
  r.tokens_per_second = static_cast<double>(tokens) / r.seconds;
  model.eval();
  r.decoded = model.greedy_decode(heldout.src.view<2>(), heldout.src_lengths, CopyTask::kStart,
                                  o.task.max_len + 2, CopyTask::kEnd);
  r.exact = task.count_exact(heldout, r.decoded.view<2>());
  return r;
}

std::string symbols_text(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id - CopyTask::kFirstSymbol);  // symbols shown as 0..9
  }
  return s;
}

void print_examples(const models::Seq2SeqBatch& heldout, const RunResult& r, int64_t count) {
  fmt::print("\n  {:<26}  {:<26}\n", "input", "greedy output");
  const int64_t s = heldout.src.size(1);
  for (int64_t b = 0; b < count; ++b) {
    const int64_t len = heldout.src_lengths[static_cast<std::size_t>(b)];
    const std::vector<int64_t> in(heldout.src.data() + b * s, heldout.src.data() + b * s + len);
    const std::vector<int64_t> out = CopyTask::symbols(r.decoded.view<2>(), b);
    fmt::print("  {:<26}  {:<26}  {}\n", symbols_text(in), symbols_text(out),
               in == out ? "ok" : "WRONG");
  }
}

// The weights of one attention of the training forward, from what it saved.
Tensor<float> weights_of(const nn::MultiheadAttention::Saved& s) {
  Tensor<float> w({s.q.size(0), s.q.size(1), s.q.size(2), s.k.size(2)});
  Tensor<float> out({s.q.size(0), s.q.size(1), s.q.size(2), s.v.size(3)});
  attention(s.q.view<4>(), s.k.view<4>(), s.v.view<4>(), out.view<4>(), s.mask, {}, w.view<4>());
  return w;
}

std::vector<std::string> labels(const int64_t* ids, int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ids[i];
    out.push_back(id == CopyTask::kPad     ? "pad"
                  : id == CopyTask::kStart ? "<s>"
                  : id == CopyTask::kEnd   ? "</s>"
                                           : std::to_string(id - CopyTask::kFirstSymbol));
  }
  return out;
}

// The trained model's attention on held-out sequence 0: every layer of the
// encoder's self-attention, the decoder's self-attention and its
// cross-attention, each with the mask it ran under.
void draw_attention(const models::Seq2SeqTransformer& model, const models::Seq2SeqBatch& heldout,
                    const SavePicture& save, const std::string& prefix) {
  const int64_t s = heldout.src.size(1), t = heldout.tgt_in.size(1);
  const View<const int64_t, 2> src(heldout.src.data(), {1, s});
  const View<const int64_t, 2> tgt(heldout.tgt_in.data(), {1, t});
  Tensor<float> logits({1, t, model.options().tgt_vocab});
  models::Seq2SeqTransformer::Saved saved;
  model.forward(src, std::span<const int64_t>(heldout.src_lengths.data(), 1), tgt, logits.view<3>(),
                saved);
  const std::vector<std::string> src_labels = labels(src.data(), s),
                                 tgt_labels = labels(tgt.data(), t);
  struct Kind {
    const char* name;
    const char* title;
    std::function<const nn::MultiheadAttention::Saved&(std::size_t)> of;
    std::size_t layers;
    const std::vector<std::string>& queries;
    const std::vector<std::string>& keys;
  };
  const auto& enc = saved.transformer.encoder.layers;
  const auto& dec = saved.transformer.decoder.layers;
  const Kind kinds[] = {
      {"encoder_self_attention", "encoder self-attention (padding masked)",
       [&](std::size_t i) -> const nn::MultiheadAttention::Saved& { return enc[i].self_attn; },
       enc.size(), src_labels, src_labels},
      {"decoder_self_attention", "decoder self-attention (look-ahead mask)",
       [&](std::size_t i) -> const nn::MultiheadAttention::Saved& { return dec[i].self_attn; },
       dec.size(), tgt_labels, tgt_labels},
      {"cross_attention", "decoder cross-attention: each output position reads the source",
       [&](std::size_t i) -> const nn::MultiheadAttention::Saved& { return dec[i].multihead_attn; },
       dec.size(), tgt_labels, src_labels}};
  for (const Kind& k : kinds) {
    std::vector<Tensor<float>> weights;
    std::vector<View<const float, 4>> views;
    for (std::size_t i = 0; i < k.layers; ++i) weights.push_back(weights_of(k.of(i)));
    for (const Tensor<float>& w : weights) views.push_back(w.view<4>());
    viz::AttentionPictureOptions o;
    o.title = fmt::format("{}{}", prefix, k.title);
    o.query_labels = k.queries;
    o.key_labels = k.keys;
    save(fmt::format("copy_{}.png", k.name), viz::attention_picture(views, k.of(0).mask, o));
  }
}

// The look-ahead check of `maskattn check`, on the trained decoder: for the
// first few held-out sequences, perturb the target tokens after each
// position and see whether the logits at that position move.
LeakReport decoder_leaks(const models::Seq2SeqTransformer& model,
                         const models::Seq2SeqBatch& heldout) {
  const int64_t n = std::min<int64_t>(4, heldout.batch());
  const int64_t s = heldout.src.size(1), t = heldout.tgt_in.size(1);
  const View<const int64_t, 2> src(heldout.src.data(), {n, s});
  const std::span<const int64_t> lengths(heldout.src_lengths.data(), static_cast<std::size_t>(n));
  const SequenceModel decoder = [&](View<const int64_t, 2> tokens) {
    Tensor<float> logits({n, t, model.options().tgt_vocab});
    model.forward(src, lengths, tokens, logits.view<3>());
    return logits;
  };
  ModelLeakOptions o;
  o.vocab_size = model.options().tgt_vocab;
  o.max_listed = 3;
  return check_model_leaks(decoder, View<const int64_t, 2>(heldout.tgt_in.data(), {n, t}), causal(),
                           o);
}

// Mean cross-entropy of teacher forcing on the held-out batch, the decoder's
// self-attention with or without the look-ahead mask (the weights of `model`).
double heldout_loss(const models::Seq2SeqTransformer& model, const CopyShowcaseOptions& o,
                    const models::Seq2SeqBatch& heldout, bool look_ahead) {
  models::Seq2SeqTransformer m(model_options(o, look_ahead));
  m.load_state_dict(model.state_dict());
  m.eval();
  const int64_t n = heldout.batch(), t = heldout.tgt_in.size(1), v = o.task.vocab;
  Tensor<float> logits({n, t, v});
  m.forward(heldout.src.view<2>(), heldout.src_lengths, heldout.tgt_in.view<2>(), logits.view<3>());
  nn::CrossEntropyOptions ce;
  ce.ignore_index = CopyTask::kIgnore;
  return nn::cross_entropy(View<const float, 2>(logits.data(), {n * t, v}),
                           View<const int64_t, 1>(heldout.tgt_out.data(), {n * t}), ce)
      .loss;
}

double percent(int64_t part, int64_t whole) {
  return 100.0 * static_cast<double>(part) / static_cast<double>(std::max<int64_t>(whole, 1));
}

}  // namespace

void run_copy_showcase(const CopyShowcaseOptions& o, const SavePicture& save) {
  const CopyTask task(o.task);
  const models::Seq2SeqBatch heldout = task.batch(o.seed, 0, o.heldout, models::Split::HeldOut);
  models::Seq2SeqTransformer model(model_options(o, true));
  model.seed(o.seed);
  // The contrast run starts from the very same weights.
  std::unique_ptr<models::Seq2SeqTransformer> cheat;
  if (o.no_look_ahead) {
    cheat = std::make_unique<models::Seq2SeqTransformer>(model_options(o, false));
    cheat->load_state_dict(model.state_dict());
    cheat->seed(o.seed);
  }
  fmt::print(
      "  Task: copy random sequences of {}..{} symbols (0..{}); padding masks hide the\n"
      "  padded source positions, the look-ahead mask hides the target's future.\n"
      "  Model: encoder-decoder Transformer, d_model {}, {} heads, {}+{} layers, {} parameters.\n"
      "  Training: {} steps of {} sequences, AdamW with the Noam schedule (warm-up {}).\n\n",
      o.task.min_len, o.task.max_len, o.task.vocab - CopyTask::kFirstSymbol - 1, o.d_model, o.heads,
      o.layers, o.layers, model.num_parameters(), o.steps, o.batch, o.warmup);

  const RunResult real = train_and_test(model, o, heldout);
  fmt::print("\n  Trained in {:.1f} s ({:.0f} tokens/s). Held-out sequences (never in training):\n",
             real.seconds, real.tokens_per_second);
  print_examples(heldout, real, 5);
  fmt::print("\n  Exact-sequence accuracy on {} held-out sequences: {:.1f} % ({} of {})\n",
             o.heldout, percent(real.exact, o.heldout), real.exact, o.heldout);
  draw_attention(model, heldout, save, "trained copy model: ");
  const LeakReport leaks = decoder_leaks(model, heldout);
  fmt::print(
      "\n  Leak check of the trained decoder (as `maskattn check` does): change the target\n"
      "  tokens after each position and watch that position's logits:\n    {}\n",
      leak_verdict(leaks));

  if (cheat) {
    fmt::print("\n  The same model trained WITHOUT the decoder's look-ahead mask:\n\n");
    const RunResult c = train_and_test(*cheat, o, heldout);
    fmt::print("\n  {:<34}{:>18}{:>18}\n", "", "look-ahead mask", "no look-ahead");
    for (const int64_t at : {int64_t{250}, int64_t{500}, int64_t{1000}, o.steps}) {
      if (at > o.steps || (at != o.steps && at * 2 > o.steps)) continue;
      fmt::print("  {:<34}{:>18.2e}{:>18.2e}\n", fmt::format("training loss near step {}", at),
                 loss_near(real.losses, at), loss_near(c.losses, at));
    }
    // The real model was trained with the future hidden: one loss serves both rows.
    const double real_loss = heldout_loss(model, o, heldout, true);
    fmt::print("  {:<34}{:>18.2e}{:>18.2e}\n", "held-out loss, as each was trained", real_loss,
               heldout_loss(*cheat, o, heldout, false));
    fmt::print("  {:<34}{:>18.2e}{:>18.2e}\n", "held-out loss, future hidden", real_loss,
               heldout_loss(*cheat, o, heldout, true));
    fmt::print("  {:<34}{:>17.1f}%{:>17.1f}%\n", "held-out exact sequences (greedy)",
               percent(real.exact, o.heldout), percent(c.exact, o.heldout));
    print_examples(heldout, c, 3);
    fmt::print("\n  Leak check of this decoder:\n    {}\n",
               leak_verdict(decoder_leaks(*cheat, heldout)));
    fmt::print(
        "\n  Without the mask, target position t also reads token t+1, the very token it must\n"
        "  predict. Here the source holds the answer too, so both training losses fall alike;\n"
        "  but the second model learned to read the future: hide it, as decoding must (there\n"
        "  is no token t+1 yet), and its loss explodes and greedy decoding fails.\n");
  }
}

}  // namespace maskattn::cli
