#include "maskattn/models/sentence_encoder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/arena.hpp"
#include "core/files.hpp"

namespace maskattn::models {
namespace {

using maskattn::detail::Arena;
using maskattn::detail::thread_arena;
using json = nlohmann::json;
namespace fs = std::filesystem;

json read_json(const fs::path &path) {
  json j = json::parse(maskattn::detail::read_file(path, path.string()), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(path.string(), "valid JSON", "text that is not");
  return j;
}

Pooling pooling_from_name(std::string_view name, const fs::path &file) {
  for (Pooling p : {Pooling::Cls, Pooling::Max, Pooling::Mean, Pooling::MeanSqrtLen})
    if (pooling_name(p) == name) return p;
  throw Error(file.string() + ": pooling_mode",
              "\"cls\", \"max\", \"mean\" or \"mean_sqrt_len_tokens\" (the "
              "modes implemented)",
              fmt::format("\"{}\"", name));
}

// 1_Pooling/config.json: "pooling_mode" (a name or a list of names, newer
// sentence-transformers) or the pooling_mode_* booleans (older; concatenated
// in this order, as sentence-transformers converts them).
std::vector<Pooling> read_pooling(const fs::path &file, int64_t hidden_size) {
  const json j = read_json(file);
  if (!j.is_object()) throw Error(file.string(), "a JSON object", j.dump());
  for (const char *key : {"word_embedding_dimension", "embedding_dimension"})
    if (const auto it = j.find(key); it != j.end() && *it != json(hidden_size))
      throw Error(fmt::format("{}: {}", file.string(), key),
                  fmt::format("the model's hidden_size {}", hidden_size), it->dump());
  std::vector<Pooling> modes;
  if (const auto it = j.find("pooling_mode"); it != j.end()) {
    if (it->is_string()) {
      modes.push_back(pooling_from_name(it->get<std::string>(), file));
    } else if (it->is_array()) {
      for (const json &m : *it) {
        if (!m.is_string())
          throw Error(file.string() + ": pooling_mode", "names of pooling modes", it->dump());
        modes.push_back(pooling_from_name(m.get<std::string>(), file));
      }
    } else {
      throw Error(file.string() + ": pooling_mode", "a name or a list of names", it->dump());
    }
  } else {
    const std::pair<const char *, std::optional<Pooling>> legacy[] = {
        {"pooling_mode_cls_token", Pooling::Cls},
        {"pooling_mode_max_tokens", Pooling::Max},
        {"pooling_mode_mean_tokens", Pooling::Mean},
        {"pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen},
        {"pooling_mode_weightedmean_tokens", std::nullopt},
        {"pooling_mode_lasttoken", std::nullopt}};
    for (const auto &[key, mode] : legacy) {
      const auto it = j.find(key);
      if (it == j.end() || *it == false) continue;
      if (*it != true) throw Error(fmt::format("{}: {}", file.string(), key), "a bool", it->dump());
      if (!mode)
        throw Error(fmt::format("{}: {}", file.string(), key),
                    "false (only cls, max, mean and mean_sqrt_len pooling are "
                    "implemented)",
                    "true");
      modes.push_back(*mode);
    }
    // Every flag false: sentence-transformers falls back to mean pooling.
    if (modes.empty()) modes.push_back(Pooling::Mean);
  }
  if (modes.empty()) throw Error(file.string(), "at least one pooling mode", "none");
  return modes;
}

// Each sentence's ids: a [CLS] ... [SEP] sequence that fits the model.
void check_ids(const std::vector<std::vector<int64_t>> &ids, int64_t max_len) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i].empty() || static_cast<int64_t>(ids[i].size()) > max_len)
      throw Error(fmt::format("ids[{}]", i), fmt::format("1 to {} token ids", max_len),
                  fmt::format("{} ids", ids[i].size()));
}

}  // namespace

std::string_view pooling_name(Pooling p) {
  switch (p) {
    case Pooling::Cls: return "cls";
    case Pooling::Max: return "max";
    case Pooling::Mean: return "mean";
    case Pooling::MeanSqrtLen: return "mean_sqrt_len_tokens";
  }
  return "?";
}

