// maskattn.Mask, its parts and the adapters: each forwards to
// include/maskattn/mask.hpp. Docstrings say which convention each reads.
#include <fmt/format.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/mask.hpp"
#include "scalars.hpp"

namespace maskattn::python {
namespace {

Align read_align(const std::string& align) {
  return read_choice<Align>("align", align,
                            {{"top_left", Align::TopLeft}, {"bottom_right", Align::BottomRight}});
}

// None = no limit.
int64_t read_window(nb::handle size, std::string_view name) {
  return read_optional_int(size, name).value_or(kUnbounded);
}

// A Python callable held by a Mask part: copied and destroyed wherever the
// Mask is, so it takes the GIL for both (and for the call).
class PythonRule {
 public:
  explicit PythonRule(nb::object fn) : fn_(std::move(fn)) {}
  PythonRule(const PythonRule& other) {
    nb::gil_scoped_acquire gil;
    fn_ = other.fn_;
  }
  PythonRule& operator=(const PythonRule&) = delete;
  ~PythonRule() {
    nb::gil_scoped_acquire gil;
    fn_.reset();
  }
  // True = may attend. Python's and numpy's bools are read; anything else is
  // an Error naming the element, not a guess at its truth value.
  bool operator()(int64_t b, int64_t h, int64_t i, int64_t j) const {
    nb::gil_scoped_acquire gil;
    const nb::object r = fn_(b, h, i, j);
    if (r.is(Py_True)) return true;
    if (r.is(Py_False)) return false;
    if (nb::isinstance(r, nb::module_::import_("numpy").attr("bool_"))) {
      const int truth = PyObject_IsTrue(r.ptr());
      if (truth < 0) throw nb::python_error();
      return truth != 0;
    }
    throw Error(
        "predicate: fn", "fn(b, h, i, j) returning a bool (True = may attend)",
        fmt::format("{} at (b, h, i, j) = ({}, {}, {}, {})", python_type_name(r), b, h, i, j));
  }

