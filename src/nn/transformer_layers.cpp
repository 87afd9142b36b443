#include "maskattn/nn/transformer_layers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <vector>

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

// A saved (rows, E) tensor as an activation of `shape` (reshaped to it).
Seq<float> kept(Tensor<float>& t, const std::array<int64_t, 3>& shape) {
  const int64_t rows = shape[0] * shape[1];
  ensure_shape(t, {rows, shape[2]});
  return {View<float, 3>(t.data(), shape), View<float, 2>(t.data(), {rows, shape[2]})};
}
Seq<const float> kept(const Tensor<float>& t, const std::array<int64_t, 3>& shape) {
  const int64_t rows = shape[0] * shape[1];
  if (t.shape() != std::vector<int64_t>{rows, shape[2]})
    throw Error("saved",
                fmt::format("the activations of a forward of shape {}", shape_string(shape)),
                shape_string(t.shape()));
  return {View<const float, 3>(t.data(), shape), View<const float, 2>(t.data(), {rows, shape[2]})};
}

// A block's output: into `saved` (training) or scratch.
Seq<float> block_output(const std::array<int64_t, 3>& shape, ResidualSaved* saved,
                        Arena::Frame& frame) {
  return saved ? kept(saved->out, shape) : scratch_like(shape, frame);
}

// One residual sublayer in torch's order, into y (which must not be x):
//   norm_first: y = x + dropout(f(norm(x)))
//   otherwise:  y = norm(x + dropout(f(x)))
// With `saved`, what residual_backward needs is kept there.
void residual(bool norm_first, const LayerNorm& norm, const Dropout& dropout,
              const Seq<const float>& x, const Seq<float>& y, const Sublayer& f,
              ResidualSaved* saved, Arena::Frame& frame) {
  const auto& shape = x.seq.shape();
  Dropout::Saved dropped;
  Dropout::Saved& drop = saved ? saved->dropout : dropped;
  // Post-norm: r = x + dropout(f(x)) is built in y, or in saved->normed when
  // the backward needs it.
  const Seq<float> r = !norm_first && saved ? kept(saved->normed, shape) : y;
  if (norm_first) {
    const Seq<float> normed = saved ? kept(saved->normed, shape) : scratch_like(shape, frame);
    if (saved)
      norm.forward(x.rows, normed.rows, saved->norm);
    else
      norm.forward(x.rows, normed.rows);
    f(normed.seq, y.seq);
  } else {
    f(x.seq, r.seq);
  }
  dropout.forward(r.rows, r.rows, drop);
  detail::add_rows(r.rows, x.rows);
  if (norm_first) return;
  if (saved)
    norm.forward(r.rows, y.rows, saved->norm);
  else
    norm.forward(y.rows, y.rows);
}

Seq<const float> as_input(const Seq<float>& y) { return {y.seq, y.rows}; }

// A sublayer's backward: din = (d f / d in)^T ds, written; parameters'
// gradients added.
using SublayerBackward = std::function<void(const Seq<const float>& in, const Seq<const float>& ds,
                                            const Seq<float>& din)>;

// dy (rows) -> dx (written) through one residual block whose input was x.
void residual_backward(bool norm_first, const LayerNorm& norm, const Dropout& dropout,
                       const Seq<const float>& x, const ResidualSaved& saved,
                       View<const float, 2> dy, const Seq<float>& dx, const SublayerBackward& f,
                       Gradients& grads, Arena::Frame& frame) {
  const auto& shape = x.seq.shape();
  const Seq<float> ds = scratch_like(shape, frame);
  if (norm_first) {
    // y = x + dropout(f(z)), z = norm(x): dx = dy + norm'(f'(dropout'(dy))).
    dropout.backward(saved.dropout, dy, ds.rows);
    const Seq<float> dz = scratch_like(shape, frame);
    f(kept(saved.normed, shape), as_input(ds), dz);
    norm.backward(x.rows, saved.norm, dz.rows, dx.rows, grads);
    detail::add_rows(dx.rows, dy);
  } else {
    // y = norm(r), r = x + dropout(f(x)): dr = norm'(dy), dx = dr + f'(dropout'(dr)).
    const Seq<float> dr = scratch_like(shape, frame);
    norm.backward(kept(saved.normed, shape).rows, saved.norm, dy, dr.rows, grads);
    dropout.backward(saved.dropout, dr.rows, ds.rows);
    f(x, as_input(ds), dx);
    detail::add_rows(dx.rows, dr.rows);
  }
}

// The gradient of an input, from the layer's (A*B, E) rows into `dst` (any
// strides; empty: not wanted).
void write_input_gradient(const Seq<float>& d, View<float, 3> dst) {
  if (dst.data() != nullptr) detail::copy_rows(d.rows, dst);
}

