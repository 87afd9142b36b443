#include "maskattn/io/npy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace maskattn {
namespace {

static_assert(std::endian::native == std::endian::little,
              "npy output assumes a little-endian host");

// NumPy's type string of a dtype ('|' for single bytes: no byte order).
const char* descr(DType t) {
  switch (t) {
    case DType::Bool: return "|b1";
    case DType::UInt8: return "|u1";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
  }
  return "?";
}

}  // namespace

void write_npy(std::ostream& out, const AnyView& array) {
  if (array.empty() && array.numel() != 0)
    throw Error("array", "an array with data", "an absent view");
  std::string shape = "(";
  for (std::size_t d = 0; d < array.shape.size(); ++d)
    shape += fmt::format("{}{}", array.shape[d],
                         array.shape.size() == 1 ? "," : (d + 1 < array.shape.size() ? ", " : ""));
  shape += ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                   descr(array.dtype), shape);
  // magic (6) + version (2) + length (2) + header + '\n', to a multiple of 64.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  const auto header_len = static_cast<uint16_t>(header.size());
  const char preamble[] = {'\x93',
                           'N',
                           'U',
                           'M',
                           'P',
                           'Y',
                           1,
                           0,
                           static_cast<char>(header_len & 0xff),
                           static_cast<char>(header_len >> 8)};
  out.write(preamble, sizeof preamble);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));

  const std::size_t size = dtype_size(array.dtype);
  const auto* base = static_cast<const char*>(array.data);
  if (array.is_contiguous()) {
    out.write(base, static_cast<std::streamsize>(static_cast<std::size_t>(array.numel()) * size));
  } else {
    for_each_index(array.shape, [&](std::span<const int64_t> index) {
      int64_t offset = 0;
      for (std::size_t d = 0; d < index.size(); ++d) offset += index[d] * array.strides[d];
      out.write(base + offset * static_cast<int64_t>(size), static_cast<std::streamsize>(size));
    });
  }
  if (!out) throw Error("npy output", "a writable stream", "a write error");
}

void save_npy(const std::string& path, const AnyView& array) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path, "a file that can be written", "one that cannot be opened");
  write_npy(out, array);
  out.close();
  if (!out) throw Error(path, "a file that can be written", "a write error");
}

}  // namespace maskattn

namespace maskattn {
namespace {

// The value of `key` in the header dict: the text between "'key':" and the
// next top-level ',' or '}' (tuples nest one level).
std::string header_field(const std::string& header, std::string_view key, std::string_view name) {
  const std::string quoted = fmt::format("'{}'", key);
  std::size_t at = header.find(quoted);
  if (at == std::string::npos)
    throw Error(name, fmt::format("a .npy header with '{}'", key), header);
  at = header.find(':', at + quoted.size());
  if (at == std::string::npos) throw Error(name, "a .npy header dict", header);
  std::size_t end = at + 1;
  int depth = 0;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  std::string v = header.substr(at + 1, end - at - 1);
  const auto first = v.find_first_not_of(' '), last = v.find_last_not_of(' ');
  return first == std::string::npos ? std::string() : v.substr(first, last - first + 1);
}

DType dtype_of_descr(const std::string& descr, std::string_view name) {
  if (descr == "'|b1'") return DType::Bool;
  if (descr == "'|u1'") return DType::UInt8;
  if (descr == "'<i4'") return DType::Int32;
  if (descr == "'<i8'") return DType::Int64;
  if (descr == "'<f4'") return DType::Float32;
  if (descr == "'<f8'") return DType::Float64;
  throw Error(name, "dtype bool, uint8, int32, int64, float32 or float64, little-endian",
              fmt::format("descr {}", descr));
}

// A Python tuple of non-negative integers, as numpy writes it: "(2, 3)",
// "(5,)" (one element needs its comma: "(5)" is an int), "()". Anything else,
// "(2 3)" or "(,2)" among them, is an Error rather than a guess.
std::vector<int64_t> parse_shape(const std::string& text, std::string_view name) {
  const auto malformed = [&] {
    return Error(name, "a shape tuple of non-negative integers in the .npy header", text);
  };
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') throw malformed();
  std::vector<int64_t> shape;
  std::size_t i = 1;
  const std::size_t close = text.size() - 1;
  const auto skip_spaces = [&] {
    while (i < close && text[i] == ' ') ++i;
  };
  bool trailing_comma = false;
  skip_spaces();
  while (i < close) {
    int64_t v = 0;
    const std::size_t first = i;
    for (; i < close && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10)
        throw Error(name, "sizes that fit in int64", text);
      v = v * 10 + (text[i] - '0');
    }
    if (i == first) throw malformed();
    shape.push_back(v);
    skip_spaces();
    trailing_comma = i < close && text[i] == ',';
    if (i < close && !trailing_comma) throw malformed();  // "(2 3)"
    if (trailing_comma) ++i;
    skip_spaces();
  }
  if (shape.size() == 1 && !trailing_comma) throw malformed();  // "(5)"
  return shape;
}

// `bytes` bytes of data into aligned storage. The header's count is not
// trusted with memory: a stream that can say how much it holds (a file, a
// string) is checked first, and any other is read in chunks that grow with
// what arrives, so that a short file claiming a huge shape is an Error, never
// an allocation of that size.
std::unique_ptr<std::byte, detail::AlignedFree> read_data(std::istream& in, int64_t bytes,
                                                          std::string_view name,
                                                          const std::vector<int64_t>& shape) {
  const auto too_few = [&](int64_t got) {
    return Error(name, fmt::format("{} bytes of data for shape {}", bytes, shape_string(shape)),
                 fmt::format("{} bytes", got));
  };
  const std::istream::pos_type here = in.tellg();
  if (here != std::istream::pos_type(-1) && in.seekg(0, std::ios::end)) {
    const auto available = static_cast<int64_t>(in.tellg() - here);
    in.seekg(here);
    if (available < bytes) throw too_few(available);
    auto data = detail::aligned_uninitialized(bytes);
    if (!in.read(reinterpret_cast<char*>(data.get()), static_cast<std::streamsize>(bytes)))
      throw too_few(static_cast<int64_t>(in.gcount()));
    return data;
  }
  in.clear();  // a failed seek (a pipe) sets failbit
  std::string chunks;
  constexpr int64_t kChunk = int64_t{1} << 20;
  while (static_cast<int64_t>(chunks.size()) < bytes) {
    const int64_t want = std::min({bytes - static_cast<int64_t>(chunks.size()),
                                   std::max(kChunk, static_cast<int64_t>(chunks.size()))});
    const std::size_t at = chunks.size();
    chunks.resize(at + static_cast<std::size_t>(want));
    in.read(chunks.data() + at, static_cast<std::streamsize>(want));
    chunks.resize(at + static_cast<std::size_t>(in.gcount()));
    if (in.gcount() < want) throw too_few(static_cast<int64_t>(chunks.size()));
  }
  auto data = detail::aligned_uninitialized(bytes);
  std::memcpy(data.get(), chunks.data(), chunks.size());
  return data;
}

}  // namespace

