// write_npy against the format's definition: the header numpy.load() parses
// and the data in row-major order. (python/tests/test_embed_cli.py loads the
// CLI's .npy output with numpy itself.)
#include "maskattn/io/npy.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

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

// ---- reading ----------------------------------------------------------------------

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

NpyArray npy_back(const std::string& bytes) {
  std::istringstream in(bytes);
  return read_npy(in, "test.npy");
}

// A .npy byte string with a hand-written header (as numpy.save writes it:
// version 1.0, padded to 64 bytes) and raw data.
std::string npy_bytes(const std::string& dict, const std::string& data, int version = 1) {
  std::string header = dict;
  const std::size_t fixed = version == 1 ? 10 : 12;
  header.append((64 - (fixed + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(version) + '\0';
  const std::size_t n = header.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (version != 1) out += std::string(2, '\0');
  return out + header + data;
}

TEST(NpyRead, EveryDtypeRoundTripsThroughWriteNpy) {
  Tensor<float> f({2, 3});
  for (int64_t i = 0; i < 6; ++i) f.data()[i] = -1.5f * static_cast<float>(i);
  const NpyArray a = npy_back(npy_of(f));
  EXPECT_EQ(a.dtype(), DType::Float32);
  EXPECT_EQ(a.shape(), (std::vector<int64_t>{2, 3}));
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(static_cast<const float*>(a.view().data)[i], f.data()[i]);

  Tensor<bool> b({3});
  b.data()[1] = true;
  const NpyArray ab = npy_back(npy_of(b));
  EXPECT_EQ(ab.dtype(), DType::Bool);
  EXPECT_EQ(ab.view().at_int(std::vector<int64_t>{0}), 0);
  EXPECT_EQ(ab.view().at_int(std::vector<int64_t>{1}), 1);

  Tensor<int64_t> i64({1, 2, 2});
  i64.data()[3] = int64_t{1} << 60;
  EXPECT_EQ(npy_back(npy_of(i64)).view().at_int(std::vector<int64_t>{0, 1, 1}), int64_t{1} << 60);
  for (DType t : {DType::UInt8, DType::Int32, DType::Float64}) {
    const AnyView v(f.data(), t, {1}, {1});  // one element, whatever it reads as
    EXPECT_EQ(npy_back(npy_of(v)).dtype(), t);
  }
}

TEST(NpyRead, ScalarsEmptyArraysFortranOrderAndVersionTwo) {
  EXPECT_TRUE(npy_back(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                                 std::string(8, '\0')))
                  .shape()
                  .empty());
  EXPECT_EQ(npy_back(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", ""))
                .shape(),
            (std::vector<int64_t>{0, 3}));
  // Fortran order (2, 3): memory holds columns; read back in C order.
  const int32_t col_major[6] = {0, 3, 1, 4, 2, 5};  // element (i, j) = 3 i + j
  const NpyArray f =
      npy_back(npy_bytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
                         std::string(reinterpret_cast<const char*>(col_major), sizeof col_major)));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(static_cast<const int32_t*>(f.view().data)[i], i);
  const NpyArray v2 =
      npy_back(npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
                         std::string("\x07\x09", 2), /*version=*/2));
  EXPECT_EQ(v2.view().at_int(std::vector<int64_t>{1}), 9);
}

TEST(NpyRead, MalformedFilesAreErrorsNamingThem) {
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string data(8, '\0');
  const auto bad = [](const std::string& bytes) { return [bytes] { (void)npy_back(bytes); }; };
  EXPECT_TRUE(throws_error_naming(bad("not a npy file"), "test.npy"));
  EXPECT_TRUE(throws_error_naming(bad(npy_bytes(ok_dict, data).substr(0, 12)), "test.npy"));
  EXPECT_TRUE(throws_error_naming(bad(npy_bytes(ok_dict, data.substr(0, 5))), "8 bytes of data"));
  EXPECT_TRUE(throws_error_naming(bad(npy_bytes(ok_dict, data + "x")), "more bytes"));
  EXPECT_TRUE(throws_error_naming(
      bad(npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", data)), "<f2"));
  EXPECT_TRUE(throws_error_naming(
      bad(npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", data)), ">f4"));
  EXPECT_TRUE(throws_error_naming(
      bad(npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", data)), "|O"));
  EXPECT_TRUE(throws_error_naming(
      bad(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", data)),
      "shape tuple"));
  EXPECT_TRUE(throws_error_naming(
      bad(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, "
                    "99999999999), }",
                    data)),
      "test.npy"));
  // Found by fuzz/npy_fuzzer: no element, but strides past int64.
  EXPECT_TRUE(throws_error_naming(
      bad(npy_bytes(
          "{'descr': '|b1', 'fortran_order': False, 'shape': (0, 1129703, 907000, 11297038), }",
          "")),
      "fits in int64"));
  EXPECT_TRUE(throws_error_naming(
      bad(npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", "\x01\x02")),
      "bool elements 0 or 1"));
  EXPECT_TRUE(throws_error_naming(bad(npy_bytes("{'descr': '<f4', 'shape': (2,), }", data)),
                                  "fortran_order"));
  EXPECT_TRUE(
      throws_error_naming([] { (void)load_npy("/nonexistent/x.npy"); }, "/nonexistent/x.npy"));
}

// A stream that cannot seek (a pipe, stdin): std::streambuf's default
// seekoff/seekpos fail.
class PipeBuf : public std::streambuf {
 public:
  explicit PipeBuf(std::string bytes) : bytes_(std::move(bytes)) {
    setg(bytes_.data(), bytes_.data(), bytes_.data() + bytes_.size());
  }

 private:
  std::string bytes_;
};

NpyArray npy_from_pipe(const std::string& bytes) {
  PipeBuf buf(bytes);
  std::istream in(&buf);
  return read_npy(in, "pipe.npy");
}

// Found by fuzz/npy_fuzzer: a 150-byte file whose shape claims 66 TB was
// allocated before its data was read (ASan: allocation-size-too-big; without
// it std::bad_alloc, not an Error). Nothing is allocated beyond what the
// stream holds, seekable or not.
TEST(NpyRead, ShapeClaimingMoreThanTheFileHoldsIsAnErrorNotAnAllocation) {
  const std::string huge =
      "{'descr': '|b1', 'fortran_order': False, 'shape': (3, 688538014151, 8, 4), }";
  const std::string data(8, '\x01');
  EXPECT_TRUE(throws_error_naming([&] { (void)npy_back(npy_bytes(huge, data)); },
                                  "bytes of data for shape (3, 688538014151, 8, 4)"));
  EXPECT_TRUE(throws_error_naming([&] { (void)npy_from_pipe(npy_bytes(huge, data)); },
                                  "bytes of data for shape (3, 688538014151, 8, 4)"));
  // A pipe of more than one chunk (1 MiB) reads whole; one byte short is an Error.
  const int64_t n = (int64_t{1} << 20) + 5;
  std::string big(static_cast<std::size_t>(n), '\0');
  for (int64_t i = 0; i < n; ++i) big[static_cast<std::size_t>(i)] = static_cast<char>(i % 251);
  const std::string dict =
      "{'descr': '|u1', 'fortran_order': False, 'shape': (" + std::to_string(n) + ",), }";
  const NpyArray a = npy_from_pipe(npy_bytes(dict, big));
  ASSERT_EQ(a.shape(), (std::vector<int64_t>{n}));
  EXPECT_EQ(std::memcmp(a.view().data, big.data(), big.size()), 0);
  EXPECT_TRUE(throws_error_naming([&] { (void)npy_from_pipe(npy_bytes(dict, big.substr(1))); },
                                  std::to_string(n - 1) + " bytes"));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)npy_from_pipe(npy_bytes(dict, big + "x")); }, "more bytes"));
}

// Found by fuzz/npy_fuzzer: "(3, 6885  8 4)" was read as four sizes. The
// shape is a Python tuple as numpy writes it, or an Error.
TEST(NpyRead, ShapeIsAPythonTupleOrAnError) {
  const auto shape_of = [](const std::string& tuple, const std::string& data) {
    return npy_back(npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': " + tuple + ", }",
                              data))
        .shape();
  };
  EXPECT_EQ(shape_of("(2, 3)", std::string(6, '\0')), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(shape_of("(2, 3,)", std::string(6, '\0')), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(shape_of("(5,)", std::string(5, '\0')), (std::vector<int64_t>{5}));
  EXPECT_EQ(shape_of("()", std::string(1, '\0')), (std::vector<int64_t>{}));
  for (const std::string bad : {"(2 3)", "(,2)", "(5)", "(2,,3)", "(,)", "(2, -3)", "(2, 3a)"})
    EXPECT_TRUE(
        throws_error_naming([&] { (void)shape_of(bad, std::string(6, '\0')); }, "a shape tuple"))
        << bad;
}

}  // namespace
}  // namespace maskattn
