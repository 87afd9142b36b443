// NumPy's .npy format: written (version 1.0; numpy.load() reads what these
// write, for arrays of any dtype maskattn has) and read (what numpy.save()
// writes for those dtypes, so masks saved from Python can be looked at with
// `maskattn viz mask`).
//
//   "\x93NUMPY" 1 0, header length (uint16 little-endian), then an ASCII
//   Python dict {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   padded with spaces and a '\n' so the data starts at a multiple of 64
//   bytes, then the elements in C (row-major) order, little-endian.
#pragma once

#include <cstddef>
#include <istream>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn {

// Writes `array` (any strides; copied out in row-major order) to `out`.
// Error naming "array" when it is absent; naming "npy output" when the stream
// fails.
void write_npy(std::ostream& out, const AnyView& array);

// Writes `array` to the file at `path` (replaced if it exists). Error naming
// the file when it cannot be written.
void save_npy(const std::string& path, const AnyView& array);

// An array read from a .npy file: it owns its elements (row-major, 64-byte
// aligned) and hands them out as an AnyView.
class NpyArray {
 public:
  NpyArray() = default;
  DType dtype() const noexcept { return dtype_; }
  const std::vector<int64_t>& shape() const noexcept { return shape_; }
  AnyView view() const;

 private:
  friend NpyArray read_npy(std::istream& in, std::string_view name);
  DType dtype_ = DType::Float32;
  std::vector<int64_t> shape_;
  std::unique_ptr<std::byte, detail::AlignedFree> data_;
};

// Reads a .npy file (format versions 1.0, 2.0 and 3.0) of dtype bool, uint8,
// int32, int64, float32 or float64 in little-endian byte order, C or Fortran
// order (returned in C order). Error naming `name` for anything else: a bad
// magic string or header, another dtype (float16, big-endian, objects,
// structured arrays), a bool byte other than 0 or 1, a file shorter or longer
// than its header says.
NpyArray read_npy(std::istream& in, std::string_view name = "npy input");
NpyArray load_npy(const std::string& path);

}  // namespace maskattn
