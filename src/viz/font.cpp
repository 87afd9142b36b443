#include "viz/font.hpp"

#include <algorithm>

namespace maskattn::viz::detail {

const Glyph& Font::glyph(char32_t code) const {
  const auto find = [&](char32_t c) -> const Glyph* {
    const auto it = std::lower_bound(glyphs.begin(), glyphs.end(), c,
                                     [](const Glyph& g, char32_t x) { return g.code < x; });
    return it != glyphs.end() && it->code == c ? &*it : nullptr;
  };
  if (const Glyph* g = find(code)) return *g;
  return *find(U'?');  // every generated font has ASCII
}

int Font::text_width(std::string_view utf8) const {
  int w = 0;
  for (char32_t c : decode_utf8(utf8)) w += glyph(c).advance;
  return w;
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    // Sequence length and the bits of the first byte; the smallest code point
    // each length may encode (overlong forms are invalid).
    int n = 0;
    char32_t c = 0, min = 0;
    if (b < 0x80) {
      n = 1, c = b;
    } else if ((b & 0xE0) == 0xC0) {
      n = 2, c = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      n = 3, c = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      n = 4, c = b & 0x07, min = 0x10000;
    }
    bool ok = n > 0 && i + static_cast<std::size_t>(n) <= text.size();
    for (int k = 1; ok && k < n; ++k) {
      const auto cont = static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]);
      ok = (cont & 0xC0) == 0x80;
      c = (c << 6) | (cont & 0x3F);
    }
    ok = ok && c >= min && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF);
    out.push_back(ok ? c : U'\uFFFD');
    i += ok ? static_cast<std::size_t>(n) : 1;
  }
  return out;
}

}  // namespace maskattn::viz::detail
