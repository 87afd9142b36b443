#include "maskattn/nn/transformer_layers.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "nn/mask_checks.hpp"
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

// A (shape of x) activation in the arena: the 3-D view attention reads and
// writes, and the same memory as (A*B, E) rows for everything else.
struct Activation3 {
  View<float, 3> seq;
  View<float, 2> rows;
};

Activation3 scratch_like(const std::array<int64_t, 3>& shape, Arena::Frame& frame) {
  float* p = frame.alloc<float>(shape[0] * shape[1] * shape[2]);
  return {View<float, 3>(p, shape), View<float, 2>(p, {shape[0] * shape[1], shape[2]})};
}

// The layer's output: out (like x) from rows. Written last, so out may be the
// layer's input.
void write_out(View<const float, 2> rows, View<float, 3> out) {
  if (detail::collapses(out)) {
    View<float, 2> dst = detail::rows_of(out);
    if (dst.data() != rows.data())
      for (int64_t r = 0; r < rows.size(0); ++r) std::copy_n(rows.row(r), rows.size(1), dst.row(r));
  } else {
    detail::copy_rows(rows, out);
  }
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
  const View<const float, 2> x = detail::as_rows(src, frame);  // (R, E), R = L*N
  const Activation3 a = scratch_like(src.shape(), frame), b = scratch_like(src.shape(), frame);

  if (options_.norm_first) {
    // a = x + dropout1(self_attn(norm1(x)))
    norm1_.forward(x, b.rows);
    self_attn_.forward(b.seq, b.seq, b.seq, a.seq, src_masks, no_weights());
    dropout1_.forward(a.rows, a.rows);
    detail::add_rows(a.rows, x);
    // out = a + dropout2(ff(norm2(a)))
    norm2_.forward(a.rows, b.rows);
    const Activation3 c = scratch_like(src.shape(), frame);
    ff_.forward(b.rows, c.rows);
    dropout2_.forward(c.rows, c.rows);
    detail::add_rows(c.rows, a.rows);
    write_out(c.rows, out);
  } else {
    // a = norm1(x + dropout1(self_attn(x)))
    self_attn_.forward(src, src, src, a.seq, src_masks, no_weights());
    dropout1_.forward(a.rows, a.rows);
    detail::add_rows(a.rows, x);
    norm1_.forward(a.rows, a.rows);
    // out = norm2(a + dropout2(ff(a)))
    ff_.forward(a.rows, b.rows);
    dropout2_.forward(b.rows, b.rows);
    detail::add_rows(b.rows, a.rows);
    norm2_.forward(b.rows, b.rows);
    write_out(b.rows, out);
  }
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
  const View<const float, 2> x = detail::as_rows(tgt, frame);  // (R, E), R = T*N
  const Activation3 a = scratch_like(tgt.shape(), frame), b = scratch_like(tgt.shape(), frame),
                    c = scratch_like(tgt.shape(), frame);

  if (options_.norm_first) {
    // a = x + dropout1(self_attn(norm1(x)))
    norm1_.forward(x, b.rows);
    sa(b.seq, a.seq);
    dropout1_.forward(a.rows, a.rows);
    detail::add_rows(a.rows, x);
    // b = a + dropout2(multihead_attn(norm2(a), memory))
    norm2_.forward(a.rows, c.rows);
    ca(c.seq, b.seq);
    dropout2_.forward(b.rows, b.rows);
    detail::add_rows(b.rows, a.rows);
    // out = b + dropout3(ff(norm3(b)))
    norm3_.forward(b.rows, c.rows);
    ff_.forward(c.rows, a.rows);
    dropout3_.forward(a.rows, a.rows);
    detail::add_rows(a.rows, b.rows);
    write_out(a.rows, out);
  } else {
    // a = norm1(x + dropout1(self_attn(x)))
    sa(tgt, a.seq);
    dropout1_.forward(a.rows, a.rows);
    detail::add_rows(a.rows, x);
    norm1_.forward(a.rows, a.rows);
    // b = norm2(a + dropout2(multihead_attn(a, memory)))
    ca(a.seq, b.seq);
    dropout2_.forward(b.rows, b.rows);
    detail::add_rows(b.rows, a.rows);
    norm2_.forward(b.rows, b.rows);
    // out = norm3(b + dropout3(ff(b)))
    ff_.forward(b.rows, c.rows);
    dropout3_.forward(c.rows, c.rows);
    detail::add_rows(c.rows, b.rows);
    norm3_.forward(c.rows, c.rows);
    write_out(c.rows, out);
  }
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
