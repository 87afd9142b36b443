#include "maskattn/nn/transformer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "core/arena.hpp"
#include "core/counter_rng.hpp"
#include "nn/attention_masks.hpp"
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
// passing activations through two buffers of x's shape — or, with `outputs`
// (training), through outputs[i] (kept for the backward), the norm's
// statistics into *norm_saved. Only the last step writes `out`, so out may be
// the stack's input (not in training).
template <class Layer>
void run_stack(int64_t n, View<const float, 3> x, View<float, 3> out, const Layer& layer,
               const LayerNorm* norm, std::vector<Tensor<float>>* outputs = nullptr,
               LayerNorm::Saved* norm_saved = nullptr) {
  Arena::Frame frame(thread_arena());
  const auto& shape = x.shape();
  const int64_t count = shape[0] * shape[1] * shape[2];
  View<float, 3> buf[2];
  if (outputs) {
    outputs->resize(static_cast<std::size_t>(n));
    for (Tensor<float>& t : *outputs) ensure_shape(t, {shape[0], shape[1], shape[2]});
  } else {
    for (View<float, 3>& b : buf) b = View<float, 3>(frame.alloc<float>(count), shape);
  }
  View<const float, 3> in = x;
  for (int64_t i = 0; i < n; ++i) {
    const bool last = i + 1 == n && norm == nullptr && outputs == nullptr;
    const View<float, 3> dst =
        last ? out : (outputs ? (*outputs)[static_cast<std::size_t>(i)].view<3>() : buf[i % 2]);
    layer(i, in, dst);
    in = dst;
  }
  if (norm != nullptr) {
    const View<const float, 2> rows = detail::as_rows(in, frame);
    detail::write_rows(out, frame, [&](View<float, 2> dst) {
      if (norm_saved)
        norm->forward(rows, dst, *norm_saved);
      else
        norm->forward(rows, dst);
    });
  } else if ((n == 0 || outputs) && in.data() != out.data()) {
    detail::copy_rows(detail::as_rows(in, frame), out);
  }
}

// The backward of run_stack's training forward: dout -> dx (empty: not
// wanted), through the norm and then layer_backward(i, input, dy, dx) for
// i = n-1 .. 0; x the stack's input, outputs the layers' outputs.
template <class LayerBackward>
void stack_backward(int64_t n, View<const float, 3> x, const std::vector<Tensor<float>>& outputs,
                    const LayerNorm* norm, const LayerNorm::Saved& norm_saved,
                    View<const float, 3> dout, View<float, 3> dx, Gradients& grads,
                    const LayerBackward& layer_backward) {
  if (static_cast<int64_t>(outputs.size()) != n)
    throw Error("saved", fmt::format("a training forward's of {} layers", n),
                fmt::format("{} layers' outputs", outputs.size()));
  Arena::Frame frame(thread_arena());
  const auto& shape = x.shape();
  const int64_t count = shape[0] * shape[1] * shape[2];
  const View<float, 3> buf[2] = {View<float, 3>(frame.alloc<float>(count), shape),
                                 View<float, 3>(frame.alloc<float>(count), shape)};
  const auto input = [&](int64_t i) {
    return i == 0 ? x : View<const float, 3>(outputs[static_cast<std::size_t>(i - 1)].view<3>());
  };
  View<const float, 3> dy = dout;
  int current = -1;  // the buffer dy is in (-1: dout)
  if (norm != nullptr) {
    norm->backward(detail::as_rows(input(n), frame), norm_saved, detail::as_rows(dout, frame),
                   View<float, 2>(buf[1].data(), {shape[0] * shape[1], shape[2]}), grads);
    dy = buf[1];
    current = 1;
  }
  for (int64_t i = n - 1; i >= 0; --i) {
    const int next = current == 0 ? 1 : 0;
    const View<float, 3> dst = i == 0 ? dx : buf[next];
    layer_backward(i, input(i), dy, dst);
    dy = dst;
    current = next;
  }
  if (n == 0 && dx.data() != nullptr) detail::copy_rows(detail::as_rows(dy, frame), dx);
}

