#include "maskattn/io/npy.hpp"

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <fstream>

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

std::size_t element_size(DType t) {
  switch (t) {
    case DType::Bool:
    case DType::UInt8: return 1;
    case DType::Int32:
    case DType::Float32: return 4;
    case DType::Int64:
    case DType::Float64: return 8;
  }
  return 1;
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

  const std::size_t size = element_size(array.dtype);
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
