// libFuzzer target: the safetensors reader (io/safetensors.hpp) on arbitrary
// bytes, twice: from memory (detail::safetensors_from_bytes, the parser
// SafetensorsFile::open runs) and through open() on a memfd holding the same
// bytes (the mapping), which must agree.
//
// Expected outcomes: a file whose every tensor can be viewed (or is an Error
// for an unsupported dtype), or maskattn::Error. A finding: any other
// exception, a sanitizer report, a view that disagrees with its shape, dtype
// or alignment, a BOOL byte other than 0 or 1, or the two paths disagreeing.
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "maskattn/io/safetensors.hpp"

namespace {

using maskattn::AnyView;
using maskattn::DType;
using maskattn::SafetensorsFile;

// The tensor's view, or nothing for a dtype view() does not support.
std::optional<AnyView> try_view(const SafetensorsFile& f, const std::string& name) {
  try {
    return f.view(name);
  } catch (const maskattn::Error&) {
    return std::nullopt;
  }
}

// Every tensor: the view agrees with its shape, is aligned, every byte readable.
void check_file(const SafetensorsFile& f) {
  for (const std::string& name : f.names()) {
    if (!f.contains(name) || name == "__metadata__") std::abort();
    const std::optional<AnyView> v = try_view(f, name);
    if (!v) continue;
    if (v->strides != AnyView::contiguous_strides(v->shape)) std::abort();
    int64_t numel = 1;
    for (const int64_t s : v->shape) {
      if (s < 0) std::abort();
      numel *= s;  // the reader checked that the byte size fits in int64
    }
    if (v->numel() != numel) std::abort();
    const std::size_t size = maskattn::dtype_size(v->dtype);
    if (v->data == nullptr || reinterpret_cast<uintptr_t>(v->data) % size != 0) std::abort();
    const auto* p = static_cast<const unsigned char*>(v->data);
    unsigned sum = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(numel) * size; ++i) {
      if (v->dtype == DType::Bool && p[i] > 1) std::abort();
      sum += p[i];
    }
    (void)sum;
  }
  for (const auto& [key, value] : f.metadata()) (void)(key.size() + value.size());
}

// The same tensors with the same bytes, or the same Error.
void check_same(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.names() != b.names() || a.metadata() != b.metadata()) std::abort();
  for (const std::string& name : a.names()) {
    const std::optional<AnyView> va = try_view(a, name), vb = try_view(b, name);
    if (va.has_value() != vb.has_value()) std::abort();
    if (!va) continue;
    if (va->dtype != vb->dtype || va->shape != vb->shape) std::abort();
    const std::size_t bytes =
        static_cast<std::size_t>(va->numel()) * maskattn::dtype_size(va->dtype);
    if (bytes > 0 && std::memcmp(va->data, vb->data, bytes) != 0) std::abort();
  }
}

// The message of the Error f() throws, or nothing when it returns a file.
template <class F>
std::optional<std::string> error_of(F&& f, std::optional<SafetensorsFile>& out) {
  try {
    out.emplace(f());
    return std::nullopt;
  } catch (const maskattn::Error& e) {
    return std::string(e.expected()) + " | " + e.actual();
  }
}

// A memfd the inputs are written to, opened by path like any file.
int memfd() {
  static const int fd = [] {
    const int f = ::memfd_create("safetensors_fuzzer", MFD_CLOEXEC);
    if (f < 0) std::abort();
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::optional<SafetensorsFile> from_bytes, from_file;
  const std::optional<std::string> bytes_error = error_of(
      [&] { return maskattn::detail::safetensors_from_bytes(bytes, "fuzz input"); }, from_bytes);

  const int fd = memfd();
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    std::abort();
  const std::string path = fmt::format("/proc/self/fd/{}", fd);
  const std::optional<std::string> file_error =
      error_of([&] { return SafetensorsFile::open(path); }, from_file);

  // Both paths: the same verdict, the same Error (bar the name), the same tensors.
  if (bytes_error != file_error) std::abort();
  if (!from_bytes) return 0;
  check_file(*from_bytes);
  check_file(*from_file);
  check_same(*from_bytes, *from_file);
  return 0;
}