SentenceEncoder SentenceEncoder::from_folder(const fs::path &folder) {
  if (!fs::is_directory(folder))
    throw Error("model folder", "a directory with a sentence-transformers or BERT model",
                fmt::format("{} (no such directory)", folder.string()));
  fs::path transformer_dir = folder, pooling_config;
  bool normalize = false, have_transformer = false;
  int stage = 0, position = 0;  // modules read so far
  if (const fs::path modules_file = folder / "modules.json"; fs::exists(modules_file)) {
    const json modules = read_json(modules_file);
    if (!modules.is_array()) throw Error(modules_file.string(), "a JSON list", modules.dump());
    for (const json &m : modules) {
      if (!m.is_object() || !m.contains("type") || !m["type"].is_string() ||
          !m.value("path", json("")).is_string())
        throw Error(modules_file.string(), "entries with a \"type\" and a \"path\"", m.dump());
      const std::string type = m["type"].get<std::string>();
      const fs::path path = folder / m.value("path", std::string());
      const std::string short_type = type.substr(type.rfind('.') + 1);
      // The pipeline implemented: Transformer, then Pooling, then optionally
      // Normalize, each once and in that order.
      if (short_type == "Transformer" && stage == 0) {
        transformer_dir = path, have_transformer = true, stage = 1;
      } else if (short_type == "Pooling" && stage == 1) {
        pooling_config = path / "config.json", stage = 2;
      } else if (short_type == "Normalize" && stage == 2) {
        normalize = true, stage = 3;
      } else {
        throw Error(modules_file.string(),
                    "Transformer, Pooling and optionally Normalize, in that order (the "
                    "modules implemented)",
                    fmt::format("a module of type \"{}\" at position {}", type, position));
      }
      ++position;
    }
    if (!have_transformer) throw Error(modules_file.string(), "a Transformer module", "none");
  }

  nn::BertModel model = nn::BertModel::from_pretrained(transformer_dir);
  text::WordPieceTokenizer tokenizer = text::WordPieceTokenizer::from_folder(transformer_dir);
  if (tokenizer.vocab_size() > model.config().vocab_size)
    throw Error((transformer_dir / "config.json").string() + ": vocab_size",
                fmt::format("at least the tokenizer's vocabulary size {}", tokenizer.vocab_size()),
                std::to_string(model.config().vocab_size));

  int64_t max_seq_length = model.config().max_position_embeddings;
  if (const fs::path st = transformer_dir / "sentence_bert_config.json"; fs::exists(st)) {
    const json j = read_json(st);
    if (const auto it = j.find("max_seq_length"); it != j.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 2 ||
          it->get<int64_t>() > model.config().max_position_embeddings)
        throw Error(st.string() + ": max_seq_length",
                    fmt::format("an integer in [2, max_position_embeddings = {}]",
                                model.config().max_position_embeddings),
                    it->dump());
      max_seq_length = it->get<int64_t>();
    }
    // sentence-transformers would put a Lowercase step before the tokenizer.
    if (const auto it = j.find("do_lower_case"); it != j.end() && *it == true)
      throw Error(st.string() + ": do_lower_case",
                  "false (an extra lower-casing step before the tokenizer is not "
                  "implemented; the tokenizer's own lowercase setting is)",
                  "true");
  }
  std::vector<Pooling> pooling = pooling_config.empty()
                                     ? std::vector<Pooling>{Pooling::Mean}
                                     : read_pooling(pooling_config, model.config().hidden_size);
  return SentenceEncoder(std::move(tokenizer), std::move(model), std::move(pooling), normalize,
                         max_seq_length);
}

SentenceEncoder::SentenceEncoder(text::WordPieceTokenizer tokenizer, nn::BertModel model,
                                 std::vector<Pooling> pooling, bool normalize,
                                 int64_t max_seq_length)
    : tokenizer_(std::move(tokenizer)),
      model_(std::move(model)),
      pooling_(std::move(pooling)),
      normalize_(normalize),
      max_seq_length_(max_seq_length) {
  if (pooling_.empty()) throw Error("SentenceEncoder: pooling", "at least one mode", "none");
  if (max_seq_length_ < 2 || max_seq_length_ > model_.config().max_position_embeddings)
    throw Error("SentenceEncoder: max_seq_length",
                fmt::format("in [2, {}]", model_.config().max_position_embeddings),
                std::to_string(max_seq_length_));
  model_.eval();
}

