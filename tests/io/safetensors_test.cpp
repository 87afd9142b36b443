// safetensors read and write: round trips of every dtype and of strided views,
// the reference writer's exact bytes, and every malformed file as an Error
// naming the file and tensor (under ASan in CI: no read outside the file).
#include "maskattn/io/safetensors.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "throws_error.hpp"

namespace maskattn {
namespace {

namespace fs = std::filesystem;
using testing_errors::throws_error_naming;

// A fresh directory per test, removed afterwards.
class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::path(::testing::TempDir()) /
           fmt::format("maskattn_safetensors_{}_{}", ::getpid(), counter++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // Everything in the directory: what a failed save must not leave behind.
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A file with header `header` (length field = its size unless given) and data.
std::string raw_file(std::string_view header, std::string_view data = {},
                     std::optional<uint64_t> length = std::nullopt) {
  const uint64_t n = length.value_or(header.size());
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out.append(header).append(data);
}

std::string entry(std::string_view dtype, std::string_view shape, std::string_view offsets) {
  return fmt::format(R"({{"dtype":"{}","shape":{},"data_offsets":{}}})", dtype, shape, offsets);
}

template <class T>
void fill(Tensor<T>& t, std::initializer_list<std::type_identity_t<T>> values) {
  std::copy(values.begin(), values.end(), t.data());
}

std::string bytes_of(const AnyView& v, int64_t element_bytes) {
  return std::string(static_cast<const char*>(v.data),
                     static_cast<std::size_t>(v.numel() * element_bytes));
}

// ---- round trips --------------------------------------------------------------

TEST_F(Safetensors, RoundTripsEveryDtypeBitExact) {
  Tensor<bool> b({2, 3});
  Tensor<uint8_t> u8({4});
  Tensor<int32_t> i32({2, 2});
  Tensor<int64_t> i64({3});
  Tensor<float> f32({2, 3});
  Tensor<double> f64({5});
  fill(b, {true, false, false, true, false, false});
  fill(u8, {0, 1, 128, 255});
  fill(i32, {std::numeric_limits<int32_t>::min(), -1, 0, 7});
  fill(i64, {std::numeric_limits<int64_t>::max(), -(int64_t{1} << 60), 0});
  // Values a decimal round trip would lose: NaN payloads, -0, a subnormal, inf.
  fill(f32, {std::bit_cast<float>(0x7fc01234u), -0.0f, std::numeric_limits<float>::denorm_min(),
             -std::numeric_limits<float>::infinity(), 1.0f / 3.0f, 0.0f});
  fill(f64, {std::bit_cast<double>(0xfff0000000000001ull),
             std::numeric_limits<double>::denorm_min(), 0.1, -0.0, 1e300});

  const std::string path = file("all.safetensors");
  const std::map<std::string, AnyView> in = {{"bool", b},  {"u8", u8},   {"i32", i32},
                                             {"i64", i64}, {"f32", f32}, {"f64", f64}};
  save_safetensors(path, in);

  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"bool", "f32", "f64", "i32", "i64", "u8"}));
  EXPECT_TRUE(f.metadata().empty());
  const std::map<std::string, AnyView> out = f.views();
  ASSERT_EQ(out.size(), in.size());
  const std::map<DType, int64_t> size = {{DType::Bool, 1},    {DType::UInt8, 1},
                                         {DType::Int32, 4},   {DType::Int64, 8},
                                         {DType::Float32, 4}, {DType::Float64, 8}};
  for (const auto& [name, v] : in) {
    SCOPED_TRACE(name);
    const AnyView& r = out.at(name);
    EXPECT_EQ(r.dtype, v.dtype);
    EXPECT_EQ(r.shape, v.shape);
    EXPECT_EQ(r.strides, AnyView::contiguous_strides(v.shape));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data) % static_cast<uintptr_t>(size.at(v.dtype)), 0u);
    EXPECT_EQ(bytes_of(r, size.at(v.dtype)), bytes_of(v, size.at(v.dtype)));
  }
}

