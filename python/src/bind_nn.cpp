// The modules of include/maskattn/nn/ with torch.nn's constructor and forward
// argument names and defaults. Activations are numpy arrays or CPU torch
// tensors, float32, batched (3-D) or unbatched (2-D) as torch takes them; a
// mask argument takes what torch takes there (bool True = masked, or float
// additive) or any maskattn.Mask. Results are new numpy arrays.
//
// Training (include/maskattn/nn/gradients.hpp) shows in Python as one call per
// module, forward_backward(inputs..., grad_output, ...): the forward in the
// module's mode (dropout active in training mode) keeping what the backward
// needs, then the backward of grad_output, returning (output, grad_input,
// grads): grad_input shaped like the input (a tuple for several inputs, None
// for integer ids) and grads {parameter name: gradient} by state_dict names,
// from zero (nothing accumulates across calls).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/nn/embedding.hpp"
#include "maskattn/nn/feed_forward.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/layer_norm.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/multihead_attention.hpp"
#include "maskattn/nn/positional_encoding.hpp"
#include "maskattn/nn/transformer.hpp"
#include "scalars.hpp"

namespace maskattn::python {
namespace {

using nn::AttentionMasks;
using nn::Module;

// ---- activations ---------------------------------------------------------------

// A float32 activation of rank 3 (batched) or 2 (unbatched: one sequence),
// as a rank-3 view with a batch dimension of 1 where it was missing.
struct Activation {
  ArrayArg arg;
  View<const float, 3> view;
  bool unbatched = false;
  int batch_dim = 1;  // where the batch is: 0 with batch_first
};

Activation read_activation(nb::handle obj, const char* name, bool batch_first, const char* dims) {
  Activation a;
  a.arg = read_array(obj, name, fmt::format("a float32 array {} (or unbatched, rank 2)", dims));
  const AnyView& v = a.arg.view;
  if (v.dtype != DType::Float32 || (v.rank() != 3 && v.rank() != 2))
    throw Error(name, fmt::format("a float32 array {} (or unbatched, rank 2)", dims), v.describe());
  const auto* p = static_cast<const float*>(v.data);
  a.batch_dim = batch_first ? 0 : 1;
  if (v.rank() == 3) {
    a.view = View<const float, 3>(p, {v.shape[0], v.shape[1], v.shape[2]},
                                  {v.strides[0], v.strides[1], v.strides[2]});
  } else {
    a.unbatched = true;
    // (L, E) is (L, 1, E), or (1, L, E) with batch_first.
    a.view =
        batch_first
            ? View<const float, 3>(p, {1, v.shape[0], v.shape[1]}, {0, v.strides[0], v.strides[1]})
            : View<const float, 3>(p, {v.shape[0], 1, v.shape[1]}, {v.strides[0], 0, v.strides[1]});
  }
  return a;
}

// The result for an input read by read_activation: unbatched in, unbatched out.
nb::object activation_result(Tensor<float>&& out, const Activation& like) {
  if (!like.unbatched) return to_numpy(std::move(out));
  std::vector<int64_t> shape = out.shape();
  shape.erase(shape.begin() + like.batch_dim);
  Tensor<float> squeezed(shape);
  std::copy(out.begin(), out.end(), squeezed.data());
  return to_numpy(std::move(squeezed));
}

Tensor<float> output_like(const View<const float, 3>& x) {
  return Tensor<float>({x.size(0), x.size(1), x.size(2)});
}

// ---- masks -------------------------------------------------------------------

// One attention's masks from torch-style arguments: each may be None, an
// array in torch's convention, or a maskattn.Mask (used as it is). Keeps the
// arrays alive while `masks` views them.
struct MaskArgs {
  ArrayArg attn_mask, key_padding_mask;
  AttentionMasks masks;
};

void read_one_mask(nb::handle obj, const char* name, ArrayArg& keep_alive, AnyView& as_array,
                   Mask& as_mask, bool unbatched) {
  if (obj.is_none()) return;
  Mask m;
  if (nb::try_cast(obj, m)) {
    as_mask &= m;
    return;
  }
  keep_alive = read_array(obj, name);
  as_array = keep_alive.view;
  // Unbatched key padding (S,) is (1, S).
  if (unbatched && as_array.rank() == 1) {
    as_array.shape.insert(as_array.shape.begin(), 1);
    as_array.strides.insert(as_array.strides.begin(), 0);
  }
}

std::unique_ptr<MaskArgs> read_masks(nb::handle attn_mask, nb::handle key_padding_mask,
                                     bool is_causal, bool unbatched, const char* attn_name,
                                     const char* padding_name) {
  auto r = std::make_unique<MaskArgs>();
  read_one_mask(attn_mask, attn_name, r->attn_mask, r->masks.attn_mask, r->masks.mask, unbatched);
  read_one_mask(key_padding_mask, padding_name, r->key_padding_mask, r->masks.key_padding_mask,
                r->masks.mask, unbatched);
  r->masks.is_causal = is_causal;
  return r;
}

// torch's *_is_causal arguments: None or a bool.
bool read_is_causal(nb::handle obj, std::string_view name) {
  return read_optional_bool(obj, name).value_or(false);
}

// ---- state dicts and modes (every module) ---------------------------------------

nb::dict state_dict_py(nb::handle self, Module& m) {
  nb::dict out;
  for (auto& [name, p] : m.named_parameters()) {
    std::vector<std::size_t> shape(p->shape().begin(), p->shape().end());
    // Views of the module's own storage (as torch's state_dict shares its
    // tensors'); they keep the module alive.
    out[name.c_str()] =
        nb::ndarray<nb::numpy, float>(p->data(), shape.size(), shape.data(), self).cast();
  }
  return out;
}

nb::tuple load_state_dict_py(Module& m, nb::handle state, bool strict) {
  const ArrayDict arrays = read_array_dict(state, "state_dict");
  const nn::StateDict& views = arrays.views;
  const Module::LoadResult r = m.load_state_dict(views, strict);
  return nb::make_tuple(r.missing_keys, r.unexpected_keys);
}

void bind_module_base(nb::module_& m) {
  nb::class_<Module>(m, "Module", "Base of the modules: parameters by torch's names, modes, seeds.")
      .def(
          "state_dict",
          [](nb::handle self) { return state_dict_py(self, nb::cast<Module&>(self)); },
          "Parameters by torch's state_dict names, as float32 numpy arrays that share the\n"
          "module's memory (writing them changes the module).")
      .def("load_state_dict", &load_state_dict_py, "state_dict"_a, "strict"_a = true,
           "Copies parameters from a dict of arrays (torch's names; numpy or CPU torch,\n"
           "float32 or float64). strict: every name must match both ways, else\n"
           "ValueError. Returns (missing_keys, unexpected_keys).")
      .def(
          "train",
          [](nb::handle self, bool mode) {
            nb::cast<Module&>(self).train(mode);
            return nb::borrow(self);
          },
          "mode"_a = true, "Training mode (dropout active) for the module and its children.")
      .def(
          "eval",
          [](nb::handle self) {
            nb::cast<Module&>(self).eval();
            return nb::borrow(self);
          },
          "Evaluation mode (dropout off): train(False).")
      .def_prop_ro("training", &Module::training, "True in training mode.")
      .def("seed", &Module::seed, "seed"_a,
           "Sets the random streams (dropout) of the module and its children.")
      .def("num_parameters", &Module::num_parameters, "Number of parameter values.");
}

// ---- MultiheadAttention --------------------------------------------------------

nb::tuple mha_call(const nn::MultiheadAttention& mha, nb::handle query, nb::handle key,
                   nb::handle value, nb::handle key_padding_mask, bool need_weights,
                   nb::handle attn_mask, bool average_attn_weights, bool is_causal,
                   nb::handle head_mask) {
  const bool bf = mha.batch_first();
  const char* dims = bf ? "(N, L, E)" : "(L, N, E)";
  const Activation q = read_activation(query, "query", bf, dims);
  const Activation k = read_activation(key, "key", bf, bf ? "(N, S, kdim)" : "(S, N, kdim)");
  const Activation v = read_activation(value, "value", bf, bf ? "(N, S, vdim)" : "(S, N, vdim)");
  const auto masks = read_masks(attn_mask, key_padding_mask, is_causal, q.unbatched, "attn_mask",
                                "key_padding_mask");
  const ArrayArg head_mask_arg = read_array(head_mask, "head_mask");
  nn::MultiheadAttentionCall call;
  call.need_weights = need_weights;
  call.average_attn_weights = average_attn_weights;
  call.head_mask = head_mask_arg.view;

  const int64_t n = bf ? q.view.size(0) : q.view.size(1);
  const int64_t l = bf ? q.view.size(1) : q.view.size(0);
  const int64_t s = bf ? k.view.size(1) : k.view.size(0);
  Tensor<float> out = output_like(q.view);
  Tensor<float> weights;
  if (need_weights)
    weights = Tensor<float>({n, average_attn_weights ? 1 : mha.num_heads(), l, mha.key_len(s)});
  // attention() names the head mask "opts.head_mask": here it is an argument.
  with_keyword_names("opts.", [&] {
    nb::gil_scoped_release release;
    mha.forward(q.view, k.view, v.view, out.view<3>(), masks->masks, call,
                need_weights ? weights.view<4>() : View<float, 4>());
  });
  nb::object w = nb::none();
  if (need_weights) {
    // (N, 1, L, S') averaged -> (N, L, S'); unbatched drops N.
    std::vector<int64_t> shape = weights.shape();
    if (average_attn_weights) shape.erase(shape.begin() + 1);
    if (q.unbatched) shape.erase(shape.begin());
    Tensor<float> shaped(shape);
    std::copy(weights.begin(), weights.end(), shaped.data());
    w = to_numpy(std::move(shaped));
  }
  return nb::make_tuple(activation_result(std::move(out), q), w);
}

// The training forward and backward of grad_output: (out, (grad_query,
// grad_key, grad_value), grads). Self-attention's input gradient is the sum
// of the three.
nb::tuple mha_forward_backward(nn::MultiheadAttention& mha, nb::handle query, nb::handle key,
                               nb::handle value, nb::handle grad_output,
                               nb::handle key_padding_mask, nb::handle attn_mask, bool is_causal,
                               nb::handle head_mask) {
  const bool bf = mha.batch_first();
  const char* dims = bf ? "(N, L, E)" : "(L, N, E)";
  const Activation q = read_activation(query, "query", bf, dims);
  const Activation k = read_activation(key, "key", bf, bf ? "(N, S, kdim)" : "(S, N, kdim)");
  const Activation v = read_activation(value, "value", bf, bf ? "(N, S, vdim)" : "(S, N, vdim)");
  const Activation g = read_activation(grad_output, "grad_output", bf, dims);
  if (g.view.shape() != q.view.shape() || g.unbatched != q.unbatched)
    throw Error("grad_output", "a float32 array shaped like the output (as query)",
                g.arg.view.describe());
  const auto masks = read_masks(attn_mask, key_padding_mask, is_causal, q.unbatched, "attn_mask",
                                "key_padding_mask");
  const ArrayArg head_mask_arg = read_array(head_mask, "head_mask");
  nn::MultiheadAttentionCall call;
  call.head_mask = head_mask_arg.view;

  Tensor<float> out = output_like(q.view), dq = output_like(q.view), dk = output_like(k.view),
                dv = output_like(v.view);
  nn::Gradients grads(mha);
  with_keyword_names("opts.", [&] {
    nb::gil_scoped_release release;
    nn::MultiheadAttention::Saved saved;
    mha.forward(q.view, k.view, v.view, out.view<3>(), masks->masks, call, saved);
    mha.backward(q.view, k.view, v.view, saved, g.view, dq.view<3>(), dk.view<3>(), dv.view<3>(),
                 grads);
  });
  return nb::make_tuple(
      activation_result(std::move(out), q),
      nb::make_tuple(activation_result(std::move(dq), q), activation_result(std::move(dk), k),
                     activation_result(std::move(dv), v)),
      gradients_py(grads));
}

void bind_multihead_attention(nb::module_& m) {
  nb::class_<nn::MultiheadAttention, Module>(
      m, "MultiheadAttention",
      "torch.nn.MultiheadAttention: same parameters (state_dict names), arguments and\n"
      "results, plus num_kv_heads (grouped-query attention), a head_mask, and masks\n"
      "given as maskattn.Mask. A query row with no allowed key gives zeros (torch: NaN).")
      .def(
          "__init__",
          [](nn::MultiheadAttention* self, int64_t embed_dim, int64_t num_heads, double dropout,
             bool bias, bool add_bias_kv, bool add_zero_attn, std::optional<int64_t> kdim,
             std::optional<int64_t> vdim, bool batch_first, std::optional<int64_t> num_kv_heads) {
            nn::MultiheadAttentionOptions o;
            o.dropout = dropout;
            o.bias = bias;
            o.add_bias_kv = add_bias_kv;
            o.add_zero_attn = add_zero_attn;
            o.kdim = kdim;
            o.vdim = vdim;
            o.batch_first = batch_first;
            o.num_kv_heads = num_kv_heads;
            new (self) nn::MultiheadAttention(embed_dim, num_heads, o);
          },
          "embed_dim"_a, "num_heads"_a, "dropout"_a = 0.0, "bias"_a = true, "add_bias_kv"_a = false,
          "add_zero_attn"_a = false, "kdim"_a.none() = nb::none(), "vdim"_a.none() = nb::none(),
          "batch_first"_a = false, nb::kw_only(), "num_kv_heads"_a.none() = nb::none())
      .def("__call__", &mha_call, "query"_a, "key"_a, "value"_a,
           "key_padding_mask"_a.none() = nb::none(), "need_weights"_a = true,
           "attn_mask"_a.none() = nb::none(), "average_attn_weights"_a = true,
           "is_causal"_a = false, nb::kw_only(), "head_mask"_a.none() = nb::none(),
           "query (L, N, E) / (N, L, E) with batch_first, or unbatched (L, E); key, value\n"
           "likewise with kdim, vdim. key_padding_mask (N, S): True = padding, or float;\n"
           "attn_mask (L, S) or (N*num_heads, L, S): True = masked, or float; either may\n"
           "be a maskattn.Mask. is_causal adds the look-ahead mask. Returns (out,\n"
           "weights) with weights (N, L, S) averaged over heads, (N, num_heads, L, S)\n"
           "otherwise, or None without need_weights.")
      .def("forward_backward", &mha_forward_backward, "query"_a, "key"_a, "value"_a,
           "grad_output"_a, "key_padding_mask"_a.none() = nb::none(),
           "attn_mask"_a.none() = nb::none(), "is_causal"_a = false, nb::kw_only(),
           "head_mask"_a.none() = nb::none(),
           "The training forward (dropout active in training mode) and the backward of\n"
           "grad_output (shaped like the output), with __call__'s arguments (no weights):\n"
           "returns (output, (grad_query, grad_key, grad_value), grads), grads the gradient\n"
           "of every parameter by state_dict name. For self-attention (one x as query, key\n"
           "and value) x's gradient is grad_query + grad_key + grad_value.")
      .def_prop_ro("embed_dim", &nn::MultiheadAttention::embed_dim)
      .def_prop_ro("num_heads", &nn::MultiheadAttention::num_heads)
      .def_prop_ro("num_kv_heads", &nn::MultiheadAttention::num_kv_heads)
      .def_prop_ro("head_dim", &nn::MultiheadAttention::head_dim)
      .def_prop_ro("batch_first", &nn::MultiheadAttention::batch_first);
}

// ---- per-token modules: any leading dimensions ---------------------------------

// x (*, width) as contiguous rows (prod(*), width): the array itself when it
// is C-contiguous, else a copy in `copy`.
View<const float, 2> token_rows(const ArrayArg& a, const char* name, int64_t width,
                                Tensor<float>& copy) {
  const AnyView& v = a.view;
  const std::string want = fmt::format("a float32 array (*, {})", width);
  if (v.dtype != DType::Float32 || v.rank() < 1 || v.shape.back() != width)
    throw Error(name, want, v.describe());
  const int64_t rows = v.numel() / width;
  if (v.is_contiguous())
    return View<const float, 2>(static_cast<const float*>(v.data), {rows, width});
  copy = to_float32(v);
  return View<const float, 2>(copy.data(), {rows, width});
}

// Output shaped like `in` with the last dimension `width`.
Tensor<float> tokens_out(const AnyView& in, int64_t width) {
  std::vector<int64_t> shape = in.shape;
  shape.back() = width;
  return Tensor<float>(shape);
}

// The rows of input (*, in_width), in_width defaulting to the input's last
// dimension; `copy` holds them when the array's layout needs one.
View<const float, 2> read_token_rows(const ArrayArg& a, std::optional<int64_t>& in_width,
                                     Tensor<float>& copy) {
  if (!in_width) {
    if (a.view.rank() < 1) throw Error("input", "an array of rank >= 1", a.view.describe());
    in_width = a.view.shape.back();
  }
  return token_rows(a, "input", *in_width, copy);
}

std::string token_dims(std::optional<int64_t> width) {
  return fmt::format("a float32 array (*, {})", width ? std::to_string(*width) : "D");
}

// forward(x, y) on the rows of input (*, in_width) -> (*, out_width); widths
// default to the input's last dimension (a module that keeps the width).
template <class Forward>
nb::object token_apply(Forward forward, nb::handle input, std::optional<int64_t> in_width = {},
                       std::optional<int64_t> out_width = {}) {
  const ArrayArg a = read_array(input, "input", token_dims(in_width));
  Tensor<float> copy;
  const View<const float, 2> x = read_token_rows(a, in_width, copy);
  if (!out_width) out_width = in_width;
  Tensor<float> out = tokens_out(a.view, *out_width);
  {
    nb::gil_scoped_release release;
    forward(x, View<float, 2>(out.data(), {x.size(0), *out_width}));
  }
  return to_numpy(std::move(out));
}

template <class M>
nb::object token_call(const M& module, nb::handle input, std::optional<int64_t> in_width = {},
                      std::optional<int64_t> out_width = {}) {
  return token_apply([&module](View<const float, 2> x, View<float, 2> y) { module.forward(x, y); },
                     input, in_width, out_width);
}

// forward_backward of a per-token module (gradients of `module`): input
// (*, in_width), grad_output (*, out_width), widths as token_apply's.
// run(x, y, dy, dx, grads) is the forward keeping its Saved, then the backward.
template <class Run>
nb::tuple token_forward_backward(Module& module, nb::handle input, nb::handle grad_output,
                                 std::optional<int64_t> in_width, std::optional<int64_t> out_width,
                                 Run run) {
  const ArrayArg a = read_array(input, "input", token_dims(in_width));
  Tensor<float> copy, dy_copy;
  const View<const float, 2> x = read_token_rows(a, in_width, copy);
  if (!out_width) out_width = in_width;
  Tensor<float> out = tokens_out(a.view, *out_width);
  const ArrayArg g = read_grad_output(grad_output, out.shape());
  const View<const float, 2> dy = token_rows(g, "grad_output", *out_width, dy_copy);
  Tensor<float> dx = tokens_out(a.view, *in_width);
  nn::Gradients grads(module);
  {
    nb::gil_scoped_release release;
    run(x, View<float, 2>(out.data(), {x.size(0), *out_width}), dy,
        View<float, 2>(dx.data(), {x.size(0), *in_width}), grads);
  }
  return nb::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(dx)), gradients_py(grads));
}

