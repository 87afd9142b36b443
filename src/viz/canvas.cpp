#include "viz/canvas.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "text/unicode.hpp"

namespace maskattn::viz::detail {

void Canvas::blend(int64_t x, int64_t y, Rgb c, float alpha) {
  if (x < 0 || y < 0 || x >= width() || y >= height() || !(alpha > 0.0f)) return;
  uint8_t* p = image_.bytes().data() + (y * width() + x) * 3;
  const float a = std::min(alpha, 1.0f);
  const auto mix = [a](uint8_t under, uint8_t over) {
    return static_cast<uint8_t>(std::lround(under + (over - under) * a));
  };
  p[0] = mix(p[0], c.r);
  p[1] = mix(p[1], c.g);
  p[2] = mix(p[2], c.b);
}

void Canvas::fill_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb c) {
  const int64_t x0 = std::max<int64_t>(x, 0), x1 = std::min(x + w, width());
  const int64_t y0 = std::max<int64_t>(y, 0), y1 = std::min(y + h, height());
  for (int64_t yy = y0; yy < y1; ++yy) {
    uint8_t* p = image_.bytes().data() + (yy * width() + x0) * 3;
    for (int64_t xx = x0; xx < x1; ++xx, p += 3) {
      p[0] = c.r;
      p[1] = c.g;
      p[2] = c.b;
    }
  }
}

void Canvas::outline_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb c, int64_t t) {
  t = std::min({t, w, h});
  fill_rect(x, y, w, t, c);
  fill_rect(x, y + h - t, w, t, c);
  fill_rect(x, y, t, h, c);
  fill_rect(x + w - t, y, t, h, c);
}

void Canvas::hatch_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb background, Rgb line,
                        int64_t spacing) {
  fill_rect(x, y, w, h, background);
  const int64_t x0 = std::max<int64_t>(x, 0), x1 = std::min(x + w, width());
  const int64_t y0 = std::max<int64_t>(y, 0), y1 = std::min(y + h, height());
  for (int64_t yy = y0; yy < y1; ++yy)
    for (int64_t xx = x0; xx < x1; ++xx)
      if (((xx - yy) % spacing + spacing) % spacing == 0) {
        uint8_t* p = image_.bytes().data() + (yy * width() + xx) * 3;
        p[0] = line.r;
        p[1] = line.g;
        p[2] = line.b;
      }
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, double w) {
  // Coverage of each pixel near the segment from its centre's distance to it:
  // 1 within w/2, falling linearly to 0 over one pixel.
  const double r = w / 2.0;
  const auto lo_x = static_cast<int64_t>(std::floor(std::min(x0, x1) - r - 1));
  const auto hi_x = static_cast<int64_t>(std::ceil(std::max(x0, x1) + r + 1));
  const auto lo_y = static_cast<int64_t>(std::floor(std::min(y0, y1) - r - 1));
  const auto hi_y = static_cast<int64_t>(std::ceil(std::max(y0, y1) + r + 1));
  const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  for (int64_t y = std::max<int64_t>(lo_y, 0); y <= std::min(hi_y, height() - 1); ++y)
    for (int64_t x = std::max<int64_t>(lo_x, 0); x <= std::min(hi_x, width() - 1); ++x) {
      const double px = static_cast<double>(x) + 0.5, py = static_cast<double>(y) + 0.5;
      const double t =
          len2 > 0 ? std::clamp(((px - x0) * dx + (py - y0) * dy) / len2, 0.0, 1.0) : 0.0;
      const double d = std::hypot(px - (x0 + t * dx), py - (y0 + t * dy));
      const double cover = std::clamp(r + 0.5 - d, 0.0, 1.0);
      if (cover > 0) blend(x, y, c, static_cast<float>(cover));
    }
}

int Canvas::text(const Font& font, std::string_view utf8, int64_t x, int64_t y, Rgb c, HAlign h,
                 VAlign v, bool vertical) {
  const std::u32string codes = decode_utf8(utf8);
  int width = 0;
  for (char32_t code : codes) width += font.glyph(code).advance;
  // The pen's start along the text (u) and the baseline across it (v), in the
  // text's own frame: u to the right of the text, v down from its top.
  int64_t u0 = 0, base = 0;
  const int64_t along = vertical ? -y : x, across = vertical ? x : y;
  switch (h) {
    case HAlign::Left: u0 = along; break;
    case HAlign::Center: u0 = along - width / 2; break;
    case HAlign::Right: u0 = along - width; break;
  }
  switch (v) {
    case VAlign::Top: base = across + font.ascent; break;
    case VAlign::Middle: base = across + (font.ascent - font.descent) / 2; break;
    case VAlign::Baseline: base = across; break;
    case VAlign::Bottom: base = across - font.descent; break;
  }
  int64_t pen = u0;
  for (char32_t code : codes) {
    const Glyph& g = font.glyph(code);
    const uint8_t* a = font.alpha.data() + g.offset;
    for (int64_t row = 0; row < g.height; ++row)
      for (int64_t col = 0; col < g.width; ++col) {
        const uint8_t cover = a[row * g.width + col];
        if (cover == 0) continue;
        const int64_t u = pen + g.left + col, w = base - g.top + row;
        // Horizontal: (u, w). Vertical (counter-clockwise): u runs up, w right.
        if (vertical)
          blend(w, -u, c, cover / 255.0f);
        else
          blend(u, w, c, cover / 255.0f);
      }
    pen += g.advance;
  }
  return width;
}

std::string fit_text(const Font& font, std::string_view utf8, int max_width) {
  if (font.text_width(utf8) <= max_width) return std::string(utf8);
  const std::u32string codes = decode_utf8(utf8);
  const int ellipsis = font.glyph(U'\u2026').advance;
  int w = 0;
  std::string out;
  for (char32_t code : codes) {
    const int a = font.glyph(code).advance;
    if (w + a + ellipsis > max_width) break;
    w += a;
    text::append_utf8(code, out);
  }
  return out + "\u2026";
}

}  // namespace maskattn::viz::detail
