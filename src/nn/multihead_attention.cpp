#include "maskattn/nn/multihead_attention.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "maskattn/attention.hpp"
#include "nn/attention_masks.hpp"
#include "nn/init.hpp"
#include "nn/projection.hpp"
#include "nn/rows.hpp"

namespace maskattn::nn {
namespace {

using maskattn::detail::Arena;
using maskattn::detail::thread_arena;

// weights is what `call` asks for: (N, 1 or H, L, S').
void check_weights(const MultiheadAttentionCall& call, const View<float, 4>& weights, int64_t n,
                   int64_t h, int64_t l, int64_t s) {
  if (!call.need_weights) return;
  const std::array<int64_t, 4> want{n, call.average_attn_weights ? 1 : h, l, s};
  if (weights.shape() != want || weights.data() == nullptr)
    throw Error("weights", shape_string(want),
                weights.empty() ? "nothing" : shape_string(weights.shape()));
}

// The cached paths take keys as they are: the extra keys of add_bias_kv /
// add_zero_attn would have to be cached too (torch's decoder layers never
// use them).
void check_no_extra_keys(const MultiheadAttentionOptions& o, const char* what) {
  if (o.add_bias_kv || o.add_zero_attn)
    throw Error(fmt::format("MultiheadAttention::{}", what),
                "a module without add_bias_kv and add_zero_attn", "one with them");
}

}  // namespace

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads,
                                       const MultiheadAttentionOptions& options)
    : embed_dim_(embed_dim),
      num_heads_(num_heads),
      num_kv_heads_(options.num_kv_heads.value_or(num_heads)),
      kdim_(options.kdim.value_or(embed_dim)),
      vdim_(options.vdim.value_or(embed_dim)),
      options_(options),
      out_proj_(std::max<int64_t>(embed_dim, 1), std::max<int64_t>(embed_dim, 1), options.bias) {
  if (embed_dim < 1 || num_heads < 1 || embed_dim % num_heads != 0)
    throw Error("MultiheadAttention",
                "embed_dim >= 1 divisible by num_heads >= 1 (integer head_dim)",
                fmt::format("embed_dim = {}, num_heads = {}", embed_dim, num_heads));
  if (num_kv_heads_ < 1 || num_heads % num_kv_heads_ != 0)
    throw Error("MultiheadAttention: num_kv_heads",
                fmt::format("a divisor of num_heads = {}", num_heads),
                std::to_string(num_kv_heads_));
  if (kdim_ < 1 || vdim_ < 1)
    throw Error("MultiheadAttention: kdim, vdim", ">= 1", fmt::format("{}, {}", kdim_, vdim_));
  if (!(options.dropout >= 0.0 && options.dropout < 1.0))
    throw Error("MultiheadAttention: dropout", "a probability in [0, 1)",
                fmt::format("{}", options.dropout));

  const int64_t e = embed_dim, ekv = num_kv_heads_ * head_dim();
  const uint64_t s = seed_value();
  if (kdim_ == e && vdim_ == e) {
    in_proj_weight_ = Tensor<float>({e + 2 * ekv, e});
    detail::init_xavier_uniform(in_proj_weight_, s);
  } else {
    q_proj_weight_ = Tensor<float>({e, e});
    k_proj_weight_ = Tensor<float>({ekv, kdim_});
    v_proj_weight_ = Tensor<float>({ekv, vdim_});
    detail::init_xavier_uniform(q_proj_weight_, s);
    detail::init_xavier_uniform(k_proj_weight_, s + 1);
    detail::init_xavier_uniform(v_proj_weight_, s + 2);
  }
  if (options.bias) {
    in_proj_bias_ = Tensor<float>({e + 2 * ekv});  // zeros, as torch
    detail::init_constant(out_proj_.bias(), 0.0f);
  }
  if (options.add_bias_kv) {
    // xavier_normal_ of a (1, 1, Ekv) tensor: std = sqrt(2 / (Ekv + Ekv)).
    bias_k_ = Tensor<float>({1, 1, ekv});
    bias_v_ = Tensor<float>({1, 1, ekv});
    const double std = 1.0 / std::sqrt(static_cast<double>(ekv));
    detail::init_normal(bias_k_, 0.0, std, s + 3);
    detail::init_normal(bias_v_, 0.0, std, s + 4);
  }
}