// run() of a module with the usual forward(x, y, saved) and
// backward(x, saved, dy, dx, grads).
template <class M>
auto train_step(const M& m) {
  return [&m](View<const float, 2> x, View<float, 2> y, View<const float, 2> dy, View<float, 2> dx,
              nn::Gradients& grads) {
    typename M::Saved saved;
    m.forward(x, y, saved);
    m.backward(x, saved, dy, dx, grads);
  };
}

constexpr const char* kForwardBackwardDoc =
    "The forward (in the module's mode) and the backward of grad_output (shaped\n"
    "like the output): returns (output, grad_input, grads), grads the gradient of\n"
    "every parameter by state_dict name.";

void bind_token_modules(nb::module_& m) {
  nb::class_<nn::Linear, Module>(m, "Linear", "torch.nn.Linear: y = x W^T + b, weight (out, in).")
      .def(nb::init<int64_t, int64_t, bool>(), "in_features"_a, "out_features"_a, "bias"_a = true)
      .def(
          "__call__",
          [](const nn::Linear& l, nb::handle input) {
            return token_call(l, input, l.in_features(), l.out_features());
          },
          "input"_a, "input (*, in_features) -> (*, out_features).")
      .def(
          "forward_backward",
          [](nn::Linear& l, nb::handle input, nb::handle grad_output) {
            return token_forward_backward(l, input, grad_output, l.in_features(), l.out_features(),
                                          train_step(l));
          },
          "input"_a, "grad_output"_a, kForwardBackwardDoc)
      .def_prop_ro("in_features", &nn::Linear::in_features)
      .def_prop_ro("out_features", &nn::Linear::out_features);

  nb::class_<nn::LayerNorm, Module>(m, "LayerNorm", "torch.nn.LayerNorm over the last dimension.")
      .def(
          "__init__",
          [](nn::LayerNorm* self, nb::handle normalized_shape, double eps, bool elementwise_affine,
             bool bias) {
            // An int, or a sequence of one int (torch takes a shape).
            int64_t d = 0;
            if (!nb::try_cast(normalized_shape, d)) {
              const std::vector<int64_t> shape =
                  read_int64_vector(normalized_shape, "normalized_shape");
              if (shape.size() != 1)
                throw Error("normalized_shape", "an int or a one-element shape (the last dim)",
                            shape_string(shape));
              d = shape[0];
            }
            new (self) nn::LayerNorm(d, eps, elementwise_affine, bias);
          },
          "normalized_shape"_a, "eps"_a = 1e-5, "elementwise_affine"_a = true, "bias"_a = true)
      .def(
          "__call__",
          [](const nn::LayerNorm& n, nb::handle input) {
            return token_call(n, input, n.normalized_shape());
          },
          "input"_a, "input (*, normalized_shape) -> same shape.")
      .def(
          "forward_backward",
          [](nn::LayerNorm& n, nb::handle input, nb::handle grad_output) {
            const int64_t d = n.normalized_shape();
            return token_forward_backward(n, input, grad_output, d, d, train_step(n));
          },
          "input"_a, "grad_output"_a, kForwardBackwardDoc);

  nb::class_<nn::Dropout, Module>(m, "Dropout",
                                  "torch.nn.Dropout (inverted; reproducible from seed()).")
      .def(nb::init<double>(), "p"_a = 0.5)
      .def(
          "__call__", [](const nn::Dropout& d, nb::handle input) { return token_call(d, input); },
          "input"_a,
          "In training mode zeroes each element with probability p and scales the\n"
          "others by 1/(1-p); in eval mode returns the input.")
      .def(
          "forward_backward",
          [](nn::Dropout& d, nb::handle input, nb::handle grad_output) {
            return token_forward_backward(
                d, input, grad_output, std::nullopt, std::nullopt,
                [&d](View<const float, 2> x, View<float, 2> y, View<const float, 2> dy,
                     View<float, 2> dx, nn::Gradients&) {
                  nn::Dropout::Saved saved;
                  d.forward(x, y, saved);
                  d.backward(saved, dy, dx);
                });
          },
          "input"_a, "grad_output"_a,
          "The forward (mask drawn in training mode) and its backward: grad_input is\n"
          "grad_output masked and scaled as the output was. Returns (output,\n"
          "grad_input, {}).")
      .def_prop_ro("p", &nn::Dropout::p);

  nb::class_<nn::FeedForward, Module>(
      m, "FeedForward",
      "The feed-forward net of a Transformer layer: linear2(dropout(activation(\n"
      "linear1(x)))), parameters \"linear1.*\" and \"linear2.*\" as torch's layers name them.")
      .def(
          "__init__",
          [](nn::FeedForward* self, int64_t d_model, int64_t dim_feedforward,
             const std::string& activation, double dropout, bool bias) {
            new (self) nn::FeedForward(d_model, dim_feedforward,
                                       nn::activation_from_name(activation), dropout, bias);
          },
          "d_model"_a, "dim_feedforward"_a, "activation"_a = "relu", "dropout"_a = 0.1,
          "bias"_a = true)
      .def(
          "__call__",
          [](nn::FeedForward& f, nb::handle input) {
            return token_call(f, input, f.linear1().in_features());
          },
          "input"_a, "input (*, d_model) -> same shape.")
      .def(
          "forward_backward",
          [](nn::FeedForward& f, nb::handle input, nb::handle grad_output) {
            const int64_t d = f.linear1().in_features();
            return token_forward_backward(f, input, grad_output, d, d, train_step(f));
          },
          "input"_a, "grad_output"_a, kForwardBackwardDoc);

  nb::class_<nn::Embedding, Module>(
      m, "Embedding",
      "torch.nn.Embedding, with the original Transformer's sqrt(d) scale as an option.")
      .def(nb::init<int64_t, int64_t, std::optional<int64_t>, bool>(), "num_embeddings"_a,
           "embedding_dim"_a, "padding_idx"_a.none() = nb::none(), nb::kw_only(),
           "scale_by_sqrt_dim"_a = false)
      .def(
          "__call__",
          [](const nn::Embedding& e, nb::handle input) {
            // Any shape of ids: looked up as one row.
            const Tensor<int64_t> ids = read_int64_tensor(input, "input", "any shape (*)");
            std::vector<int64_t> shape = ids.shape();
            const int64_t count = ids.numel();
            shape.push_back(e.embedding_dim());
            Tensor<float> out(shape);
            // The ids are looked up as one row: an index in the error is a flat one.
            with_python_names({{"Embedding: ids[0, ", "input (flattened)["}}, [&] {
              nb::gil_scoped_release release;
              e.forward(View<const int64_t, 2>(ids.data(), {1, count}),
                        View<float, 3>(out.data(), {1, count, e.embedding_dim()}));
            });
            return to_numpy(std::move(out));
          },
          "input"_a, "ids (*) -> (*, embedding_dim).")
      .def(
          "forward_backward",
          [](nn::Embedding& e, nb::handle input, nb::handle grad_output) {
            const Tensor<int64_t> ids = read_int64_tensor(input, "input", "any shape (*)");
            std::vector<int64_t> shape = ids.shape();
            shape.push_back(e.embedding_dim());
            Tensor<float> out(shape);
            const ArrayArg g = read_grad_output(grad_output, shape);
            Tensor<float> dy_copy;
            const View<const float, 2> dy =
                token_rows(g, "grad_output", e.embedding_dim(), dy_copy);
            const int64_t count = ids.numel(), dim = e.embedding_dim();
            nn::Gradients grads(e);
            with_python_names({{"Embedding: ids[0, ", "input (flattened)["}}, [&] {
              nb::gil_scoped_release release;
              const View<const int64_t, 2> id_rows(ids.data(), {1, count});
              nn::Embedding::Saved saved;
              e.forward(id_rows, View<float, 3>(out.data(), {1, count, dim}), saved);
              e.backward(id_rows, saved,
                         View<const float, 3>(dy.data(), {1, count, dim}, {0, dy.stride(0), 1}),
                         grads);
            });
            return nb::make_tuple(to_numpy(std::move(out)), nb::none(), gradients_py(grads));
          },
          "input"_a, "grad_output"_a,
          "The lookup and its backward: returns (output, None, grads) (ids have no\n"
          "gradient; the padding_idx row gets none).")
      .def(
          "unembed",
          [](const nn::Embedding& e, nb::handle input) {
            return token_apply([&e](View<const float, 2> x, View<float, 2> y) { e.unembed(x, y); },
                               input, e.embedding_dim(), e.num_embeddings());
          },
          "input"_a,
          "The table as the tied output layer: input (*, embedding_dim) ->\n"
          "logits (*, num_embeddings) = input W^T (no scale, no bias).")
      .def(
          "unembed_forward_backward",
          [](nn::Embedding& e, nb::handle input, nb::handle grad_output) {
            return token_forward_backward(
                e, input, grad_output, e.embedding_dim(), e.num_embeddings(),
                [&e](View<const float, 2> x, View<float, 2> y, View<const float, 2> dy,
                     View<float, 2> dx, nn::Gradients& grads) {
                  e.unembed(x, y);
                  e.unembed_backward(x, dy, dx, grads);
                });
          },
          "input"_a, "grad_output"_a,
          "unembed and its backward: returns (logits, grad_input, {\"weight\": ...}), the\n"
          "weight's share of a tied model's gradient (add the lookup's).")
      .def_prop_ro("num_embeddings", &nn::Embedding::num_embeddings)
      .def_prop_ro("embedding_dim", &nn::Embedding::embedding_dim);

  nb::class_<nn::PositionalEncoding, Module>(
      m, "PositionalEncoding",
      "Adds the sinusoidal encoding of each position, then dropout (the PyTorch\n"
      "tutorial's module). x (L, N, d_model), or (N, L, d_model) with batch_first.")
      .def(
          "__init__",
          [](nn::PositionalEncoding* self, int64_t d_model, double dropout, int64_t max_len) {
            new (self) nn::PositionalEncoding(d_model, dropout, max_len);
          },
          "d_model"_a, "dropout"_a = 0.1, "max_len"_a = 5000)
      .def(
          "__call__",
          [](const nn::PositionalEncoding& pe, nb::handle x, bool batch_first, int64_t offset) {
            const Activation a = read_activation(
                x, "x", batch_first, batch_first ? "(N, L, d_model)" : "(L, N, d_model)");
            Tensor<float> out = output_like(a.view);
            {
              nb::gil_scoped_release release;
              pe.forward(a.view, out.view<3>(), batch_first, offset);
            }
            return activation_result(std::move(out), a);
          },
          "x"_a, nb::kw_only(), "batch_first"_a = false, "offset"_a = 0,
          "y = dropout(x + PE[offset + position]); offset: the first token's position.")
      .def(
          "forward_backward",
          [](nn::PositionalEncoding& pe, nb::handle x, nb::handle grad_output, bool batch_first,
             int64_t offset) {
            const char* dims = batch_first ? "(N, L, d_model)" : "(L, N, d_model)";
            const Activation a = read_activation(x, "x", batch_first, dims);
            const Activation g = read_activation(grad_output, "grad_output", batch_first, dims);
            if (g.view.shape() != a.view.shape() || g.unbatched != a.unbatched)
              throw Error("grad_output", "a float32 array shaped like x", g.arg.view.describe());
            Tensor<float> out = output_like(a.view), dx = output_like(a.view);
            {
              nb::gil_scoped_release release;
              nn::PositionalEncoding::Saved saved;
              pe.forward(a.view, out.view<3>(), batch_first, offset, saved);
              pe.backward(saved, g.view, dx.view<3>());
            }
            return nb::make_tuple(activation_result(std::move(out), a),
                                  activation_result(std::move(dx), a), nb::dict());
          },
          "x"_a, "grad_output"_a, nb::kw_only(), "batch_first"_a = false, "offset"_a = 0,
          "The forward and its backward (the dropout's, replayed): returns (output,\n"
          "grad_x, {}).");
}