void check_gradient_views(const char* what, const std::array<int64_t, 3>& shape,
                          View<const float, 3> dout, View<float, 3> dinput, const char* din_name) {
  if (dout.shape() != shape)
    throw Error("dout", fmt::format("{} (as {})", shape_string(shape), what),
                shape_string(dout.shape()));
  if (dinput.data() != nullptr && dinput.shape() != shape)
    throw Error(din_name, fmt::format("{} (as {})", shape_string(shape), what),
                shape_string(dinput.shape()));
}

// The feed-forward net as a sublayer (per token: on the rows); with `saved`,
// its training forward.
Sublayer feed_forward(const FeedForward& ff, FeedForward::Saved* saved = nullptr) {
  return [&ff, saved](View<const float, 3> in, View<float, 3> out) {
    Arena::Frame frame(thread_arena());
    const View<const float, 2> x = detail::as_rows(in, frame);
    detail::write_rows(out, frame, [&](View<float, 2> y) {
      if (saved)
        ff.forward(x, y, *saved);
      else
        ff.forward(x, y);
    });
  };
}

SublayerBackward feed_forward_backward(const FeedForward& ff, const FeedForward::Saved& saved,
                                       Gradients& grads) {
  return [&](const Seq<const float>& in, const Seq<const float>& ds, const Seq<float>& din) {
    ff.backward(in.rows, saved, ds.rows, din.rows, grads);
  };
}

