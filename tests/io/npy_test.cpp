// write_npy against the format's definition: the header numpy.load() parses
// and the data in row-major order. (python/tests/test_embed_cli.py loads the
// CLI's .npy output with numpy itself.)
#include "maskattn/io/npy.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

std::string npy_of(const AnyView& v) {
  std::ostringstream out;
  write_npy(out, v);
  return out.str();
}

// The header dict of a .npy byte string, padding and '\n' stripped.
std::string header_of(const std::string& bytes, std::size_t* data_offset) {
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t len = static_cast<unsigned char>(bytes[8]) |
                          (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  *data_offset = 10 + len;
  EXPECT_EQ(*data_offset % 64, 0u) << "data must start 64-byte aligned";
  std::string h = bytes.substr(10, len);
  EXPECT_EQ(h.back(), '\n');
  return h.substr(0, h.find_last_not_of(" \n") + 1);
}

TEST(Npy, Float32MatrixHasNumpysHeaderAndRowMajorData) {
  Tensor<float> t({2, 3});
  for (int64_t i = 0; i < 6; ++i) t.data()[i] = static_cast<float>(i) + 0.5f;
  const std::string bytes = npy_of(t);
  std::size_t offset = 0;
  EXPECT_EQ(header_of(bytes, &offset),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  ASSERT_EQ(bytes.size(), offset + 6 * sizeof(float));
  float back[6];
  std::memcpy(back, bytes.data() + offset, sizeof back);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(back[i], static_cast<float>(i) + 0.5f);
}

TEST(Npy, StridedViewsAreWrittenInLogicalOrderAndEveryDtypeHasItsDescr) {
  Tensor<int64_t> t({2, 3});
  for (int64_t i = 0; i < 6; ++i) t.data()[i] = i;
  // The transpose (3, 2), elements 0 3 1 4 2 5 (an AnyView may have any strides).
  const AnyView tv(t.data(), DType::Int64, {3, 2}, {1, 3});
  const std::string bytes = npy_of(tv);
  std::size_t offset = 0;
  EXPECT_EQ(header_of(bytes, &offset),
            "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }");
  int64_t back[6];
  std::memcpy(back, bytes.data() + offset, sizeof back);
  const int64_t want[6] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(back[i], want[i]);

  Tensor<bool> b({4});
  EXPECT_NE(npy_of(b).find("'descr': '|b1'"), std::string::npos);
  EXPECT_NE(npy_of(b).find("'shape': (4,)"), std::string::npos);
  Tensor<double> d({1, 2, 3});
  EXPECT_NE(npy_of(d).find("'descr': '<f8'"), std::string::npos);
  EXPECT_NE(npy_of(d).find("'shape': (1, 2, 3)"), std::string::npos);
  Tensor<int32_t> i32({0, 5});
  EXPECT_NE(npy_of(i32).find("'shape': (0, 5)"), std::string::npos);
}

TEST(Npy, UnwritablePathIsAnErrorNamingIt) {
  Tensor<float> t({1});
  EXPECT_TRUE(throws_error_naming([&] { save_npy("/nonexistent-dir/x.npy", t); },
                                  "/nonexistent-dir/x.npy"));
  const auto path = std::filesystem::temp_directory_path() / "maskattn_npy_test.npy";
  save_npy(path.string(), t);
  EXPECT_EQ(std::filesystem::file_size(path), 128u + 4u);  // header to 128 bytes, one float
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace maskattn
