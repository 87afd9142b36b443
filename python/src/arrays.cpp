#include "arrays.hpp"

#include <fmt/format.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>

namespace maskattn::python {
namespace {

namespace dl = nb::dlpack;
using Array = nb::ndarray<nb::ro, nb::device::cpu>;

constexpr std::string_view kSupportedDtypes = "bool, uint8, int32, int64, float32 or float64";

std::optional<DType> dtype_of(dl::dtype t) {
  if (t.lanes != 1) return std::nullopt;
  switch (static_cast<dl::dtype_code>(t.code)) {
    case dl::dtype_code::Bool:
      if (t.bits == 8) return DType::Bool;
      break;
    case dl::dtype_code::UInt:
      if (t.bits == 8) return DType::UInt8;
      break;
    case dl::dtype_code::Int:
      if (t.bits == 32) return DType::Int32;
      if (t.bits == 64) return DType::Int64;
      break;
    case dl::dtype_code::Float:
      if (t.bits == 32) return DType::Float32;
      if (t.bits == 64) return DType::Float64;
      break;
    default: break;
  }
  return std::nullopt;
}

std::string dlpack_dtype_name(dl::dtype t) {
  const char* kind = nullptr;
  switch (static_cast<dl::dtype_code>(t.code)) {
    case dl::dtype_code::Int: kind = "int"; break;
    case dl::dtype_code::UInt: kind = "uint"; break;
    case dl::dtype_code::Float: kind = "float"; break;
    case dl::dtype_code::Bfloat: kind = "bfloat"; break;
    case dl::dtype_code::Complex: kind = "complex"; break;
    case dl::dtype_code::Bool: kind = "bool"; break;
    default: break;  // the 8-, 6- and 4-bit float formats, ...
  }
  if (kind == nullptr)
    return fmt::format("DLPack dtype code {} of {} bits", static_cast<int>(t.code),
                       static_cast<int>(t.bits));
  return fmt::format("{}{}", kind, static_cast<int>(t.bits));
}

std::vector<int64_t> shape_of(const Array& a) {
  std::vector<int64_t> shape(a.ndim());
  for (std::size_t d = 0; d < a.ndim(); ++d) shape[d] = static_cast<int64_t>(a.shape(d));
  return shape;
}

// The library reads strided memory with non-negative strides, a contiguous
// last dimension and elements aligned to their size. Strides of dimensions of
// size 0 or 1 are never used.
bool readable_as_is(const Array& a) {
  if (a.size() == 0) return true;
  if (reinterpret_cast<uintptr_t>(a.data()) % a.itemsize() != 0) return false;
  const std::size_t n = a.ndim();
  for (std::size_t d = 0; d < n; ++d) {
    if (a.shape(d) <= 1) continue;
    if (a.stride(d) < 0) return false;
    if (d + 1 == n && a.stride(d) != 1) return false;
  }
  return true;
}

bool try_array(nb::handle obj, Array& out) { return nb::try_cast(obj, out, /*convert=*/false); }

// str(obj), as Python spells it.
std::string text_of(nb::handle obj) {
  const nb::str s = nb::steal<nb::str>(PyObject_Str(obj.ptr()));
  if (!s.is_valid()) throw nb::python_error();
  return s.c_str();
}

nb::object numpy_call(const char* fn, nb::handle obj) {
  return nb::module_::import_("numpy").attr(fn)(obj);
}

// An array on another device (a CUDA torch tensor): say so instead of copying.
void reject_other_devices(nb::handle obj, std::string_view name) {
  if (!nb::hasattr(obj, "device")) return;
  const nb::object device = obj.attr("device");
  if (!nb::hasattr(device, "type")) return;
  const std::string type = text_of(device.attr("type"));
  if (type != "cpu")
    throw Error(name, "an array in CPU memory",
                fmt::format("a {} on device {}", python_type_name(obj), text_of(device)));
}

}  // namespace

std::string python_type_name(nb::handle obj) {
  const nb::handle type = obj.type();
  const std::string module = text_of(type.attr("__module__"));
  const std::string name = text_of(type.attr("__qualname__"));
  return module == "builtins" ? name : module + "." + name;
}

namespace {

// `obj` as a CPU array, its dtype and layout not yet checked. `source` is the
// Python object whose memory `array` reads (a numpy copy of a list, the
// detached alias of a torch tensor that requires grad, or obj itself).
struct Imported {
  nb::object source;
  Array array;
};

Imported import_array(nb::handle obj, std::string_view name, std::string_view want,
                      const std::string& expected) {
  Imported in{nb::borrow(obj), {}};
  // Reading values does not need autograd; torch refuses to export such a
  // tensor, so read its detached alias (same memory).
  if (nb::hasattr(in.source, "requires_grad") && nb::hasattr(in.source, "detach") &&
      nb::cast<bool>(in.source.attr("requires_grad")))
    in.source = in.source.attr("detach")();
  if (try_array(in.source, in.array)) return in;
  reject_other_devices(in.source, name);
  try {
    in.source = numpy_call("asarray", in.source);
  } catch (const nb::python_error&) {
    throw Error(name,
                want.empty()
                    ? "an array (numpy array, CPU torch tensor or nested sequence of numbers)"
                    : expected,
                python_type_name(obj));
  }
  // A nested list or tuple has no dtype: read it as torch.tensor() does,
  // Python floats as float32 (numpy would say float64, which no float32
  // argument takes), ints as int64 and bools as bool.
  if ((nb::isinstance<nb::list>(obj) || nb::isinstance<nb::tuple>(obj)) &&
      text_of(in.source.attr("dtype")) == "float64")
    in.source = in.source.attr("astype")(nb::module_::import_("numpy").attr("float32"));
  if (!try_array(in.source, in.array))
    throw Error(name, expected,
                fmt::format("numpy array of dtype {}", text_of(in.source.attr("dtype"))));
  return in;
}

// The strides (in elements) the library reads `a` with: those of dimensions
// of size 0 or 1 are never used, and exporters give odd ones there.
std::vector<int64_t> strides_of(const Array& a) {
  std::vector<int64_t> strides(a.ndim(), 0);
  for (std::size_t d = 0; d < a.ndim(); ++d)
    if (a.shape(d) > 1) strides[d] = a.stride(d);
  return strides;
}

// Memory for an array without elements: no element is ever read, so any
// strides do (numpy zeros, torch a null data pointer, which would read as
// "absent").
const void* no_elements() {
  alignas(64) static const std::byte kNoElements[64] = {};
  return kNoElements;
}

// `in` of a supported dtype, viewed in place or, when the library cannot read
// its layout, through a contiguous numpy copy.
ArrayArg view_array(Imported in, DType dtype, std::string_view name, nb::handle obj) {
  if (!readable_as_is(in.array)) {
    in.source = numpy_call("ascontiguousarray", in.source);
    if (!try_array(in.source, in.array) || !readable_as_is(in.array))
      throw Error(name, "an array numpy can make contiguous", python_type_name(obj));
  }
  ArrayArg arg{in.array, {}};
  std::vector<int64_t> shape = shape_of(in.array);
  if (in.array.size() == 0) {
    arg.view = AnyView(no_elements(), dtype, shape, AnyView::contiguous_strides(shape));
    return arg;
  }
  arg.view = AnyView(in.array.data(), dtype, std::move(shape), strides_of(in.array));
  return arg;
}

bool is_bfloat16(dl::dtype t) {
  return t.lanes == 1 && t.bits == 16 && t.code == static_cast<uint8_t>(dl::dtype_code::Bfloat);
}

template <class T, int N>
View<const T, N> view_of(const void* data, std::span<const int64_t> shape,
                         std::span<const int64_t> strides) {
  std::array<int64_t, N> s{}, st{};
  std::copy_n(shape.begin(), N, s.begin());
  std::copy_n(strides.begin(), N, st.begin());
  return View<const T, N>(static_cast<const T*>(data), s, st);
}

// A bfloat16 array `a` of rank N (checked) into arg.bf16: in place where the
// library can read its layout, else copied element by element into arg.copy
// (numpy, which makes the float32 copies, has no bfloat16).
template <int N>
void view_bfloat16(const Array& a, FloatArrayArg<N>& arg) {
  const std::vector<int64_t> shape = shape_of(a);
  if (a.size() == 0) {
    arg.bf16 = view_of<BFloat16, N>(no_elements(), shape, AnyView::contiguous_strides(shape));
  } else if (readable_as_is(a)) {
    arg.bf16 = view_of<BFloat16, N>(a.data(), shape, strides_of(a));
  } else {
    arg.copy = Tensor<BFloat16>(shape);
    const auto* base = static_cast<const std::byte*>(a.data());
    BFloat16* dst = arg.copy.data();
    for_each_index(shape, [&](std::span<const int64_t> i) {
      int64_t offset = 0;  // in elements; DLPack strides may be negative
      for (std::size_t d = 0; d < i.size(); ++d) offset += i[d] * a.stride(d);
      std::memcpy(dst++, base + offset * 2, sizeof(BFloat16));
    });
    arg.bf16 = arg.copy.template view<N>();
  }
}

}  // namespace

ArrayArg read_array(nb::handle obj, std::string_view name, std::string_view want) {
  const std::string expected =
      want.empty() ? fmt::format("an array of dtype {}", kSupportedDtypes) : std::string(want);
  if (obj.is_none()) return {};
  Imported in = import_array(obj, name, want, expected);
  const std::optional<DType> dtype = dtype_of(in.array.dtype());
  if (!dtype)
    throw Error(name, expected,
                fmt::format("{} {}", dlpack_dtype_name(in.array.dtype()),
                            shape_string(shape_of(in.array))));
  return view_array(std::move(in), *dtype, name, obj);
}

template <int N>
View<const float, N> float32_view(const ArrayArg& a, std::string_view name, std::string_view dims) {
  const std::string want = fmt::format("a float32 array of rank {} {}", N, dims);
  if (a.view.empty()) throw Error(name, want, "None");
  if (a.view.dtype != DType::Float32 || a.view.rank() != N)
    throw Error(name, want, a.view.describe());
  return view_of<float, N>(a.view.data, a.view.shape, a.view.strides);
}

template View<const float, 1> float32_view<1>(const ArrayArg&, std::string_view, std::string_view);
template View<const float, 2> float32_view<2>(const ArrayArg&, std::string_view, std::string_view);
template View<const float, 3> float32_view<3>(const ArrayArg&, std::string_view, std::string_view);
template View<const float, 4> float32_view<4>(const ArrayArg&, std::string_view, std::string_view);

template <int N>
std::string FloatArrayArg<N>::describe() const {
  return fmt::format("{} {}", dtype_name(), shape_string(shape()));
}

template <int N>
FloatArrayArg<N> read_float_array(nb::handle obj, std::string_view name, std::string_view dims) {
  const std::string want = fmt::format("a float32 or bfloat16 array of rank {} {}", N, dims);
  if (obj.is_none()) throw Error(name, want, "None");
  Imported in = import_array(obj, name, want, want);
  const dl::dtype dtype = in.array.dtype();
  const std::optional<DType> known = dtype_of(dtype);
  const bool bf16 = is_bfloat16(dtype);
  if (!(bf16 || known == DType::Float32) || in.array.ndim() != N)
    throw Error(name, want,
                fmt::format("{} {}", known ? dtype_name(*known) : dlpack_dtype_name(dtype),
                            shape_string(shape_of(in.array))));
  FloatArrayArg<N> arg;
  arg.array = in.array;
  if (bf16) {
    view_bfloat16(in.array, arg);
    return arg;
  }
  const ArrayArg f32 = view_array(std::move(in), DType::Float32, name, obj);
  arg.array = f32.array;
  arg.f32 = view_of<float, N>(f32.view.data, f32.view.shape, f32.view.strides);
  return arg;
}

template struct FloatArrayArg<4>;
template FloatArrayArg<4> read_float_array<4>(nb::handle, std::string_view, std::string_view);

namespace {

bool is_integer(DType t) { return t == DType::UInt8 || t == DType::Int32 || t == DType::Int64; }

}  // namespace

std::vector<int64_t> read_int64_vector(nb::handle obj, std::string_view name) {
  const std::string_view want = "a rank-1 integer array or a sequence of ints";
  const ArrayArg a = read_array(obj, name, want);
  if (a.view.empty()) throw Error(name, want, "None");
  // An empty list has no dtype (numpy calls it float64): no values, no wrong one.
  const bool empty_sequence = (nb::isinstance<nb::list>(obj) || nb::isinstance<nb::tuple>(obj)) &&
                              a.view.rank() == 1 && a.view.numel() == 0;
  if (empty_sequence) return {};
  if (a.view.rank() != 1 || !is_integer(a.view.dtype)) throw Error(name, want, a.view.describe());
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(a.view.numel()));
  for_each_index(a.view.shape,
                 [&](std::span<const int64_t> i) { out.push_back(a.view.at_int(i)); });
  return out;
}