// The self-attention of x as a sublayer's backward: x is query, key and
// value, its gradient their sum (one View for the three).
SublayerBackward self_attention_backward(const MultiheadAttention& mha,
                                         const MultiheadAttention::Saved& saved, Gradients& grads) {
  return [&](const Seq<const float>& in, const Seq<const float>& ds, const Seq<float>& din) {
    mha.backward(in.seq, in.seq, in.seq, saved, ds.seq, din.seq, din.seq, din.seq, grads);
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
  forward_impl(src, out, src_masks, nullptr);
}

void TransformerEncoderLayer::forward(View<const float, 3> src, View<float, 3> out,
                                      const AttentionMasks& src_masks, Saved& saved) const {
  if (out.data() == src.data() && src.size(0) * src.size(1) * src.size(2) > 0)
    throw Error("out", "not src itself in training (the backward reads src)", "out is src");
  forward_impl(src, out, src_masks, &saved);
}

void TransformerEncoderLayer::forward_impl(View<const float, 3> src, View<float, 3> out,
                                           const AttentionMasks& src_masks, Saved* saved) const {
  detail::check_encoder_call(src, src_masks, d_model(), self_attn_.num_heads(),
                             options_.batch_first);
  if (out.shape() != src.shape())
    throw Error("out", shape_string(src.shape()) + " (as src)", shape_string(out.shape()));
  Arena::Frame frame(thread_arena());
  const Seq<const float> x = input_of(src, frame);  // (L, N, E) and (L*N, E) rows
  const Seq<float> a = block_output(src.shape(), saved ? &saved->block1 : nullptr, frame);
  const Seq<float> b = block_output(src.shape(), saved ? &saved->block2 : nullptr, frame);
  residual(
      options_.norm_first, norm1_, dropout1_, x, a,
      [&](View<const float, 3> in, View<float, 3> y) {
        if (saved)
          self_attn_.forward(in, in, in, y, src_masks, no_weights(), saved->self_attn);
        else
          self_attn_.forward(in, in, in, y, src_masks, no_weights());
      },
      saved ? &saved->block1 : nullptr, frame);
  residual(options_.norm_first, norm2_, dropout2_, as_input(a), b,
           feed_forward(ff_, saved ? &saved->ff : nullptr), saved ? &saved->block2 : nullptr,
           frame);
  detail::copy_rows(b.rows, out);  // last: out may be src
}

void TransformerEncoderLayer::backward(View<const float, 3> src, const Saved& saved,
                                       View<const float, 3> dout, View<float, 3> dsrc,
                                       Gradients& grads) const {
  const auto& shape = src.shape();
  if (src.size(2) != d_model())
    throw Error("src", fmt::format("(*, *, {})", d_model()), shape_string(shape));
  check_gradient_views("src", shape, dout, dsrc, "dsrc");
  Arena::Frame frame(thread_arena());
  const Seq<const float> x = input_of(src, frame);
  const View<const float, 2> dy = detail::as_rows(dout, frame);
  const Seq<float> da = scratch_like(shape, frame), dx = scratch_like(shape, frame);
  const bool nf = options_.norm_first;
  residual_backward(nf, norm2_, dropout2_, kept(saved.block1.out, shape), saved.block2, dy, da,
                    feed_forward_backward(ff_, saved.ff, grads), grads, frame);
  residual_backward(nf, norm1_, dropout1_, x, saved.block1, da.rows, dx,
                    self_attention_backward(self_attn_, saved.self_attn, grads), grads, frame);
  write_input_gradient(dx, dsrc);
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
                                  const SelfAttention& sa, const CrossAttention& ca,
                                  Saved* saved) const {
  if (out.shape() != tgt.shape())
    throw Error("out", shape_string(tgt.shape()) + " (as tgt)", shape_string(out.shape()));
  Arena::Frame frame(thread_arena());
  const auto& shape = tgt.shape();
  ResidualSaved* s1 = saved ? &saved->block1 : nullptr;
  ResidualSaved* s2 = saved ? &saved->block2 : nullptr;
  ResidualSaved* s3 = saved ? &saved->block3 : nullptr;
  const Seq<const float> x = input_of(tgt, frame);  // (T, N, E) and (T*N, E) rows
  const Seq<float> a = block_output(shape, s1, frame), b = block_output(shape, s2, frame),
                   c = block_output(shape, s3, frame);
  residual(options_.norm_first, norm1_, dropout1_, x, a, sa, s1, frame);
  residual(options_.norm_first, norm2_, dropout2_, as_input(a), b, ca, s2, frame);
  residual(options_.norm_first, norm3_, dropout3_, as_input(b), c,
           feed_forward(ff_, saved ? &saved->ff : nullptr), s3, frame);
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

void TransformerDecoderLayer::forward(View<const float, 3> tgt, View<const float, 3> memory,
                                      View<float, 3> out, const AttentionMasks& tgt_masks,
                                      const AttentionMasks& memory_masks, Saved& saved) const {
  detail::check_decoder_call(tgt, memory, tgt_masks, memory_masks, d_model(),
                             self_attn_.num_heads(), options_.batch_first);
  if (out.data() == tgt.data() && tgt.size(0) * tgt.size(1) * tgt.size(2) > 0)
    throw Error("out", "not tgt itself in training (the backward reads tgt)", "out is tgt");
  run(
      tgt, out,
      [&](View<const float, 3> x, View<float, 3> y) {
        self_attn_.forward(x, x, x, y, tgt_masks, no_weights(), saved.self_attn);
      },
      [&](View<const float, 3> x, View<float, 3> y) {
        multihead_attn_.forward(x, memory, memory, y, memory_masks, no_weights(),
                                saved.multihead_attn);
      },
      &saved);
}

void TransformerDecoderLayer::backward(View<const float, 3> tgt, View<const float, 3> memory,
                                       const Saved& saved, View<const float, 3> dout,
                                       View<float, 3> dtgt, View<float, 3> dmemory,
                                       Gradients& grads) const {
  const auto& shape = tgt.shape();
  if (tgt.size(2) != d_model())
    throw Error("tgt", fmt::format("(*, *, {})", d_model()), shape_string(shape));
  check_gradient_views("tgt", shape, dout, dtgt, "dtgt");
  if (dmemory.data() != nullptr && dmemory.shape() != memory.shape())
    throw Error("dmemory", shape_string(memory.shape()) + " (as memory)",
                shape_string(dmemory.shape()));
  Arena::Frame frame(thread_arena());
  const Seq<const float> x = input_of(tgt, frame);
  const View<const float, 2> dy = detail::as_rows(dout, frame);
  const Seq<float> dc = scratch_like(shape, frame), db = scratch_like(shape, frame),
                   dx = scratch_like(shape, frame);
  const bool nf = options_.norm_first;
  residual_backward(nf, norm3_, dropout3_, kept(saved.block2.out, shape), saved.block3, dy, dc,
                    feed_forward_backward(ff_, saved.ff, grads), grads, frame);
  // The cross-attention: its query is the block's input, its keys and values
  // the memory (one View for dkey and dvalue sums them).
  residual_backward(
      nf, norm2_, dropout2_, kept(saved.block1.out, shape), saved.block2, dc.rows, db,
      [&](const Seq<const float>& in, const Seq<const float>& ds, const Seq<float>& din) {
        multihead_attn_.backward(in.seq, memory, memory, saved.multihead_attn, ds.seq, din.seq,
                                 dmemory, dmemory, grads);
      },
      grads, frame);
  residual_backward(nf, norm1_, dropout1_, x, saved.block1, db.rows, dx,
                    self_attention_backward(self_attn_, saved.self_attn, grads), grads, frame);
  write_input_gradient(dx, dtgt);
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
