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
#include <type_traits>
#include <utility>
#include <vector>

#include "maskattn/error.hpp"
#include "maskattn/mask.hpp"

// Every nb::handle parameter of this module accepts None. Parameters that take
// arrays (or paths, masks, sizes given as objects) are nb::handles read by the
// helpers of arrays.hpp, which say what None means there: "absent" for an
// optional argument, a maskattn::Error (ValueError) naming the argument for a
// required one. Without this nanobind refuses None before the binding runs, as
// a TypeError that names no argument ("incompatible function arguments").
// nanobind's own trait for std::optional and std::nullptr_t; specialised once
// here, before any function is bound, so that no binding can forget it.
template <>
struct nanobind::detail::has_arg_defaults<nanobind::handle> : std::true_type {};

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

// Runs f(). Where the C++ API names an argument otherwise than the Python
// signature does (documents' "query_ids" is Python's "ids"; the trainer's
// "batch.tgt_out" is step()'s "tgt_out"), an Error whose argument starts with
// one of `renames`' first names is rethrown with that start replaced by the
// second. The first match wins.
template <class F>
decltype(auto) with_python_names(
    std::initializer_list<std::pair<std::string_view, std::string_view>> renames, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const Error& e) {
    const std::string_view arg = e.argument();
    for (const auto& [from, to] : renames)
      if (arg.starts_with(from))
        throw Error(std::string(to) + std::string(arg.substr(from.size())), e.expected(),
                    e.actual());
    throw;
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