void check_gradients(const char* input, const std::array<int64_t, 3>& shape,
                     View<const float, 3> dout, View<float, 3> dinput, const char* dinput_name) {
  if (dout.shape() != shape)
    throw Error("dout", fmt::format("{} (as {})", shape_string(shape), input),
                shape_string(dout.shape()));
  if (dinput.data() != nullptr && dinput.shape() != shape)
    throw Error(dinput_name, fmt::format("{} (as {})", shape_string(shape), input),
                shape_string(dinput.shape()));
}

void check_not_in_place(const void* out, View<const float, 3> in, const char* in_name) {
  if (out == in.data() && in.size(0) * in.size(1) * in.size(2) > 0)
    throw Error("out", fmt::format("not {} itself in training (the backward reads it)", in_name),
                fmt::format("out is {}", in_name));
}

template <class Layer>
std::vector<Layer> copies(const Layer& layer, int64_t n, uint64_t seed) {
  check_num_layers(n);
  std::vector<Layer> layers(static_cast<std::size_t>(n), layer);
  // Copies share the prototype's seed: give each its own dropout streams.
  for (int64_t i = 0; i < n; ++i)
    layers[static_cast<std::size_t>(i)].seed(
        maskattn::detail::counter_hash(seed, static_cast<uint64_t>(i)));
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
  forward_impl(src, out, src_masks, nullptr);
}

void TransformerEncoder::forward(View<const float, 3> src, View<float, 3> out,
                                 const AttentionMasks& src_masks, Saved& saved) const {
  check_not_in_place(out.data(), src, "src");
  saved.layers.resize(layers_.size());
  forward_impl(src, out, src_masks, &saved);
}

void TransformerEncoder::backward(View<const float, 3> src, const Saved& saved,
                                  View<const float, 3> dout, View<float, 3> dsrc,
                                  Gradients& grads) const {
  check_gradients("src", src.shape(), dout, dsrc, "dsrc");
  if (saved.layers.size() != layers_.size())
    throw Error("saved", fmt::format("a training forward's of {} layers", layers_.size()),
                fmt::format("{} layers", saved.layers.size()));
  stack_backward(
      num_layers(), src, saved.outputs, norm_ ? &*norm_ : nullptr, saved.norm, dout, dsrc, grads,
      [&](int64_t i, View<const float, 3> in, View<const float, 3> dy, View<float, 3> dx) {
        const auto k = static_cast<std::size_t>(i);
        layers_[k].backward(in, saved.layers[k], dy, dx, grads);
      });
}

void TransformerEncoder::forward_impl(View<const float, 3> src, View<float, 3> out,
                                      const AttentionMasks& src_masks, Saved* saved) const {
  if (out.shape() != src.shape())
    throw Error("out", shape_string(src.shape()) + " (as src)", shape_string(out.shape()));
  AttentionMasks masks;  // combined once for every layer
  if (num_layers() > 0) {
    const TransformerEncoderLayer& first = layers_.front();
    const int64_t heads = first.self_attn().num_heads();
    detail::check_encoder_call(src, src_masks, first.d_model(), heads, batch_first(),
                               {.mask = "mask"});
    const int64_t l = src.size(batch_first() ? 1 : 0);
    masks = detail::combined(src_masks, heads, l, l);
  }
  run_stack(
      num_layers(), src, out,
      [&](int64_t i, View<const float, 3> in, View<float, 3> dst) {
        const auto k = static_cast<std::size_t>(i);
        if (saved)
          layers_[k].forward(in, dst, masks, saved->layers[k]);
        else
          layers_[k].forward(in, dst, masks);
      },
      norm_ ? &*norm_ : nullptr, saved ? &saved->outputs : nullptr, saved ? &saved->norm : nullptr);
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
  forward_impl(tgt, memory, out, tgt_masks, memory_masks, nullptr);
}

void TransformerDecoder::forward(View<const float, 3> tgt, View<const float, 3> memory,
                                 View<float, 3> out, const AttentionMasks& tgt_masks,
                                 const AttentionMasks& memory_masks, Saved& saved) const {
  check_not_in_place(out.data(), tgt, "tgt");
  saved.layers.resize(layers_.size());
  forward_impl(tgt, memory, out, tgt_masks, memory_masks, &saved);
}

