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

// keys (N, Hkv, S', D) -> its first s keys (N, Hkv, s, D).
template <class T>
View<T, 4> first_keys(const View<T, 4>& keys, int64_t s) {
  return View<T, 4>(keys.data(), {keys.size(0), keys.size(1), s, keys.size(3)}, keys.strides());
}

// The head mask of a training call, kept as float32 (the forward and the
// backward apply the same numbers); empty when there is none. Its shape is
// checked by attention().
void save_head_mask(const AnyView& head_mask, Tensor<float>& saved) {
  if (head_mask.empty()) {
    saved = Tensor<float>();
    return;
  }
  if (!head_mask.is_float())
    throw Error("head_mask", "float32 or float64 multipliers (H) or (N, H)", head_mask.describe());
  ensure_shape(saved, head_mask.shape);
  float* to = saved.data();
  for_each_index(head_mask.shape, [&](std::span<const int64_t> index) {
    *to++ = static_cast<float>(head_mask.at(index));
  });
}

// saved holds what the training forward records for q (N, H, L, D) and k, v
// (N, Hkv, S', D) of `rows` query rows.
void check_saved(const MultiheadAttention::Saved& saved, const std::vector<int64_t>& q_shape,
                 const std::vector<int64_t>& kv_shape, int64_t rows) {
  const auto shaped = [](const Tensor<float>& t, const std::vector<int64_t>& want) {
    return t.data() != nullptr && t.shape() == want;
  };
  const int64_t e = q_shape[1] * q_shape[3];
  if (shaped(saved.q, q_shape) && shaped(saved.k, kv_shape) && shaped(saved.v, kv_shape) &&
      shaped(saved.attn, {rows, e}) && shaped(saved.lse, {q_shape[0], q_shape[1], q_shape[2]}))
    return;
  throw Error("saved",
              fmt::format("what forward(..., saved) recorded for these query and key: q {}, "
                          "k and v {}",
                          shape_string(q_shape), shape_string(kv_shape)),
              saved.q.data() == nullptr ? std::string("nothing (the training forward has not run)")
                                        : fmt::format("q {}, k {}", shape_string(saved.q.shape()),
                                                      shape_string(saved.k.shape())));
}

// One input projection's backward: its input x, weight slice and output
// gradient dy; where its weight and bias gradients add (dbias may be null)
// and its dx (empty: not wanted).
struct InputGrad {
  View<const float, 3> x;
  const float* weight;
  View<const float, 2> dy;  // (rows, out)
  float *dweight, *dbias;
  View<float, 3> dx;
};

bool same_view(const View<float, 3>& a, const View<float, 3>& b) {
  return a.data() == b.data() && a.shape() == b.shape() && a.strides() == b.strides();
}

// dW += dy^T x, db += sum dy, dx = dy W for the q, k and v projections; the
// ones whose dx is the same View add into it (self-attention's one input).
void inputs_backward(const std::array<InputGrad, 3>& inputs, Arena::Frame& frame) {
  std::array<bool, 3> done{};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (done[i]) continue;
    const InputGrad& in = inputs[i];
    if (in.dx.empty()) {
      detail::project_backward(detail::as_rows(in.x, frame), in.weight, in.dy, {}, in.dweight,
                               in.dbias, false);
      continue;
    }
    detail::write_rows(in.dx, frame, [&](View<float, 2> dx_rows) {
      bool first = true;
      for (std::size_t j = i; j < inputs.size(); ++j) {
        const InputGrad& other = inputs[j];
        if (done[j] || !same_view(other.dx, in.dx)) continue;
        detail::project_backward(detail::as_rows(other.x, frame), other.weight, other.dy, dx_rows,
                                 other.dweight, other.dbias, !first);
        first = false;
        done[j] = true;
      }
    });
  }
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