// ---- Transformer layers, stacks, Transformer -------------------------------------

nn::TransformerLayerOptions layer_options(int64_t dim_feedforward, double dropout,
                                          const std::string& activation, double layer_norm_eps,
                                          bool batch_first, bool norm_first, bool bias,
                                          std::optional<int64_t> num_kv_heads) {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = dim_feedforward;
  o.dropout = dropout;
  o.activation = nn::activation_from_name(activation);
  o.layer_norm_eps = layer_norm_eps;
  o.batch_first = batch_first;
  o.norm_first = norm_first;
  o.bias = bias;
  o.num_kv_heads = num_kv_heads;
  return o;
}

const char* seq_dims(bool batch_first) { return batch_first ? "(N, L, E)" : "(L, N, E)"; }

nb::object encoder_call(const auto& module, bool batch_first, nb::handle src, nb::handle mask,
                        nb::handle key_padding_mask, bool is_causal, const char* mask_name) {
  const Activation x = read_activation(src, "src", batch_first, seq_dims(batch_first));
  const auto masks =
      read_masks(mask, key_padding_mask, is_causal, x.unbatched, mask_name, "src_key_padding_mask");
  Tensor<float> out = output_like(x.view);
  {
    nb::gil_scoped_release release;
    module.forward(x.view, out.view<3>(), masks->masks);
  }
  return activation_result(std::move(out), x);
}

