#include "maskattn/viz/image.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "maskattn/error.hpp"

namespace maskattn::viz {
namespace {

// matplotlib's viridis (van der Walt and Smith, CC0) at t = k / 32, k = 0..32:
// linear interpolation between these stays within 3/255 of the full map.
constexpr std::array<Rgb, 33> kViridis{
    {{68, 1, 84},    {71, 13, 96},   {72, 24, 106},  {72, 35, 116},  {71, 45, 123},  {69, 55, 129},
     {66, 64, 134},  {62, 73, 137},  {59, 82, 139},  {55, 91, 141},  {51, 99, 141},  {47, 107, 142},
     {44, 114, 142}, {41, 122, 142}, {38, 130, 142}, {35, 137, 142}, {33, 145, 140}, {31, 152, 139},
     {31, 160, 136}, {34, 167, 133}, {40, 174, 128}, {50, 182, 122}, {63, 188, 115}, {78, 195, 107},
     {94, 201, 98},  {112, 207, 87}, {132, 212, 75}, {152, 216, 62}, {173, 220, 48}, {194, 223, 35},
     {216, 226, 25}, {236, 229, 27}, {253, 231, 37}}};

// ColorBrewer's 11-class RdBu, reversed: negative blue, 0 white-ish, positive red.
constexpr std::array<Rgb, 11> kDiverging{{{0x05, 0x30, 0x61},
                                          {0x21, 0x66, 0xAC},
                                          {0x43, 0x93, 0xC3},
                                          {0x92, 0xC5, 0xDE},
                                          {0xD1, 0xE5, 0xF0},
                                          {0xF7, 0xF7, 0xF7},
                                          {0xFD, 0xDB, 0xC7},
                                          {0xF4, 0xA5, 0x82},
                                          {0xD6, 0x60, 0x4D},
                                          {0xB2, 0x18, 0x2B},
                                          {0x67, 0x00, 0x1F}}};

void check_size(int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxImageSide || height > kMaxImageSide)
    throw Error("image size", fmt::format("1..{} pixels each way", kMaxImageSide),
                fmt::format("{} x {}", width, height));
}

}  // namespace

Image::Image(int64_t width, int64_t height, Rgb fill) : width_(width), height_(height) {
  check_size(width, height);
  pixels_.resize(static_cast<std::size_t>(width * height * 3));
  for (std::size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = fill.r;
    pixels_[i + 1] = fill.g;
    pixels_[i + 2] = fill.b;
  }
}

Rgb Image::at(int64_t x, int64_t y) const {
  if (x < 0 || y < 0 || x >= width_ || y >= height_)
    throw Error("pixel", fmt::format("x in [0, {}), y in [0, {})", width_, height_),
                fmt::format("({}, {})", x, y));
  const uint8_t* p = &pixels_[static_cast<std::size_t>((y * width_ + x) * 3)];
  return {p[0], p[1], p[2]};
}

void Image::set(int64_t x, int64_t y, Rgb c) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_)
    throw Error("pixel", fmt::format("x in [0, {}), y in [0, {})", width_, height_),
                fmt::format("({}, {})", x, y));
  uint8_t* p = &pixels_[static_cast<std::size_t>((y * width_ + x) * 3)];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

std::span<const Rgb> colormap_anchors(Colormap map) {
  if (map == Colormap::Diverging) return kDiverging;
  return kViridis;
}

Rgb color_at(Colormap map, double t) {
  if (std::isnan(t)) return kNanColor;
  const std::span<const Rgb> a = colormap_anchors(map);
  const double x = std::clamp(t, 0.0, 1.0) * static_cast<double>(a.size() - 1);
  const auto i = std::min(static_cast<std::size_t>(x), a.size() - 2);
  const double f = x - static_cast<double>(i);
  const auto mix = [f](uint8_t lo, uint8_t hi) {
    return static_cast<uint8_t>(std::lround(lo + (hi - lo) * f));
  };
  return {mix(a[i].r, a[i + 1].r), mix(a[i].g, a[i + 1].g), mix(a[i].b, a[i + 1].b)};
}

}  // namespace maskattn::viz
