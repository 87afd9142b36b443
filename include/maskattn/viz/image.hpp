// Images and colour maps: what the pictures of masks, encodings and attention
// weights are drawn into (io/png.hpp writes them as PNG).
//
//   Image     8-bit RGB, rows top to bottom, width * 3 bytes per row.
//   Colormap  value in [0, 1] -> colour: Viridis (sequential, perceptually
//             uniform; attention weights) and Diverging (blue - white - red,
//             ColorBrewer's RdBu reversed; signed values such as the
//             positional encoding, 0 at white).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace maskattn::viz {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};

// Largest width or height of an Image, in pixels.
inline constexpr int64_t kMaxImageSide = 32768;

class Image {
 public:
  Image() = default;
  // width x height pixels of `fill`. Error naming "image size" unless
  // 1 <= width, height <= kMaxImageSide.
  Image(int64_t width, int64_t height, Rgb fill = kWhite);

  int64_t width() const noexcept { return width_; }
  int64_t height() const noexcept { return height_; }
  bool empty() const noexcept { return pixels_.empty(); }

  // Pixel (x, y), x to the right, y down. Error naming "pixel" outside the image.
  Rgb at(int64_t x, int64_t y) const;
  void set(int64_t x, int64_t y, Rgb c);

  // width() * height() * 3 bytes, R G B, row after row.
  std::span<const uint8_t> bytes() const noexcept { return pixels_; }
  std::span<uint8_t> bytes() noexcept { return pixels_; }

 private:
  int64_t width_ = 0, height_ = 0;
  std::vector<uint8_t> pixels_;
};

enum class Colormap { Viridis, Diverging };

// The colour of t in [0, 1] (clamped; NaN gives kNanColor), interpolated
// linearly between the map's anchors.
Rgb color_at(Colormap map, double t);
// The anchors, evenly spaced from t = 0 to t = 1 (the HTML viewer draws with
// the same ones).
std::span<const Rgb> colormap_anchors(Colormap map);

inline constexpr Rgb kNanColor{255, 0, 255};  // magenta: never a colour-map colour

}  // namespace maskattn::viz
