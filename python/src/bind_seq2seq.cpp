// The encoder-decoder model of `maskattn demo` and its training:
// Seq2SeqTransformer (forward, forward_backward, greedy_decode), CopyTask
// (batches as dicts of numpy arrays) and Seq2SeqTrainer (one step per batch).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/models/copy_task.hpp"
#include "maskattn/models/seq2seq.hpp"
#include "maskattn/models/seq2seq_trainer.hpp"

namespace maskattn::python {
namespace {

using models::CopyTask;
using models::Seq2SeqBatch;
using models::Seq2SeqTrainer;
using models::Seq2SeqTransformer;

Tensor<int64_t> read_ids(nb::handle obj, const char* name) {
  return read_int64_tensor(obj, name, "rank 2 (N, L)", 2, 2);
}

// The arguments of a teacher-forcing call, read.
struct Call {
  Tensor<int64_t> src;
  std::vector<int64_t> lengths;
  Tensor<int64_t> tgt;
};

// tgt_name: the Python name of the target ids ("tgt", or count_exact's "decoded").
Call read_call(nb::handle src, nb::handle src_lengths, nb::handle tgt,
               const char* tgt_name = "tgt") {
  return {read_ids(src, "src"), read_int64_vector(src_lengths, "src_lengths"),
          read_ids(tgt, tgt_name)};
}

nb::object forward_py(const Seq2SeqTransformer& m, nb::handle src, nb::handle src_lengths,
                      nb::handle tgt) {
  const Call c = read_call(src, src_lengths, tgt);
  Tensor<float> logits({c.tgt.size(0), c.tgt.size(1), m.options().tgt_vocab});
  {
    nb::gil_scoped_release release;
    m.forward(c.src.view<2>(), c.lengths, c.tgt.view<2>(), logits.view<3>());
  }
  return to_numpy(std::move(logits));
}

nb::tuple forward_backward_py(Seq2SeqTransformer& m, nb::handle src, nb::handle src_lengths,
                              nb::handle tgt, nb::handle grad_logits) {
  const Call c = read_call(src, src_lengths, tgt);
  Tensor<float> logits({c.tgt.size(0), c.tgt.size(1), m.options().tgt_vocab});
  const ArrayArg g = read_grad_output(grad_logits, logits.shape(), "grad_logits");
  nn::Gradients grads(m);
  {
    nb::gil_scoped_release release;
    Seq2SeqTransformer::Saved saved;
    m.forward(c.src.view<2>(), c.lengths, c.tgt.view<2>(), logits.view<3>(), saved);
    const View<const float, 3> dlogits(static_cast<const float*>(g.view.data),
                                       {logits.size(0), logits.size(1), logits.size(2)});
    m.backward(c.src.view<2>(), c.lengths, c.tgt.view<2>(), saved, dlogits, grads);
  }
  return nb::make_tuple(to_numpy(std::move(logits)), gradients_py(grads));
}

nb::dict batch_py(Seq2SeqBatch&& b) {
  nb::dict d;
  const auto n = static_cast<int64_t>(b.src_lengths.size());
  Tensor<int64_t> lengths({n});
  std::copy(b.src_lengths.begin(), b.src_lengths.end(), lengths.begin());
  d["src"] = to_numpy(std::move(b.src));
  d["src_lengths"] = to_numpy(std::move(lengths));
  d["tgt_in"] = to_numpy(std::move(b.tgt_in));
  d["tgt_out"] = to_numpy(std::move(b.tgt_out));
  return d;
}

Seq2SeqBatch read_batch(nb::handle src, nb::handle src_lengths, nb::handle tgt_in,
                        nb::handle tgt_out) {
  Call c = read_call(src, src_lengths, tgt_in, "tgt_in");
  Tensor<int64_t> out = read_ids(tgt_out, "tgt_out");
  return {std::move(c.src), std::move(c.lengths), std::move(c.tgt), std::move(out)};
}

}  // namespace

void bind_seq2seq(nb::module_& m) {
  nb::class_<Seq2SeqTransformer, nn::Module>(
      m, "Seq2SeqTransformer",
      "An encoder-decoder Transformer over token ids: embeddings scaled by sqrt(d_model)\n"
      "plus sinusoidal positions, torch.nn.Transformer (batch first), a Linear generator.\n"
      "Source padding from src_lengths; the target under the look-ahead mask (look_ahead).")
      .def(
          "__init__",
          [](Seq2SeqTransformer* self, int64_t src_vocab, int64_t tgt_vocab, int64_t d_model,
             int64_t nhead, int64_t num_encoder_layers, int64_t num_decoder_layers,
             int64_t dim_feedforward, double dropout, bool norm_first, int64_t max_len,
             bool look_ahead) {
            models::Seq2SeqOptions o;
            o.src_vocab = src_vocab;
            o.tgt_vocab = tgt_vocab;
            o.transformer.d_model = d_model;
            o.transformer.nhead = nhead;
            o.transformer.num_encoder_layers = num_encoder_layers;
            o.transformer.num_decoder_layers = num_decoder_layers;
            o.transformer.layer.dim_feedforward = dim_feedforward;
            o.transformer.layer.dropout = dropout;
            o.transformer.layer.norm_first = norm_first;
            o.max_len = max_len;
            o.look_ahead = look_ahead;
            new (self) Seq2SeqTransformer(o);
          },
          "src_vocab"_a, "tgt_vocab"_a, nb::kw_only(), "d_model"_a = 512, "nhead"_a = 8,
          "num_encoder_layers"_a = 6, "num_decoder_layers"_a = 6, "dim_feedforward"_a = 2048,
          "dropout"_a = 0.1, "norm_first"_a = false, "max_len"_a = 512, "look_ahead"_a = true)
      .def("__call__", &forward_py, "src"_a, "src_lengths"_a, "tgt"_a,
           "Teacher forcing: src (N, S) ids with src_lengths real tokens each, tgt (N, T)\n"
           "-> logits (N, T, tgt_vocab) of the token after each target position.")
      .def("forward_backward", &forward_backward_py, "src"_a, "src_lengths"_a, "tgt"_a,
           "grad_logits"_a,
           "The training forward (dropout active in training mode), then the backward of\n"
           "grad_logits (N, T, tgt_vocab): (logits, {parameter name: gradient}).")
      .def(
          "greedy_decode",
          [](const Seq2SeqTransformer& model, nb::handle src, nb::handle src_lengths,
             int64_t start_symbol, int64_t max_len, std::optional<int64_t> stop_symbol) {
            const Tensor<int64_t> s = read_ids(src, "src");
            const std::vector<int64_t> lengths = read_int64_vector(src_lengths, "src_lengths");
            Tensor<int64_t> out;
            {
              nb::gil_scoped_release release;
              out = model.greedy_decode(s.view<2>(), lengths, start_symbol, max_len, stop_symbol);
            }
            return to_numpy(std::move(out));
          },
          "src"_a, "src_lengths"_a, "start_symbol"_a, "max_len"_a, "stop_symbol"_a = nb::none(),
          "Greedy decoding with a KV cache: (N, L) ids starting with start_symbol.");

  nb::class_<CopyTask>(m, "CopyTask",
                       "Random symbol sequences a model must copy: ids 0 padding, 1 start, 2 end,\n"
                       "symbols 3 .. vocab-1; a held-out split that training never draws.")
      .def(
          "__init__",
          [](CopyTask* self, int64_t vocab, int64_t min_len, int64_t max_len) {
            new (self) CopyTask({vocab, min_len, max_len});
          },
          "vocab"_a = 13, "min_len"_a = 4, "max_len"_a = 12)
      .def(
          "batch",
          [](const CopyTask& t, uint64_t seed, int64_t index, int64_t n, bool heldout) {
            return batch_py(
                t.batch(seed, index, n, heldout ? models::Split::HeldOut : models::Split::Train));
          },
          "seed"_a, "index"_a, "n"_a, "heldout"_a = false,
          "Batch `index` of the stream `seed`: {'src' (n, max_len), 'src_lengths' (n),\n"
          "'tgt_in' (n, max_len+1), 'tgt_out' (n, max_len+1), -100 where nothing counts}.")
      .def(
          "count_exact",
          [](const CopyTask& t, nb::handle src, nb::handle src_lengths, nb::handle decoded) {
            const Call c = read_call(src, src_lengths, decoded, "decoded");
            const Seq2SeqBatch b{c.src, c.lengths, Tensor<int64_t>(), Tensor<int64_t>()};
            return t.count_exact(b, c.tgt.view<2>());
          },
          "src"_a, "src_lengths"_a, "decoded"_a,
          "Sequences greedy_decode's rows `decoded` reproduce exactly (then EOS).");

  nb::class_<Seq2SeqTrainer>(
      m, "Seq2SeqTrainer",
      "Training steps of a Seq2SeqTransformer: teacher-forcing forward, cross-entropy\n"
      "(ignore_index -100), backward, gradient clipping, AdamW (betas 0.9, 0.98, eps 1e-9)\n"
      "at the Noam rate factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5), scaled down\n"
      "linearly over the last cooldown_steps of total_steps.")
      .def(
          "__init__",
          [](Seq2SeqTrainer* self, Seq2SeqTransformer& model, int64_t warmup, double factor,
             double clip_norm, double label_smoothing, int64_t total_steps,
             int64_t cooldown_steps) {
            models::Seq2SeqTrainerOptions o;
            o.total_steps = total_steps;
            o.cooldown_steps = cooldown_steps;
            o.schedule = nn::LrSchedule::noam(model.options().transformer.d_model, factor, warmup);
            o.clip_norm = clip_norm;
            o.label_smoothing = label_smoothing;
            new (self) Seq2SeqTrainer(model, o);
          },
          "model"_a, nb::kw_only(), "warmup"_a = 400, "factor"_a = 1.0, "clip_norm"_a = 1.0,
          "label_smoothing"_a = 0.0, "total_steps"_a = 0, "cooldown_steps"_a = 0,
          nb::keep_alive<1, 2>())
      .def(
          "step",
          [](Seq2SeqTrainer& t, nb::handle src, nb::handle src_lengths, nb::handle tgt_in,
             nb::handle tgt_out) {
            const Seq2SeqBatch b = read_batch(src, src_lengths, tgt_in, tgt_out);
            models::TrainStep s;
            // The trainer names the batch's parts, and its loss the targets.
            with_python_names({{"batch.", ""}, {"cross_entropy: targets", "tgt_out"}}, [&] {
              nb::gil_scoped_release release;
              s = t.step(b);
            });
            nb::dict d;
            d["loss"] = s.loss;
            d["tokens"] = s.tokens;
            d["correct"] = s.correct;
            d["grad_norm"] = s.grad_norm;
            d["lr"] = s.lr;
            return d;
          },
          "src"_a, "src_lengths"_a, "tgt_in"_a, "tgt_out"_a,
          "One step: {'loss', 'tokens', 'correct', 'grad_norm' (before clipping), 'lr'}.")
      .def_prop_ro("steps", &Seq2SeqTrainer::steps)
      .def(
          "save", [](const Seq2SeqTrainer& t, nb::handle path) { t.save(read_path(path)); },
          "path"_a, "The run so far as a checkpoint (model, AdamW, dropout streams, steps).")
      .def(
          "load",
          [](Seq2SeqTrainer& t, nb::handle path) { return t.load(read_path(path)).extra.step; },
          "path"_a, "Resumes from a checkpoint; returns its step.");
}

}  // namespace maskattn::python
