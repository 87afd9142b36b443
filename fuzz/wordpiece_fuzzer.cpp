// libFuzzer target: the WordPiece tokenizer (text/wordpiece.hpp) on arbitrary
// bytes, valid UTF-8 or not, with the vocabulary of tests/data/tiny_bert (the
// default pipeline: clean_text, Chinese characters, accents stripped,
// lowercase) and with that vocabulary plus a few multi-byte pieces under a
// "raw" pipeline (no normalization, words of at most 8 code points). The first
// byte picks the tokenizer; the rest is the text.
//
// Expected outcomes: ids, or maskattn::Error for invalid UTF-8 and only for
// it (an independent strict UTF-8 check decides). Checked for every input:
//  - encode = [CLS] + the ids of tokenize()'s pieces + [SEP]; every id in
//    [0, vocab_size); every piece a vocabulary entry;
//  - encode(text, m) for m = 2, 3 and the full length is [CLS], the first
//    m - 2 pieces' ids, [SEP];
//  - the raw pipeline loses and invents nothing: when no piece is [UNK], the
//    pieces with their "##" dropped, joined, are the text without its
//    White_Space.
// A finding: any other exception, a sanitizer report, a broken invariant.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/error.hpp"
#include "maskattn/text/wordpiece.hpp"
#include "text/unicode.hpp"

namespace {

using maskattn::text::WordPieceOptions;
using maskattn::text::WordPieceTokenizer;

// Strict UTF-8 (RFC 3629): no overlong forms, surrogates or code points past
// U+10FFFF. Written here, not taken from the library, to check it.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    char32_t c, min;
    if ((b0 & 0xE0) == 0xC0) {
      n = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      n = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      n = 4, c = b0 & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      c = (c << 6) | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

struct Tokenizers {
  WordPieceTokenizer normal, raw;
};

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    WordPieceTokenizer normal =
        WordPieceTokenizer::from_folder(MASKATTN_SOURCE_DIR "/tests/data/tiny_bert");
    std::vector<std::string> vocab;
    for (int64_t id = 0; id < normal.vocab_size(); ++id) vocab.push_back(normal.id_to_token(id));
    for (const char* extra : {"É", "##É", "##ß", "Σ", "##σ", "##日", "ﬁ", "a\u0301", "##\u0301",
                              "😀", "##😀", "Cat", "##S"})
      vocab.emplace_back(extra);
    WordPieceOptions raw;
    raw.clean_text = false;
    raw.handle_chinese_chars = false;
    raw.strip_accents = false;
    raw.lowercase = false;
    raw.max_input_chars_per_word = 8;
    return Tokenizers{normal, WordPieceTokenizer(vocab, raw)};
  }();
  return t;
}

// The text without its White_Space code points (valid UTF-8 only).
std::string without_whitespace(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t start = i;
    if (!maskattn::text::is_whitespace(maskattn::text::next_code_point(text, i)))
      out.append(text.substr(start, i - start));
  }
  return out;
}

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool raw = (data[0] & 1) != 0;
  const WordPieceTokenizer& tok = raw ? tokenizers().raw : tokenizers().normal;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::vector<int64_t> ids;
  std::vector<std::string> pieces;
  try {
    ids = tok.encode(text);
    pieces = tok.tokenize(text);
  } catch (const maskattn::Error& e) {
    check(!valid_utf8(text) && e.argument() == "text");
    // tokenize() says the same.
    try {
      (void)tok.tokenize(text);
      std::abort();
    } catch (const maskattn::Error&) {
    }
    return 0;
  }
  check(valid_utf8(text));

  // [CLS] pieces [SEP], every id in range and the id of its piece.
  check(ids.size() == pieces.size() + 2);
  check(ids.front() == tok.cls_id() && ids.back() == tok.sep_id());
  bool unknown = false;
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    const int64_t id = ids[k + 1];
    check(id >= 0 && id < tok.vocab_size());
    check(!pieces[k].empty() && tok.token_to_id(pieces[k]) == id);
    check(tok.id_to_token(id) == pieces[k]);
    unknown = unknown || id == tok.unk_id();
  }

  // Truncation keeps the first pieces.
  for (const int64_t m : {int64_t{2}, int64_t{3}, static_cast<int64_t>(ids.size())}) {
    const std::vector<int64_t> cut = tok.encode(text, m);
    const std::size_t keep = std::min(pieces.size(), static_cast<std::size_t>(m - 2));
    check(cut.size() == keep + 2 && cut.front() == tok.cls_id() && cut.back() == tok.sep_id());
    for (std::size_t k = 0; k < keep; ++k) check(cut[k + 1] == ids[k + 1]);
  }

  // The raw pipeline only splits: the pieces spell the text.
  if (raw && !unknown) {
    std::string spelled;
    for (const std::string& piece : pieces)
      spelled += std::string_view(piece).starts_with("##") ? piece.substr(2) : piece;
    check(spelled == without_whitespace(text));
  }
  return 0;
}