int64_t SentenceEncoder::dimension() const noexcept {
  return model_.config().hidden_size * static_cast<int64_t>(pooling_.size());
}

std::vector<int64_t> SentenceEncoder::tokenize(std::string_view sentence) const {
  return tokenizer_.encode(sentence, max_seq_length_);
}

std::vector<std::vector<int64_t>> SentenceEncoder::tokenize_all(
    const std::vector<std::string> &sentences) const {
  std::vector<std::vector<int64_t>> ids(sentences.size());
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    try {
      ids[i] = tokenize(sentences[i]);
    } catch (const Error &e) {
      throw Error(fmt::format("sentences[{}]", i), e.expected(), e.actual());
    }
  }
  return ids;
}

Tensor<float> SentenceEncoder::encode(const std::vector<std::string> &sentences,
                                      const EncodeOptions &options) const {
  const std::vector<std::vector<int64_t>> ids = tokenize_all(sentences);
  return encode_ids(ids, options);
}

Tensor<float> SentenceEncoder::encode_ids(const std::vector<std::vector<int64_t>> &ids,
                                          const EncodeOptions &options) const {
  if (options.batch_size < 1) throw Error("batch_size", ">= 1", std::to_string(options.batch_size));
  check_ids(ids, max_seq_length_);
  const auto n = static_cast<int64_t>(ids.size());
  Tensor<float> out({n, dimension()});
  // Padded batches of similar lengths (longest first, as sentence-transformers
  // sorts); packed batches in input order.
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (!options.pack)
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return ids[static_cast<std::size_t>(a)].size() > ids[static_cast<std::size_t>(b)].size();
    });
  for (int64_t begin = 0; begin < n; begin += options.batch_size) {
    const int64_t end = std::min(n, begin + options.batch_size);
    std::vector<const std::vector<int64_t> *> batch;
    std::vector<float *> outs;
    for (int64_t i = begin; i < end; ++i) {
      const auto k = static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
      batch.push_back(&ids[k]);
      outs.push_back(out.data() + static_cast<int64_t>(k) * dimension());
    }
    run_batch(batch, outs, options.pack);
    if (options.progress) options.progress(end, n);
  }
  return out;
}

namespace {

// One forward pass's inputs for sentences of token ids: padded, (B, longest)
// with pad_id past each sentence and key_lengths() hiding it; or packed, one
// row of every sentence in turn, documents() keeping each to itself and
// position ids restarting at 0 for each.
struct Batch {
  Tensor<int64_t> input_ids, positions, documents;
  nn::BertInputs inputs;
  std::vector<int64_t> lengths;
  std::vector<int64_t> starts;  // where each sentence begins in its row
};

Batch make_batch(const std::vector<const std::vector<int64_t> *> &sentences, bool pack,
                 int64_t pad_id) {
  Batch b;
  int64_t longest = 0, total = 0;
  for (const auto *s : sentences) {
    b.lengths.push_back(static_cast<int64_t>(s->size()));
    b.starts.push_back(pack ? total : 0);
    longest = std::max(longest, b.lengths.back());
    total += b.lengths.back();
  }
  const auto n = static_cast<int64_t>(sentences.size());
  const int64_t rows = pack ? 1 : n, len = pack ? total : longest;
  b.input_ids = Tensor<int64_t>({rows, len});
  b.positions = Tensor<int64_t>({rows, len});
  b.documents = Tensor<int64_t>({len});
  std::fill(b.input_ids.begin(), b.input_ids.end(), pad_id);
  for (int64_t s = 0; s < n; ++s) {
    const int64_t row = pack ? 0 : s, start = b.starts[static_cast<std::size_t>(s)];
    const auto &ids = *sentences[static_cast<std::size_t>(s)];
    for (std::size_t t = 0; t < ids.size(); ++t) {
      const int64_t col = start + static_cast<int64_t>(t);
      b.input_ids.data()[row * len + col] = ids[t];
      b.positions.data()[row * len + col] = static_cast<int64_t>(t);
      if (pack) b.documents.data()[col] = s;
    }
  }
  if (pack) {
    b.inputs.mask = documents(b.documents.view<1>());
    b.inputs.position_ids = b.positions.view<2>();
  } else {
    b.inputs.mask = key_lengths(b.lengths);  // the padding mask
  }
  return b;
}

}  // namespace

