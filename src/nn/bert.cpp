#include "maskattn/nn/bert.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/arena.hpp"
#include "core/files.hpp"
#include "core/parallel_for.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/io/safetensors.hpp"
#include "nn/rows.hpp"

namespace maskattn::nn {
namespace {

using maskattn::detail::Arena;
using maskattn::detail::thread_arena;
using json = nlohmann::json;

// config[key] as an integer >= 1 (or the default when absent and `fallback` set).
int64_t positive_int(const json& config, const char* key, std::string_view source,
                     std::optional<int64_t> fallback = std::nullopt) {
  const auto it = config.find(key);
  if (it == config.end()) {
    if (fallback) return *fallback;
    throw Error(fmt::format("{}: {}", source, key), "an integer >= 1", "no such field");
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 1)
    throw Error(fmt::format("{}: {}", source, key), "an integer >= 1", it->dump());
  return it->get<int64_t>();
}

// Post-norm residual: y = norm(y + x), in place on y's rows.
void add_and_norm(const LayerNorm& norm, View<const float, 2> x, View<float, 2> y) {
  detail::add_rows(y, x);
  norm.forward(y, y);
}

// ids (B, L) as `shape`, every id in [0, limit).
void check_ids(View<const int64_t, 2> ids, std::string_view name, int64_t limit,
               std::string_view what, const std::array<int64_t, 2>& shape) {
  if (ids.size(0) != shape[0] || ids.size(1) != shape[1])
    throw Error(name, fmt::format("({}, {}) as input_ids", shape[0], shape[1]),
                shape_string(ids.shape()));
  for (int64_t b = 0; b < ids.size(0); ++b)
    for (int64_t l = 0; l < ids.size(1); ++l) {
      const int64_t id = ids(b, l);
      if (id < 0 || id >= limit)
        throw Error(fmt::format("{}[{}, {}]", name, b, l),
                    fmt::format("an id in [0, {}) ({})", limit, what), std::to_string(id));
    }
}

}  // namespace

// ---- config ----------------------------------------------------------------------

BertConfig BertConfig::from_json(std::string_view json_text, std::string_view source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    throw Error(source, "a JSON object (a Hugging Face config.json)", "text that is not one");
  BertConfig c;
  c.vocab_size = positive_int(j, "vocab_size", source);
  c.hidden_size = positive_int(j, "hidden_size", source);
  c.num_hidden_layers = positive_int(j, "num_hidden_layers", source);
  c.num_attention_heads = positive_int(j, "num_attention_heads", source);
  c.intermediate_size = positive_int(j, "intermediate_size", source);
  c.max_position_embeddings = positive_int(j, "max_position_embeddings", source);
  c.type_vocab_size = positive_int(j, "type_vocab_size", source, 2);
  if (const auto it = j.find("pad_token_id"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= c.vocab_size)
      throw Error(fmt::format("{}: pad_token_id", source),
                  fmt::format("an id in [0, {})", c.vocab_size), it->dump());
    c.pad_token_id = it->get<int64_t>();
  }
  if (c.hidden_size % c.num_attention_heads != 0)
    throw Error(fmt::format("{}: hidden_size", source),
                fmt::format("a multiple of num_attention_heads = {}", c.num_attention_heads),
                std::to_string(c.hidden_size));
  if (const auto it = j.find("hidden_act"); it != j.end()) {
    if (!it->is_string())
      throw Error(fmt::format("{}: hidden_act", source), "\"gelu\" or \"relu\"", it->dump());
    c.hidden_act =
        activation_from_name(it->get<std::string>(), fmt::format("{}: hidden_act", source));
  }
  if (const auto it = j.find("layer_norm_eps"); it != j.end()) {
    if (!it->is_number() || !(it->get<double>() > 0.0) || !std::isfinite(it->get<double>()))
      throw Error(fmt::format("{}: layer_norm_eps", source), "a finite number > 0", it->dump());
    c.layer_norm_eps = it->get<double>();
  }
  if (const auto it = j.find("position_embedding_type"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "absolute")
      throw Error(fmt::format("{}: position_embedding_type", source),
                  "\"absolute\" (relative position embeddings are not implemented)", it->dump());
  }
  return c;
}

BertConfig BertConfig::from_file(const std::filesystem::path& path) {
  return from_json(maskattn::detail::read_file(path, path.string()), path.string());
}

// ---- layer -----------------------------------------------------------------------

BertLayer::BertLayer(const BertConfig& c)
    : heads_(c.num_attention_heads),
      query_(c.hidden_size, c.hidden_size),
      key_(c.hidden_size, c.hidden_size),
      value_(c.hidden_size, c.hidden_size),
      attention_out_(c.hidden_size, c.hidden_size),
      attention_norm_(c.hidden_size, c.layer_norm_eps),
      ff_(c.hidden_size, c.intermediate_size, c.hidden_act, /*dropout=*/0.0),
      output_norm_(c.hidden_size, c.layer_norm_eps) {}

void BertLayer::for_each_child(const ChildFn& fn) {
  fn("attention.self.query", query_);
  fn("attention.self.key", key_);
  fn("attention.self.value", value_);
  fn("attention.output.dense", attention_out_);
  fn("attention.output.LayerNorm", attention_norm_);
  fn("intermediate.dense", ff_.linear1());
  fn("output.dense", ff_.linear2());
  fn("output.LayerNorm", output_norm_);
}

void BertLayer::forward(View<const float, 3> x, View<float, 3> y, const Mask& mask,
                        View<float, 4> weights) const {
  const int64_t b = x.size(0), l = x.size(1), e = x.size(2), d = e / heads_;
  if (e != query_.in_features())
    throw Error("BertLayer: x", fmt::format("(B, L, {})", query_.in_features()),
                shape_string(x.shape()));
  if (y.shape() != x.shape())
    throw Error("BertLayer: y", shape_string(x.shape()), shape_string(y.shape()));
  const std::array<int64_t, 4> weights_shape{b, heads_, l, l};
  if (!weights.empty() && weights.shape() != weights_shape)
    throw Error("BertLayer: weights", shape_string(weights_shape), shape_string(weights.shape()));
  Arena::Frame frame(thread_arena());
  const View<const float, 2> x_rows = detail::as_rows(x, frame);
  const int64_t n = b * l;
  const detail::SeqLayout seq{l, b, /*batch_first=*/true};

  // q, k, v side by side in one (N, 3E) matrix; heads() views them as (B, H, L, D).
  float* qkv = frame.alloc<float>(n * 3 * e);
  query_.forward(x_rows, View<float, 2>(qkv, {n, e}, {3 * e, 1}));
  key_.forward(x_rows, View<float, 2>(qkv + e, {n, e}, {3 * e, 1}));
  value_.forward(x_rows, View<float, 2>(qkv + 2 * e, {n, e}, {3 * e, 1}));
  float* context = frame.alloc<float>(n * e);
  attention(detail::heads<const float>(qkv, 3 * e, 0, seq, heads_, d),
            detail::heads<const float>(qkv, 3 * e, e, seq, heads_, d),
            detail::heads<const float>(qkv, 3 * e, 2 * e, seq, heads_, d),
            detail::heads(context, e, 0, seq, heads_, d), mask, {}, weights);

  // a = LayerNorm(x + dense(context)); y = LayerNorm(a + ff(a)).
  const View<float, 2> a(frame.alloc<float>(n * e), {n, e});
  attention_out_.forward(View<const float, 2>(context, {n, e}), a);
  add_and_norm(attention_norm_, x_rows, a);
  detail::write_rows(y, frame, [&](View<float, 2> y_rows) {
    ff_.forward(a, y_rows);
    add_and_norm(output_norm_, a, y_rows);
  });
}

// ---- model -----------------------------------------------------------------------

BertModel::BertModel(const BertConfig& c)
    : config_(c),
      word_embeddings_(c.vocab_size, c.hidden_size, c.pad_token_id),
      position_embeddings_(c.max_position_embeddings, c.hidden_size),
      token_type_embeddings_(c.type_vocab_size, c.hidden_size),
      embeddings_norm_(c.hidden_size, c.layer_norm_eps),
      pooler_(c.hidden_size, c.hidden_size) {
  if (c.hidden_size % c.num_attention_heads != 0)
    throw Error("BertConfig: hidden_size",
                fmt::format("a multiple of num_attention_heads = {}", c.num_attention_heads),
                std::to_string(c.hidden_size));
  layers_.reserve(static_cast<std::size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_.emplace_back(c);
}

void BertModel::for_each_child(const ChildFn& fn) {
  fn("embeddings.word_embeddings", word_embeddings_);
  fn("embeddings.position_embeddings", position_embeddings_);
  fn("embeddings.token_type_embeddings", token_type_embeddings_);
  fn("embeddings.LayerNorm", embeddings_norm_);
  for (std::size_t i = 0; i < layers_.size(); ++i)
    fn(fmt::format("encoder.layer.{}", i), layers_[i]);
  if (config_.add_pooling_layer) fn("pooler.dense", pooler_);
}

BertModel BertModel::from_pretrained(const std::filesystem::path& folder) {
  BertConfig config = BertConfig::from_file(folder / "config.json");
  const std::filesystem::path weights_path = folder / "model.safetensors";
  const SafetensorsFile file = SafetensorsFile::open(weights_path.string());
  // BertFor* checkpoints keep the encoder under "bert.".
  const bool prefixed = file.contains("bert.embeddings.word_embeddings.weight");
  const std::string prefix = prefixed ? "bert." : "";
  StateDict state;
  for (const std::string& name : file.names()) {
    if (!name.starts_with(prefix)) continue;
    state.emplace(name.substr(prefix.size()), file.view(name));
  }
  config.add_pooling_layer = state.contains("pooler.dense.weight");
  BertModel model(config);
  // Only float tensors are weights (position_ids is an int64 buffer).
  StateDict weights;
  for (auto& [name, view] : state)
    if (view.dtype == DType::Float32 || view.dtype == DType::Float64) weights.emplace(name, view);
  try {
    const LoadResult result = model.load_state_dict(weights, /*strict=*/false);
    if (!result.missing_keys.empty())
      throw Error(weights_path.string(), "every weight of the model named in config.json",
                  fmt::format("no tensor {}{} ({} missing)", prefix, result.missing_keys.front(),
                              result.missing_keys.size()));
  } catch (const Error& e) {
    if (e.argument() == weights_path.string()) throw;
    throw Error(weights_path.string(), "weights that fit config.json", e.what());
  }
  model.eval();
  return model;
}

void BertModel::embed(View<const int64_t, 2> ids, const BertInputs& in, View<float, 2> rows) const {
  const int64_t b = ids.size(0), l = ids.size(1), e = config_.hidden_size;
  const float* word = word_embeddings_.weight().data();
  const float* pos = position_embeddings_.weight().data();
  const float* type = token_type_embeddings_.weight().data();
  maskattn::detail::parallel_for_ranges(b * l, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t row = r / l, col = r % l;
      const float* w = word + ids(row, col) * e;
      const float* p = pos + (in.position_ids.empty() ? col : in.position_ids(row, col)) * e;
      const float* t = type + (in.token_type_ids.empty() ? 0 : in.token_type_ids(row, col)) * e;
      float* o = rows.row(r);
      for (int64_t k = 0; k < e; ++k) o[k] = w[k] + p[k] + t[k];
    }
  });
  embeddings_norm_.forward(rows, rows);
}