nb::object decoder_call(const auto& module, bool batch_first, nb::handle tgt, nb::handle memory,
                        nb::handle tgt_mask, nb::handle memory_mask,
                        nb::handle tgt_key_padding_mask, nb::handle memory_key_padding_mask,
                        bool tgt_is_causal, bool memory_is_causal) {
  const Activation t = read_activation(tgt, "tgt", batch_first, seq_dims(batch_first));
  const Activation mem = read_activation(memory, "memory", batch_first, seq_dims(batch_first));
  const auto tm = read_masks(tgt_mask, tgt_key_padding_mask, tgt_is_causal, t.unbatched, "tgt_mask",
                             "tgt_key_padding_mask");
  const auto mm = read_masks(memory_mask, memory_key_padding_mask, memory_is_causal, t.unbatched,
                             "memory_mask", "memory_key_padding_mask");
  Tensor<float> out = output_like(t.view);
  {
    nb::gil_scoped_release release;
    module.forward(t.view, mem.view, out.view<3>(), tm->masks, mm->masks);
  }
  return activation_result(std::move(out), t);
}

// forward_backward of the layers and stacks: the training forward keeping
// its Saved, then the backward of grad_output (shaped like the output).
void check_grad_output(const Activation& g, const Activation& like, const char* as) {
  if (g.view.shape() != like.view.shape() || g.unbatched != like.unbatched)
    throw Error("grad_output", fmt::format("a float32 array shaped like the output (as {})", as),
                g.arg.view.describe());
}