void MultiheadAttention::for_each_param(const ParamFn& fn) {
  if (packed()) {
    fn("in_proj_weight", in_proj_weight_);
  } else {
    fn("q_proj_weight", q_proj_weight_);
    fn("k_proj_weight", k_proj_weight_);
    fn("v_proj_weight", v_proj_weight_);
  }
  if (in_proj_bias_.numel() > 0) fn("in_proj_bias", in_proj_bias_);
  if (bias_k_.numel() > 0) {
    fn("bias_k", bias_k_);
    fn("bias_v", bias_v_);
  }
}

void MultiheadAttention::for_each_child(const ChildFn& fn) { fn("out_proj", out_proj_); }

MultiheadAttention::Projections MultiheadAttention::projections() const noexcept {
  // Packed: in_proj_weight = [W_q; W_k; W_v], in_proj_bias = [b_q; b_k; b_v].
  const int64_t e = embed_dim_, ekv = num_kv_heads_ * head_dim();
  Projections p{};
  if (packed()) {
    p.wq = in_proj_weight_.data();
    p.wk = p.wq + e * e;
    p.wv = p.wk + ekv * e;
  } else {
    p.wq = q_proj_weight_.data();
    p.wk = k_proj_weight_.data();
    p.wv = v_proj_weight_.data();
  }
  if (in_proj_bias_.numel() > 0) {
    p.bq = in_proj_bias_.data();
    p.bk = p.bq + e;
    p.bv = p.bk + ekv;
  }
  return p;
}

int64_t MultiheadAttention::key_len(int64_t source_len) const noexcept {
  return source_len + (options_.add_bias_kv ? 1 : 0) + (options_.add_zero_attn ? 1 : 0);
}

