// An encoder-decoder Transformer over token ids (Vaswani et al. 2017; the
// "Annotated Transformer"'s EncoderDecoder): embeddings scaled by sqrt(d_model)
// plus sinusoidal positions, torch.nn.Transformer, and a generator (Linear to
// the target vocabulary). Sequences are batch-first token ids; padding is
// given by lengths and masked with key_lengths; the target's look-ahead mask
// is causal().
//
// Parameters: "src_embed.weight", "tgt_embed.weight", "transformer.*" (torch's
// Transformer names), "generator.weight", "generator.bias".
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "maskattn/nn/embedding.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/module.hpp"
#include "maskattn/nn/positional_encoding.hpp"
#include "maskattn/nn/transformer.hpp"

namespace maskattn::models {

struct Seq2SeqOptions {
  int64_t src_vocab = 0;
  int64_t tgt_vocab = 0;
  nn::TransformerOptions transformer;  // layer.batch_first is set: ids are (N, L)
  int64_t max_len = 512;               // longest sequence the positional encoding covers
  // The decoder's self-attention under the look-ahead mask causal(), as it
  // must be. false removes it from training's teacher forcing, so every
  // target position also sees the tokens after it, the one it must predict
  // among them: only to show what goes wrong (`maskattn demo --no-look-ahead`).
  // Greedy decoding has no later tokens to see either way.
  bool look_ahead = true;
};

class Seq2SeqTransformer : public nn::Module {
 public:
  explicit Seq2SeqTransformer(const Seq2SeqOptions& options);

  // Teacher forcing: logits (N, T, tgt_vocab) of the token after each target
  // position. src (N, S) with src_lengths[b] real tokens (the rest padding);
  // tgt (N, T) (its padding needs no mask: under the look-ahead mask no real
  // position sees a later one).
  void forward(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
               View<const int64_t, 2> tgt, View<float, 3> logits) const;

  // Training (nn/gradients.hpp): the teacher-forcing forward that keeps what
  // the backward needs, then the backward from dlogits (the gradient of the
  // loss with respect to the logits, (N, T, tgt_vocab) in rows of one
  // stride), adding every parameter's gradient. src, src_lengths and tgt
  // must be the forward's, unchanged.
  struct Saved {
    Tensor<float> src_x, tgt_x;  // (N, S, d), (N, T, d): embeddings plus positions
    Tensor<float> out;           // (N, T, d): the decoder's output, the generator's input
    nn::PositionalEncoding::Saved src_positional, tgt_positional;
    nn::Transformer::Saved transformer;
  };
  void forward(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
               View<const int64_t, 2> tgt, View<float, 3> logits, Saved& saved) const;
  void backward(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
                View<const int64_t, 2> tgt, const Saved& saved, View<const float, 3> dlogits,
                nn::Gradients& grads) const;

  // Greedy decoding with a KV cache: (N, L) ids, L <= max_len, starting with
  // start_symbol, each next token the argmax of the logits. A sequence that
  // emits stop_symbol is finished (it goes on with stop_symbol); decoding ends
  // when every sequence is finished or at max_len tokens.
  Tensor<int64_t> greedy_decode(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
                                int64_t start_symbol, int64_t max_len,
                                std::optional<int64_t> stop_symbol = std::nullopt) const;

  const Seq2SeqOptions& options() const noexcept { return options_; }
  nn::Transformer& transformer() noexcept { return transformer_; }

 protected:
  void for_each_child(const ChildFn& fn) override;

 private:
  // Checks the teacher-forcing call's arguments; the masks of its three attentions.
  struct Masks {
    nn::AttentionMasks src, tgt, memory;
  };
  Masks check_forward(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
                      View<const int64_t, 2> tgt, View<const float, 3> logits) const;

  // Both teacher-forcing forwards; with `saved`, the training one.
  void forward_impl(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
                    View<const int64_t, 2> tgt, View<float, 3> logits, Saved* saved) const;

  // ids (N, L) at positions offset.. -> x (N, L, d_model) = embed * sqrt(d) + PE
  // (the positional dropout's draw kept in `saved` when given).
  void embed(const nn::Embedding& table, View<const int64_t, 2> ids, View<float, 3> x,
             int64_t offset, nn::PositionalEncoding::Saved* saved = nullptr) const;

  Seq2SeqOptions options_;
  nn::Embedding src_embed_, tgt_embed_;
  nn::PositionalEncoding positional_;
  nn::Transformer transformer_;
  nn::Linear generator_;
};

}  // namespace maskattn::models