// An encoder layer or stack: (output, grad_src, grads).
template <class M>
nb::tuple encoder_forward_backward(M& module, bool batch_first, nb::handle src,
                                   nb::handle grad_output, nb::handle mask,
                                   nb::handle key_padding_mask, bool is_causal,
                                   const char* mask_name) {
  const Activation x = read_activation(src, "src", batch_first, seq_dims(batch_first));
  const Activation g =
      read_activation(grad_output, "grad_output", batch_first, seq_dims(batch_first));
  check_grad_output(g, x, "src");
  const auto masks =
      read_masks(mask, key_padding_mask, is_causal, x.unbatched, mask_name, "src_key_padding_mask");
  Tensor<float> out = output_like(x.view), dsrc = output_like(x.view);
  nn::Gradients grads(module);
  {
    nb::gil_scoped_release release;
    typename M::Saved saved;
    module.forward(x.view, out.view<3>(), masks->masks, saved);
    module.backward(x.view, saved, g.view, dsrc.view<3>(), grads);
  }
  return nb::make_tuple(activation_result(std::move(out), x), activation_result(std::move(dsrc), x),
                        gradients_py(grads));
}

// A decoder layer or stack: (output, (grad_tgt, grad_memory), grads).
template <class M>
nb::tuple decoder_forward_backward(M& module, bool batch_first, nb::handle tgt, nb::handle memory,
                                   nb::handle grad_output, nb::handle tgt_mask,
                                   nb::handle memory_mask, nb::handle tgt_key_padding_mask,
                                   nb::handle memory_key_padding_mask, bool tgt_is_causal,
                                   bool memory_is_causal) {
  const char* dims = seq_dims(batch_first);
  const Activation t = read_activation(tgt, "tgt", batch_first, dims);
  const Activation mem = read_activation(memory, "memory", batch_first, dims);
  const Activation g = read_activation(grad_output, "grad_output", batch_first, dims);
  check_grad_output(g, t, "tgt");
  const auto tm = read_masks(tgt_mask, tgt_key_padding_mask, tgt_is_causal, t.unbatched, "tgt_mask",
                             "tgt_key_padding_mask");
  const auto mm = read_masks(memory_mask, memory_key_padding_mask, memory_is_causal, t.unbatched,
                             "memory_mask", "memory_key_padding_mask");
  Tensor<float> out = output_like(t.view), dtgt = output_like(t.view),
                dmemory = output_like(mem.view);
  nn::Gradients grads(module);
  {
    nb::gil_scoped_release release;
    typename M::Saved saved;
    module.forward(t.view, mem.view, out.view<3>(), tm->masks, mm->masks, saved);
    module.backward(t.view, mem.view, saved, g.view, dtgt.view<3>(), dmemory.view<3>(), grads);
  }
  return nb::make_tuple(activation_result(std::move(out), t),
                        nb::make_tuple(activation_result(std::move(dtgt), t),
                                       activation_result(std::move(dmemory), mem)),
                        gradients_py(grads));
}