MultiheadAttention::CallDims MultiheadAttention::check_inputs(View<const float, 3> query,
                                                              View<const float, 3> key,
                                                              View<const float, 3> value) const {
  const bool bf = options_.batch_first;
  const int64_t e = embed_dim_;
  const int64_t l = bf ? query.size(1) : query.size(0);
  const int64_t n = bf ? query.size(0) : query.size(1);
  const int64_t s = bf ? key.size(1) : key.size(0);
  if (query.size(2) != e)
    throw Error("query", fmt::format("{}{}) with E = embed_dim", bf ? "(N, L, " : "(L, N, ", e),
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
  return {n, l, s};
}

void MultiheadAttention::forward(View<const float, 3> query, View<const float, 3> key,
                                 View<const float, 3> value, View<float, 3> out,
                                 const AttentionMasks& masks, const MultiheadAttentionCall& call,
                                 View<float, 4> weights) const {
  forward_impl(query, key, value, out, masks, call, weights, nullptr);
}

void MultiheadAttention::forward(View<const float, 3> query, View<const float, 3> key,
                                 View<const float, 3> value, View<float, 3> out,
                                 const AttentionMasks& masks, const MultiheadAttentionCall& call,
                                 Saved& saved) const {
  MultiheadAttentionCall train_call = call;
  train_call.need_weights = false;
  forward_impl(query, key, value, out, masks, train_call, {}, &saved);
}

void MultiheadAttention::forward_impl(View<const float, 3> query, View<const float, 3> key,
                                      View<const float, 3> value, View<float, 3> out,
                                      const AttentionMasks& masks,
                                      const MultiheadAttentionCall& call, View<float, 4> weights,
                                      Saved* saved) const {
  const bool bf = options_.batch_first;
  const int64_t e = embed_dim_, h = num_heads_, hkv = num_kv_heads_, d = head_dim();
  const int64_t ekv = hkv * d;
  const auto [n, l, s] = check_inputs(query, key, value);
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
  View<const float, 4> q4 = detail::heads(q_rows, ldq, 0, qs, h, d);     // (N, H, L, D)
  View<const float, 4> k4 = detail::heads(k_rows, ldkv, 0, ks, hkv, d);  // (N, Hkv, S, D)
  View<const float, 4> v4 = detail::heads(v_rows, ldkv, 0, ks, hkv, d);
  if (saved != nullptr) {
    // The training forward attends from its saved copies, per head.
    ensure_shape(saved->q, {n, h, l, d});
    detail::copy_heads(q4, saved->q.view<4>());
    q4 = saved->q.view<4>();
  }

  // ---- extra keys: bias_k/bias_v (add_bias_kv), then zeros (add_zero_attn) ----
  // (k and v are copied into saved, extended or not.)
  if (s2 != s || saved != nullptr) {
    View<float, 4> k_ext, v_ext;  // (N, Hkv, S', D)
    if (saved != nullptr) {
      ensure_shape(saved->k, {n, hkv, s2, d});
      ensure_shape(saved->v, {n, hkv, s2, d});
      k_ext = saved->k.view<4>(), v_ext = saved->v.view<4>();
    } else {
      k_ext = View<float, 4>(frame.alloc<float>(n * hkv * s2 * d), {n, hkv, s2, d});
      v_ext = View<float, 4>(frame.alloc<float>(n * hkv * s2 * d), {n, hkv, s2, d});
    }
    detail::copy_heads(k4, first_keys(k_ext, s));
    detail::copy_heads(v4, first_keys(v_ext, s));
    for (int64_t b = 0; b < n; ++b)
      for (int64_t g = 0; g < hkv; ++g) {
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
  if (saved != nullptr) saved->mask = mask;

  attend_heads(q4, k4, v4, mask, call, weights, out, saved);
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
  detail::copy_heads(k4, k_out);
  detail::copy_heads(v4, v_out);
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
                                      View<float, 3> out, Saved* saved) const {
  const int64_t e = embed_dim_, h = num_heads_, d = head_dim();
  const int64_t n = q4.size(0), l = q4.size(2), s2 = k4.size(2);
  const detail::SeqLayout qs{l, n, options_.batch_first};
  Arena::Frame frame(thread_arena());
  // Attention into (L*N, E) rows, heads side by side as torch concatenates them.
  float* attn_rows = nullptr;
  View<float, 3> lse;  // (N, H, L), for the backward
  if (saved != nullptr) {
    ensure_shape(saved->attn, {qs.rows(), e});
    ensure_shape(saved->lse, {n, h, l});
    attn_rows = saved->attn.data();
    lse = saved->lse.view<3>();
  } else {
    attn_rows = frame.alloc<float>(qs.rows() * e);
  }
  const View<float, 4> attn_out = detail::heads(attn_rows, e, 0, qs, h, d);
  AttentionOptions opts;
  if (training() && options_.dropout > 0.0) {
    opts.dropout_p = static_cast<float>(options_.dropout);
    opts.seed = next_draw_seed();
  }
  opts.head_mask = call.head_mask;
  if (saved != nullptr) {
    saved->dropout_p = opts.dropout_p;
    saved->seed = opts.seed;
    save_head_mask(call.head_mask, saved->head_mask);
    if (saved->head_mask.data() != nullptr) opts.head_mask = saved->head_mask;
  }
  View<float, 4> per_head;  // (N, H, L, S')
  if (call.need_weights)
    per_head = call.average_attn_weights
                   ? View<float, 4>(frame.alloc<float>(n * h * l * s2), {n, h, l, s2})
                   : weights;
  attention(q4, k4, v4, attn_out, mask, opts, per_head, lse);
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

void MultiheadAttention::backward(View<const float, 3> query, View<const float, 3> key,
                                  View<const float, 3> value, const Saved& saved,
                                  View<const float, 3> dout, View<float, 3> dquery,
                                  View<float, 3> dkey, View<float, 3> dvalue,
                                  Gradients& grads) const {
  const bool bf = options_.batch_first;
  const int64_t e = embed_dim_, h = num_heads_, hkv = num_kv_heads_, d = head_dim();
  const int64_t ekv = hkv * d;
  const auto [n, l, s] = check_inputs(query, key, value);
  const int64_t s2 = key_len(s);
  const detail::SeqLayout qs{l, n, bf}, ks{s, n, bf};
  check_saved(saved, {n, h, l, d}, {n, hkv, s2, d}, qs.rows());
  if (dout.shape() != query.shape())
    throw Error("dout", shape_string(query.shape()) + " (as query)", shape_string(dout.shape()));
  const auto check_grad = [](const View<float, 3>& g, const View<const float, 3>& x,
                             const char* name, const char* like) {
    if (!g.empty() && g.shape() != x.shape())
      throw Error(name, fmt::format("{} (as {}) or empty", shape_string(x.shape()), like),
                  shape_string(g.shape()));
  };
  check_grad(dquery, query, "dquery", "query");
  check_grad(dkey, key, "dkey", "key");
  check_grad(dvalue, value, "dvalue", "value");

  Arena::Frame frame(thread_arena());

  // ---- out_proj: d_attn = dout W_o; dW_o += dout^T attn; db_o += sum dout ------
  const View<const float, 2> attn(saved.attn.data(), {qs.rows(), e});  // (L*N, E)
  float* d_attn = frame.alloc<float>(qs.rows() * e);                   // (L*N, E)
  out_proj_.backward(attn, {}, detail::as_rows(dout, frame), View<float, 2>(d_attn, {qs.rows(), e}),
                     grads);

  // ---- attention: dq as rows like q's, dk and dv as rows like k's ---------------
  float* dq = frame.alloc<float>(qs.rows() * e);    // (L*N, E)
  float* dk = frame.alloc<float>(ks.rows() * ekv);  // (S*N, Ekv)
  float* dv = frame.alloc<float>(ks.rows() * ekv);
  const View<float, 4> dk_rows = detail::heads(dk, ekv, 0, ks, hkv, d);  // (N, Hkv, S, D)
  const View<float, 4> dv_rows = detail::heads(dv, ekv, 0, ks, hkv, d);
  View<float, 4> dk4 = dk_rows, dv4 = dv_rows;  // (N, Hkv, S', D)
  if (s2 != s) {
    dk4 = View<float, 4>(frame.alloc<float>(n * hkv * s2 * d), {n, hkv, s2, d});
    dv4 = View<float, 4>(frame.alloc<float>(n * hkv * s2 * d), {n, hkv, s2, d});
  }
  AttentionOptions opts;
  opts.dropout_p = saved.dropout_p;
  opts.seed = saved.seed;
  if (saved.head_mask.data() != nullptr) opts.head_mask = saved.head_mask;
  attention_backward(saved.q.view<4>(), saved.k.view<4>(), saved.v.view<4>(),
                     detail::heads<const float>(saved.attn.data(), e, 0, qs, h, d),
                     saved.lse.view<3>(), detail::heads<const float>(d_attn, e, 0, qs, h, d),
                     detail::heads(dq, e, 0, qs, h, d), dk4, dv4, saved.mask, opts);

  // ---- the added keys: bias_k/bias_v collect theirs over the batch; the zero
  // key and value are constants ---------------------------------------------------
  if (s2 != s) {
    detail::copy_heads(first_keys(View<const float, 4>(dk4), s), dk_rows);
    detail::copy_heads(first_keys(View<const float, 4>(dv4), s), dv_rows);
    if (options_.add_bias_kv) {
      float* dbias_k = grads[bias_k_].data();  // (1, 1, Ekv)
      float* dbias_v = grads[bias_v_].data();
      for (int64_t g = 0; g < hkv; ++g)
        for (int64_t c = 0; c < d; ++c) {
          double sum_k = 0.0, sum_v = 0.0;
          for (int64_t b = 0; b < n; ++b) sum_k += dk4(b, g, s, c), sum_v += dv4(b, g, s, c);
          dbias_k[g * d + c] += static_cast<float>(sum_k);
          dbias_v[g * d + c] += static_cast<float>(sum_v);
        }
    }
  }

  // ---- input projections: dW += dy^T x, db += sum dy, dx = dy W -----------------
  const Projections p = projections();
  float *dwq, *dwk, *dwv;
  if (packed()) {
    dwq = grads[in_proj_weight_].data();  // [dW_q; dW_k; dW_v]
    dwk = dwq + e * e;
    dwv = dwk + ekv * e;
  } else {
    dwq = grads[q_proj_weight_].data();
    dwk = grads[k_proj_weight_].data();
    dwv = grads[v_proj_weight_].data();
  }
  float *dbq = nullptr, *dbk = nullptr, *dbv = nullptr;
  if (in_proj_bias_.numel() > 0) {
    dbq = grads[in_proj_bias_].data();
    dbk = dbq + e;
    dbv = dbk + ekv;
  }
  inputs_backward(
      {InputGrad{query, p.wq, View<const float, 2>(dq, {qs.rows(), e}), dwq, dbq, dquery},
       InputGrad{key, p.wk, View<const float, 2>(dk, {ks.rows(), ekv}), dwk, dbk, dkey},
       InputGrad{value, p.wv, View<const float, 2>(dv, {ks.rows(), ekv}), dwv, dbv, dvalue}},
      frame);
}

}  // namespace maskattn::nn