void SentenceEncoder::run_batch(const std::vector<const std::vector<int64_t> *> &batch,
                                std::vector<float *> &outs, bool pack) const {
  const Batch b = make_batch(batch, pack, tokenizer_.pad_id());
  const int64_t e = model_.config().hidden_size, rows = b.input_ids.size(0),
                len = b.input_ids.size(1);
  Arena::Frame frame(thread_arena());
  const View<float, 3> hidden(frame.alloc<float>(rows * len * e), {rows, len, e});
  model_.forward(b.input_ids.view<2>(), hidden, b.inputs);
  for (std::size_t s = 0; s < batch.size(); ++s) {
    const int64_t row = pack ? 0 : static_cast<int64_t>(s);
    pool(hidden.row(row, b.starts[s]), b.lengths[s], outs[s]);
  }
}

SentenceAttention SentenceEncoder::attention(const std::vector<std::string> &sentences,
                                             bool pack) const {
  if (sentences.empty()) throw Error("sentences", "at least one sentence", "none");
  const std::vector<std::vector<int64_t>> ids = tokenize_all(sentences);
  std::vector<const std::vector<int64_t> *> batch;
  for (const auto &s : ids) batch.push_back(&s);
  const Batch b = make_batch(batch, pack, tokenizer_.pad_id());
  const nn::BertConfig &c = model_.config();
  const int64_t rows = b.input_ids.size(0), len = b.input_ids.size(1);
  SentenceAttention a;
  a.weights = Tensor<float>({c.num_hidden_layers, rows, c.num_attention_heads, len, len});
  Tensor<float> hidden({rows, len, c.hidden_size});
  model_.forward(b.input_ids.view<2>(), hidden.view<3>(), b.inputs, a.weights.view<5>());
  a.mask = b.inputs.mask;
  a.row_tokens.resize(static_cast<std::size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < len; ++t)
      a.row_tokens[static_cast<std::size_t>(r)].push_back(
          tokenizer_.id_to_token(b.input_ids.data()[r * len + t]));
  for (std::size_t s = 0; s < ids.size(); ++s) {
    const auto &row = a.row_tokens[pack ? 0 : s];
    const auto first = row.begin() + b.starts[s];
    a.tokens.emplace_back(first, first + b.lengths[s]);
  }
  return a;
}

std::vector<View<const float, 4>> SentenceAttention::layers() const {
  std::vector<View<const float, 4>> v;
  const std::array<int64_t, 4> shape{weights.size(1), weights.size(2), weights.size(3),
                                     weights.size(4)};
  const int64_t stride = shape[0] * shape[1] * shape[2] * shape[3];
  for (int64_t l = 0; l < weights.size(0); ++l) v.emplace_back(weights.data() + l * stride, shape);
  return v;
}

void SentenceEncoder::pool(const float *hidden, int64_t len, float *out) const {
  const int64_t e = model_.config().hidden_size;
  float *o = out;
  for (Pooling mode : pooling_) {
    switch (mode) {
      case Pooling::Cls: std::copy_n(hidden, e, o); break;
      case Pooling::Max:
        for (int64_t k = 0; k < e; ++k) {
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t t = 0; t < len; ++t) m = std::max(m, hidden[t * e + k]);
          o[k] = m;
        }
        break;
      case Pooling::Mean:
      case Pooling::MeanSqrtLen: {
        const double denom =
            mode == Pooling::Mean ? static_cast<double>(len) : std::sqrt(static_cast<double>(len));
        for (int64_t k = 0; k < e; ++k) {
          double sum = 0.0;
          for (int64_t t = 0; t < len; ++t) sum += hidden[t * e + k];
          o[k] = static_cast<float>(sum / denom);
        }
        break;
      }
    }
    o += e;
  }
  if (normalize_) {
    // torch.nn.functional.normalize: v / max(||v||, 1e-12).
    const int64_t dim = dimension();
    double sq = 0.0;
    for (int64_t k = 0; k < dim; ++k) sq += static_cast<double>(out[k]) * out[k];
    const double scale = 1.0 / std::max(std::sqrt(sq), 1e-12);
    for (int64_t k = 0; k < dim; ++k) out[k] = static_cast<float>(out[k] * scale);
  }
}

}  // namespace maskattn::models