nb::tuple encoder_layer_forward_backward(nn::TransformerEncoderLayer& layer, nb::handle src,
                                         nb::handle grad_output, nb::handle mask,
                                         nb::handle key_padding_mask, bool is_causal) {
  return encoder_forward_backward(layer, layer.options().batch_first, src, grad_output, mask,
                                  key_padding_mask, is_causal, "src_mask");
}

nb::tuple decoder_layer_forward_backward(nn::TransformerDecoderLayer& layer, nb::handle tgt,
                                         nb::handle memory, nb::handle grad_output,
                                         nb::handle tgt_mask, nb::handle memory_mask,
                                         nb::handle tgt_key_padding_mask,
                                         nb::handle memory_key_padding_mask, bool tgt_is_causal,
                                         bool memory_is_causal) {
  return decoder_forward_backward(layer, layer.options().batch_first, tgt, memory, grad_output,
                                  tgt_mask, memory_mask, tgt_key_padding_mask,
                                  memory_key_padding_mask, tgt_is_causal, memory_is_causal);
}

// torch's layer constructor: (d_model, nhead, dim_feedforward=2048, dropout=0.1,
// activation="relu", layer_norm_eps=1e-5, batch_first=False, norm_first=False,
// bias=True), plus num_kv_heads.
template <class Layer>
void def_layer_init(nb::class_<Layer, Module>& cls) {
  cls.def(
      "__init__",
      [](Layer* self, int64_t d_model, int64_t nhead, int64_t dim_feedforward, double dropout,
         const std::string& activation, double layer_norm_eps, bool batch_first, bool norm_first,
         bool bias, std::optional<int64_t> num_kv_heads) {
        new (self) Layer(d_model, nhead,
                         layer_options(dim_feedforward, dropout, activation, layer_norm_eps,
                                       batch_first, norm_first, bias, num_kv_heads));
      },
      "d_model"_a, "nhead"_a, "dim_feedforward"_a = 2048, "dropout"_a = 0.1,
      "activation"_a = "relu", "layer_norm_eps"_a = 1e-5, "batch_first"_a = false,
      "norm_first"_a = false, "bias"_a = true, nb::kw_only(), "num_kv_heads"_a.none() = nb::none());
}

