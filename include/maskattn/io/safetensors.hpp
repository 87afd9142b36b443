// safetensors files (https://github.com/huggingface/safetensors): read by
// memory-mapping, write atomically.
//
//   bytes 0..8     N, the header's length (little-endian uint64)
//   bytes 8..8+N   JSON header: {"__metadata__": {"k": "v", ...},
//                                "name": {"dtype": "F32", "shape": [2, 3],
//                                         "data_offsets": [begin, end]}, ...}
//   bytes 8+N..    the data section; a tensor's bytes are [begin, end) of it,
//                  row-major, little-endian
//
// dtypes: BOOL, U8, I32, I64, F32, F64 map to DType Bool, UInt8, Int32, Int64,
// Float32, Float64. The format's other dtypes (F16, BF16, I8, I16, U16, U32,
// U64, C64, F8_*, F6_*, F4) are recognised and checked like any other, but
// view() of such a tensor is an Error; an unknown dtype is an Error at open.
//
// Every malformed file is an Error at open naming the file (and the tensor,
// where there is one); no byte outside the file is ever read. A file is
// malformed when the header does not fit in it, is not a JSON object, has a
// duplicate key, an entry without a known dtype, a shape of non-negative
// integers or two offsets begin <= end inside the data section, a byte length
// other than shape x dtype size, tensors whose bytes overlap, non-string
// metadata, or BOOL bytes other than 0 and 1. Bytes covered by no tensor are
// allowed (the reference implementation rejects them).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn {

class SafetensorsFile;
namespace detail {
// Not API (the fuzzer's entry, fuzz/safetensors_fuzzer.cpp): a SafetensorsFile
// over a 64-byte-aligned copy of `bytes`, checked by the parser open() runs on
// a file's mapping; `name` stands for the path in messages and path().
SafetensorsFile safetensors_from_bytes(std::string_view bytes, std::string name);
}  // namespace detail

// A safetensors file, memory-mapped read-only. Copies share the mapping (a
// shared_ptr): every view stays valid while any copy lives. The file must not
// be truncated or rewritten in place meanwhile (mmap's rule; save_safetensors
// replaces a file by renaming, which is safe).
class SafetensorsFile {
 public:
  // Maps and checks the whole header (and BOOL data); Error naming the file if
  // it cannot be read or is malformed.
  static SafetensorsFile open(const std::string& path);

  // Accessors that return a reference or a view into the file are deleted on
  // a temporary (`SafetensorsFile::open(p).view("w")` would dangle): keep the
  // SafetensorsFile in a variable.
  const std::string& path() const&;
  const std::string& path() const&& = delete;
  // Tensor names in sorted order (without "__metadata__").
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  // The tensor's dtype, shape, contiguous strides and data (in the mapping, or
  // in an aligned copy when the file leaves it misaligned for its dtype).
  // Error naming the file and tensor if it is missing or of an unsupported dtype.
  AnyView view(std::string_view name) const&;
  AnyView view(std::string_view name) const&& = delete;
  // Every tensor, by name; Error as view() does.
  std::map<std::string, AnyView> views() const&;
  std::map<std::string, AnyView> views() const&& = delete;
  // "__metadata__", empty when absent.
  const std::map<std::string, std::string>& metadata() const&;
  const std::map<std::string, std::string>& metadata() const&& = delete;

 private:
  friend SafetensorsFile detail::safetensors_from_bytes(std::string_view bytes, std::string name);
  struct State;
  explicit SafetensorsFile(std::shared_ptr<const State> state);
  const State& state() const;

  std::shared_ptr<const State> state_;
};

// Writes `tensors` (any strides, copied out contiguously) and `metadata` to
// `path` as the reference implementation does: data sorted by dtype size
// (largest first, so every tensor is aligned) then name, the header compact
// JSON in that order with "__metadata__" (when not empty) first, padded with
// spaces to a multiple of 8 bytes. The file is written next to `path` under a
// temporary name and renamed over it: `path` is never left half-written.
// Error naming the tensor for an absent view or a name that is
// "__metadata__" or not UTF-8; naming the file when it cannot be written.
void save_safetensors(const std::string& path, const std::map<std::string, AnyView>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace maskattn
