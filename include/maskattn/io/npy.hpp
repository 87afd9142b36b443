// NumPy's .npy format (version 1.0), written: numpy.load() reads what these
// write, for arrays of any dtype maskattn has.
//
//   "\x93NUMPY" 1 0, header length (uint16 little-endian), then an ASCII
//   Python dict {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   padded with spaces and a '\n' so the data starts at a multiple of 64
//   bytes, then the elements in C (row-major) order, little-endian.
#pragma once

#include <ostream>
#include <string>

#include "maskattn/tensor.hpp"

namespace maskattn {

// Writes `array` (any strides; copied out in row-major order) to `out`.
// Error naming "array" when it is absent; naming "npy output" when the stream
// fails.
void write_npy(std::ostream& out, const AnyView& array);

// Writes `array` to the file at `path` (replaced if it exists). Error naming
// the file when it cannot be written.
void save_npy(const std::string& path, const AnyView& array);

}  // namespace maskattn