void BertModel::forward(View<const int64_t, 2> input_ids, View<float, 3> out, const BertInputs& in,
                        View<float, 5> attentions) const {
  const int64_t b = input_ids.size(0), l = input_ids.size(1), e = config_.hidden_size;
  const std::array<int64_t, 2> shape{b, l};
  check_ids(input_ids, "input_ids", config_.vocab_size, "vocab_size", shape);
  if (in.position_ids.empty()) {
    if (l > config_.max_position_embeddings)
      throw Error("input_ids",
                  fmt::format("at most max_position_embeddings = {} positions (or position_ids)",
                              config_.max_position_embeddings),
                  shape_string(input_ids.shape()));
  } else {
    check_ids(in.position_ids, "position_ids", config_.max_position_embeddings,
              "max_position_embeddings", shape);
  }
  if (!in.token_type_ids.empty())
    check_ids(in.token_type_ids, "token_type_ids", config_.type_vocab_size, "type_vocab_size",
              shape);
  const std::array<int64_t, 3> out_shape{b, l, e};
  if (out.shape() != out_shape)
    throw Error("last_hidden_state", shape_string(out_shape), shape_string(out.shape()));
  const int64_t heads = config_.num_attention_heads;
  const std::array<int64_t, 5> attentions_shape{config_.num_hidden_layers, b, heads, l, l};
  if (!attentions.empty() && attentions.shape() != attentions_shape)
    throw Error("attentions", shape_string(attentions_shape), shape_string(attentions.shape()));
  // Bind once here so that a mask that does not fit is an Error naming it.
  (void)in.mask.bind({b, heads, l, l});
  if (b * l == 0) return;

  Arena::Frame frame(thread_arena());
  const int64_t n = b * l;
  View<float, 3> x(frame.alloc<float>(n * e), out_shape), t(frame.alloc<float>(n * e), out_shape);
  embed(input_ids, in, View<float, 2>(x.data(), {n, e}));
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    // attentions[i]: (B, heads, L, L) with attentions' strides.
    View<float, 4> weights;
    if (!attentions.empty()) {
      const auto& st = attentions.strides();
      weights = View<float, 4>(attentions.data() + static_cast<int64_t>(i) * st[0],
                               {b, heads, l, l}, {st[1], st[2], st[3], st[4]});
    }
    layers_[i].forward(x, t, in.mask, weights);
    std::swap(x, t);
  }
  detail::copy_rows(View<const float, 2>(x.data(), {n, e}), out);
}

void BertModel::pool(View<const float, 3> hidden, View<float, 2> pooled) const {
  if (!config_.add_pooling_layer)
    throw Error("BertModel::pool", "a model with a pooler (pooler.dense)", "one without");
  const int64_t b = hidden.size(0), e = config_.hidden_size;
  if (hidden.size(2) != e || hidden.size(1) < 1)
    throw Error("last_hidden_state", fmt::format("(B, L >= 1, {})", e),
                shape_string(hidden.shape()));
  if (pooled.size(0) != b || pooled.size(1) != e)
    throw Error("pooler_output", fmt::format("({}, {})", b, e), shape_string(pooled.shape()));
  // The [CLS] rows: position 0 of every batch element.
  Arena::Frame frame(thread_arena());
  const View<float, 2> cls(frame.alloc<float>(b * e), {b, e});
  for (int64_t r = 0; r < b; ++r)
    for (int64_t k = 0; k < e; ++k) cls(r, k) = hidden(r, 0, k);
  pooler_.forward(cls, pooled);
  for (int64_t r = 0; r < b; ++r) {
    float* p = pooled.row(r);
    for (int64_t k = 0; k < e; ++k) p[k] = std::tanh(p[k]);
  }
}

}  // namespace maskattn::nn
