// Arrays across the Python boundary: numpy arrays, CPU torch tensors (through
// DLPack) and anything numpy.asarray() takes come in as read-only AnyViews
// without a copy where their layout allows; results go out as numpy arrays
// that own the library's Tensor.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/bfloat16.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::python {

namespace nb = nanobind;

// An array argument. `view` reads `array`'s memory, which `array` keeps alive;
// empty when the argument was None.
struct ArrayArg {
  nb::ndarray<nb::ro, nb::device::cpu> array;
  AnyView view;
};

// Reads `obj` as an array. Copies only when the library cannot read the
// memory as it is (negative or unaligned strides, a last dimension that is not
// contiguous, a nested list). Throws maskattn::Error naming `name` for what is
// not an array of a supported dtype (bool, uint8, int32, int64, float32,
// float64) on the CPU; `want`, when given, is what that error says was
// expected ("a float32 array of rank 4 (B, H, L, D)").
ArrayArg read_array(nb::handle obj, std::string_view name, std::string_view want = {});

// "numpy.ndarray", "torch.Tensor", "list".
std::string python_type_name(nb::handle obj);

// A float32 view of rank N; Error naming `name` and `dims` ("(B, H, Lq, D)")
// for another dtype or rank.
template <int N>
View<const float, N> float32_view(const ArrayArg& a, std::string_view name, std::string_view dims);

// A float32 or bfloat16 array of rank N: what attention() computes on. Exactly
// one of f32 / bf16 is set. bfloat16 comes from torch.bfloat16 tensors (or any
// DLPack bfloat16 exporter; numpy has no bfloat16). `array` keeps the memory
// alive; `copy` holds a bfloat16 array whose layout the library cannot read as
// it is (float32 ones are copied by numpy, held by `array`).
template <int N>
struct FloatArrayArg {
  nb::ndarray<nb::ro, nb::device::cpu> array;
  Tensor<BFloat16> copy;
  View<const float, N> f32;
  View<const BFloat16, N> bf16;

  bool is_bf16() const noexcept { return !bf16.empty(); }
  const char* dtype_name() const noexcept { return is_bf16() ? "bfloat16" : "float32"; }
  const std::array<int64_t, N>& shape() const noexcept {
    return is_bf16() ? bf16.shape() : f32.shape();
  }
  // "bfloat16 (2, 4, 5, 8)"
  std::string describe() const;
};

// Reads a float32 or bfloat16 array of rank N (same copy rules as
// read_array()); Error naming `name` and `dims` ("(B, H, Lq, D)") for another
// dtype or rank, or None.
template <int N>
FloatArrayArg<N> read_float_array(nb::handle obj, std::string_view name, std::string_view dims);

// A rank-1 integer array (any integer dtype) or sequence of ints, as int64.
std::vector<int64_t> read_int64_vector(nb::handle obj, std::string_view name);
// A rank-1 float array or sequence of numbers, as float32.
std::vector<float> read_float32_vector(nb::handle obj, std::string_view name);
// An integer array converted to a contiguous int64 Tensor; `shape` ("rank 2
// (B, L)") says in errors what was expected; min_rank..max_rank bound its rank.
Tensor<int64_t> read_int64_tensor(nb::handle obj, std::string_view name, std::string_view shape,
                                  int min_rank = 0, int max_rank = 64);

// A dict of str -> array (a state dict, tensors to save): `views` by key, each
// read as read_array() reads an argument named name["key"] (None is an Error
// naming it); `arrays` keeps their memory alive. A non-dict, or a key that is
// not a str, is a TypeError naming `name` (a Python type, not a value, is wrong).
struct ArrayDict {
  std::vector<ArrayArg> arrays;
  std::map<std::string, AnyView> views;
};
ArrayDict read_array_dict(nb::handle obj, std::string_view name);

// A dict of str -> str (safetensors metadata); TypeError naming `name` for
// anything else.
std::map<std::string, std::string> read_str_dict(nb::handle obj, std::string_view name);

// A numpy array that owns `t` (no copy).
template <class T>
nb::object to_numpy(Tensor<T>&& t);

}  // namespace maskattn::python