void TransformerDecoder::backward(View<const float, 3> tgt, View<const float, 3> memory,
                                  const Saved& saved, View<const float, 3> dout,
                                  View<float, 3> dtgt, View<float, 3> dmemory,
                                  Gradients& grads) const {
  check_gradients("tgt", tgt.shape(), dout, dtgt, "dtgt");
  if (dmemory.data() != nullptr && dmemory.shape() != memory.shape())
    throw Error("dmemory", shape_string(memory.shape()) + " (as memory)",
                shape_string(dmemory.shape()));
  if (saved.layers.size() != layers_.size())
    throw Error("saved", fmt::format("a training forward's of {} layers", layers_.size()),
                fmt::format("{} layers", saved.layers.size()));
  // The memory's gradient: every layer's cross-attention adds its share.
  Arena::Frame frame(thread_arena());
  const auto& ms = memory.shape();
  const int64_t m_rows = ms[0] * ms[1];
  const bool want_memory = dmemory.data() != nullptr;
  View<float, 2> total, share;
  if (want_memory) {
    total = View<float, 2>(frame.alloc<float>(m_rows * ms[2]), {m_rows, ms[2]});
    share = View<float, 2>(frame.alloc<float>(m_rows * ms[2]), {m_rows, ms[2]});
    std::fill_n(total.data(), m_rows * ms[2], 0.0f);
  }
  stack_backward(
      num_layers(), tgt, saved.outputs, norm_ ? &*norm_ : nullptr, saved.norm, dout, dtgt, grads,
      [&](int64_t i, View<const float, 3> in, View<const float, 3> dy, View<float, 3> dx) {
        const auto k = static_cast<std::size_t>(i);
        layers_[k].backward(in, memory, saved.layers[k], dy, dx,
                            want_memory ? View<float, 3>(share.data(), ms) : View<float, 3>(),
                            grads);
        if (want_memory) detail::add_rows(total, share);
      });
  if (want_memory) detail::copy_rows(total, dmemory);
}

void TransformerDecoder::forward_impl(View<const float, 3> tgt, View<const float, 3> memory,
                                      View<float, 3> out, const AttentionMasks& tgt_masks,
                                      const AttentionMasks& memory_masks, Saved* saved) const {
  if (out.shape() != tgt.shape())
    throw Error("out", shape_string(tgt.shape()) + " (as tgt)", shape_string(out.shape()));
  AttentionMasks self_masks, cross_masks;  // combined once for every layer
  if (num_layers() > 0) {
    const TransformerDecoderLayer& first = layers_.front();
    const int64_t heads = first.self_attn().num_heads();
    detail::check_decoder_call(tgt, memory, tgt_masks, memory_masks, first.d_model(), heads,
                               batch_first());
    const int dim = batch_first() ? 1 : 0;
    self_masks = detail::combined(tgt_masks, heads, tgt.size(dim), tgt.size(dim));
    cross_masks = detail::combined(memory_masks, heads, tgt.size(dim), memory.size(dim));
  }
  run_stack(
      num_layers(), tgt, out,
      [&](int64_t i, View<const float, 3> in, View<float, 3> dst) {
        const auto k = static_cast<std::size_t>(i);
        if (saved)
          layers_[k].forward(in, memory, dst, self_masks, cross_masks, saved->layers[k]);
        else
          layers_[k].forward(in, memory, dst, self_masks, cross_masks);
      },
      norm_ ? &*norm_ : nullptr, saved ? &saved->outputs : nullptr, saved ? &saved->norm : nullptr);
}

