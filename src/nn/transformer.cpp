#include "maskattn/nn/transformer.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/arena.hpp"
#include "core/counter_rng.hpp"
#include "nn/init.hpp"
#include "nn/rows.hpp"

namespace maskattn::nn {
namespace {

using maskattn::detail::Arena;
using maskattn::detail::thread_arena;

void check_num_layers(int64_t n) {
  if (n < 0) throw Error("num_layers", ">= 0", std::to_string(n));
}

// Runs layer(i, in, out) for i = 0 .. n-1 and then `norm` into `out`,
// passing activations through two buffers of x's shape. Only the last step
// writes `out`, so out may be the stack's input.
template <class Layer, class Norm>
void run_stack(int64_t n, View<const float, 3> x, View<float, 3> out, const Layer& layer,
               const Norm* norm) {
  Arena::Frame frame(thread_arena());
  const auto& shape = x.shape();
  const int64_t count = shape[0] * shape[1] * shape[2];
  const View<float, 3> buf[2] = {View<float, 3>(frame.alloc<float>(count), shape),
                                 View<float, 3>(frame.alloc<float>(count), shape)};
  View<const float, 3> in = x;
  for (int64_t i = 0; i < n; ++i) {
    const bool last = i + 1 == n && norm == nullptr;
    const View<float, 3> dst = last ? out : buf[i % 2];
    layer(i, in, dst);
    in = dst;
  }
  if (norm != nullptr) {
    const View<const float, 2> rows = detail::as_rows(in, frame);
    if (detail::collapses(out)) {
      norm->forward(rows, detail::rows_of(out));
    } else {
      const View<float, 2> tmp(frame.alloc<float>(count), {shape[0] * shape[1], shape[2]});
      norm->forward(rows, tmp);
      detail::copy_rows(tmp, out);
    }
  } else if (n == 0 && in.data() != out.data()) {
    detail::copy_rows(detail::as_rows(in, frame), out);
  }
}

template <class Layer>
std::vector<Layer> copies(const Layer& layer, int64_t n, uint64_t seed) {
  check_num_layers(n);
  std::vector<Layer> layers(static_cast<std::size_t>(n), layer);
  // Copies share the prototype's seed: give each its own dropout streams.
  for (int64_t i = 0; i < n; ++i)
    layers[static_cast<std::size_t>(i)].seed(maskattn::detail::counter_hash(seed, static_cast<uint64_t>(i)));
  return layers;
}

}  // namespace

// ---- encoder stack -------------------------------------------------------------

TransformerEncoder::TransformerEncoder(const TransformerEncoderLayer& layer, int64_t num_layers,
                                       std::optional<LayerNorm> norm)
    : layers_(copies(layer, num_layers, seed_value())), norm_(std::move(norm)) {}

void TransformerEncoder::for_each_child(const ChildFn& fn) {
  for (std::size_t i = 0; i < layers_.size(); ++i) fn("layers." + std::to_string(i), layers_[i]);
  if (norm_) fn("norm", *norm_);
}

void TransformerEncoder::forward(View<const float, 3> src, View<float, 3> out,
                                 const AttentionMasks& src_masks) const {
  if (out.shape() != src.shape())
    throw Error("out", shape_string(src.shape()) + " (as src)", shape_string(out.shape()));
  run_stack(
      num_layers(), src, out,
      [&](int64_t i, View<const float, 3> in, View<float, 3> dst) {
        layers_[static_cast<std::size_t>(i)].forward(in, dst, src_masks);
      },
      norm_ ? &*norm_ : nullptr);
}

// ---- decoder stack -------------------------------------------------------------

TransformerDecoder::TransformerDecoder(const TransformerDecoderLayer& layer, int64_t num_layers,
                                       std::optional<LayerNorm> norm)
    : layers_(copies(layer, num_layers, seed_value())), norm_(std::move(norm)) {}

void TransformerDecoder::for_each_child(const ChildFn& fn) {
  for (std::size_t i = 0; i < layers_.size(); ++i) fn("layers." + std::to_string(i), layers_[i]);
  if (norm_) fn("norm", *norm_);
}

void TransformerDecoder::forward(View<const float, 3> tgt, View<const float, 3> memory,
                                 View<float, 3> out, const AttentionMasks& tgt_masks,
                                 const AttentionMasks& memory_masks) const {
  if (out.shape() != tgt.shape())
    throw Error("out", shape_string(tgt.shape()) + " (as tgt)", shape_string(out.shape()));
  run_stack(
      num_layers(), tgt, out,
      [&](int64_t i, View<const float, 3> in, View<float, 3> dst) {
        layers_[static_cast<std::size_t>(i)].forward(in, memory, dst, tgt_masks, memory_masks);
      },
      norm_ ? &*norm_ : nullptr);
}

// ---- Transformer -----------------------------------------------------------------

Transformer::Transformer(const TransformerOptions& o)
    : options_(o),
      encoder_(TransformerEncoderLayer(o.d_model, o.nhead, o.layer), o.num_encoder_layers,
               LayerNorm(o.d_model, o.layer.layer_norm_eps, true, o.layer.bias)),
      decoder_(TransformerDecoderLayer(o.d_model, o.nhead, o.layer), o.num_decoder_layers,
               LayerNorm(o.d_model, o.layer.layer_norm_eps, true, o.layer.bias)) {
  // As torch.nn.Transformer._reset_parameters: Xavier-uniform for every matrix.
  uint64_t k = 0;
  for (auto& [name, p] : named_parameters())
    if (p->rank() > 1) detail::init_xavier_uniform(*p, maskattn::detail::counter_hash(seed_value(), k++));
}

void Transformer::for_each_child(const ChildFn& fn) {
  fn("encoder", encoder_);
  fn("decoder", decoder_);
}

void Transformer::forward(View<const float, 3> src, View<const float, 3> tgt, View<float, 3> out,
                          const AttentionMasks& src_masks, const AttentionMasks& tgt_masks,
                          const AttentionMasks& memory_masks) const {
  const bool bf = options_.layer.batch_first;
  if ((bf ? src.size(0) : src.size(1)) != (bf ? tgt.size(0) : tgt.size(1)))
    throw Error("tgt", fmt::format("the batch size of src ({})", bf ? src.size(0) : src.size(1)),
                shape_string(tgt.shape()));
  Arena::Frame frame(thread_arena());
  const View<float, 3> memory(frame.alloc<float>(src.shape()[0] * src.shape()[1] * src.shape()[2]),
                              src.shape());
  encode(src, memory, src_masks);
  decode(tgt, memory, out, tgt_masks, memory_masks);
}

void Transformer::encode(View<const float, 3> src, View<float, 3> memory,
                         const AttentionMasks& src_masks) const {
  encoder_.forward(src, memory, src_masks);
}

void Transformer::decode(View<const float, 3> tgt, View<const float, 3> memory, View<float, 3> out,
                         const AttentionMasks& tgt_masks, const AttentionMasks& memory_masks) const {
  decoder_.forward(tgt, memory, out, tgt_masks, memory_masks);
}

Tensor<float> Transformer::generate_square_subsequent_mask(int64_t size) {
  if (size < 0) throw Error("size", ">= 0", std::to_string(size));
  checked_mul(size, size, "size");
  Tensor<float> m({size, size});
  for (int64_t i = 0; i < size; ++i)
    for (int64_t j = i + 1; j < size; ++j) m.data()[i * size + j] = -std::numeric_limits<float>::infinity();
  return m;
}

}  // namespace maskattn::nn