std::vector<float> read_float32_vector(nb::handle obj, std::string_view name) {
  const std::string_view want = "a rank-1 float array or a sequence of numbers";
  const ArrayArg a = read_array(obj, name, want);
  if (a.view.empty()) throw Error(name, want, "None");
  if (a.view.rank() != 1 || a.view.dtype == DType::Bool) throw Error(name, want, a.view.describe());
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(a.view.numel()));
  for_each_index(a.view.shape, [&](std::span<const int64_t> i) {
    out.push_back(static_cast<float>(a.view.at(i)));
  });
  return out;
}

Tensor<int64_t> read_int64_tensor(nb::handle obj, std::string_view name, std::string_view shape,
                                  int min_rank, int max_rank) {
  const std::string want = fmt::format("an integer array of {}", shape);
  const ArrayArg a = read_array(obj, name, want);
  if (a.view.empty()) throw Error(name, want, "None");
  if (a.view.rank() < min_rank || a.view.rank() > max_rank || !is_integer(a.view.dtype))
    throw Error(name, want, a.view.describe());
  Tensor<int64_t> out(a.view.shape);
  int64_t k = 0;
  for_each_index(a.view.shape,
                 [&](std::span<const int64_t> i) { out.data()[k++] = a.view.at_int(i); });
  return out;
}

