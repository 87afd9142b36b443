#include "maskattn/nn/transformer_layers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "nn/attention_masks.hpp"
#include "nn/rows.hpp"

namespace maskattn::nn {
namespace {

using maskattn::detail::Arena;
using maskattn::detail::thread_arena;

MultiheadAttentionOptions attention_options(const TransformerLayerOptions& o) {
  MultiheadAttentionOptions a;
  a.dropout = o.dropout;
  a.bias = o.bias;
  a.batch_first = o.batch_first;
  a.num_kv_heads = o.num_kv_heads;
  return a;
}

// An activation of shape (A, B, E) both ways: the 3-D view attention reads
// and writes, and the same memory as (A*B, E) rows for everything else.
template <class T>
struct Seq {
  View<T, 3> seq;
  View<T, 2> rows;
};

Seq<float> scratch_like(const std::array<int64_t, 3>& shape, Arena::Frame& frame) {
  float* p = frame.alloc<float>(shape[0] * shape[1] * shape[2]);
  return {View<float, 3>(p, shape), View<float, 2>(p, {shape[0] * shape[1], shape[2]})};
}

// The layer's input both ways: x itself when its rows collapse to one stride,
// else a contiguous copy.
Seq<const float> input_of(View<const float, 3> x, Arena::Frame& frame) {
  const View<const float, 2> rows = detail::as_rows(x, frame);
  if (rows.data() == x.data()) return {x, rows};
  return {View<const float, 3>(rows.data(), x.shape()), rows};
}

// A sublayer's function: reads `in`, writes `out` (both shaped like the layer's input).
using Sublayer = std::function<void(View<const float, 3> in, View<float, 3> out)>;

// One residual sublayer in torch's order, into y (which must not be x):
//   norm_first: y = x + dropout(f(norm(x)))
//   otherwise:  y = norm(x + dropout(f(x)))
void residual(bool norm_first, const LayerNorm& norm, const Dropout& dropout,
              const Seq<const float>& x, const Seq<float>& y, const Sublayer& f,
              Arena::Frame& frame) {
  if (norm_first) {
    const Seq<float> normed = scratch_like(x.seq.shape(), frame);
    norm.forward(x.rows, normed.rows);
    f(normed.seq, y.seq);
  } else {
    f(x.seq, y.seq);
  }
  dropout.forward(y.rows, y.rows);
  detail::add_rows(y.rows, x.rows);
  if (!norm_first) norm.forward(y.rows, y.rows);
}

Seq<const float> as_input(const Seq<float>& y) { return {y.seq, y.rows}; }

// The feed-forward net as a sublayer (per token: on the rows).
Sublayer feed_forward(const FeedForward& ff) {
  return [&ff](View<const float, 3> in, View<float, 3> out) {
    Arena::Frame frame(thread_arena());
    const View<const float, 2> x = detail::as_rows(in, frame);
    detail::write_rows(out, frame, [&](View<float, 2> y) { ff.forward(x, y); });
  };
}

// Layers never ask their attention for weights.
MultiheadAttentionCall no_weights() {
  MultiheadAttentionCall call;
  call.need_weights = false;
  return call;
}

}  // namespace

// ---- encoder layer -------------------------------------------------------------

TransformerEncoderLayer::TransformerEncoderLayer(int64_t d_model, int64_t nhead,
                                                 const TransformerLayerOptions& o)
    : options_(o),
      self_attn_(d_model, nhead, attention_options(o)),
      ff_(d_model, o.dim_feedforward, o.activation, o.dropout, o.bias),
      norm1_(d_model, o.layer_norm_eps, true, o.bias),
      norm2_(d_model, o.layer_norm_eps, true, o.bias),
      dropout1_(o.dropout),
      dropout2_(o.dropout) {}

void TransformerEncoderLayer::for_each_child(const ChildFn& fn) {
  fn("self_attn", self_attn_);
  ff_.for_each_child(fn);
  fn("norm1", norm1_);
  fn("norm2", norm2_);
  fn("dropout1", dropout1_);
  fn("dropout2", dropout2_);
}

void TransformerEncoderLayer::forward(View<const float, 3> src, View<float, 3> out,
                                      const AttentionMasks& src_masks) const {
  detail::check_encoder_call(src, src_masks, d_model(), self_attn_.num_heads(),
                             options_.batch_first);
  if (out.shape() != src.shape())
    throw Error("out", shape_string(src.shape()) + " (as src)", shape_string(out.shape()));
  Arena::Frame frame(thread_arena());
  const Seq<const float> x = input_of(src, frame);  // (L, N, E) and (L*N, E) rows
  const Seq<float> a = scratch_like(src.shape(), frame), b = scratch_like(src.shape(), frame);
  residual(
      options_.norm_first, norm1_, dropout1_, x, a,
      [&](View<const float, 3> in, View<float, 3> y) {
        self_attn_.forward(in, in, in, y, src_masks, no_weights());
      },
      frame);
  residual(options_.norm_first, norm2_, dropout2_, as_input(a), b, feed_forward(ff_), frame);
  detail::copy_rows(b.rows, out);  // last: out may be src
}

// ---- decoder layer -------------------------------------------------------------

TransformerDecoderLayer::TransformerDecoderLayer(int64_t d_model, int64_t nhead,
                                                 const TransformerLayerOptions& o)
    : options_(o),
      self_attn_(d_model, nhead, attention_options(o)),
      multihead_attn_(d_model, nhead, attention_options(o)),
      ff_(d_model, o.dim_feedforward, o.activation, o.dropout, o.bias),
      norm1_(d_model, o.layer_norm_eps, true, o.bias),
      norm2_(d_model, o.layer_norm_eps, true, o.bias),
      norm3_(d_model, o.layer_norm_eps, true, o.bias),
      dropout1_(o.dropout),
      dropout2_(o.dropout),
      dropout3_(o.dropout) {}

void TransformerDecoderLayer::for_each_child(const ChildFn& fn) {
  fn("self_attn", self_attn_);
  fn("multihead_attn", multihead_attn_);
  ff_.for_each_child(fn);
  fn("norm1", norm1_);
  fn("norm2", norm2_);
  fn("norm3", norm3_);
  fn("dropout1", dropout1_);
  fn("dropout2", dropout2_);
  fn("dropout3", dropout3_);
}

template <class SelfAttention, class CrossAttention>
void TransformerDecoderLayer::run(View<const float, 3> tgt, View<float, 3> out,
                                  const SelfAttention& sa, const CrossAttention& ca) const {
  if (out.shape() != tgt.shape())
    throw Error("out", shape_string(tgt.shape()) + " (as tgt)", shape_string(out.shape()));
  Arena::Frame frame(thread_arena());
  const Seq<const float> x = input_of(tgt, frame);  // (T, N, E) and (T*N, E) rows
  const Seq<float> a = scratch_like(tgt.shape(), frame), b = scratch_like(tgt.shape(), frame),
                   c = scratch_like(tgt.shape(), frame);
  residual(options_.norm_first, norm1_, dropout1_, x, a, sa, frame);
  residual(options_.norm_first, norm2_, dropout2_, as_input(a), b, ca, frame);
  residual(options_.norm_first, norm3_, dropout3_, as_input(b), c, feed_forward(ff_), frame);
  detail::copy_rows(c.rows, out);  // last: out may be tgt
}

void TransformerDecoderLayer::forward(View<const float, 3> tgt, View<const float, 3> memory,
                                      View<float, 3> out, const AttentionMasks& tgt_masks,
                                      const AttentionMasks& memory_masks) const {
  detail::check_decoder_call(tgt, memory, tgt_masks, memory_masks, d_model(),
                             self_attn_.num_heads(), options_.batch_first);
  run(
      tgt, out,
      [&](View<const float, 3> x, View<float, 3> y) {
        self_attn_.forward(x, x, x, y, tgt_masks, no_weights());
      },
      [&](View<const float, 3> x, View<float, 3> y) {
        multihead_attn_.forward(x, memory, memory, y, memory_masks, no_weights());
      });
}

void TransformerDecoderLayer::decode_step(View<const float, 3> tgt, View<float, 3> out,
                                          KvCache::Layer& cache, std::span<const int64_t> lengths,
                                          const Mask& self_mask, const Mask& memory_mask) const {
  const bool bf = options_.batch_first;
  const int64_t t = bf ? tgt.size(1) : tgt.size(0), n = bf ? tgt.size(0) : tgt.size(1);
  const int64_t hkv = self_attn_.num_kv_heads(), d = self_attn_.head_dim();
  int64_t lk = 0;
  for (int64_t len : lengths) lk = std::max(lk, len + t);
  run(
      tgt, out,
      [&](View<const float, 3> x, View<float, 3> y) {
        // The new tokens' keys and values, into the cache after each sequence's past.
        Arena::Frame frame(thread_arena());
        const View<float, 4> k_new(frame.alloc<float>(n * hkv * t * d), {n, hkv, t, d});
        const View<float, 4> v_new(frame.alloc<float>(n * hkv * t * d), {n, hkv, t, d});
        self_attn_.project_kv(x, x, k_new, v_new);
        const View<float, 4> k_all = cache.k.view<4>(), v_all = cache.v.view<4>();
        for (int64_t b = 0; b < n; ++b)
          for (int64_t g = 0; g < hkv; ++g)
            for (int64_t i = 0; i < t; ++i) {
              const int64_t at = lengths[static_cast<std::size_t>(b)] + i;
              std::copy_n(k_new.row(b, g, i), d, k_all.row(b, g, at));
              std::copy_n(v_new.row(b, g, i), d, v_all.row(b, g, at));
            }
        const auto past = [&](const View<float, 4>& all) {
          return View<const float, 4>(all.data(), {n, hkv, lk, d}, all.strides());
        };
        self_attn_.attend(x, past(k_all), past(v_all), y, self_mask, no_weights());
      },
      [&](View<const float, 3> x, View<float, 3> y) {
        multihead_attn_.attend(x, cache.mem_k.view<4>(), cache.mem_v.view<4>(), y, memory_mask,
                               no_weights());
      });
}

}  // namespace maskattn::nn
