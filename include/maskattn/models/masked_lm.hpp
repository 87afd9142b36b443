// A small BERT-style masked language model (Devlin et al. 2019) over word
// ids: token embeddings scaled by sqrt(d_model) plus sinusoidal positions, a
// pre-norm TransformerEncoder with a final LayerNorm, and the output layer
// TIED to the input embedding (Press & Wolf 2017: logits = h E^T, as BERT's
// and GPT-2's heads share the token table).
//
//   x      = dropout(embed(ids) * sqrt(d) + PE)            (N, L, d)
//   h      = norm(encoder(x, key_lengths(lengths)))         (N, L, d)
//   logits = h embed.weight^T                               (N, L, V)
//
// Sequences are batch-first and right-padded; lengths[b] says how many tokens
// of row b are real. Every layer's self-attention masks the padding with
// key_lengths(lengths): no real position sees a padded one, so whatever the
// padded positions hold changes no real position's logits, and the gradient
// reaching a padded input is exactly zero when the loss ignores the padded
// positions (their labels are -100). The logits of padded positions are
// computed and meaningless.
//
// Why sinusoidal positions and not learned ones: they need no training (a
// tiny corpus has few examples of each position), they are the library's own
// PositionalEncoding, and the embedding's sqrt(d) scale with an N(0, 1/d)
// table gives token vectors of unit size, the encoding's.
//
// Parameters: "embed.weight" (V, d) — the input table and the output layer —
// and "encoder.*" (torch's TransformerEncoder names, "encoder.norm.*" the
// final norm). The training members follow nn/gradients.hpp.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "maskattn/nn/embedding.hpp"
#include "maskattn/nn/feed_forward.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/module.hpp"
#include "maskattn/nn/positional_encoding.hpp"
#include "maskattn/nn/transformer.hpp"

namespace maskattn::models {

struct MaskedLmOptions {
  int64_t vocab_size = 0;  // >= 1
  int64_t pad_id = 0;      // the padding token: its embedding row stays zero
  int64_t d_model = 64;
  int64_t nhead = 4;
  int64_t num_layers = 2;
  int64_t dim_feedforward = 256;
  double dropout = 0.1;  // after the positions, in every layer and attention
  nn::Activation activation = nn::Activation::GELU;
  int64_t max_len = 128;  // longest sequence the positional encoding covers
  // The initial parameters, drawn from this seed (and the dropout streams):
  // embed.weight N(0, 1/d_model) with the pad row zero, the encoder's
  // matrices Xavier-uniform, biases 0, LayerNorm weights 1.
  uint64_t seed = 0;
};

class MaskedLm : public nn::Module {
 public:
  // Error naming the option for a vocabulary < 1, a pad_id outside it,
  // d_model not a multiple of nhead, or any other size < 1.
  explicit MaskedLm(const MaskedLmOptions& options);

  // ids (N, L) in [0, vocab_size), lengths (N) each in [1, L], L <= max_len
  // -> logits (N, L, vocab_size) (any strides).
  void forward(View<const int64_t, 2> ids, std::span<const int64_t> lengths,
               View<float, 3> logits) const;

  // Training (nn/gradients.hpp). The padding mask is kept in the encoder's.
  struct Saved {
    nn::Embedding::Saved embed;
    nn::PositionalEncoding::Saved positional;
    Tensor<float> x;  // (N, L, d): the encoder's input
    nn::TransformerEncoder::Saved encoder;
    Tensor<float> h;  // (N, L, d): the final norm's output, the output layer's input
  };
  void forward(View<const int64_t, 2> ids, std::span<const int64_t> lengths, View<float, 3> logits,
               Saved& saved) const;
  // dlogits (N, L, vocab_size) -> adds every parameter's gradient; embed.weight
  // gets both of its shares, the output layer's (dlogits^T h) and the input
  // lookup's. dembedded (N, L, d; empty: not wanted) receives the gradient of
  // the loss with respect to embed(ids) * sqrt(d), the lookup's output.
  void backward(View<const int64_t, 2> ids, const Saved& saved, View<const float, 3> dlogits,
                nn::Gradients& grads, View<float, 3> dembedded = {}) const;

  const MaskedLmOptions& options() const noexcept { return options_; }
  int64_t vocab_size() const noexcept { return options_.vocab_size; }
  nn::Embedding& embedding() noexcept { return embed_; }
  const nn::Embedding& embedding() const noexcept { return embed_; }
  const nn::TransformerEncoder& encoder() const noexcept { return encoder_; }

 protected:
  void for_each_child(const ChildFn& fn) override;  // "embed", "positional", "encoder"

 private:
  void forward_impl(View<const int64_t, 2> ids, std::span<const int64_t> lengths,
                    View<float, 3> logits, Saved* saved) const;

  MaskedLmOptions options_;
  nn::Embedding embed_;
  nn::PositionalEncoding positional_;
  nn::TransformerEncoder encoder_;
};

// The k most probable ids of one position's logits (V), with their softmax
// probabilities, most probable first (ties: the lower id first); ids in
// `exclude` (special tokens) are left out of the ranking but not of the
// softmax. k >= 1; fewer when the vocabulary has fewer.
std::vector<std::pair<int64_t, double>> top_predictions(std::span<const float> logits, int64_t k,
                                                        std::span<const int64_t> exclude = {});

}  // namespace maskattn::models
