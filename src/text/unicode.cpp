#include "text/unicode.hpp"

#include <fmt/format.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>

#include <cstdint>

#include "maskattn/error.hpp"

namespace maskattn::text {
namespace {

// True when c was assigned in Unicode `major`.0 or earlier (ICU gives
// unassigned code points the age 0.0). Unicode 8 and 9 have no minor
// versions, so the major number decides.
bool assigned_by(char32_t c, uint8_t major) {
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(c), age);
  return age[0] != 0 && age[0] <= major;
}

// The general category of c in Unicode 8.0, the tables of the
// unicode_categories crate that tokenizers uses: ICU's (Unicode 15) for
// characters assigned by 8.0, except those whose category changed since
// (found by comparing every code point with the tokenizers crate), and
// unassigned for the characters added later.
UCharCategory category_in_unicode_8(char32_t c) {
  switch (c) {
    case 0x166D: return U_OTHER_PUNCTUATION;       // CANADIAN SYLLABICS CHI SIGN, now So
    case 0x111C9: return U_OTHER_PUNCTUATION;      // SHARADA SANDHI MARK, now Mn
    case 0x1734: return U_NON_SPACING_MARK;        // HANUNOO SIGN PAMUDPOD, now Mc
    case 0x1885: return U_OTHER_LETTER;            // MONGOLIAN LETTER ALI GALI BALUDA, now Mn
    case 0x1886: return U_OTHER_LETTER;            // ... THREE BALUDA, now Mn
    case 0xA9BD: return U_COMBINING_SPACING_MARK;  // JAVANESE CONSONANT SIGN KERET, now Mn
    default: break;
  }
  if (!assigned_by(c, 8)) return U_UNASSIGNED;
  return static_cast<UCharCategory>(u_charType(static_cast<UChar32>(c)));
}

const UNormalizer2* nfd() {
  // ICU's singleton; the lookup is done once (thread-safe static).
  static const UNormalizer2* const instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2* n = unorm2_getNFDInstance(&status);
    if (U_FAILURE(status) || n == nullptr)
      throw Error("ICU", "its NFD data", fmt::format("error {}", u_errorName(status)));
    return n;
  }();
  return instance;
}

// Canonical combining class as of Unicode 9.0 (the unicode-normalization
// tables of tokenizers): a class never changes once assigned, and characters
// added later count as starters (class 0), so they never move.
uint8_t combining_class_9(char32_t c) {
  if (c < 0x300) return 0;
  const uint8_t ccc = u_getCombiningClass(static_cast<UChar32>(c));
  return ccc != 0 && assigned_by(c, 9) ? ccc : 0;
}

}  // namespace

void check_utf8(std::string_view text) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const auto bad = [&](std::size_t k) {
    throw Error("text", "valid UTF-8",
                fmt::format("invalid byte 0x{:02x} at offset {}", byte(k), k));
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char b0 = byte(i);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    // The lead byte gives the length and the range of the second byte, which
    // rules out overlong forms (E0, F0), surrogates (ED) and > U+10FFFF (F4).
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      n = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      n = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      bad(i);
    }
    for (std::size_t k = 1; k < n; ++k) {
      if (i + k >= text.size())
        throw Error("text", "valid UTF-8",
                    fmt::format("a sequence cut off by the end: byte 0x{:02x} at offset {} needs "
                                "{} bytes, {} follow",
                                b0, i, n - 1, text.size() - i - 1));
      const unsigned char b = byte(i + k);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) bad(i + k);
    }
    i += n;
  }
}

bool is_whitespace_non_ascii(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

bool is_control_non_ascii(char32_t c) {
  switch (category_in_unicode_8(c)) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE: return true;
    default: return false;
  }
}

bool is_punctuation_non_ascii(char32_t c) {
  switch (category_in_unicode_8(c)) {
    case U_CONNECTOR_PUNCTUATION:
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION: return true;
    default: return false;
  }
}

bool is_nonspacing_mark_non_ascii(char32_t c) {
  return category_in_unicode_8(c) == U_NON_SPACING_MARK;
}

char32_t simple_lowercase_non_ascii(char32_t c) {
  return static_cast<char32_t>(u_tolower(static_cast<UChar32>(c)));
}

void append_nfd_non_latin1(char32_t c, std::vector<char32_t>& out) {
  // ICU's full canonical decomposition (Hangul included), for characters of
  // Unicode 9.0; later ones stay as they are (U+11938 does not decompose there).
  UChar buffer[32];  // canonical decompositions are at most 4 code points
  int32_t length = -1;
  if (assigned_by(c, 9)) {
    UErrorCode status = U_ZERO_ERROR;
    length = unorm2_getDecomposition(nfd(), static_cast<UChar32>(c), buffer, 32, &status);
    if (U_FAILURE(status)) length = -1;
  }
  const auto push = [&](char32_t d) {
    // Canonical ordering: a mark moves before the marks of a higher class
    // right before it (a stable sort of each run of non-starters).
    const uint8_t ccc = combining_class_9(d);
    std::size_t k = out.size();
    if (ccc != 0)
      while (k > 0 && combining_class_9(out[k - 1]) > ccc) --k;
    out.insert(out.begin() + static_cast<std::ptrdiff_t>(k), d);
  };
  if (length < 0) {
    push(c);
    return;
  }
  for (int32_t i = 0; i < length;) {
    UChar32 d;
    U16_NEXT(buffer, i, length, d);
    push(static_cast<char32_t>(d));
  }
}

}  // namespace maskattn::text