void TransformerDecoder::decode_step(View<const float, 3> tgt, View<const float, 3> memory,
                                     View<float, 3> out, KvCache& cache,
                                     const AttentionMasks& memory_masks,
                                     std::span<const int64_t> advance) const {
  const bool bf = batch_first();
  const int64_t t = bf ? tgt.size(1) : tgt.size(0), n = bf ? tgt.size(0) : tgt.size(1);
  if (out.shape() != tgt.shape())
    throw Error("out", shape_string(tgt.shape()) + " (as tgt)", shape_string(out.shape()));
  if (cache.batch() != n || static_cast<int64_t>(cache.layers_.size()) != num_layers())
    throw Error("cache", fmt::format("a KvCache for this decoder and batch {}", n),
                fmt::format("one for batch {} and {} layers", cache.batch(), cache.layers_.size()));
  if (t < 1) throw Error("tgt", "at least one new token per sequence", shape_string(tgt.shape()));
  const std::vector<int64_t> lengths(cache.lengths().begin(), cache.lengths().end());
  std::vector<int64_t> grow(static_cast<std::size_t>(n), t);
  if (!advance.empty()) {
    if (static_cast<int64_t>(advance.size()) != n)
      throw Error("advance", fmt::format("{} lengths (one per sequence)", n),
                  std::to_string(advance.size()));
    for (int64_t b = 0; b < n; ++b) {
      const int64_t a = advance[static_cast<std::size_t>(b)];
      if (a < 0 || a > t)
        throw Error(fmt::format("advance[{}]", b), fmt::format("a count in [0, {}]", t),
                    std::to_string(a));
      grow[static_cast<std::size_t>(b)] = a;
    }
  }
  for (int64_t b = 0; b < n; ++b) {
    const int64_t len = lengths[static_cast<std::size_t>(b)];
    if (len + t > cache.capacity())
      throw Error("cache", fmt::format("room for {} more tokens in sequence {}", t, b),
                  fmt::format("{} of {} used", len, cache.capacity()));
    if (t > 1 && len != lengths[0])
      throw Error("tgt",
                  "one token per sequence when the sequences' lengths differ (a step of "
                  "several tokens needs them equal)",
                  fmt::format("{} tokens; lengths {} and {}", t, lengths[0], len));
  }
  if (num_layers() > 0)
    detail::check_decoder_call(tgt, memory, {}, memory_masks, layers_.front().d_model(),
                               layers_.front().self_attn().num_heads(), bf);
  if (!memory_masks.attn_mask.empty() || memory_masks.is_causal)
    throw Error("memory_masks",
                "key_padding_mask and/or mask when decoding step by step (no memory_mask or "
                "is_causal: they depend on the target position)",
                !memory_masks.attn_mask.empty() ? "an attn_mask" : "is_causal");

  // The memory's keys and values: projected once, at the first step.
  const std::vector<int64_t> memory_shape(memory.shape().begin(), memory.shape().end());
  const int64_t s = bf ? memory.size(1) : memory.size(0);
  if (cache.memory_data_ == nullptr) {
    for (int64_t i = 0; i < num_layers(); ++i) {
      const MultiheadAttention& ca = layers_[static_cast<std::size_t>(i)].multihead_attn();
      KvCache::Layer& l = cache.layers_[static_cast<std::size_t>(i)];
      l.mem_k = Tensor<float>({n, ca.num_kv_heads(), s, ca.head_dim()});
      l.mem_v = Tensor<float>({n, ca.num_kv_heads(), s, ca.head_dim()});
      ca.project_kv(memory, memory, l.mem_k.view<4>(), l.mem_v.view<4>());
    }
    cache.memory_data_ = memory.data();
    cache.memory_shape_ = memory_shape;
  } else if (cache.memory_data_ != memory.data() || cache.memory_shape_ != memory_shape) {
    throw Error("memory", "the memory of the cache's first step (or cache.reset() first)",
                "another array");
  }

  // Query i of sequence b sits at position lengths[b] + i and may see keys
  // 0 .. lengths[b] + i: with one token, all of sequence b's keys
  // (key_lengths); with several (lengths equal), the look-ahead mask aligned
  // bottom-right.
  std::vector<int64_t> visible(lengths);
  for (int64_t& v : visible) v += t;
  Mask self_mask = key_lengths(visible);
  if (t > 1) self_mask &= causal(Align::BottomRight);
  const Mask memory_mask =
      num_layers() > 0
          ? detail::combined(memory_masks, layers_.front().multihead_attn().num_heads(), t, s).mask
          : Mask{};

  run_stack(
      num_layers(), tgt, out,
      [&](int64_t i, View<const float, 3> in, View<float, 3> dst) {
        layers_[static_cast<std::size_t>(i)].decode_step(
            in, dst, cache.layers_[static_cast<std::size_t>(i)], lengths, self_mask, memory_mask);
      },
      norm_ ? &*norm_ : nullptr);
  for (int64_t b = 0; b < n; ++b)
    cache.lengths_[static_cast<std::size_t>(b)] += grow[static_cast<std::size_t>(b)];
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
    if (p->rank() > 1)
      detail::init_xavier_uniform(*p, maskattn::detail::counter_hash(seed_value(), k++));
}

