// Drawing into an Image: rectangles, hatching, anti-aliased lines and text
// (font.hpp). Everything is clipped to the image; coordinates are pixels, x
// to the right, y down.
#pragma once

#include <cstdint>
#include <string_view>

#include "maskattn/viz/image.hpp"
#include "viz/font.hpp"

namespace maskattn::viz::detail {

enum class HAlign { Left, Center, Right };
enum class VAlign { Top, Middle, Baseline, Bottom };

class Canvas {
 public:
  explicit Canvas(Image& image) : image_(image) {}

  int64_t width() const noexcept { return image_.width(); }
  int64_t height() const noexcept { return image_.height(); }

  // c over the pixel with opacity alpha in [0, 1].
  void blend(int64_t x, int64_t y, Rgb c, float alpha);
  void fill_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb c);
  // A frame `thickness` pixels wide inside the rectangle.
  void outline_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb c, int64_t thickness = 1);
  // `line` diagonals (x - y a multiple of `spacing`) over `background`.
  void hatch_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb background, Rgb line,
                  int64_t spacing);
  // Anti-aliased line of the given width between two points (pixel centres at +0.5).
  void line(double x0, double y0, double x1, double y1, Rgb c, double width = 1.0);

  // One line of UTF-8 text anchored at (x, y); `vertical` turns it 90 degrees
  // counter-clockwise (read from bottom to top), the anchor then applying to
  // the rotated box. Returns the text's advance width.
  int text(const Font& font, std::string_view utf8, int64_t x, int64_t y, Rgb c,
           HAlign h = HAlign::Left, VAlign v = VAlign::Baseline, bool vertical = false);

 private:
  Image& image_;
};

// text shortened to at most `max_width` pixels in `font`, ending in an
// ellipsis when cut.
std::string fit_text(const Font& font, std::string_view utf8, int max_width);

}  // namespace maskattn::viz::detail
