#include "arrays.hpp"

#include <fmt/format.h>

#include <cstddef>
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

ArrayArg read_array(nb::handle obj, std::string_view name, std::string_view want) {
  const std::string expected =
      want.empty() ? fmt::format("an array of dtype {}", kSupportedDtypes) : std::string(want);
  if (obj.is_none()) return {};
  nb::object source = nb::borrow(obj);
  // Reading values does not need autograd; torch refuses to export such a
  // tensor, so read its detached alias (same memory).
  if (nb::hasattr(source, "requires_grad") && nb::hasattr(source, "detach") &&
      nb::cast<bool>(source.attr("requires_grad")))
    source = source.attr("detach")();

  ArrayArg arg;
  if (!try_array(source, arg.array)) {
    reject_other_devices(source, name);
    try {
      source = numpy_call("asarray", source);
    } catch (const nb::python_error&) {
      throw Error(name,
                  want.empty() ? "an array (numpy array, CPU torch tensor or nested sequence of "
                                 "numbers)"
                               : expected,
                  python_type_name(obj));
    }
    if (!try_array(source, arg.array))
      throw Error(name, expected,
                  fmt::format("numpy array of dtype {}", text_of(source.attr("dtype"))));
  }

  const std::optional<DType> dtype = dtype_of(arg.array.dtype());
  if (!dtype)
    throw Error(name, expected,
                fmt::format("{} {}", dlpack_dtype_name(arg.array.dtype()),
                            shape_string(shape_of(arg.array))));

  if (!readable_as_is(arg.array)) {
    source = numpy_call("ascontiguousarray", source);
    if (!try_array(source, arg.array) || !readable_as_is(arg.array))
      throw Error(name, "an array numpy can make contiguous", python_type_name(obj));
  }

  std::vector<int64_t> shape = shape_of(arg.array);
  if (arg.array.size() == 0) {
    // No element is ever read: any strides do, and exporters give odd ones
    // (numpy zeros, torch a null data pointer, which would read as "absent").
    alignas(64) static const std::byte kNoElements[64] = {};
    arg.view = AnyView(kNoElements, *dtype, shape, AnyView::contiguous_strides(shape));
    return arg;
  }
  const std::size_t n = arg.array.ndim();
  std::vector<int64_t> strides(n, 0);
  for (std::size_t d = 0; d < n; ++d)
    if (arg.array.shape(d) > 1) strides[d] = arg.array.stride(d);
  arg.view = AnyView(arg.array.data(), *dtype, std::move(shape), std::move(strides));
  return arg;
}

std::string float32_expected(int rank, std::string_view dims) {
  return fmt::format("a float32 array of rank {} {}", rank, dims);
}

template <int N>
View<const float, N> float32_view(const ArrayArg& a, std::string_view name, std::string_view dims) {
  const std::string want = float32_expected(N, dims);
  if (a.view.empty()) throw Error(name, want, "None");
  if (a.view.dtype != DType::Float32 || a.view.rank() != N)
    throw Error(name, want, a.view.describe());
  std::array<int64_t, N> shape{}, strides{};
  for (int d = 0; d < N; ++d) {
    shape[d] = a.view.shape[static_cast<std::size_t>(d)];
    strides[d] = a.view.strides[static_cast<std::size_t>(d)];
  }
  return View<const float, N>(static_cast<const float*>(a.view.data), shape, strides);
}

template View<const float, 1> float32_view<1>(const ArrayArg&, std::string_view, std::string_view);
template View<const float, 2> float32_view<2>(const ArrayArg&, std::string_view, std::string_view);
template View<const float, 3> float32_view<3>(const ArrayArg&, std::string_view, std::string_view);
template View<const float, 4> float32_view<4>(const ArrayArg&, std::string_view, std::string_view);

namespace {

bool is_integer(DType t) { return t == DType::UInt8 || t == DType::Int32 || t == DType::Int64; }

}  // namespace

std::vector<int64_t> read_int64_vector(nb::handle obj, std::string_view name) {
  const std::string_view want = "a rank-1 integer array or a sequence of ints";
  const ArrayArg a = read_array(obj, name, want);
  if (a.view.empty()) throw Error(name, want, "None");
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

template <class T>
nb::object to_numpy(Tensor<T>&& t) {
  auto* owned = new Tensor<T>(std::move(t));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<Tensor<T>*>(p); });
  std::vector<std::size_t> shape(owned->shape().begin(), owned->shape().end());
  return nb::ndarray<nb::numpy, T>(owned->data(), shape.size(), shape.data(), owner).cast();
}

template nb::object to_numpy<bool>(Tensor<bool>&&);
template nb::object to_numpy<float>(Tensor<float>&&);
template nb::object to_numpy<int64_t>(Tensor<int64_t>&&);

}  // namespace maskattn::python