void Transformer::for_each_child(const ChildFn& fn) {
  fn("encoder", encoder_);
  fn("decoder", decoder_);
}

void Transformer::check_call(View<const float, 3> src, View<const float, 3> tgt,
                             const AttentionMasks& src_masks, const AttentionMasks& tgt_masks,
                             const AttentionMasks& memory_masks) const {
  const bool bf = options_.layer.batch_first;
  if ((bf ? src.size(0) : src.size(1)) != (bf ? tgt.size(0) : tgt.size(1)))
    throw Error("tgt", fmt::format("the batch size of src ({})", bf ? src.size(0) : src.size(1)),
                shape_string(tgt.shape()));
  detail::check_encoder_call(src, src_masks, options_.d_model, options_.nhead, bf);
  detail::check_decoder_call(tgt, src, tgt_masks, memory_masks, options_.d_model, options_.nhead,
                             bf);  // the memory has src's shape
}

void Transformer::forward(View<const float, 3> src, View<const float, 3> tgt, View<float, 3> out,
                          const AttentionMasks& src_masks, const AttentionMasks& tgt_masks,
                          const AttentionMasks& memory_masks, Saved& saved) const {
  check_call(src, tgt, src_masks, tgt_masks, memory_masks);
  ensure_shape(saved.memory, {src.size(0), src.size(1), src.size(2)});
  encoder_.forward(src, saved.memory.view<3>(), src_masks, saved.encoder);
  decoder_.forward(tgt, saved.memory.view<3>(), out, tgt_masks, memory_masks, saved.decoder);
}

void Transformer::backward(View<const float, 3> src, View<const float, 3> tgt, const Saved& saved,
                           View<const float, 3> dout, View<float, 3> dsrc, View<float, 3> dtgt,
                           Gradients& grads) const {
  if (saved.memory.shape() != std::vector<int64_t>(src.shape().begin(), src.shape().end()))
    throw Error("saved", "a training forward's of this src", shape_string(saved.memory.shape()));
  Arena::Frame frame(thread_arena());
  const View<float, 3> dmemory(frame.alloc<float>(saved.memory.numel()), src.shape());
  decoder_.backward(tgt, saved.memory.view<3>(), saved.decoder, dout, dtgt, dmemory, grads);
  encoder_.backward(src, saved.encoder, dmemory, dsrc, grads);
}

void Transformer::forward(View<const float, 3> src, View<const float, 3> tgt, View<float, 3> out,
                          const AttentionMasks& src_masks, const AttentionMasks& tgt_masks,
                          const AttentionMasks& memory_masks) const {
  check_call(src, tgt, src_masks, tgt_masks, memory_masks);
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
                         const AttentionMasks& tgt_masks,
                         const AttentionMasks& memory_masks) const {
  decoder_.forward(tgt, memory, out, tgt_masks, memory_masks);
}

Tensor<float> Transformer::generate_square_subsequent_mask(int64_t size) {
  if (size < 0) throw Error("size", ">= 0", std::to_string(size));
  checked_mul(size, size, "size");
  Tensor<float> m({size, size});
  for (int64_t i = 0; i < size; ++i)
    for (int64_t j = i + 1; j < size; ++j)
      m.data()[i * size + j] = -std::numeric_limits<float>::infinity();
  return m;
}

}  // namespace maskattn::nn
