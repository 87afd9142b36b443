// maskattn.sinusoidal_encoding and maskattn.mlm_mask (positional.hpp, mlm.hpp).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/mlm.hpp"
#include "maskattn/positional.hpp"

namespace maskattn::python {
namespace {

nb::tuple mlm_mask_py(nb::handle token_ids, int64_t vocab_size, int64_t mask_token_id,
                      std::vector<int64_t> special_token_ids, double mlm_probability,
                      double mask_replace_prob, double random_replace_prob, uint64_t seed,
                      nb::handle word_ids) {
  // (L,) is one row: read it as (1, L) and give the results back as (L,).
  Tensor<int64_t> ids =
      read_int64_tensor(token_ids, "token_ids", "rank 2 (B, L), or rank 1 (L,)", 1, 2);
  const bool one_row = ids.rank() == 1;
  Tensor<int64_t> words;
  if (!word_ids.is_none())
    words = read_int64_tensor(word_ids, "word_ids",
                              one_row ? "rank 1 (L,), as token_ids" : "rank 2 (B, L), as token_ids",
                              ids.rank(), ids.rank());
  const std::vector<int64_t> rows = {one_row ? 1 : ids.size(0), ids.shape().back()};

  MlmOptions o;
  o.vocab_size = vocab_size;
  o.mask_token_id = mask_token_id;
  o.special_token_ids = std::move(special_token_ids);
  o.mlm_probability = mlm_probability;
  o.mask_replace_prob = mask_replace_prob;
  o.random_replace_prob = random_replace_prob;
  o.seed = seed;
  if (!word_ids.is_none()) {
    // Their own shape: the library checks that it equals token_ids'.
    const int64_t word_rows = one_row ? 1 : words.size(0);
    o.word_ids = View<const int64_t, 2>(words.data(), {word_rows, words.shape().back()});
  }

  MlmResult r = with_keyword_names("options.", [&] {
    nb::gil_scoped_release release;
    return mlm_mask(View<const int64_t, 2>(ids.data(), {rows[0], rows[1]}), o);
  });
  if (one_row) {
    // Same data, shape (L,).
    Tensor<int64_t> input_ids({rows[1]}), labels({rows[1]});
    std::copy(r.input_ids.begin(), r.input_ids.end(), input_ids.data());
    std::copy(r.labels.begin(), r.labels.end(), labels.data());
    return nb::make_tuple(to_numpy(std::move(input_ids)), to_numpy(std::move(labels)));
  }
  return nb::make_tuple(to_numpy(std::move(r.input_ids)), to_numpy(std::move(r.labels)));
}

}  // namespace

void bind_encoding(nb::module_& m) {
  m.def(
      "sinusoidal_encoding",
      [](int64_t length, int64_t dim, double base, const std::string& layout) {
        const PeLayout l = read_choice<PeLayout>(
            "layout", layout,
            {{"interleaved", PeLayout::Interleaved}, {"concatenated", PeLayout::Concatenated}});
        return to_numpy(sinusoidal_encoding(length, dim, base, l));
      },
      "length"_a, "dim"_a, "base"_a = 10000.0, "layout"_a = "interleaved",
      R"(Sinusoidal positional encoding, float32 (length, dim) (Vaswani et al. 2017):
angle(pos, i) = pos / base^(2i / dim); layout "interleaved" (the paper):
PE[pos, 2i] = sin, PE[pos, 2i+1] = cos; "concatenated": sines in the first
half, cosines in the second. dim must be even; base finite and > 1.)");

  m.def("mlm_mask", &mlm_mask_py, "token_ids"_a, nb::kw_only(), "vocab_size"_a, "mask_token_id"_a,
        "special_token_ids"_a = std::vector<int64_t>{}, "mlm_probability"_a = 0.15,
        "mask_replace_prob"_a = 0.8, "random_replace_prob"_a = 0.1, "seed"_a = 0,
        "word_ids"_a.none() = nb::none(),
        R"(BERT masked-LM token masking (Devlin et al. 2019).

token_ids: int array (B, L) or (L,). Each non-special token is chosen with
probability mlm_probability; of the chosen, mask_replace_prob become
mask_token_id, random_replace_prob a random non-special id in [0, vocab_size),
the rest stay. Returns (input_ids, labels), int64, shaped like token_ids;
labels hold the original id where chosen and -100 elsewhere. Reproducible from
seed; word_ids (same shape, -1 = no word) chooses whole words together.)");
}

}  // namespace maskattn::python
