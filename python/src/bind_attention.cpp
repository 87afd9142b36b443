// maskattn.attention: include/maskattn/attention.hpp with numpy results.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/attention.hpp"

namespace maskattn::python {
namespace {

// A Mask, or None for no mask. Arrays are refused: their meaning of True
// depends on the library they come from, which only an adapter can say.
Mask read_mask(nb::handle obj) {
  if (obj.is_none()) return {};
  Mask m;
  if (nb::try_cast(obj, m)) return m;
  throw Error("mask",
              "a maskattn.Mask or None (wrap arrays with keep(), block() or bias(), or an "
              "adapter such as from_sdpa_mask())",
              python_type_name(obj));
}

nb::object attention_py(nb::handle q_obj, nb::handle k_obj, nb::handle v_obj, nb::handle mask_obj,
                        std::optional<double> scale, double dropout_p, uint64_t seed,
                        nb::handle head_mask, double softcap, const std::string& empty_rows,
                        bool need_weights, bool return_lse, const std::string& backend) {
  constexpr std::string_view q_dims = "(B, Hq, Lq, D)", k_dims = "(B, Hkv, Lk, D)",
                             v_dims = "(B, Hkv, Lk, Dv)";
  const ArrayArg q_arg = read_array(q_obj, "q", float32_expected(4, q_dims));
  const ArrayArg k_arg = read_array(k_obj, "k", float32_expected(4, k_dims));
  const ArrayArg v_arg = read_array(v_obj, "v", float32_expected(4, v_dims));
  const View<const float, 4> q = float32_view<4>(q_arg, "q", q_dims);
  const View<const float, 4> k = float32_view<4>(k_arg, "k", k_dims);
  const View<const float, 4> v = float32_view<4>(v_arg, "v", v_dims);
  const Mask mask = read_mask(mask_obj);
  const ArrayArg head_mask_arg = read_array(head_mask, "head_mask");

  AttentionOptions opts;
  if (scale) opts.scale = static_cast<float>(*scale);
  opts.dropout_p = static_cast<float>(dropout_p);
  opts.seed = seed;
  opts.head_mask = head_mask_arg.view;
  opts.softcap = static_cast<float>(softcap);
  opts.empty_rows = read_choice<EmptyRows>(
      "empty_rows", empty_rows,
      {{"zero", EmptyRows::Zero}, {"nan", EmptyRows::NaN}, {"error", EmptyRows::Error}});
  opts.backend = read_choice<Backend>("backend", backend,
                                      {{"auto", Backend::Auto}, {"reference", Backend::Reference}});

  // Output shapes come from q and v; attention() checks that they agree with k.
  const int64_t batch = q.size(0), hq = q.size(1), lq = q.size(2);
  const int64_t lk = k.size(2), dv = v.size(3);
  Tensor<float> out({batch, hq, lq, dv});
  Tensor<float> weights = need_weights ? Tensor<float>({batch, hq, lq, lk}) : Tensor<float>();
  Tensor<float> lse = return_lse ? Tensor<float>({batch, hq, lq}) : Tensor<float>();
  with_keyword_names("opts.", [&] {
    nb::gil_scoped_release release;
    attention(q, k, v, out.view<4>(), mask, opts,
              need_weights ? weights.view<4>() : View<float, 4>(),
              return_lse ? lse.view<3>() : View<float, 3>());
  });

  if (!need_weights && !return_lse) return to_numpy(std::move(out));
  nb::list result;
  result.append(to_numpy(std::move(out)));
  if (need_weights) result.append(to_numpy(std::move(weights)));
  if (return_lse) result.append(to_numpy(std::move(lse)));
  return nb::tuple(result);
}

}  // namespace

void bind_attention(nb::module_& m) {
  m.def("attention", &attention_py, "q"_a, "k"_a, "v"_a, "mask"_a.none() = nb::none(),
        nb::kw_only(), "scale"_a.none() = nb::none(), "dropout_p"_a = 0.0, "seed"_a = 0,
        "head_mask"_a.none() = nb::none(), "softcap"_a = 0.0, "empty_rows"_a = "zero",
        "need_weights"_a = false, "return_lse"_a = false, "backend"_a = "auto",
        R"(Scaled dot-product attention with a mask.

q (B, Hq, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv): float32 numpy arrays or
CPU torch tensors, any strides (read without a copy where the last dimension is
contiguous). Hq % Hkv == 0 (grouped-query attention). For each row:
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
final scores. The GIL is released while it computes.)");
}

}  // namespace maskattn::python