void bind_transformer(nb::module_& m) {
  auto encoder_layer = nb::class_<nn::TransformerEncoderLayer, Module>(
      m, "TransformerEncoderLayer",
      "torch.nn.TransformerEncoderLayer: self-attention and feed-forward, post-norm\n"
      "or norm_first; same parameters and state_dict names.");
  def_layer_init(encoder_layer);
  encoder_layer.def(
      "__call__",
      [](const nn::TransformerEncoderLayer& l, nb::handle src, nb::handle src_mask,
         nb::handle src_key_padding_mask, bool is_causal) {
        return encoder_call(l, l.options().batch_first, src, src_mask, src_key_padding_mask,
                            is_causal, "src_mask");
      },
      "src"_a, "src_mask"_a.none() = nb::none(), "src_key_padding_mask"_a.none() = nb::none(),
      "is_causal"_a = false,
      "src (L, N, E) -> same shape. src_mask (L, S) or (N*nhead, L, S): True =\n"
      "masked, or float, or a maskattn.Mask; src_key_padding_mask (N, S): True =\n"
      "padding; is_causal adds the look-ahead mask.");
  encoder_layer.def("forward_backward", &encoder_layer_forward_backward, "src"_a, "grad_output"_a,
                    "src_mask"_a.none() = nb::none(), "src_key_padding_mask"_a.none() = nb::none(),
                    "is_causal"_a = false,
                    "The training forward (dropout active in training mode) and the backward\n"
                    "of grad_output (shaped like the output), with __call__'s masks: returns\n"
                    "(output, grad_src, grads), grads by state_dict name.");

  auto decoder_layer = nb::class_<nn::TransformerDecoderLayer, Module>(
      m, "TransformerDecoderLayer",
      "torch.nn.TransformerDecoderLayer: masked self-attention, cross-attention over\n"
      "the memory and feed-forward; same parameters and state_dict names.");
  def_layer_init(decoder_layer);
  decoder_layer.def(
      "__call__",
      [](const nn::TransformerDecoderLayer& l, nb::handle tgt, nb::handle memory,
         nb::handle tgt_mask, nb::handle memory_mask, nb::handle tgt_key_padding_mask,
         nb::handle memory_key_padding_mask, bool tgt_is_causal, bool memory_is_causal) {
        return decoder_call(l, l.options().batch_first, tgt, memory, tgt_mask, memory_mask,
                            tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal,
                            memory_is_causal);
      },
      "tgt"_a, "memory"_a, "tgt_mask"_a.none() = nb::none(), "memory_mask"_a.none() = nb::none(),
      "tgt_key_padding_mask"_a.none() = nb::none(), "memory_key_padding_mask"_a.none() = nb::none(),
      "tgt_is_causal"_a = false, "memory_is_causal"_a = false,
      "tgt (T, N, E), memory (S, N, E) -> (T, N, E). tgt_mask: the look-ahead mask\n"
      "(True = masked, or float, or a maskattn.Mask; or tgt_is_causal); the\n"
      "*_key_padding_mask: True = padding.");
  decoder_layer.def(
      "forward_backward", &decoder_layer_forward_backward, "tgt"_a, "memory"_a, "grad_output"_a,
      "tgt_mask"_a.none() = nb::none(), "memory_mask"_a.none() = nb::none(),
      "tgt_key_padding_mask"_a.none() = nb::none(), "memory_key_padding_mask"_a.none() = nb::none(),
      "tgt_is_causal"_a = false, "memory_is_causal"_a = false,
      "The training forward (dropout active in training mode) and the backward of\n"
      "grad_output (shaped like the output), with __call__'s masks: returns (output,\n"
      "(grad_tgt, grad_memory), grads), grads by state_dict name.");

  // The stacks copy the layer (and norm) they are given, as torch does.
  nb::class_<nn::TransformerEncoder, Module>(
      m, "TransformerEncoder",
      "torch.nn.TransformerEncoder: num_layers copies of encoder_layer, then norm.")
      .def(
          "__init__",
          [](nn::TransformerEncoder* self, const nn::TransformerEncoderLayer& encoder_layer,
             int64_t num_layers, std::optional<nn::LayerNorm> norm) {
            new (self) nn::TransformerEncoder(encoder_layer, num_layers, std::move(norm));
          },
          "encoder_layer"_a, "num_layers"_a, "norm"_a.none() = nb::none())
      .def(
          "__call__",
          [](const nn::TransformerEncoder& e, nb::handle src, nb::handle mask,
             nb::handle src_key_padding_mask, nb::handle is_causal) {
            const bool bf = e.batch_first();
            return encoder_call(e, bf, src, mask, src_key_padding_mask,
                                read_is_causal(is_causal, "is_causal"), "mask");
          },
          "src"_a, "mask"_a.none() = nb::none(), "src_key_padding_mask"_a.none() = nb::none(),
          "is_causal"_a.none() = nb::none(),
          "src (L, N, E) -> same shape, through every layer and the norm.")
      .def(
          "forward_backward",
          [](nn::TransformerEncoder& e, nb::handle src, nb::handle grad_output, nb::handle mask,
             nb::handle src_key_padding_mask, nb::handle is_causal) {
            return encoder_forward_backward(e, e.batch_first(), src, grad_output, mask,
                                            src_key_padding_mask,
                                            read_is_causal(is_causal, "is_causal"), "mask");
          },
          "src"_a, "grad_output"_a, "mask"_a.none() = nb::none(),
          "src_key_padding_mask"_a.none() = nb::none(), "is_causal"_a.none() = nb::none(),
          "The training forward and the backward of grad_output (shaped like the\n"
          "output): returns (output, grad_src, grads), grads by state_dict name.");

  nb::class_<nn::TransformerDecoder, Module>(
      m, "TransformerDecoder",
      "torch.nn.TransformerDecoder: num_layers copies of decoder_layer, then norm.")
      .def(
          "__init__",
          [](nn::TransformerDecoder* self, const nn::TransformerDecoderLayer& decoder_layer,
             int64_t num_layers, std::optional<nn::LayerNorm> norm) {
            new (self) nn::TransformerDecoder(decoder_layer, num_layers, std::move(norm));
          },
          "decoder_layer"_a, "num_layers"_a, "norm"_a.none() = nb::none())
      .def(
          "__call__",
          [](const nn::TransformerDecoder& d, nb::handle tgt, nb::handle memory,
             nb::handle tgt_mask, nb::handle memory_mask, nb::handle tgt_key_padding_mask,
             nb::handle memory_key_padding_mask, nb::handle tgt_is_causal, bool memory_is_causal) {
            const bool bf = d.batch_first();
            return decoder_call(d, bf, tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                memory_key_padding_mask,
                                read_is_causal(tgt_is_causal, "tgt_is_causal"), memory_is_causal);
          },
          "tgt"_a, "memory"_a, "tgt_mask"_a.none() = nb::none(),
          "memory_mask"_a.none() = nb::none(), "tgt_key_padding_mask"_a.none() = nb::none(),
          "memory_key_padding_mask"_a.none() = nb::none(), "tgt_is_causal"_a.none() = nb::none(),
          "memory_is_causal"_a = false,
          "tgt (T, N, E), memory (S, N, E) -> (T, N, E), through every layer and the norm.")
      .def(
          "forward_backward",
          [](nn::TransformerDecoder& d, nb::handle tgt, nb::handle memory, nb::handle grad_output,
             nb::handle tgt_mask, nb::handle memory_mask, nb::handle tgt_key_padding_mask,
             nb::handle memory_key_padding_mask, nb::handle tgt_is_causal, bool memory_is_causal) {
            return decoder_forward_backward(
                d, d.batch_first(), tgt, memory, grad_output, tgt_mask, memory_mask,
                tgt_key_padding_mask, memory_key_padding_mask,
                read_is_causal(tgt_is_causal, "tgt_is_causal"), memory_is_causal);
          },
          "tgt"_a, "memory"_a, "grad_output"_a, "tgt_mask"_a.none() = nb::none(),
          "memory_mask"_a.none() = nb::none(), "tgt_key_padding_mask"_a.none() = nb::none(),
          "memory_key_padding_mask"_a.none() = nb::none(), "tgt_is_causal"_a.none() = nb::none(),
          "memory_is_causal"_a = false,
          "The training forward and the backward of grad_output (shaped like the\n"
          "output): returns (output, (grad_tgt, grad_memory), grads), grads by\n"
          "state_dict name (grad_memory summed over the layers).");

  nb::class_<nn::Transformer, Module>(
      m, "Transformer",
      "torch.nn.Transformer: encoder and decoder stacks with final norms; same\n"
      "parameters and state_dict names.")
      .def(
          "__init__",
          [](nn::Transformer* self, int64_t d_model, int64_t nhead, int64_t num_encoder_layers,
             int64_t num_decoder_layers, int64_t dim_feedforward, double dropout,
             const std::string& activation, double layer_norm_eps, bool batch_first,
             bool norm_first, bool bias) {
            nn::TransformerOptions o;
            o.d_model = d_model;
            o.nhead = nhead;
            o.num_encoder_layers = num_encoder_layers;
            o.num_decoder_layers = num_decoder_layers;
            o.layer = layer_options(dim_feedforward, dropout, activation, layer_norm_eps,
                                    batch_first, norm_first, bias, std::nullopt);
            new (self) nn::Transformer(o);
          },
          "d_model"_a = 512, "nhead"_a = 8, "num_encoder_layers"_a = 6, "num_decoder_layers"_a = 6,
          "dim_feedforward"_a = 2048, "dropout"_a = 0.1, "activation"_a = "relu",
          "layer_norm_eps"_a = 1e-5, "batch_first"_a = false, "norm_first"_a = false,
          "bias"_a = true)
      .def(
          "__call__",
          [](const nn::Transformer& t, nb::handle src, nb::handle tgt, nb::handle src_mask,
             nb::handle tgt_mask, nb::handle memory_mask, nb::handle src_key_padding_mask,
             nb::handle tgt_key_padding_mask, nb::handle memory_key_padding_mask,
             nb::handle src_is_causal, nb::handle tgt_is_causal, bool memory_is_causal) {
            const bool bf = t.options().layer.batch_first;
            const Activation s = read_activation(src, "src", bf, seq_dims(bf));
            const Activation g = read_activation(tgt, "tgt", bf, seq_dims(bf));
            const auto sm = read_masks(src_mask, src_key_padding_mask,
                                       read_is_causal(src_is_causal, "src_is_causal"), s.unbatched,
                                       "src_mask", "src_key_padding_mask");
            const auto tm = read_masks(tgt_mask, tgt_key_padding_mask,
                                       read_is_causal(tgt_is_causal, "tgt_is_causal"), g.unbatched,
                                       "tgt_mask", "tgt_key_padding_mask");
            const auto mm = read_masks(memory_mask, memory_key_padding_mask, memory_is_causal,
                                       g.unbatched, "memory_mask", "memory_key_padding_mask");
            Tensor<float> out = output_like(g.view);
            {
              nb::gil_scoped_release release;
              t.forward(s.view, g.view, out.view<3>(), sm->masks, tm->masks, mm->masks);
            }
            return activation_result(std::move(out), g);
          },
          "src"_a, "tgt"_a, "src_mask"_a.none() = nb::none(), "tgt_mask"_a.none() = nb::none(),
          "memory_mask"_a.none() = nb::none(), "src_key_padding_mask"_a.none() = nb::none(),
          "tgt_key_padding_mask"_a.none() = nb::none(),
          "memory_key_padding_mask"_a.none() = nb::none(), "src_is_causal"_a.none() = nb::none(),
          "tgt_is_causal"_a.none() = nb::none(), "memory_is_causal"_a = false,
          "src (S, N, E), tgt (T, N, E) -> (T, N, E): decoder(tgt, encoder(src)). Masks\n"
          "as torch takes them, or maskattn.Mask values.")
      .def(
          "forward_backward",
          [](nn::Transformer& t, nb::handle src, nb::handle tgt, nb::handle grad_output,
             nb::handle src_mask, nb::handle tgt_mask, nb::handle memory_mask,
             nb::handle src_key_padding_mask, nb::handle tgt_key_padding_mask,
             nb::handle memory_key_padding_mask, nb::handle src_is_causal, nb::handle tgt_is_causal,
             bool memory_is_causal) {
            const bool bf = t.options().layer.batch_first;
            const Activation s = read_activation(src, "src", bf, seq_dims(bf));
            const Activation g = read_activation(tgt, "tgt", bf, seq_dims(bf));
            const Activation dy = read_activation(grad_output, "grad_output", bf, seq_dims(bf));
            check_grad_output(dy, g, "tgt");
            const auto sm = read_masks(src_mask, src_key_padding_mask,
                                       read_is_causal(src_is_causal, "src_is_causal"), s.unbatched,
                                       "src_mask", "src_key_padding_mask");
            const auto tm = read_masks(tgt_mask, tgt_key_padding_mask,
                                       read_is_causal(tgt_is_causal, "tgt_is_causal"), g.unbatched,
                                       "tgt_mask", "tgt_key_padding_mask");
            const auto mm = read_masks(memory_mask, memory_key_padding_mask, memory_is_causal,
                                       g.unbatched, "memory_mask", "memory_key_padding_mask");
            Tensor<float> out = output_like(g.view), dsrc = output_like(s.view),
                          dtgt = output_like(g.view);
            nn::Gradients grads(t);
            {
              nb::gil_scoped_release release;
              nn::Transformer::Saved saved;
              t.forward(s.view, g.view, out.view<3>(), sm->masks, tm->masks, mm->masks, saved);
              t.backward(s.view, g.view, saved, dy.view, dsrc.view<3>(), dtgt.view<3>(), grads);
            }
            return nb::make_tuple(activation_result(std::move(out), g),
                                  nb::make_tuple(activation_result(std::move(dsrc), s),
                                                 activation_result(std::move(dtgt), g)),
                                  gradients_py(grads));
          },
          "src"_a, "tgt"_a, "grad_output"_a, "src_mask"_a.none() = nb::none(),
          "tgt_mask"_a.none() = nb::none(), "memory_mask"_a.none() = nb::none(),
          "src_key_padding_mask"_a.none() = nb::none(),
          "tgt_key_padding_mask"_a.none() = nb::none(),
          "memory_key_padding_mask"_a.none() = nb::none(), "src_is_causal"_a.none() = nb::none(),
          "tgt_is_causal"_a.none() = nb::none(), "memory_is_causal"_a = false,
          "The training forward and the backward of grad_output (shaped like the\n"
          "output): returns (output, (grad_src, grad_tgt), grads), grads by state_dict name.")
      .def_static(
          "generate_square_subsequent_mask",
          [](int64_t sz) {
            // The C++ function's argument is "size"; Python's (torch's) is sz.
            return with_python_names({{"size", "sz"}}, [&] {
              return to_numpy(nn::Transformer::generate_square_subsequent_mask(sz));
            });
          },
          "sz"_a, "float32 (sz, sz): 0 on and below the diagonal, -inf above.");
}

}  // namespace

nb::dict gradients_py(const nn::Gradients& grads) {
  nb::dict out;
  for (const nn::Gradients::Entry& e : grads.entries())
    out[e.name.c_str()] = to_numpy(Tensor<float>(e.grad));
  return out;
}

ArrayArg read_grad_output(nb::handle obj, const std::vector<int64_t>& shape,
                          std::string_view name) {
  ArrayArg a = read_array(obj, name, "a float32 array shaped like the output");
  if (a.view.dtype != DType::Float32 || a.view.shape != shape)
    throw Error(name, fmt::format("a float32 array {} (the output's shape)", shape_string(shape)),
                a.view.describe());
  return a;
}

void bind_nn(nb::module_& m) {
  bind_module_base(m);
  bind_token_modules(m);
  bind_multihead_attention(m);
  bind_transformer(m);
}

}  // namespace maskattn::python
