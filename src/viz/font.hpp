// The pictures' text: bitmap fonts rasterised at build time by
// tools/font/make_font_atlas.cpp (FreeType, from Debian's DejaVu Sans) into a
// generated source file, so the library draws text with no font files,
// FreeType or fontconfig at run time, and the same text gives the same pixels
// on every machine.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace maskattn::viz::detail {

// One glyph: its 8-bit coverage bitmap (width x height, rows top to bottom) at
// Font::alpha[offset], drawn with its top-left corner at (pen + left,
// baseline - top); the pen then moves right by `advance` pixels.
struct Glyph {
  char32_t code;
  int16_t advance, left, top;
  uint16_t width, height;
  uint32_t offset;
};

struct Font {
  int size;                       // pixels per em
  int ascent;                     // pixels above the baseline
  int descent;                    // pixels below it (positive)
  std::span<const Glyph> glyphs;  // sorted by code
  std::span<const uint8_t> alpha;

  // The glyph of `code`, or '?' when the font lacks it.
  const Glyph& glyph(char32_t code) const;
  // Width in pixels of a line of UTF-8 text.
  int text_width(std::string_view utf8) const;
  int line_height() const noexcept { return ascent + descent; }
};

// The two fonts of the pictures (generated): labels and titles.
const Font& label_font();  // DejaVu Sans, 12 px
const Font& title_font();  // DejaVu Sans Bold, 15 px

// The code points of UTF-8 text; an invalid byte gives U+FFFD.
std::u32string decode_utf8(std::string_view text);

}  // namespace maskattn::viz::detail