TEST_F(Safetensors, StridedViewsAreWrittenContiguously) {
  Tensor<float> t({2, 3, 4});  // (A, B, C)
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(i);
  const View<const float, 3> v = t.view<3>();
  const View<const float, 3> swapped = v.transposed(0, 1);                // (B, A, C)
  const View<const float, 2> every_other_row(t.data(), {3, 4}, {8, 1});   // rows 0, 2, 4
  const AnyView columns(t.data() + 1, DType::Float32, {6, 2}, {4, 2});    // last stride 2
  const AnyView broadcast(t.data() + 5, DType::Float32, {3, 2}, {0, 1});  // zero stride
  const AnyView scalar(t.data() + 7, DType::Float32, {}, {});

  const std::string path = file("strided.safetensors");
  save_safetensors(path, {{"swapped", swapped},
                          {"rows", every_other_row},
                          {"columns", columns},
                          {"broadcast", broadcast},
                          {"scalar", scalar}});
  const SafetensorsFile f = SafetensorsFile::open(path);

  const AnyView s = f.view("swapped");
  ASSERT_EQ(s.shape, (std::vector<int64_t>{3, 2, 4}));
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t a = 0; a < 2; ++a)
      for (int64_t c = 0; c < 4; ++c) {
        const std::vector<int64_t> i = {b, a, c};
        EXPECT_EQ(s.at(i), v(a, b, c));
      }
  const auto* rows = static_cast<const float*>(f.view("rows").data);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(rows[r * 4 + c], t.data()[r * 8 + c]);
  const auto* cols = static_cast<const float*>(f.view("columns").data);
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t c = 0; c < 2; ++c) EXPECT_EQ(cols[r * 2 + c], t.data()[1 + r * 4 + c * 2]);
  const auto* bc = static_cast<const float*>(f.view("broadcast").data);
  for (int64_t r = 0; r < 3; ++r) {
    EXPECT_EQ(bc[r * 2], 5.0f);
    EXPECT_EQ(bc[r * 2 + 1], 6.0f);
  }
  EXPECT_TRUE(f.view("scalar").shape.empty());
  EXPECT_EQ(*static_cast<const float*>(f.view("scalar").data), 7.0f);
}

TEST_F(Safetensors, LargeStridedViewCrossesTheWriteBuffer) {
  // (1024, 600) float viewed transposed: 2.4 MB gathered element by element.
  Tensor<float> t({1024, 600});
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(i);
  const AnyView transposed(t.data(), DType::Float32, {600, 1024}, {1, 600});
  const std::string path = file("big.safetensors");
  save_safetensors(path, {{"t", transposed}, {"c", t}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  const auto* r = static_cast<const float*>(f.view("t").data);
  for (int64_t i = 0; i < 600; ++i)
    for (int64_t j = 0; j < 1024; j += 97) ASSERT_EQ(r[i * 1024 + j], t.data()[j * 600 + i]);
  EXPECT_EQ(bytes_of(f.view("c"), 4), bytes_of(t, 4));
}

TEST_F(Safetensors, MetadataRoundTrips) {
  const std::map<std::string, std::string> md = {{"format", "pt"},
                                                 {"quote \" and \\", "line\nbreak\ttab \x01"},
                                                 {"unicode", "é ∑ 🙂"},
                                                 {"", ""}};
  Tensor<float> t({1});
  const std::string path = file("md.safetensors");
  save_safetensors(path, {{"t", t}}, md);
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), md);
}

