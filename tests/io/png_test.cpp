// PNG files of viz::Image: what encode_png writes, libpng decodes to the same
// pixels (python/tests/test_viz.py decodes them again with Pillow).
#include "maskattn/io/png.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

TEST(Png, EncodeThenDecodeGivesThePixelsBack) {
  viz::Image image(37, 11);
  std::mt19937 rng(3);
  for (uint8_t& b : image.bytes()) b = static_cast<uint8_t>(rng());
  const std::vector<uint8_t> bytes = encode_png(image);
  ASSERT_GT(bytes.size(), 8u);
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 8),
            (std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}));
  const viz::Image back = decode_png(bytes);
  EXPECT_EQ(back.width(), 37);
  EXPECT_EQ(back.height(), 11);
  EXPECT_TRUE(std::equal(back.bytes().begin(), back.bytes().end(), image.bytes().begin()));
}

TEST(Png, SaveAndLoadAFile) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "maskattn_png_test.png").string();
  viz::Image image(3, 2, {10, 20, 30});
  image.set(2, 1, {200, 100, 0});
  save_png(path, image);
  const viz::Image back = load_png(path);
  EXPECT_EQ(back.at(0, 0), (viz::Rgb{10, 20, 30}));
  EXPECT_EQ(back.at(2, 1), (viz::Rgb{200, 100, 0}));
  std::filesystem::remove(path);
}

TEST(Png, BadInputIsAnErrorNamingIt) {
  const std::vector<uint8_t> junk = {1, 2, 3, 4, 5};
  EXPECT_TRUE(throws_error_naming([&] { (void)decode_png(junk); }, "png"));
  std::vector<uint8_t> cut = encode_png(viz::Image(20, 20));
  cut.resize(cut.size() / 2);
  EXPECT_TRUE(throws_error_naming([&] { (void)decode_png(cut); }, "png"));
  EXPECT_TRUE(throws_error_naming([] { (void)encode_png(viz::Image()); }, "image"));
  EXPECT_TRUE(throws_error_naming([] { save_png("/nonexistent/dir/x.png", viz::Image(1, 1)); },
                                  "/nonexistent/dir/x.png"));
  EXPECT_TRUE(
      throws_error_naming([] { (void)load_png("/nonexistent/x.png"); }, "/nonexistent/x.png"));
  EXPECT_TRUE(throws_error_naming([] { viz::Image(0, 5); }, "image size"));
  EXPECT_TRUE(throws_error_naming([] { viz::Image(viz::kMaxImageSide + 1, 1); }, "image size"));
  EXPECT_TRUE(throws_error_naming([] { (void)viz::Image(2, 2).at(2, 0); }, "pixel"));
}

}  // namespace
}  // namespace maskattn
