// The registration functions of the _maskattn module, one per public header
// group, and what they share.
#pragma once

#include <fmt/format.h>
#include <nanobind/nanobind.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "maskattn/error.hpp"
#include "maskattn/mask.hpp"

namespace maskattn::nn {
class Gradients;
}  // namespace maskattn::nn

namespace maskattn::python {

namespace nb = nanobind;
using namespace nb::literals;

void bind_mask(nb::module_& m);        // Mask, its parts, the adapters
void bind_attention(nb::module_& m);   // attention()
void bind_encoding(nb::module_& m);    // sinusoidal_encoding(), mlm_mask()
void bind_io(nb::module_& m);          // save_safetensors(), load_safetensors(), ...
void bind_nn(nb::module_& m);          // the modules: Linear ... MultiheadAttention, Transformer
void bind_text(nb::module_& m);        // WordPieceTokenizer
void bind_models(nb::module_& m);      // BertModel, SentenceEncoder
void bind_viz(nb::module_& m);         // the submodule viz: pictures as PNG bytes and HTML
void bind_train(nb::module_& m);       // cross_entropy(), Gradients, the submodule optim
void bind_seq2seq(nb::module_& m);     // Seq2SeqTransformer, CopyTask, Seq2SeqTrainer
void bind_leak_check(nb::module_& m);  // check_leaks(), check_model_leaks(), LeakReport

struct ArrayArg;  // arrays.hpp

// The gradients of a forward_backward: {parameter name: new float32 array}.
nb::dict gradients_py(const nn::Gradients& grads);
// The gradient of a forward's output: a float32 array of exactly `shape`;
// Error naming `name` otherwise.
ArrayArg read_grad_output(nb::handle obj, const std::vector<int64_t>& shape,
                          std::string_view name = "grad_output");

// str, bytes or os.PathLike, as the bytes the file system takes (os.fsencode:
// what open() does with a path).
std::string read_path(nb::handle path);

// A maskattn.Mask, or None for no mask. Arrays are refused (Error naming
// `name`): their meaning of True depends on the library they come from,
// which only an adapter can say.
Mask read_mask(nb::handle obj, std::string_view name);

// Runs f(). The C++ API gathers options in a struct and its errors name them
// "<prefix><name>" ("opts.scale"); in Python they are keyword arguments, so an
// Error naming one is rethrown naming "<name>".
template <class F>
decltype(auto) with_keyword_names(std::string_view prefix, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const Error& e) {
    std::string_view arg = e.argument();
    if (!arg.starts_with(prefix)) throw;
    arg.remove_prefix(prefix.size());
    throw Error(arg, e.expected(), e.actual());
  }
}

// The value named by `text` among `choices` (Python spells enums as strings);
// Error naming `argument` and listing the choices otherwise.
template <class T>
T read_choice(std::string_view argument, std::string_view text,
              std::initializer_list<std::pair<std::string_view, T>> choices) {
  std::string names;  // "a", "b" or "c"
  std::size_t k = 0;
  for (const auto& [name, value] : choices) {
    if (name == text) return value;
    const char* sep = k == 0 ? "" : (k + 1 == choices.size() ? " or " : ", ");
    names += fmt::format("{}\"{}\"", sep, name);
    ++k;
  }
  throw Error(argument, names, fmt::format("\"{}\"", text));
}

}  // namespace maskattn::python
