// libFuzzer target: read_npy (io/npy.hpp) on arbitrary bytes.
//
// Expected outcomes: an NpyArray, or maskattn::Error. A finding: any other
// exception, a sanitizer report, or an array whose view disagrees with its
// shape and dtype, whose bytes cannot all be read, or that does not survive
// write_npy -> read_npy unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include "maskattn/io/npy.hpp"

namespace {

using maskattn::AnyView;
using maskattn::NpyArray;

std::size_t element_bytes(maskattn::DType t) {
  switch (t) {
    case maskattn::DType::Bool:
    case maskattn::DType::UInt8: return 1;
    case maskattn::DType::Int32:
    case maskattn::DType::Float32: return 4;
    case maskattn::DType::Int64:
    case maskattn::DType::Float64: return 8;
  }
  std::abort();  // a dtype read_npy never returns
}

// The array's view agrees with its shape and dtype, and every byte is there.
std::size_t check_array(const NpyArray& a) {
  const AnyView v = a.view();
  if (v.dtype != a.dtype() || v.shape != a.shape()) std::abort();
  if (v.strides != AnyView::contiguous_strides(v.shape)) std::abort();
  int64_t numel = 1;
  for (const int64_t s : v.shape) {
    if (s < 0) std::abort();
    numel *= s;  // read_npy allocated this many elements: no overflow
  }
  if (v.numel() != numel) std::abort();
  const std::size_t bytes = static_cast<std::size_t>(numel) * element_bytes(v.dtype);
  if (bytes > 0 && v.data == nullptr) std::abort();
  // Touch every byte (ASan reports a read past the allocation); bools 0 or 1.
  const auto* p = static_cast<const unsigned char*>(v.data);
  unsigned sum = 0;
  for (std::size_t i = 0; i < bytes; ++i) {
    if (v.dtype == maskattn::DType::Bool && p[i] > 1) std::abort();
    sum += p[i];
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  NpyArray a;
  try {
    a = maskattn::read_npy(in, "fuzz input");
  } catch (const maskattn::Error&) {
    return 0;  // bad input, reported as it should be
  }
  check_array(a);

  // Round trip: what write_npy writes, read_npy reads back unchanged.
  std::ostringstream out;
  maskattn::write_npy(out, a.view());
  std::istringstream again(out.str());
  const NpyArray b = maskattn::read_npy(again, "round trip");
  check_array(b);
  const AnyView va = a.view(), vb = b.view();
  if (va.dtype != vb.dtype || va.shape != vb.shape) std::abort();
  const std::size_t bytes = static_cast<std::size_t>(va.numel()) * element_bytes(va.dtype);
  if (bytes > 0 && std::memcmp(va.data, vb.data, bytes) != 0) std::abort();
  return 0;
}
