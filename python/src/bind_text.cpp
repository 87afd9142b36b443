// maskattn.WordPieceTokenizer (include/maskattn/text/wordpiece.hpp).
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bindings.hpp"
#include "maskattn/text/wordpiece.hpp"

namespace maskattn::python {
namespace {

// The UTF-8 of a str, viewing the object's own buffer (alive while the call
// holds the argument). A str with a lone surrogate has no UTF-8: Python's
// UnicodeEncodeError, a ValueError, as for any bad input.
std::string_view utf8_of(const nb::str& text) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (data == nullptr) throw nb::python_error();
  return {data, static_cast<std::size_t>(size)};
}

}  // namespace

void bind_text(nb::module_& m) {
  using text::WordPieceTokenizer;
  nb::class_<WordPieceTokenizer>(m, "WordPieceTokenizer",
                                 R"(BERT's WordPiece tokenizer: the same ids as Hugging Face's
BertTokenizer (transformers 5.23) for a model folder with tokenizer.json or
vocab.txt (+ tokenizer_config.json). Bad input raises ValueError.)")
      .def(
          "__init__",
          [](WordPieceTokenizer* self, const std::filesystem::path& model_dir) {
            new (self) WordPieceTokenizer(WordPieceTokenizer::from_folder(model_dir));
          },
          "model_dir"_a,
          R"(Reads the tokenizer of a Hugging Face model folder (tokenizer.json,
or vocab.txt and tokenizer_config.json).)")
      .def(
          "encode",
          [](const WordPieceTokenizer& t, const nb::str& text, int64_t max_length) {
            const std::string_view utf8 = utf8_of(text);
            nb::gil_scoped_release release;
            return t.encode(utf8, max_length);
          },
          "text"_a, "max_length"_a = 0,
          R"(Token ids [CLS] ... [SEP], as tokenizer(text)["input_ids"]. max_length >= 2
keeps the first max_length - 2 pieces (truncation=True); 0 keeps all.)")
      .def(
          "tokenize",
          [](const WordPieceTokenizer& t, const nb::str& text) {
            const std::string_view utf8 = utf8_of(text);
            nb::gil_scoped_release release;
            return t.tokenize(utf8);
          },
          "text"_a, "The pieces of text, without [CLS] and [SEP].")
      .def("token_to_id", &WordPieceTokenizer::token_to_id, "token"_a,
           "The id of a vocabulary entry, or None when token is not one.")
      .def("id_to_token", &WordPieceTokenizer::id_to_token, "id"_a,
           "The vocabulary entry of id, in [0, vocab_size).")
      .def_prop_ro("vocab_size", &WordPieceTokenizer::vocab_size, "Number of vocabulary entries.")
      .def_prop_ro("cls_id", &WordPieceTokenizer::cls_id, "Id of the [CLS] token.")
      .def_prop_ro("sep_id", &WordPieceTokenizer::sep_id, "Id of the [SEP] token.")
      .def_prop_ro("pad_id", &WordPieceTokenizer::pad_id, "Id of the [PAD] token.")
      .def_prop_ro("unk_id", &WordPieceTokenizer::unk_id, "Id of the [UNK] token.")
      .def_prop_ro("mask_id", &WordPieceTokenizer::mask_id, "Id of the [MASK] token.");
}

}  // namespace maskattn::python
