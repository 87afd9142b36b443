// The Unicode properties of BERT's basic tokenization, each from the Unicode
// version the Rust tokenizers crate takes it from (include/maskattn/text/
// wordpiece.hpp says why): general categories as of Unicode 8.0, NFD as of
// 9.0, White_Space and lowercase as ICU has them. Plus strict UTF-8.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace maskattn::text {

// ---- UTF-8 -------------------------------------------------------------------

// Throws Error("text", "valid UTF-8", ...) naming the offset of the first bad
// byte: overlong forms, surrogates and code points above U+10FFFF are invalid.
void check_utf8(std::string_view text);

// The code point at text[i], advancing i. Only for text check_utf8 accepted.
inline char32_t next_code_point(std::string_view text, std::size_t& i) {
  const auto b = [&](std::size_t k) {
    return static_cast<char32_t>(static_cast<unsigned char>(text[k]));
  };
  const char32_t b0 = b(i);
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    const char32_t c = ((b0 & 0x1F) << 6) | (b(i + 1) & 0x3F);
    i += 2;
    return c;
  }
  if (b0 < 0xF0) {
    const char32_t c = ((b0 & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F);
    i += 3;
    return c;
  }
  const char32_t c = ((b0 & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) |
                     (b(i + 3) & 0x3F);
  i += 4;
  return c;
}

// Appends the UTF-8 bytes of a valid code point.
inline void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// ---- the properties BERT's normalizer and pre-tokenizer test -----------------
// Each answers ASCII inline and asks ICU (unicode.cpp) for the rest.

bool is_whitespace_non_ascii(char32_t c);
bool is_control_non_ascii(char32_t c);
bool is_punctuation_non_ascii(char32_t c);
bool is_nonspacing_mark_non_ascii(char32_t c);
char32_t simple_lowercase_non_ascii(char32_t c);
void append_nfd_non_latin1(char32_t c, std::vector<char32_t>& out);

// White_Space (\t \n \r included): Rust's char::is_whitespace.
inline bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r');
  return is_whitespace_non_ascii(c);
}

// What clean_text removes besides U+0000 and U+FFFD: general category Cc, Cf,
// Co or Cs in Unicode 8.0, except \t \n \r (which are whitespace). Unassigned
// code points (Cn) are kept.
inline bool is_control(char32_t c) {
  if (c < 0x80) return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F;
  return is_control_non_ascii(c);
}

// ASCII punctuation (Rust's is_ascii_punctuation: the symbols $ + < = > ^ ` | ~
// too) or general category Pc Pd Ps Pe Pi Pf Po in Unicode 8.0.
inline bool is_punctuation(char32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  return is_punctuation_non_ascii(c);
}

// General category Mn in Unicode 8.0: what strip_accents removes after NFD.
inline bool is_nonspacing_mark(char32_t c) { return c >= 0x80 && is_nonspacing_mark_non_ascii(c); }

// The CJK blocks BERT puts spaces around (handle_chinese_chars).
constexpr bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Appends the canonical decomposition (NFD, Unicode 9.0) of c to out and puts
// the trailing combining marks of out in canonical order: calling it for each
// code point of a string in turn leaves the string's NFD in out.
inline void append_nfd(char32_t c, std::vector<char32_t>& out) {
  // Below U+00C0 nothing decomposes and every combining class is 0.
  if (c < 0xC0)
    out.push_back(c);
  else
    append_nfd_non_latin1(c, out);
}

// The lowercase of c (Rust's char::to_lowercase): ICU's simple mapping, except
// U+0130 -> "i" U+0307, the one unconditional multi-character lowercase
// mapping of SpecialCasing.txt. No context: Σ is always σ. Writes 1 or 2 code
// points to out and returns how many.
inline int lowercase(char32_t c, char32_t out[2]) {
  if (c < 0x80) {
    out[0] = c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
    return 1;
  }
  if (c == 0x130) {
    out[0] = U'i';
    out[1] = 0x307;
    return 2;
  }
  out[0] = simple_lowercase_non_ascii(c);
  return 1;
}

}  // namespace maskattn::text