TEST_F(Safetensors, ZeroSizeScalarAndNoTensors) {
  Tensor<float> empty1({0}), empty3({2, 0, 3});
  Tensor<int64_t> scalar(std::vector<int64_t>{});
  scalar.data()[0] = -5;
  const std::string path = file("zero.safetensors");
  save_safetensors(path, {{"a", empty1}, {"b", empty3}, {"s", scalar}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.view("a").shape, (std::vector<int64_t>{0}));
  EXPECT_EQ(f.view("a").numel(), 0);
  EXPECT_FALSE(f.view("a").empty());  // present, just without elements
  EXPECT_EQ(f.view("b").shape, (std::vector<int64_t>{2, 0, 3}));
  EXPECT_EQ(f.view("s").rank(), 0);
  EXPECT_EQ(f.view("s").at_int({}), -5);

  const std::string none = file("none.safetensors");
  save_safetensors(none, {});
  EXPECT_EQ(read_bytes(none), raw_file("{}      "));  // what the reference writes
  EXPECT_TRUE(SafetensorsFile::open(none).names().empty());
  save_safetensors(none, {}, {{"k", "v"}});
  const SafetensorsFile with_metadata = SafetensorsFile::open(none);
  EXPECT_EQ(with_metadata.metadata().at("k"), "v");
}

// The bytes safetensors 0.8.0 writes (safetensors.numpy.save) for the same
// input: data ordered I64, F64, F32, I32, BOOL (larger dtypes first, then by
// name), header in that order after __metadata__, padded to 8 bytes.
TEST_F(Safetensors, BytesEqualTheReferenceWriter) {
  Tensor<float> a({2});
  fill(a, {1.5f, -2.0f});
  Tensor<int64_t> b({1});
  fill(b, {7});
  Tensor<bool> c({3});
  fill(c, {true, false, true});
  Tensor<int32_t> d({2, 3});
  fill(d, {0, 1, 2, 3, 4, 5});
  Tensor<double> e(std::vector<int64_t>{});
  fill(e, {2.0});
  const std::string path = file("golden.safetensors");
  save_safetensors(path, {{"a", a}, {"b", b}, {"c", c}, {"d", d}, {"e", e}}, {{"format", "np"}});

  const std::string header =
      R"({"__metadata__":{"format":"np"},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("e":{"dtype":"F64","shape":[],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
      R"("d":{"dtype":"I32","shape":[2,3],"data_offsets":[24,48]},)"
      R"("c":{"dtype":"BOOL","shape":[3],"data_offsets":[48,51]}})"
      "      ";
  const std::string data_hex =
      "0700000000000000"
      "0000000000000040"
      "0000c03f000000c0"
      "000000000100000002000000030000000400000005000000"
      "010001";
  std::string data;
  for (std::size_t i = 0; i < data_hex.size(); i += 2)
    data.push_back(static_cast<char>(std::stoi(data_hex.substr(i, 2), nullptr, 16)));
  ASSERT_EQ(header.size(), 312u);
  EXPECT_EQ(read_bytes(path), raw_file(header, data));
}

// ---- lifetime ---------------------------------------------------------------------

// A view of a temporary SafetensorsFile would dangle: it does not compile.
template <class F>
concept HasView = requires {
  std::declval<F>().view("t");
};
template <class F>
concept HasMetadata = requires {
  std::declval<F>().metadata();
};
static_assert(HasView<const SafetensorsFile&> && HasMetadata<const SafetensorsFile&>);
static_assert(!HasView<SafetensorsFile> && !HasMetadata<SafetensorsFile>);

TEST_F(Safetensors, ViewsLiveAsLongAsAnyCopy) {
  Tensor<double> t({3});
  fill(t, {1.0, 2.0, 3.0});
  const std::string path = file("life.safetensors");
  save_safetensors(path, {{"t", t}});
  AnyView v;
  std::optional<SafetensorsFile> copy;
  {
    SafetensorsFile f = SafetensorsFile::open(path);
    v = f.view("t");
    copy = f;
    SafetensorsFile moved = std::move(f);
    EXPECT_TRUE(throws_error_naming([&] { (void)f.names(); }, "moved-from"));  // NOLINT
    EXPECT_TRUE(moved.contains("t"));
  }
  EXPECT_EQ(v.at(std::vector<int64_t>{2}), 3.0);
  EXPECT_EQ(copy->view("t").data, v.data);
}

TEST_F(Safetensors, SavingOverAMappedFileLeavesItsViewsIntact) {
  Tensor<float> old_t({4}), new_t({4});
  std::fill(old_t.begin(), old_t.end(), 1.0f);
  std::fill(new_t.begin(), new_t.end(), 2.0f);
  const std::string path = file("over.safetensors");
  save_safetensors(path, {{"t", old_t}});
  const SafetensorsFile old_file = SafetensorsFile::open(path);
  const AnyView old_view = old_file.view("t");
  save_safetensors(path, {{"t", new_t}});  // renamed over: the mapping keeps the old file
  EXPECT_EQ(old_view.at(std::vector<int64_t>{3}), 1.0);
  const SafetensorsFile new_file = SafetensorsFile::open(path);
  EXPECT_EQ(new_file.view("t").at(std::vector<int64_t>{3}), 2.0);
  EXPECT_EQ(listing(), std::vector<std::string>{"over.safetensors"});
}

// ---- what open() accepts beyond the reference writer's output ---------------------

TEST_F(Safetensors, AcceptsWhatIsHarmless) {
  const std::string path = file("lenient.safetensors");
  // Uncovered bytes (a gap and a tail), an unknown field, null metadata,
  // whitespace around the JSON, a zero-size tensor inside another's bytes.
  write_bytes(path, raw_file(R"(  {"__metadata__":null,"a":{"dtype":"U8","shape":[2],)"
                             R"("data_offsets":[1,3],"extra":[1]},)"
                             R"("z":)" +
                                 entry("F32", "[0]", "[2,2]") + "}  ",
                             "xABtail"));
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(std::string(static_cast<const char*>(f.view("a").data), 2), "AB");
  EXPECT_EQ(f.view("z").numel(), 0);
  EXPECT_TRUE(f.metadata().empty());
}

TEST_F(Safetensors, MisalignedDataIsCopiedAligned) {
  // The data section starts at 8 + 57 bytes: misaligned for an F64.
  const std::string header = R"({"x":)" + entry("F64", "[2]", "[0,16]") + "}";
  ASSERT_NE((8 + header.size()) % 8, 0u);
  std::string data(16, '\0');
  const double values[2] = {0.25, -3.5};
  std::memcpy(data.data(), values, 16);
  const std::string path = file("misaligned.safetensors");
  write_bytes(path, raw_file(header, data));
  const SafetensorsFile f = SafetensorsFile::open(path);
  const AnyView v = f.view("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % 8, 0u);
  EXPECT_EQ(v.at(std::vector<int64_t>{0}), 0.25);
  EXPECT_EQ(v.at(std::vector<int64_t>{1}), -3.5);
}

// ---- access errors -------------------------------------------------------------

TEST_F(Safetensors, MissingTensorNamesFileAndTensor) {
  Tensor<float> t({1});
  const std::string path = file("m.safetensors");
  save_safetensors(path, {{"t", t}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_FALSE(f.contains("nope"));
  EXPECT_TRUE(throws_error_naming([&] { f.view("nope"); }, path));
  EXPECT_TRUE(throws_error_naming([&] { f.view("nope"); }, "tensor \"nope\""));
}

TEST_F(Safetensors, UnsupportedDtypeIsAnErrorOnAccess) {
  const std::string path = file("bf16.safetensors");
  write_bytes(path, raw_file(R"({"h":)" + entry("BF16", "[2]", "[0,4]") + R"(,"f":)" +
                                 entry("F32", "[1]", "[4,8]") + "}",
                             std::string(8, '\0')));
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"f", "h"}));
  EXPECT_TRUE(f.contains("h"));
  EXPECT_EQ(f.view("f").numel(), 1);
  EXPECT_TRUE(throws_error_naming([&] { f.view("h"); }, "dtype BF16, which is not supported"));
  EXPECT_TRUE(throws_error_naming([&] { f.view("h"); }, path));
  EXPECT_TRUE(throws_error_naming([&] { f.view("h"); }, "tensor \"h\""));
  EXPECT_TRUE(throws_error_naming([&] { f.views(); }, "tensor \"h\""));
}

// ---- malformed files: Error at open naming the file (and tensor) -----------------

struct BadFile {
  const char* what;
  std::string bytes;
  std::string tensor;  // named in the message when not empty
  std::string says;    // also in the message
};

std::vector<BadFile> bad_files() {
  const std::string f4 = std::string(4, '\0');
  const std::string ok_a = entry("F32", "[1]", "[0,4]");
  // 200000 nested arrays: a recursive dump of them overflows the stack; parsing and
  // the message must not recurse.
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  return {
      {"empty file", "", "", "8-byte header length"},
      {"shorter than 8 bytes", std::string("\x01\0\0", 3), "", "3 bytes"},
      {"header length past the end", raw_file("{}", "", 100), "", "within the file"},
      {"header length huge", raw_file("{}", "", uint64_t{1} << 63), "", "at most"},
      {"header length just over the limit", raw_file("{}", "", 100'000'001), "", "at most"},
      {"header not JSON", raw_file(R"({"a":)"), "", "a JSON header"},
      {"header bytes not UTF-8", raw_file("{\"\xff\xfe\":1}"), "", "a JSON header"},
      {"header trailing garbage", raw_file("{}x"), "", "a JSON header"},
      // Found by fuzz/safetensors_fuzzer: nlohmann's out_of_range escaped.
      {"number past double's range",
       raw_file(R"({"a":)" + entry("F32", "[1e400]", "[0,4]") + "}", f4), "", "a JSON header"},
      {"header an array", raw_file("[1,2]"), "", "a JSON object"},
      {"header a string", raw_file(R"("x")"), "", "a JSON object"},
      {"entry not an object", raw_file(R"({"a":3})"), "a", "an object"},
      {"entry deeply nested", raw_file(R"({"a":)" + deep + "}"), "a", "got [...]"},
      {"header deeply nested", raw_file(deep), "", "a JSON object as header, got [...]"},
      {"shape nested", raw_file(R"({"a":)" + entry("F32", "[[1]]", "[0,4]") + "}", f4), "a",
       "got [...]"},
      {"entry lacks dtype", raw_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", f4), "a",
       "\"dtype\""},
      {"entry lacks shape", raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", f4), "a",
       "\"shape\""},
      {"entry lacks data_offsets", raw_file(R"({"a":{"dtype":"F32","shape":[1]}})", f4), "a",
       "\"data_offsets\""},
      {"dtype not a string", raw_file(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", f4),
       "a", "dtype"},
      {"dtype unknown", raw_file(R"({"a":)" + entry("Q8", "[4]", "[0,4]") + "}", f4), "a",
       "\"Q8\""},
      {"shape negative", raw_file(R"({"a":)" + entry("F32", "[-1]", "[0,4]") + "}", f4), "a",
       "non-negative integers"},
      {"shape fractional", raw_file(R"({"a":)" + entry("F32", "[1.5]", "[0,4]") + "}", f4), "a",
       "non-negative integers"},
      {"shape a string", raw_file(R"({"a":)" + entry("F32", R"(["1"])", "[0,4]") + "}", f4), "a",
       "non-negative integers"},
      {"shape not a list", raw_file(R"({"a":)" + entry("F32", "1", "[0,4]") + "}", f4), "a",
       "shape"},
      {"shape entry past int64",
       raw_file(R"({"a":)" + entry("F32", "[18446744073709551615]", "[0,4]") + "}", f4), "a",
       "non-negative integers"},
      {"shape product overflows",
       raw_file(R"({"a":)" + entry("U8", "[4294967296,4294967296]", "[0,4]") + "}", f4), "a",
       "fits in int64"},
      {"no element, but strides past int64",
       raw_file(R"({"a":)" + entry("U8", "[0,4294967296,4294967296]", "[0,0]") + "}"), "a",
       "fits in int64"},
      {"byte size overflows",
       raw_file(R"({"a":)" + entry("F64", "[4611686018427387904]", "[0,4]") + "}", f4), "a",
       "fits in int64"},
      {"sub-byte dtype not a whole byte",
       raw_file(R"({"a":)" + entry("F4", "[3]", "[0,2]") + "}", f4), "a", "whole number of bytes"},
      {"data_offsets one integer", raw_file(R"({"a":)" + entry("F32", "[1]", "[4]") + "}", f4), "a",
       "two integers"},
      {"data_offsets three integers",
       raw_file(R"({"a":)" + entry("F32", "[1]", "[0,4,8]") + "}", f4), "a", "two integers"},
      {"data_offsets decreasing", raw_file(R"({"a":)" + entry("F32", "[1]", "[4,0]") + "}", f4),
       "a", "begin <= end"},
      {"data_offsets negative", raw_file(R"({"a":)" + entry("F32", "[1]", "[-4,0]") + "}", f4), "a",
       "two integers"},
      {"data_offsets strings", raw_file(R"({"a":)" + entry("F32", "[1]", R"(["0","4"])") + "}", f4),
       "a", "two integers"},
      {"data_offsets past the data", raw_file(R"({"a":)" + entry("F32", "[2]", "[0,8]") + "}", f4),
       "a", "inside the data section of 4 bytes"},
      {"data_offsets far past the data",
       raw_file(R"({"a":)" + entry("U8", "[1]", "[9223372036854775806,9223372036854775807]") + "}",
                f4),
       "a", "inside the data section"},
      {"byte length not shape x dtype",
       raw_file(R"({"a":)" + entry("F32", "[2]", "[0,4]") + "}", f4), "a", "8 bytes"},
      {"tensors overlap",
       raw_file(R"({"a":)" + entry("F32", "[1]", "[0,4]") + R"(,"b":)" +
                    entry("F32", "[1]", "[2,6]") + "}",
                std::string(8, '\0')),
       "b", "overlapping tensor \"a\""},
      {"same bytes twice", raw_file(R"({"a":)" + ok_a + R"(,"b":)" + ok_a + "}", f4), "b",
       "overlapping tensor \"a\""},
      {"metadata value not a string", raw_file(R"({"__metadata__":{"k":1},"a":)" + ok_a + "}", f4),
       "", "__metadata__[\"k\"]"},
      {"metadata not an object", raw_file(R"({"__metadata__":["k"],"a":)" + ok_a + "}", f4), "",
       "__metadata__"},
      {"duplicate tensor names", raw_file(R"({"a":)" + ok_a + R"(,"a":)" + ok_a + "}", f4), "",
       "key \"a\" twice"},
      {"duplicate field",
       raw_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f4), "",
       "key \"dtype\" twice"},
      {"duplicate metadata key", raw_file(R"({"__metadata__":{"k":"1","k":"2"}})"), "",
       "key \"k\" twice"},
      {"BOOL byte 2",
       raw_file(R"({"a":)" + entry("BOOL", "[4]", "[0,4]") + "}", std::string("\1\0\2\1", 4)), "a",
       "BOOL bytes 0 or 1"},
  };
}

TEST_F(Safetensors, EveryMalformedFileIsAnErrorNamingItAtOpen) {
  int k = 0;
  for (const BadFile& bad : bad_files()) {
    SCOPED_TRACE(bad.what);
    const std::string path = file(fmt::format("bad{}.safetensors", k++));
    write_bytes(path, bad.bytes);
    const auto open = [&] { SafetensorsFile::open(path); };
    EXPECT_TRUE(throws_error_naming(open, fmt::format("safetensors file \"{}\"", path)));
    if (!bad.tensor.empty()) {
      EXPECT_TRUE(throws_error_naming(open, fmt::format("tensor \"{}\"", bad.tensor)));
    }
    EXPECT_TRUE(throws_error_naming(open, bad.says));
  }
}

// The fuzzer's entry (detail::safetensors_from_bytes) runs open()'s parser:
// the same Error for every malformed file, the same tensors for a good one.
TEST_F(Safetensors, FromBytesChecksWhatOpenChecks) {
  for (const BadFile& bad : bad_files()) {
    SCOPED_TRACE(bad.what);
    const auto parse = [&] { detail::safetensors_from_bytes(bad.bytes, "in memory"); };
    EXPECT_TRUE(throws_error_naming(parse, "safetensors file \"in memory\""));
    EXPECT_TRUE(throws_error_naming(parse, bad.says));
  }
  Tensor<float> w({2, 3});
  for (int64_t i = 0; i < 6; ++i) w.data()[i] = 0.25f * static_cast<float>(i) - 1.0f;
  Tensor<bool> m({3});
  m.data()[1] = true;
  const std::string path = file("good.safetensors");
  save_safetensors(path, {{"w", w}, {"m", m}}, {{"k", "v"}});
  const SafetensorsFile f = detail::safetensors_from_bytes(read_bytes(path), "in memory");
  EXPECT_EQ(f.path(), "in memory");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"m", "w"}));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"k", "v"}}));
  const AnyView fw = f.view("w"), fm = f.view("m");
  EXPECT_EQ(fw.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(fw.data, w.data(), 6 * sizeof(float)), 0);
  EXPECT_EQ(fm.at_int(std::vector<int64_t>{1}), 1);
  EXPECT_EQ(fm.at_int(std::vector<int64_t>{2}), 0);
}

