// BERT's encoder (Devlin et al. 2019) as Hugging Face transformers' BertModel
// computes it, under its parameter names, so a checkpoint's safetensors load
// as they are:
//
//   embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm.*
//   encoder.layer.<i>.attention.self.{query,key,value}.*
//   encoder.layer.<i>.attention.output.{dense,LayerNorm}.*
//   encoder.layer.<i>.intermediate.dense.*, encoder.layer.<i>.output.{dense,LayerNorm}.*
//   pooler.dense.*                                      (with add_pooling_layer)
//
//   x   = LayerNorm(word[ids] + position[position_ids] + token_type[type_ids])
//   per layer (post-norm):
//     x = LayerNorm(x + dense(attention(x W_q, x W_k, x W_v, mask)))
//     x = LayerNorm(x + dense(act(dense(x))))
//   pooler_output = tanh(dense(x[:, 0]))
//
// Attention takes any Mask over (B, heads, L, L): Hugging Face's 1/0
// attention_mask through from_hf_attention_mask() for a padded batch, or
// documents() with per-document position_ids for packed sequences (several
// sentences in one row, no padding). Inference only: dropout is not applied.
//
// Each layer's attention weights (the probabilities after softmax, what
// transformers returns with output_attentions=True and eager attention) are
// written on request; a call that does not ask for them computes nothing extra.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/mask.hpp"
#include "maskattn/nn/embedding.hpp"
#include "maskattn/nn/feed_forward.hpp"
#include "maskattn/nn/layer_norm.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

// The fields of a Hugging Face BertConfig this model reads (config.json).
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  int64_t pad_token_id = 0;
  Activation hidden_act = Activation::GELU;  // "gelu" (exact, erf) or "relu"
  double layer_norm_eps = 1e-12;
  bool add_pooling_layer = true;  // a "pooler.dense" after the encoder

  // Reads a config.json's text. Error naming `source` and the field for a
  // missing or mistyped field, a size < 1, a hidden_size not divisible by
  // num_attention_heads, a hidden_act other than "gelu"/"relu", or a
  // position_embedding_type other than "absolute" (relative ones are not
  // implemented). add_pooling_layer is not part of config.json: true.
  static BertConfig from_json(std::string_view json_text, std::string_view source = "config.json");
  // Reads the file; Error naming it when it cannot be read.
  static BertConfig from_file(const std::filesystem::path& path);

  int64_t head_dim() const noexcept { return hidden_size / num_attention_heads; }
};

// What a forward pass reads besides the token ids. Absent views (the default)
// mean: positions 0..L-1 in every row, token type 0 everywhere.
struct BertInputs {
  Mask mask;                              // over (B, heads, L, L); default: all pairs
  View<const int64_t, 2> position_ids;    // (B, L) in [0, max_position_embeddings)
  View<const int64_t, 2> token_type_ids;  // (B, L) in [0, type_vocab_size)
};

// One encoder layer: self-attention and the feed-forward net, each followed by
// a residual connection and LayerNorm.
class BertLayer : public Module {
 public:
  explicit BertLayer(const BertConfig& config);

  // x (B, L, hidden) -> y (B, L, hidden) with `mask` over (B, heads, L, L).
  // y must not overlap x. weights (B, heads, L, L), any strides on its first
  // three dimensions: the attention probabilities p[b, h, i, j] of query i
  // over key j (0 where the mask blocks; a row with no allowed key is all 0);
  // an empty view (the default) means not wanted.
  void forward(View<const float, 3> x, View<float, 3> y, const Mask& mask,
               View<float, 4> weights = {}) const;

 protected:
  void for_each_child(const ChildFn& fn) override;

 private:
  int64_t heads_;
  Linear query_, key_, value_;
  Linear attention_out_;
  LayerNorm attention_norm_;
  FeedForward ff_;  // intermediate.dense, then output.dense
  LayerNorm output_norm_;
};

class BertModel : public Module {
 public:
  explicit BertModel(const BertConfig& config);

  // A Hugging Face model folder: config.json and model.safetensors (float32
  // or float64 weights; names with or without the "bert." prefix of
  // BertFor* checkpoints). The pooler is built when the file has its weights.
  // Tensors the model does not use (embeddings.position_ids, heads of
  // BertFor* models) are passed over. Returns the model in eval mode.
  // Error naming the file for a missing or unreadable file, a missing weight
  // or a weight of the wrong shape.
  static BertModel from_pretrained(const std::filesystem::path& folder);

  // input_ids (B, L) in [0, vocab_size), L <= max_position_embeddings unless
  // position_ids are given -> last_hidden_state (B, L, hidden_size), any
  // strides. attentions (num_hidden_layers, B, heads, L, L), any strides on
  // its first four dimensions, when given (an empty view, the default, means
  // not wanted): attentions[i] = layer i's attention probabilities, as
  // transformers' output_attentions=True gives them (eager attention). A key
  // the mask blocks gets exactly 0; padded query rows of a key-padding mask
  // (from_hf_attention_mask, key_lengths) are not blocked, so they hold a
  // softmax over the real keys, as in transformers; a row with no allowed key
  // is all 0 (transformers: uniform). Error naming the argument for a bad
  // shape or id.
  void forward(View<const int64_t, 2> input_ids, View<float, 3> last_hidden_state,
               const BertInputs& inputs = {}, View<float, 5> attentions = {}) const;

  // pooler_output (B, hidden) = tanh(pooler.dense(last_hidden_state[:, 0])).
  // Error when the model has no pooler.
  void pool(View<const float, 3> last_hidden_state, View<float, 2> pooler_output) const;

  const BertConfig& config() const noexcept { return config_; }

 protected:
  void for_each_child(const ChildFn& fn) override;

 private:
  void embed(View<const int64_t, 2> input_ids, const BertInputs& inputs, View<float, 2> rows) const;

  BertConfig config_;
  Embedding word_embeddings_, position_embeddings_, token_type_embeddings_;
  LayerNorm embeddings_norm_;
  std::vector<BertLayer> layers_;
  Linear pooler_;  // used only with config_.add_pooling_layer
};

}  // namespace maskattn::nn
