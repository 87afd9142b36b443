// Stacks of Transformer layers and the encoder-decoder Transformer, as
// torch.nn.TransformerEncoder, TransformerDecoder and Transformer (state_dict
// names "layers.<i>.*", "norm.*", "encoder.*", "decoder.*").
//
// Training (nn/gradients.hpp): forward(..., Saved&) and backward() of each,
// through every layer and the final norms.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/kv_cache.hpp"
#include "maskattn/nn/layer_norm.hpp"
#include "maskattn/nn/module.hpp"
#include "maskattn/nn/transformer_layers.hpp"

namespace maskattn::nn {

class TransformerEncoder : public Module {
 public:
  // num_layers copies of `layer` (each reseeded), then `norm` if given.
  TransformerEncoder(const TransformerEncoderLayer& layer, int64_t num_layers,
                     std::optional<LayerNorm> norm = std::nullopt);

  // src (L, N, E) -> out, same shape; out may be src itself.
  void forward(View<const float, 3> src, View<float, 3> out,
               const AttentionMasks& src_masks = {}) const;

  // Training. out must not be src here (the backward reads src).
  struct Saved {
    std::vector<TransformerEncoderLayer::Saved> layers;
    std::vector<Tensor<float>> outputs;  // each layer's output (like src): the next one's input
    LayerNorm::Saved norm;
  };
  void forward(View<const float, 3> src, View<float, 3> out, const AttentionMasks& src_masks,
               Saved& saved) const;
  // dout (like src) -> dsrc (like src; empty: not wanted); adds every
  // parameter's gradient.
  void backward(View<const float, 3> src, const Saved& saved, View<const float, 3> dout,
                View<float, 3> dsrc, Gradients& grads) const;

  int64_t num_layers() const noexcept { return static_cast<int64_t>(layers_.size()); }
  TransformerEncoderLayer& layer(int64_t i) { return layers_.at(static_cast<std::size_t>(i)); }
  const TransformerEncoderLayer& layer(int64_t i) const {
    return layers_.at(static_cast<std::size_t>(i));
  }
  // The layers' layout (false without layers).
  bool batch_first() const noexcept {
    return !layers_.empty() && layers_.front().options().batch_first;
  }

 protected:
  void for_each_child(const ChildFn& fn) override;

 private:
  void forward_impl(View<const float, 3> src, View<float, 3> out, const AttentionMasks& src_masks,
                    Saved* saved) const;

  std::vector<TransformerEncoderLayer> layers_;
  std::optional<LayerNorm> norm_;
};

class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const TransformerDecoderLayer& layer, int64_t num_layers,
                     std::optional<LayerNorm> norm = std::nullopt);

  // tgt (T, N, E), memory (S, N, E) -> out like tgt; out may be tgt itself.
  void forward(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
               const AttentionMasks& tgt_masks = {}, const AttentionMasks& memory_masks = {}) const;

  // Training. out must not be tgt here (the backward reads tgt).
  struct Saved {
    std::vector<TransformerDecoderLayer::Saved> layers;
    std::vector<Tensor<float>> outputs;  // each layer's output (like tgt): the next one's input
    LayerNorm::Saved norm;
  };
  void forward(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
               const AttentionMasks& tgt_masks, const AttentionMasks& memory_masks,
               Saved& saved) const;
  // dout (like tgt) -> dtgt (like tgt) and dmemory (like memory: the sum over
  // the layers) (empty: not wanted; written, not added); adds every
  // parameter's gradient.
  void backward(View<const float, 3> tgt, View<const float, 3> memory, const Saved& saved,
                View<const float, 3> dout, View<float, 3> dtgt, View<float, 3> dmemory,
                Gradients& grads) const;

  // One step of incremental decoding (see kv_cache.hpp): tgt holds T new
  // tokens of every sequence (T, N, E); out gets their outputs, exactly what
  // forward() gives at those positions for the whole sequences under the
  // look-ahead mask. Their keys and values are appended to `cache`, and each
  // sequence's length grows by advance[b] (default T: all of them; fewer for
  // a right-padded prompt). A step of T > 1 tokens needs every sequence at
  // the same length (e.g. the first step). memory (S, N, E) must be the same
  // at every step until cache.reset(); memory_masks: key_padding_mask and
  // mask (a memory_mask per target position is not supported here).
  void decode_step(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
                   KvCache& cache, const AttentionMasks& memory_masks = {},
                   std::span<const int64_t> advance = {}) const;

  int64_t num_layers() const noexcept { return static_cast<int64_t>(layers_.size()); }
  TransformerDecoderLayer& layer(int64_t i) { return layers_.at(static_cast<std::size_t>(i)); }
  const TransformerDecoderLayer& layer(int64_t i) const {
    return layers_.at(static_cast<std::size_t>(i));
  }
  bool batch_first() const noexcept {
    return !layers_.empty() && layers_.front().options().batch_first;
  }

 protected:
  void for_each_child(const ChildFn& fn) override;

 private:
  void forward_impl(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
                    const AttentionMasks& tgt_masks, const AttentionMasks& memory_masks,
                    Saved* saved) const;

  std::vector<TransformerDecoderLayer> layers_;
  std::optional<LayerNorm> norm_;
};