TEST_F(Safetensors, UnreadablePathsAreErrorsNamingThem) {
  const std::string missing = file("missing.safetensors");
  EXPECT_TRUE(throws_error_naming([&] { SafetensorsFile::open(missing); }, missing));
  EXPECT_TRUE(
      throws_error_naming([&] { SafetensorsFile::open(missing); }, "No such file or directory"));
  EXPECT_TRUE(throws_error_naming([&] { SafetensorsFile::open(dir_.string()); }, "a regular file"));
}

// ---- save errors: nothing written under the final name -------------------------------

TEST_F(Safetensors, SaveErrorsLeaveNoFileBehind) {
  Tensor<float> t({2});
  const std::string path = file("s.safetensors");
  const auto save = [&](std::map<std::string, AnyView> tensors,
                        std::map<std::string, std::string> md = {}) {
    return [&path, tensors = std::move(tensors), md = std::move(md)] {
      save_safetensors(path, tensors, md);
    };
  };
  EXPECT_TRUE(throws_error_naming(save({{"__metadata__", t}}), "tensor \"__metadata__\""));
  EXPECT_TRUE(throws_error_naming(save({{"bad\xff", t}}), "name in UTF-8"));
  EXPECT_TRUE(throws_error_naming(save({{"t", t}}, {{"k", "\xc3"}}), "metadata[\"k\"]"));
  EXPECT_TRUE(throws_error_naming(save({{"absent", AnyView()}}), "tensor \"absent\""));
  AnyView negative = t;
  negative.strides = {-1};
  EXPECT_TRUE(throws_error_naming(save({{"neg", negative}}), "non-negative strides"));
  EXPECT_TRUE(listing().empty());

  const std::string nowhere = file("no/such/dir.safetensors");
  EXPECT_TRUE(throws_error_naming([&] { save_safetensors(nowhere, {{"t", t}}); }, nowhere));
  EXPECT_TRUE(listing().empty());

  // A failed save keeps the file that was there.
  save_safetensors(path, {{"t", t}});
  const std::string before = read_bytes(path);
  EXPECT_THROW(save({{"__metadata__", t}})(), Error);
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(listing(), std::vector<std::string>{"s.safetensors"});
}

}  // namespace
}  // namespace maskattn