 private:
  nb::object fn_;
};

}  // namespace

Mask read_mask(nb::handle obj, std::string_view name) {
  if (obj.is_none()) return {};
  Mask m;
  if (nb::try_cast(obj, m)) return m;
  throw Error(name,
              "a maskattn.Mask or None (wrap arrays with keep(), block() or bias(), or an "
              "adapter such as from_sdpa_mask())",
              python_type_name(obj));
}

void bind_mask(nb::module_& m) {
  nb::class_<Mask>(m, "Mask",
                   "Which (batch b, head h, query i, key j) pairs may attend, plus an optional\n"
                   "additive bias. Build one with the functions of this module and combine\n"
                   "them with `&` (a pair is allowed only if both allow it; biases add).\n"
                   "Mask() allows every pair.")
      .def(nb::init<>(), "The empty mask: every pair may attend, no bias.")
      .def(
          "__and__", [](const Mask& a, const Mask& b) { return a & b; }, nb::is_operator(),
          "Both masks must allow a pair; their biases add.")
      .def_prop_ro("allows_all", &Mask::allows_all,
                   "True when the mask has no parts: every pair may attend, no bias.")
      .def("describe", &Mask::describe,
           "The mask as text, e.g. \"causal(top_left) & key_lengths(2)\".")
      .def("__repr__", [](const Mask& mask) { return "maskattn.Mask(" + mask.describe() + ")"; })
      .def(
          "materialize",
          [](const Mask& mask, int64_t batch, int64_t heads, int64_t q_len, int64_t k_len) {
            Tensor<float> dense;
            {
              nb::gil_scoped_release release;
              dense = mask.materialize(batch, heads, q_len, k_len);
            }
            return to_numpy(std::move(dense));
          },
          "batch"_a, "heads"_a, "q_len"_a, "k_len"_a,
          "The dense additive mask as float32 (batch, heads, q_len, k_len): 0 (or the\n"
          "bias) where a pair may attend, -inf where it is masked.");

  m.def(
      "causal", [](const std::string& align) { return causal(read_align(align)); },
      "align"_a = "top_left",
      "Look-ahead mask: query i may attend key j iff j <= i + offset; offset is 0\n"
      "for align=\"top_left\" and k_len - q_len for \"bottom_right\" (the last query\n"
      "lines up with the last key: decoding with a KV cache).");
  m.def(
      "sliding_window",
      [](nb::handle left, nb::handle right, const std::string& align) {
        return sliding_window(read_window(left, "left"), read_window(right, "right"),
                              read_align(align));
      },
      "left"_a.none(), "right"_a.none() = 0, "align"_a = "top_left",
      "Band around the (aligned) diagonal: i' - left <= j <= i' + right, i' = i +\n"
      "offset. left, right >= 0, or None for no limit; causal() is\n"
      "sliding_window(None, 0).");
  m.def(
      "prefix_lm",
      [](int64_t n, const std::string& align) { return prefix_lm(n, read_align(align)); }, "n"_a,
      "align"_a = "top_left",
      "Prefix-LM: the first n keys are visible to every query, the rest causally.");
  m.def(
      "documents",
      [](nb::handle ids, nb::handle key_ids) {
        const ArrayArg q = read_array(ids, "ids");
        const ArrayArg k = read_array(key_ids, "key_ids");
        // The C++ parts are query_ids and key_ids; Python's first is ids.
        return with_python_names({{"documents: query_ids", "documents: ids"}}, [&] {
          return key_ids.is_none() ? documents(q.view) : documents(q.view, k.view);
        });
      },
      "ids"_a, "key_ids"_a.none() = nb::none(),
      "Packed sequences (block diagonal): i and j may attend iff they carry the same\n"
      "document id. ids: int array (L,) shared by the batch or (B, L). With key_ids\n"
      "(cross attention), ids are the queries' and key_ids the keys'.");
  m.def(
      "key_lengths",
      [](nb::handle lengths) { return key_lengths(read_int64_vector(lengths, "lengths")); },
      "lengths"_a,
      "Padding from lengths: key j of batch b is visible iff j < lengths[b]. (B,) ints.");
  m.def(
      "query_lengths",
      [](nb::handle lengths) { return query_lengths(read_int64_vector(lengths, "lengths")); },
      "lengths"_a, "Query i of batch b attends iff i < lengths[b]; the other rows are empty rows.");

  const char* dense_shapes =
      "\n\nShapes broadcast as in PyTorch against (B, H, Lq, Lk): (S,), (L, S), (B, L, S)\n"
      "or (B*H, L, S), (B, H, L, S); any dimension may be 1. A 2-D array is (L, S),\n"
      "or (B, S) key padding with key_padding=True. The data is copied.";
  using DensePart = Mask (*)(const AnyView&, Dims2);
  const auto def_dense = [&](const char* name, DensePart part, const std::string& doc) {
    m.def(
        name,
        [part](nb::handle array, bool key_padding) {
          const ArrayArg a = read_array(array, "array");
          return part(a.view, key_padding ? Dims2::BatchKey : Dims2::QueryKey);
        },
        "array"_a, nb::kw_only(), "key_padding"_a = false, (doc + dense_shapes).c_str());
  };
  def_dense("keep", &keep, "Dense bool mask, True = may attend.");
  def_dense("block", &block, "Dense bool mask, True = masked.");
  def_dense("bias", &bias,
            "Dense float additive mask: added to the scores, -inf = masked (NaN and\n"
            "+inf are errors).");
  m.def(
      "alibi",
      [](nb::handle slopes, const std::string& align) {
        return alibi(read_float32_vector(slopes, "slopes"), read_align(align));
      },
      "slopes"_a, "align"_a = "top_left",
      "ALiBi bias -slopes[h] * |i + offset - j|, one slope per head (H,); masks\n"
      "nothing (combine with causal()).");
  m.def(
      "alibi_slopes",
      [](int64_t num_heads) {
        const std::vector<float> s = alibi_slopes(num_heads);
        Tensor<float> t({static_cast<int64_t>(s.size())});
        std::copy(s.begin(), s.end(), t.data());
        return to_numpy(std::move(t));
      },
      "num_heads"_a, "The slopes of the ALiBi paper for num_heads heads, float32 (num_heads,).");
  m.def(
      "predicate",
      [](nb::callable fn, const std::string& name) {
        return predicate(PythonRule(nb::borrow<nb::object>(fn)), name);
      },
      "fn"_a, "name"_a = "predicate",
      "Any rule: fn(b, h, i, j) -> bool (True = may attend), called once per element\n"
      "each time the mask meets a new shape (slow for large shapes).");

  m.def(
      "from_torch_mha_mask",
      [](nb::handle attn_mask, nb::handle key_padding_mask, nb::handle num_heads) {
        const ArrayArg a = read_array(attn_mask, "attn_mask");
        const ArrayArg k = read_array(key_padding_mask, "key_padding_mask");
        return from_torch_mha_mask(a.view, k.view,
                                   read_optional_int(num_heads, "num_heads").value_or(0));
      },
      "attn_mask"_a.none() = nb::none(), "key_padding_mask"_a.none() = nb::none(),
      "num_heads"_a.none() = nb::none(),
      "torch.nn.MultiheadAttention's masks: attn_mask bool (True = masked) or float\n"
      "additive, (L, S) or (B*num_heads, L, S); key_padding_mask (B, S) bool (True =\n"
      "masked) or float additive. num_heads is needed for a 3-D attn_mask.");
  m.def(
      "from_sdpa_mask",
      [](nb::handle attn_mask, bool is_causal) {
        const ArrayArg a = read_array(attn_mask, "attn_mask");
        return from_sdpa_mask(a.view, is_causal);
      },
      "attn_mask"_a.none() = nb::none(), "is_causal"_a = false,
      "torch.nn.functional.scaled_dot_product_attention's mask: bool (True = may\n"
      "attend) or float additive, broadcast right-aligned against (B, H, L, S);\n"
      "is_causal is top-left. Both at once is an error, as in PyTorch.");
  m.def(
      "from_hf_attention_mask",
      [](nb::handle attention_mask) {
        const ArrayArg a = read_array(attention_mask, "attention_mask");
        return from_hf_attention_mask(a.view);
      },
      "attention_mask"_a.none(),
      "Hugging Face attention_mask: (B, S) with 1 = attend, 0 = padding; or the 4-D\n"
      "(B, 1|H, L|1, S) form (bool/int 1 = attend, or float additive as transformers\n"
      "builds it: 0 = attend, the dtype's minimum or -inf = masked). None: no mask.");
  m.def(
      "from_keras_mask",
      [](nb::handle attention_mask, bool use_causal_mask) {
        const ArrayArg a = read_array(attention_mask, "attention_mask");
        return from_keras_mask(a.view, use_causal_mask);
      },
      "attention_mask"_a.none() = nb::none(), "use_causal_mask"_a = false,
      "Keras MultiHeadAttention: attention_mask (B, T, S), 1/True = attend, shared by\n"
      "every head; use_causal_mask adds a top-left look-ahead mask.");
  m.def(
      "from_onnx_attention_mask",
      [](nb::handle attn_mask, bool is_causal) {
        const ArrayArg a = read_array(attn_mask, "attn_mask");
        return from_onnx_attention_mask(a.view, is_causal);
      },
      "attn_mask"_a.none() = nb::none(), "is_causal"_a = false,
      "ONNX Attention (opset 23): attn_mask bool (True = attend) or float additive,\n"
      "broadcast right-aligned against (B, H, Lq, Lk); is_causal (top-left) applies\n"
      "as well as the mask.");
  m.def(
      "subsequent_mask", [](int64_t size) { return to_numpy(subsequent_mask(size)); }, "size"_a,
      "The look-ahead pattern of the write-ups: bool (1, size, size), True on and\n"
      "below the diagonal (True = may attend; use it with keep()).");
}

}  // namespace maskattn::python
