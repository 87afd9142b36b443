// PNG files of viz::Image (8-bit RGB), through libpng.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "maskattn/viz/image.hpp"

namespace maskattn {

// The PNG file's bytes.
std::vector<uint8_t> encode_png(const viz::Image& image);

// Writes the PNG file at `path` (replaced if it exists). Error naming the file
// when it cannot be written.
void save_png(const std::string& path, const viz::Image& image);

// Reads a PNG file's bytes (any PNG: grey, palette, alpha and 16-bit images
// are converted to 8-bit RGB, alpha composed over white). Error naming "png"
// for bytes that are not a PNG image.
viz::Image decode_png(std::span<const uint8_t> bytes);
viz::Image load_png(const std::string& path);

}  // namespace maskattn