void MultiheadAttention::forward(View<const float, 3> query, View<const float, 3> key,
                                 View<const float, 3> value, View<float, 3> out,
                                 const AttentionMasks& masks, const MultiheadAttentionCall& call,
                                 View<float, 4> weights) const {
  const bool bf = options_.batch_first;
  const char* layout = bf ? "(N, L, " : "(L, N, ";
  const int64_t e = embed_dim_, h = num_heads_, hkv = num_kv_heads_, d = head_dim();
  const int64_t ekv = hkv * d;
  const int64_t l = bf ? query.size(1) : query.size(0);
  const int64_t n = bf ? query.size(0) : query.size(1);
  const int64_t s = bf ? key.size(1) : key.size(0);
  if (query.size(2) != e)
    throw Error("query", fmt::format("{}{}) with E = embed_dim", layout, e),
                shape_string(query.shape()));
  const std::array<int64_t, 3> key_shape =
      bf ? std::array<int64_t, 3>{n, s, kdim_} : std::array<int64_t, 3>{s, n, kdim_};
  if (key.shape() != key_shape)
    throw Error("key", shape_string(key_shape) + " (source length S, batch as query's, kdim)",
                shape_string(key.shape()));
  const std::array<int64_t, 3> value_shape =
      bf ? std::array<int64_t, 3>{n, s, vdim_} : std::array<int64_t, 3>{s, n, vdim_};
  if (value.shape() != value_shape)
    throw Error("value", shape_string(value_shape) + " (as key, with vdim)",
                shape_string(value.shape()));
  if (out.shape() != query.shape())
    throw Error("out", shape_string(query.shape()) + " (as query)", shape_string(out.shape()));
  const int64_t s2 = key_len(s);
  check_weights(call, weights, n, h, l, s2);
  detail::check_attention_masks(masks, n, h, l, s, "attn_mask", "key_padding_mask");

  Arena::Frame frame(thread_arena());
  const detail::SeqLayout qs{l, n, bf}, ks{s, n, bf};

  // ---- projections: q (L*N, E), k and v (S*N, Ekv) as row matrices ----------
  const auto [wq, wk, wv, bq, bk, bv] = projections();
  const float *q_rows, *k_rows, *v_rows;
  int64_t ldq, ldkv;
  const bool self = packed() && query.data() == key.data() && key.data() == value.data() &&
                    query.shape() == key.shape() && query.strides() == key.strides() &&
                    key.strides() == value.strides();
  if (self) {
    // Self-attention: one GEMM with the whole packed weight, (L*N, E + 2*Ekv).
    const int64_t width = e + 2 * ekv;
    float* qkv = frame.alloc<float>(qs.rows() * width);
    detail::project(detail::as_rows(query, frame), wq, bq, View<float, 2>(qkv, {qs.rows(), width}));
    q_rows = qkv, k_rows = qkv + e, v_rows = qkv + e + ekv;
    ldq = ldkv = width;
  } else {
    float* q = frame.alloc<float>(qs.rows() * e);
    float* k = frame.alloc<float>(ks.rows() * ekv);
    float* v = frame.alloc<float>(ks.rows() * ekv);
    detail::project(detail::as_rows(query, frame), wq, bq, View<float, 2>(q, {qs.rows(), e}));
    detail::project(detail::as_rows(key, frame), wk, bk, View<float, 2>(k, {ks.rows(), ekv}));
    detail::project(detail::as_rows(value, frame), wv, bv, View<float, 2>(v, {ks.rows(), ekv}));
    q_rows = q, k_rows = k, v_rows = v;
    ldq = e, ldkv = ekv;
  }
  const View<const float, 4> q4 = detail::heads(q_rows, ldq, 0, qs, h, d);  // (N, H, L, D)
  View<const float, 4> k4 = detail::heads(k_rows, ldkv, 0, ks, hkv, d);     // (N, Hkv, S, D)
  View<const float, 4> v4 = detail::heads(v_rows, ldkv, 0, ks, hkv, d);

  // ---- extra keys: bias_k/bias_v (add_bias_kv), then zeros (add_zero_attn) ----
  if (s2 != s) {
    float* kx = frame.alloc<float>(n * hkv * s2 * d);
    float* vx = frame.alloc<float>(n * hkv * s2 * d);
    const View<float, 4> k_ext(kx, {n, hkv, s2, d}), v_ext(vx, {n, hkv, s2, d});
    for (int64_t b = 0; b < n; ++b)
      for (int64_t g = 0; g < hkv; ++g) {
        for (int64_t j = 0; j < s; ++j) {
          std::copy(k4.row(b, g, j), k4.row(b, g, j) + d, k_ext.row(b, g, j));
          std::copy(v4.row(b, g, j), v4.row(b, g, j) + d, v_ext.row(b, g, j));
        }
        int64_t j = s;
        if (options_.add_bias_kv) {
          std::copy_n(bias_k_.data() + g * d, d, k_ext.row(b, g, j));
          std::copy_n(bias_v_.data() + g * d, d, v_ext.row(b, g, j));
          ++j;
        }
        if (options_.add_zero_attn) {
          std::fill_n(k_ext.row(b, g, j), d, 0.0f);
          std::fill_n(v_ext.row(b, g, j), d, 0.0f);
        }
      }
    k4 = k_ext, v4 = v_ext;
  }

  // ---- the mask: torch's masks, is_causal and any Mask, over the S' keys -------
  const Mask mask = detail::combined_mask(masks, h, l, s, s2 - s, frame);

  attend_heads(q4, k4, v4, mask, call, weights, out);
}

void MultiheadAttention::project_kv(View<const float, 3> key, View<const float, 3> value,
                                    View<float, 4> k_out, View<float, 4> v_out) const {
  check_no_extra_keys(options_, "project_kv");
  const bool bf = options_.batch_first;
  const int64_t s = bf ? key.size(1) : key.size(0), n = bf ? key.size(0) : key.size(1);
  const int64_t hkv = num_kv_heads_, d = head_dim(), ekv = hkv * d;
  if (key.size(2) != kdim_ ||
      value.shape() != std::array<int64_t, 3>{key.size(0), key.size(1), vdim_})
    throw Error("project_kv: key, value",
                fmt::format("{}S, N, {}) and ({}S, N, {}) alike", bf ? "(N, S / " : "(", kdim_,
                            bf ? "(N, S / " : "(", vdim_),
                fmt::format("{} and {}", shape_string(key.shape()), shape_string(value.shape())));
  const std::array<int64_t, 4> want{n, hkv, s, d};
  if (k_out.shape() != want || v_out.shape() != want)
    throw Error("project_kv: k_out, v_out", shape_string(want),
                fmt::format("{} and {}", shape_string(k_out.shape()), shape_string(v_out.shape())));
  Arena::Frame frame(thread_arena());
  const Projections p = projections();
  const detail::SeqLayout ks{s, n, bf};
  float* k = frame.alloc<float>(ks.rows() * ekv);
  float* v = frame.alloc<float>(ks.rows() * ekv);
  detail::project(detail::as_rows(key, frame), p.wk, p.bk, View<float, 2>(k, {ks.rows(), ekv}));
  detail::project(detail::as_rows(value, frame), p.wv, p.bv, View<float, 2>(v, {ks.rows(), ekv}));
  const View<const float, 4> k4 = detail::heads<const float>(k, ekv, 0, ks, hkv, d);
  const View<const float, 4> v4 = detail::heads<const float>(v, ekv, 0, ks, hkv, d);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t g = 0; g < hkv; ++g)
      for (int64_t j = 0; j < s; ++j) {
        std::copy_n(k4.row(b, g, j), d, k_out.row(b, g, j));
        std::copy_n(v4.row(b, g, j), d, v_out.row(b, g, j));
      }
}