// torch.nn.Transformer's constructor arguments, with its defaults.
struct TransformerOptions {
  int64_t d_model = 512;
  int64_t nhead = 8;
  int64_t num_encoder_layers = 6;
  int64_t num_decoder_layers = 6;
  TransformerLayerOptions layer;  // dim_feedforward 2048, dropout 0.1, relu, eps 1e-5, ...
};

class Transformer : public Module {
 public:
  explicit Transformer(const TransformerOptions& options = {});

  // src (S, N, E), tgt (T, N, E) -> out (T, N, E) (batch first with
  // options.layer.batch_first): decoder(tgt, encoder(src)).
  //   src_masks    the encoder's self-attention (src_mask, src_key_padding_mask)
  //   tgt_masks    the decoder's self-attention (tgt_mask: the look-ahead mask)
  //   memory_masks the decoder's cross-attention (memory_mask, memory_key_padding_mask)
  void forward(View<const float, 3> src, View<const float, 3> tgt, View<float, 3> out,
               const AttentionMasks& src_masks = {}, const AttentionMasks& tgt_masks = {},
               const AttentionMasks& memory_masks = {}) const;

  // Training: the encoder's and decoder's, and the memory between them.
  struct Saved {
    TransformerEncoder::Saved encoder;
    Tensor<float> memory;  // (S, N, E) as src: encoder(src)
    TransformerDecoder::Saved decoder;
  };
  void forward(View<const float, 3> src, View<const float, 3> tgt, View<float, 3> out,
               const AttentionMasks& src_masks, const AttentionMasks& tgt_masks,
               const AttentionMasks& memory_masks, Saved& saved) const;
  // dout (like tgt) -> dsrc (like src), dtgt (like tgt) (empty: not wanted);
  // adds every parameter's gradient.
  void backward(View<const float, 3> src, View<const float, 3> tgt, const Saved& saved,
                View<const float, 3> dout, View<float, 3> dsrc, View<float, 3> dtgt,
                Gradients& grads) const;

  // memory = encoder(src), (S, N, E); for decoding step by step.
  void encode(View<const float, 3> src, View<float, 3> memory,
              const AttentionMasks& src_masks = {}) const;
  void decode(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
              const AttentionMasks& tgt_masks = {}, const AttentionMasks& memory_masks = {}) const;

  // torch.nn.Transformer.generate_square_subsequent_mask: float (size, size),
  // 0 on and below the diagonal, -inf above (an additive attn_mask).
  static Tensor<float> generate_square_subsequent_mask(int64_t size);

  const TransformerOptions& options() const noexcept { return options_; }
  TransformerEncoder& encoder() noexcept { return encoder_; }
  const TransformerEncoder& encoder() const noexcept { return encoder_; }
  TransformerDecoder& decoder() noexcept { return decoder_; }
  const TransformerDecoder& decoder() const noexcept { return decoder_; }

 protected:
  void for_each_child(const ChildFn& fn) override;  // "encoder", "decoder"

 private:
  // The checks of both forwards.
  void check_call(View<const float, 3> src, View<const float, 3> tgt,
                  const AttentionMasks& src_masks, const AttentionMasks& tgt_masks,
                  const AttentionMasks& memory_masks) const;

  TransformerOptions options_;
  TransformerEncoder encoder_;
  TransformerDecoder decoder_;
};

}  // namespace maskattn::nn
