#include "maskattn/io/png.hpp"

#include <fmt/format.h>
#include <png.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "maskattn/error.hpp"

namespace maskattn {

// libpng's simplified API (png_image, libpng >= 1.6): no setjmp here; errors
// come back as a zero return with the message in image.message.

std::vector<uint8_t> encode_png(const viz::Image& image) {
  if (image.empty()) throw Error("image", "an image of at least 1 x 1 pixels", "an empty image");
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width());
  png.height = static_cast<png_uint_32>(image.height());
  png.format = PNG_FORMAT_RGB;
  const auto stride = static_cast<png_int_32>(image.width() * 3);
  // First call: the size; second: the bytes.
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.bytes().data(), stride, nullptr))
    throw Error("png", "an image libpng can write", png.message);
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.bytes().data(), stride, nullptr))
    throw Error("png", "an image libpng can write", png.message);
  out.resize(size);
  return out;
}

void save_png(const std::string& path, const viz::Image& image) {
  const std::vector<uint8_t> bytes = encode_png(image);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path, "a file that can be written", "one that cannot be opened");
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw Error(path, "a file that can be written", "a write error");
}

viz::Image decode_png(std::span<const uint8_t> bytes) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()))
    throw Error("png", "the bytes of a PNG image", png.message);
  png.format = PNG_FORMAT_RGB;
  if (png.width > viz::kMaxImageSide || png.height > viz::kMaxImageSide) {
    png_image_free(&png);
    throw Error("png", fmt::format("at most {} pixels each way", viz::kMaxImageSide),
                fmt::format("{} x {}", png.width, png.height));
  }
  viz::Image image(png.width, png.height);
  // Alpha is composed over the background colour: white.
  png_color white{255, 255, 255};
  if (!png_image_finish_read(&png, &white, image.bytes().data(),
                             static_cast<png_int_32>(image.width() * 3), nullptr))
    throw Error("png", "the bytes of a PNG image", png.message);
  return image;
}

viz::Image load_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "a PNG file that can be read", "one that cannot be opened");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  try {
    return decode_png(bytes);
  } catch (const Error& e) {
    throw Error(path, e.expected(), e.actual());
  }
}

}  // namespace maskattn