ArrayDict read_array_dict(nb::handle obj, std::string_view name) {
  if (!nb::isinstance<nb::dict>(obj))
    throw nb::type_error(
        fmt::format("{}: expected a dict of str -> array, got {}", name, python_type_name(obj))
            .c_str());
  ArrayDict out;
  const auto dict = nb::borrow<nb::dict>(obj);
  out.arrays.reserve(dict.size());
  for (const auto& [key, value] : dict) {
    if (!nb::isinstance<nb::str>(key))
      throw nb::type_error(
          fmt::format("{}: expected str keys, got a key of type {}", name, python_type_name(key))
              .c_str());
    std::string key_name = nb::cast<std::string>(key);
    const std::string argument = fmt::format("{}[\"{}\"]", name, key_name);
    out.arrays.push_back(read_array(value, argument));
    if (out.arrays.back().view.empty()) throw Error(argument, "an array", "None");
    out.views.emplace(std::move(key_name), out.arrays.back().view);
  }
  return out;
}

std::map<std::string, std::string> read_str_dict(nb::handle obj, std::string_view name) {
  std::map<std::string, std::string> out;
  if (!nb::try_cast(obj, out)) {
    const std::string got = nb::isinstance<nb::dict>(obj)
                                ? "a dict with a key or value that is not a str"
                                : python_type_name(obj);
    throw nb::type_error(
        fmt::format("{}: expected a dict of str -> str or None, got {}", name, got).c_str());
  }
  return out;
}

template <class T>
nb::object to_numpy(Tensor<T>&& t) {
  auto* owned = new Tensor<T>(std::move(t));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<Tensor<T>*>(p); });
  std::vector<std::size_t> shape(owned->shape().begin(), owned->shape().end());
  return nb::ndarray<nb::numpy, T>(owned->data(), shape.size(), shape.data(), owner).cast();
}

template nb::object to_numpy<bool>(Tensor<bool>&&);
template nb::object to_numpy<uint8_t>(Tensor<uint8_t>&&);
template nb::object to_numpy<int32_t>(Tensor<int32_t>&&);
template nb::object to_numpy<int64_t>(Tensor<int64_t>&&);
template nb::object to_numpy<float>(Tensor<float>&&);
template nb::object to_numpy<double>(Tensor<double>&&);

}  // namespace maskattn::python