AnyView NpyArray::view() const {
  return AnyView(data_.get(), dtype_, shape_, AnyView::contiguous_strides(shape_));
}

NpyArray read_npy(std::istream& in, std::string_view name) {
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw Error(name, "a .npy file (magic \\x93NUMPY)", "other bytes");
  const int major = static_cast<unsigned char>(magic[6]);
  if (major < 1 || major > 3)
    throw Error(name, ".npy format version 1, 2 or 3", fmt::format("version {}", major));
  // Version 1: a 2-byte header length; 2 and 3: 4 bytes (3: UTF-8 header).
  unsigned char len_bytes[4] = {0, 0, 0, 0};
  const int len_size = major == 1 ? 2 : 4;
  if (!in.read(reinterpret_cast<char*>(len_bytes), len_size))
    throw Error(name, "a .npy header", "a file that ends inside it");
  uint64_t header_len = 0;
  for (int k = len_size; k-- > 0;) header_len = (header_len << 8) | len_bytes[k];
  if (header_len > (uint64_t{1} << 20))
    throw Error(name, "a .npy header of at most 1 MiB", fmt::format("{} bytes", header_len));
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len)))
    throw Error(name, "a .npy header", "a file that ends inside it");
  const auto first = header.find_first_not_of(' ');
  if (first == std::string::npos || header[first] != '{')
    throw Error(name, "a .npy header dict", header);

  NpyArray a;
  a.dtype_ = dtype_of_descr(header_field(header, "descr", name), name);
  const std::string order = header_field(header, "fortran_order", name);
  if (order != "False" && order != "True") throw Error(name, "fortran_order True or False", order);
  a.shape_ = parse_shape(header_field(header, "shape", name), name);
  const int64_t n = checked_numel(a.shape_, name);
  const auto size = static_cast<int64_t>(dtype_size(a.dtype_));
  const int64_t bytes = checked_mul(n, size, name);
  a.data_ = read_data(in, bytes, name, a.shape_);
  auto* data = reinterpret_cast<char*>(a.data_.get());
  if (in.peek() != std::char_traits<char>::eof())
    throw Error(name, fmt::format("{} bytes of data for shape {}", bytes, shape_string(a.shape_)),
                "more bytes after them");
  if (a.dtype_ == DType::Bool)
    for (int64_t i = 0; i < n; ++i)
      if (static_cast<unsigned char>(data[i]) > 1)
        throw Error(name, "bool elements 0 or 1",
                    fmt::format("{} at element {}", static_cast<int>(data[i]), i));
  if (order == "True" && a.shape_.size() > 1) {
    // Fortran order: element (i0, .., ik) at sum i_d * prod(shape[:d]); copy to C order.
    std::vector<int64_t> f_strides(a.shape_.size());
    int64_t s = 1;
    for (std::size_t d = 0; d < a.shape_.size(); ++d) {
      f_strides[d] = s;
      s *= a.shape_[d];
    }
    auto c_data = detail::aligned_uninitialized(bytes);
    auto* out = reinterpret_cast<char*>(c_data.get());
    for_each_index(a.shape_, [&](std::span<const int64_t> index) {
      int64_t offset = 0;
      for (std::size_t d = 0; d < index.size(); ++d) offset += index[d] * f_strides[d];
      std::memcpy(out, data + offset * size, static_cast<std::size_t>(size));
      out += size;
    });
    a.data_ = std::move(c_data);
  }
  return a;
}

NpyArray load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "a .npy file that can be read", "one that cannot be opened");
  return read_npy(in, path);
}

}  // namespace maskattn
