// maskattn.check_leaks, check_model_leaks and their LeakReport:
// include/maskattn/leak_check.hpp. A Python model is called with numpy token
// ids and may return any array (numpy, a CPU torch tensor) of floats.
#include <fmt/format.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/leak_check.hpp"

namespace maskattn::python {
namespace {

LeakReport check_leaks_py(nb::handle mask_obj, nb::handle expect_obj, int64_t batch, int64_t heads,
                          int64_t q_len, int64_t k_len, int64_t head_dim, uint64_t seed,
                          double tolerance, int64_t max_listed, std::optional<double> scale,
                          double softcap, const std::string& backend) {
  const Mask mask = read_mask(mask_obj, "mask");
  const Mask expect = read_mask(expect_obj, "expect");
  LeakCheckOptions opts;
  opts.head_dim = head_dim;
  opts.seed = seed;
  opts.tolerance = static_cast<float>(tolerance);
  opts.max_listed = max_listed;
  if (scale) opts.attention.scale = static_cast<float>(*scale);
  opts.attention.softcap = static_cast<float>(softcap);
  opts.attention.backend = read_choice<Backend>(
      "backend", backend,
      {{"auto", Backend::Auto}, {"reference", Backend::Reference}, {"flash", Backend::Flash}});
  // The C++ API's MaskShape "shape" is Python's four sizes.
  return with_python_names({{"shape", "batch, heads, q_len, k_len"}}, [&] {
    return with_keyword_names("opts.", [&] {
      return with_keyword_names("opts.attention.", [&] {
        nb::gil_scoped_release release;
        return check_leaks(mask, expect, {batch, heads, q_len, k_len}, opts);
      });
    });
  });
}

LeakReport check_model_leaks_py(nb::callable model, nb::handle tokens_obj, nb::handle expect_obj,
                                int64_t vocab_size, uint64_t seed, double tolerance,
                                int64_t max_listed) {
  const Tensor<int64_t> tokens = read_int64_tensor(tokens_obj, "tokens", "rank 2 (B, L)", 2, 2);
  const Mask expect = read_mask(expect_obj, "expect");
  ModelLeakOptions opts;
  opts.vocab_size = vocab_size;
  opts.seed = seed;
  opts.tolerance = static_cast<float>(tolerance);
  opts.max_listed = max_listed;
  // The GIL stays held: every step calls the model.
  const SequenceModel call = [&](View<const int64_t, 2> ids) {
    Tensor<int64_t> copy({ids.size(0), ids.size(1)});
    for (int64_t b = 0; b < ids.size(0); ++b)
      std::copy(ids.row(b), ids.row(b) + ids.size(1), copy.data() + b * ids.size(1));
    const nb::object out = model(to_numpy(std::move(copy)));
    const ArrayArg a = read_array(out, "model output", "an array of numbers (B, L_out, ...)");
    if (a.view.data == nullptr)
      throw Error("model output", "an array of numbers (B, L_out, ...)", "None");
    return to_float32(a.view);
  };
  return with_keyword_names(
      "opts.", [&] { return check_model_leaks(call, tokens.view<2>(), expect, opts); });
}

}  // namespace

void bind_leak_check(nb::module_& m) {
  nb::class_<Leak>(m, "Leak",
                   "Query (output) i of batch b, head h changed when key (token) j, which the\n"
                   "expectation hides from it, was perturbed.")
      .def_ro("b", &Leak::b, "Batch element.")
      .def_ro("h", &Leak::h, "Head (0 for a model).")
      .def_ro("i", &Leak::i, "Query, or output position of a model.")
      .def_ro("j", &Leak::j, "Key, or token position of a model.")
      .def_ro("change", &Leak::change,
              "The largest |difference| in row i's output when j alone was perturbed.")
      .def("__repr__", [](const Leak& l) {
        return fmt::format("maskattn.Leak(b={}, h={}, i={}, j={}, change={:g})", l.b, l.h, l.i, l.j,
                           l.change);
      });

  nb::class_<LeakReport>(m, "LeakReport",
                         "What check_leaks() or check_model_leaks() found. str() gives the\n"
                         "verdict and the listed leaks as a table.")
      .def_prop_ro(
          "shape",
          [](const LeakReport& r) {
            return nb::make_tuple(r.shape.batch, r.shape.heads, r.shape.q_len, r.shape.k_len);
          },
          "(B, H, Lq, Lk) checked; for a model (B, 1, L_out, L_in).")
      .def_ro("hidden_pairs", &LeakReport::hidden_pairs,
              "The (b, h, i, j) pairs the expectation hides: every one was checked.")
      .def_ro("runs", &LeakReport::runs,
              "Attention (or model) calls made, the unperturbed one included.")
      .def_ro("leak_count", &LeakReport::leak_count,
              "Hidden pairs whose output changed (all of them, listed or not).")
      .def_ro("max_change", &LeakReport::max_change, "The largest change among the leaks.")
      .def_ro("leaks", &LeakReport::leaks,
              "The first max_listed leaks in (b, h, i, j) order, as Leak objects.")
      .def_ro("over_masked", &LeakReport::over_masked,
              "Pairs the expectation allows but the mask hides (not a leak; 0 for models).")
      .def_prop_ro(
          "first_over_masked",
          [](const LeakReport& r) -> nb::object {
            if (!r.first_over_masked) return nb::none();
            const auto& p = *r.first_over_masked;
            return nb::make_tuple(p[0], p[1], p[2], p[3]);
          },
          "(b, h, i, j) of the first over-masked pair, or None.")
      .def_ro("tolerance", &LeakReport::tolerance, "A change at most this large was no leak.")
      .def_ro("model", &LeakReport::model, "True for a check_model_leaks() report.")
      .def_prop_ro("leaks_found", &LeakReport::leaks_found, "True when some pair leaks.")
      .def_prop_ro("verdict", &leak_verdict,
                   "One line: \"no leak: ...\", \"LEAK: ...\" or \"nothing checked: ...\".")
      .def("__str__",
           [](const LeakReport& r) {
             std::string text = describe(r);
             if (!text.empty() && text.back() == '\n') text.pop_back();
             return text;
           })
      .def("__repr__", [](const LeakReport& r) {
        return fmt::format("<maskattn.LeakReport: {}>", leak_verdict(r));
      });

  m.def("check_leaks", &check_leaks_py, "mask"_a.none(), "expect"_a.none(), "batch"_a, "heads"_a,
        "q_len"_a, "k_len"_a, nb::kw_only(), "head_dim"_a = 16, "seed"_a = 0, "tolerance"_a = 0.0,
        "max_listed"_a = 20, "scale"_a.none() = nb::none(), "softcap"_a = 0.0, "backend"_a = "auto",
        R"(Does `mask` hide from every query each key that `expect` hides?

Runs attention(q, k, v, mask) on random float32 q, k, v of shape (batch, heads,
q_len, head_dim) / (batch, heads, k_len, head_dim), then perturbs the keys and
values at positions `expect` hides (k four times larger, v shifted by 4) and
checks that the outputs of the queries they are hidden from do not change: a
masked key adds exactly 0, so a correct mask gives identical rows. Ranges of
keys are perturbed at once and split where they say too little, so padding
takes O(log k_len) runs and a diagonal about 1.25 k_len.

mask: the maskattn.Mask under test (build it from other libraries' arrays with
from_torch_mha_mask(), from_sdpa_mask(), from_hf_attention_mask(), ...), or
None for no mask. expect: a Mask whose masked pairs must stay hidden
(causal(), key_lengths(...), sliding_window(...), documents(...)).
tolerance: a change at most this large is no leak (0: any change is one).
max_listed: leaks kept in the report's list. scale, softcap, backend: the
attention call under test. The GIL is released while it runs.

Returns a LeakReport: leaks_found, leak_count, leaks (the first max_listed,
as Leak objects), hidden_pairs (every one checked), runs, over_masked (pairs
the mask hides that `expect` allows); str(report) is the verdict and a table.)");

  m.def("check_model_leaks", &check_model_leaks_py, "model"_a, "tokens"_a, "expect"_a.none(),
        nb::kw_only(), "vocab_size"_a, "seed"_a = 0, "tolerance"_a = 0.0, "max_listed"_a = 20,
        R"(Does output position i of a sequence model depend on a token it must not see?

model(tokens) takes int64 token ids (B, L_in) as a numpy array and returns the
outputs (B, L_out, ...) (numpy, a CPU torch tensor, any array of numbers; run
torch models under torch.no_grad()). It is called once with `tokens`, then with
the tokens at positions `expect` hides replaced by other ids in [0,
vocab_size), and every output row `expect` hides them from must stay the same.
expect: a Mask bound to (B, 1, L_out, L_in): causal() for a decoder's
look-ahead, key_lengths(n) & query_lengths(n) for padding (rows the
expectation leaves empty, such as padded positions, are not checked),
documents(ids) for packed sequences. The model must take its padding from
what it captured (lengths, an attention mask), not from the token values.
A token can only become another id, so a dependence too weak to move a
float32 output goes unseen: a reported leak is certain.

Returns a LeakReport (shape (B, 1, L_out, L_in), leaks with h = 0).)");
}

}  // namespace maskattn::python