void MultiheadAttention::attend(View<const float, 3> query, View<const float, 4> k,
                                View<const float, 4> v, View<float, 3> out, const Mask& mask,
                                const MultiheadAttentionCall& call, View<float, 4> weights) const {
  check_no_extra_keys(options_, "attend");
  const bool bf = options_.batch_first;
  const int64_t l = bf ? query.size(1) : query.size(0), n = bf ? query.size(0) : query.size(1);
  const int64_t e = embed_dim_, h = num_heads_, d = head_dim();
  if (query.size(2) != e)
    throw Error("attend: query",
                fmt::format("{}{}) with E = embed_dim", bf ? "(N, L, " : "(L, N, ", e),
                shape_string(query.shape()));
  if (out.shape() != query.shape())
    throw Error("attend: out", shape_string(query.shape()) + " (as query)",
                shape_string(out.shape()));
  check_weights(call, weights, n, h, l, k.size(2));
  // k, v: checked by attention() against q's (N, H, L, D).
  Arena::Frame frame(thread_arena());
  const detail::SeqLayout qs{l, n, bf};
  const Projections p = projections();
  float* q = frame.alloc<float>(qs.rows() * e);
  detail::project(detail::as_rows(query, frame), p.wq, p.bq, View<float, 2>(q, {qs.rows(), e}));
  attend_heads(detail::heads<const float>(q, e, 0, qs, h, d), k, v, mask, call, weights, out);
}

void MultiheadAttention::attend_heads(View<const float, 4> q4, View<const float, 4> k4,
                                      View<const float, 4> v4, const Mask& mask,
                                      const MultiheadAttentionCall& call, View<float, 4> weights,
                                      View<float, 3> out) const {
  const int64_t e = embed_dim_, h = num_heads_, d = head_dim();
  const int64_t n = q4.size(0), l = q4.size(2), s2 = k4.size(2);
  const detail::SeqLayout qs{l, n, options_.batch_first};
  Arena::Frame frame(thread_arena());
  // Attention into (L*N, E) rows, heads side by side as torch concatenates them.
  float* attn_rows = frame.alloc<float>(qs.rows() * e);
  const View<float, 4> attn_out = detail::heads(attn_rows, e, 0, qs, h, d);
  AttentionOptions opts;
  if (training() && options_.dropout > 0.0) {
    opts.dropout_p = static_cast<float>(options_.dropout);
    opts.seed = next_draw_seed();
  }
  opts.head_mask = call.head_mask;
  View<float, 4> per_head;  // (N, H, L, S')
  if (call.need_weights)
    per_head = call.average_attn_weights
                   ? View<float, 4>(frame.alloc<float>(n * h * l * s2), {n, h, l, s2})
                   : weights;
  attention(q4, k4, v4, attn_out, mask, opts, per_head);
  if (call.need_weights && call.average_attn_weights) {
    const float inv_h = 1.0f / static_cast<float>(h);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < l; ++i) {
        float* w = weights.row(b, 0, i);
        std::fill_n(w, s2, 0.0f);
        for (int64_t g = 0; g < h; ++g) {
          const float* p = per_head.row(b, g, i);
          for (int64_t j = 0; j < s2; ++j) w[j] += p[j];
        }
        for (int64_t j = 0; j < s2; ++j) w[j] *= inv_h;
      }
  }

  // out_proj.
  const View<const float, 2> attn(attn_rows, {qs.rows(), e});
  detail::write_rows(out, frame, [&](View<float, 2> rows) { out_proj_.forward(attn, rows); });
}

}  // namespace maskattn::nn
