// maskattn.attention and attention_backward: include/maskattn/attention.hpp
// with numpy results.
#include <fmt/format.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/attention.hpp"

namespace maskattn::python {
namespace {

// q's dtype decides: k and v must be stored like it (float32 or bfloat16;
// no silent conversion of the hot path).
void check_stored_like_q(const FloatArrayArg<4>& q, const FloatArrayArg<4>& x,
                         std::string_view name, std::string_view dims) {
  if (x.is_bf16() != q.is_bf16())
    throw Error(name, fmt::format("a {} array of rank 4 {} like q", q.dtype_name(), dims),
                x.describe());
}

// The keyword options attention() and attention_backward() share.
AttentionOptions read_options(std::optional<double> scale, double dropout_p, uint64_t seed,
                              const ArrayArg& head_mask, double softcap,
                              const std::string& empty_rows, const std::string& backend) {
  AttentionOptions opts;
  if (scale) opts.scale = static_cast<float>(*scale);
  opts.dropout_p = static_cast<float>(dropout_p);
  opts.seed = seed;
  opts.head_mask = head_mask.view;
  opts.softcap = static_cast<float>(softcap);
  opts.empty_rows = read_choice<EmptyRows>(
      "empty_rows", empty_rows,
      {{"zero", EmptyRows::Zero}, {"nan", EmptyRows::NaN}, {"error", EmptyRows::Error}});
  opts.backend = read_choice<Backend>(
      "backend", backend,
      {{"auto", Backend::Auto}, {"reference", Backend::Reference}, {"flash", Backend::Flash}});
  return opts;
}

nb::object attention_py(nb::handle q_obj, nb::handle k_obj, nb::handle v_obj, nb::handle mask_obj,
                        std::optional<double> scale, double dropout_p, uint64_t seed,
                        nb::handle head_mask, double softcap, const std::string& empty_rows,
                        bool need_weights, bool return_lse, const std::string& backend) {
  constexpr std::string_view q_dims = "(B, Hq, Lq, D)", k_dims = "(B, Hkv, Lk, D)",
                             v_dims = "(B, Hkv, Lk, Dv)";
  const FloatArrayArg<4> q = read_float_array<4>(q_obj, "q", q_dims);
  const FloatArrayArg<4> k = read_float_array<4>(k_obj, "k", k_dims);
  const FloatArrayArg<4> v = read_float_array<4>(v_obj, "v", v_dims);
  check_stored_like_q(q, k, "k", k_dims);
  check_stored_like_q(q, v, "v", v_dims);
  const Mask mask = read_mask(mask_obj, "mask");
  const ArrayArg head_mask_arg = read_array(head_mask, "head_mask");

  const AttentionOptions opts =
      read_options(scale, dropout_p, seed, head_mask_arg, softcap, empty_rows, backend);

  // Output shapes come from q and v; attention() checks that they agree with k.
  const int64_t batch = q.shape()[0], hq = q.shape()[1], lq = q.shape()[2];
  const int64_t lk = k.shape()[2], dv = v.shape()[3];
  // Sizes whose product overflows name the arguments they come from, before
  // anything is allocated (q, k, v may be broadcast views of any size).
  checked_numel(std::array<int64_t, 4>{batch, hq, lq, dv}, "q, v (out is (B, Hq, Lq, Dv))");
  if (need_weights)
    checked_numel(std::array<int64_t, 4>{batch, hq, lq, lk}, "q, k (weights are (B, Hq, Lq, Lk))");
  Tensor<float> out({batch, hq, lq, dv});
  Tensor<float> weights = need_weights ? Tensor<float>({batch, hq, lq, lk}) : Tensor<float>();
  Tensor<float> lse = return_lse ? Tensor<float>({batch, hq, lq}) : Tensor<float>();
  with_keyword_names("opts.", [&] {
    nb::gil_scoped_release release;
    const View<float, 4> weights_view = need_weights ? weights.view<4>() : View<float, 4>();
    const View<float, 3> lse_view = return_lse ? lse.view<3>() : View<float, 3>();
    if (q.is_bf16())
      attention(q.bf16, k.bf16, v.bf16, out.view<4>(), mask, opts, weights_view, lse_view);
    else
      attention(q.f32, k.f32, v.f32, out.view<4>(), mask, opts, weights_view, lse_view);
  });

  if (!need_weights && !return_lse) return to_numpy(std::move(out));
  nb::list result;
  result.append(to_numpy(std::move(out)));
  if (need_weights) result.append(to_numpy(std::move(weights)));
  if (return_lse) result.append(to_numpy(std::move(lse)));
  return nb::tuple(result);
}

nb::tuple attention_backward_py(nb::handle q_obj, nb::handle k_obj, nb::handle v_obj,
                                nb::handle out_obj, nb::handle lse_obj, nb::handle dout_obj,
                                nb::handle mask_obj, std::optional<double> scale, double dropout_p,
                                uint64_t seed, nb::handle head_mask, double softcap,
                                const std::string& empty_rows, const std::string& backend) {
  constexpr std::string_view q_dims = "(B, Hq, Lq, D)", k_dims = "(B, Hkv, Lk, D)",
                             v_dims = "(B, Hkv, Lk, Dv)", out_dims = "(B, Hq, Lq, Dv)";
  // float32 only: the backward has no bfloat16 form.
  const ArrayArg q = read_array(q_obj, "q"), k = read_array(k_obj, "k"), v = read_array(v_obj, "v"),
                 out = read_array(out_obj, "out"), lse = read_array(lse_obj, "lse"),
                 dout = read_array(dout_obj, "dout");
  const View<const float, 4> qv = float32_view<4>(q, "q", q_dims),
                             kv = float32_view<4>(k, "k", k_dims),
                             vv = float32_view<4>(v, "v", v_dims),
                             outv = float32_view<4>(out, "out", out_dims),
                             doutv = float32_view<4>(dout, "dout", out_dims);
  const View<const float, 3> lsev = float32_view<3>(lse, "lse", "(B, Hq, Lq)");
  const Mask mask = read_mask(mask_obj, "mask");
  const ArrayArg head_mask_arg = read_array(head_mask, "head_mask");
  const AttentionOptions opts =
      read_options(scale, dropout_p, seed, head_mask_arg, softcap, empty_rows, backend);

  auto like = [](const View<const float, 4>& x) {
    return Tensor<float>(std::vector<int64_t>(x.shape().begin(), x.shape().end()));
  };
  Tensor<float> dq = like(qv), dk = like(kv), dv = like(vv);
  with_keyword_names("opts.", [&] {
    nb::gil_scoped_release release;
    attention_backward(qv, kv, vv, outv, lsev, doutv, dq.view<4>(), dk.view<4>(), dv.view<4>(),
                       mask, opts);
  });
  return nb::make_tuple(to_numpy(std::move(dq)), to_numpy(std::move(dk)), to_numpy(std::move(dv)));
}

}  // namespace

void bind_attention(nb::module_& m) {
  m.def("attention", &attention_py, "q"_a, "k"_a, "v"_a, "mask"_a.none() = nb::none(),
        nb::kw_only(), "scale"_a.none() = nb::none(), "dropout_p"_a = 0.0, "seed"_a = 0,
        "head_mask"_a.none() = nb::none(), "softcap"_a = 0.0, "empty_rows"_a = "zero",
        "need_weights"_a = false, "return_lse"_a = false, "backend"_a = "auto",
        R"(Scaled dot-product attention with a mask.

q (B, Hq, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv): float32 numpy arrays or
CPU torch tensors, or all three torch.bfloat16 tensors (computed in float32;
numpy has no bfloat16); any strides (read without a copy where the last
dimension is contiguous). Hq % Hkv == 0 (grouped-query attention). For each row:
  s = scale * q.k                  (scale default 1/sqrt(D))
  s = softcap * tanh(s / softcap)  (softcap > 0; before mask and bias)
  s += mask                        (bias, or -inf where masked)
  p = softmax(s) * head_mask[b, h] (head_mask (Hq,) or (B, Hq))
  p = p * keep / (1 - dropout_p)   (inverted dropout, reproducible from seed)
  out = p @ v
empty_rows says what a row with no allowed key gives: "zero" (out and weights
0, lse -inf), "nan", or "error" (ValueError naming the row).

Returns out, float32 (B, Hq, Lq, Dv); with need_weights and/or return_lse a
tuple: (out, weights), (out, lse) or (out, weights, lse); weights (B, Hq, Lq,
Lk) are the p above, lse (B, Hq, Lq) the natural-log log-sum-exp of each row's
final scores, all float32. backend: "auto" (flash), "flash" (fused, tiled
online softmax that skips what the mask removes) or "reference" (the textbook
path). The GIL is released while it computes.)");

  m.def("attention_backward", &attention_backward_py, "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a,
        "dout"_a, "mask"_a.none() = nb::none(), nb::kw_only(), "scale"_a.none() = nb::none(),
        "dropout_p"_a = 0.0, "seed"_a = 0, "head_mask"_a.none() = nb::none(), "softcap"_a = 0.0,
        "empty_rows"_a = "zero", "backend"_a = "auto",
        R"(Gradients of attention(): returns (dq, dk, dv).

q, k, v, mask and the keyword options are those of the forward call (the same
scale, dropout_p and seed — the dropout is replayed —, head_mask, softcap,
empty_rows); out (B, Hq, Lq, Dv) and lse (B, Hq, Lq) are its results
(attention(..., return_lse=True)), dout (B, Hq, Lq, Dv) the gradient of the loss
with respect to out. All float32 (numpy arrays or CPU torch tensors, any
strides). The probabilities are recomputed from lse (no (Lq, Lk) buffer in
flash). dq is like q, dk and dv like k and v: a key/value head's gradient is
summed over the query heads that read it. A row with no allowed key (lse -inf)
contributes nothing. backend as for attention(). The GIL is released while it
computes.)");
}

}  // namespace maskattn::python
