#include "maskattn/tensor.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>

namespace maskattn {

int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  if (a < 0 || b < 0) throw Error(what, "non-negative sizes", fmt::format("{} * {}", a, b));
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw Error(what, "a size product that fits in int64", fmt::format("{} * {} (overflow)", a, b));
  return r;
}

int64_t checked_numel(std::span<const int64_t> shape, std::string_view what) {
  // The product of the non-zero sizes must fit even when a zero makes the
  // count 0: contiguous strides are its partial products, and (0, 2^40, 2^40)
  // would overflow them.
  int64_t nonzero = 1;
  bool empty = false;
  for (int64_t s : shape) {
    if (s < 0) throw Error(what, "non-negative sizes", shape_string(shape));
    if (s == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(nonzero, s, &nonzero))
      throw Error(what, "a size product that fits in int64", shape_string(shape) + " (overflow)");
  }
  return empty ? 0 : nonzero;
}

void check_strided_extent(std::span<const int64_t> shape, std::span<const int64_t> strides,
                          int64_t element_size, std::string_view what) {
  for (int64_t s : shape)
    if (s == 0) return;
  int64_t last = 0;  // in elements
  bool overflow = false;
  for (std::size_t d = 0; d < shape.size() && d < strides.size(); ++d) {
    int64_t step = 0;
    overflow = overflow || __builtin_mul_overflow(shape[d] - 1, strides[d], &step) ||
               __builtin_add_overflow(last, step, &last);
  }
  int64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(last, element_size, &bytes);
  if (overflow)
    throw Error(what, "strides whose largest offset fits in int64",
                fmt::format("strides {} for shape {} (overflow)", shape_string(strides),
                            shape_string(shape)));
}

std::string shape_string(std::span<const int64_t> shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

namespace detail {

void AlignedFree::operator()(void* p) const noexcept { std::free(p); }

namespace {
constexpr int64_t kAlign = 64;

// aligned_alloc wants a multiple of the alignment; never zero.
int64_t padded_bytes(int64_t bytes) {
  const int64_t padded = bytes <= 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
  if (padded < bytes)
    throw Error("Tensor bytes", "a size that fits in memory", std::to_string(bytes));
  return padded;
}
}  // namespace

std::unique_ptr<std::byte, AlignedFree> aligned_uninitialized(int64_t bytes) {
  void* p = std::aligned_alloc(kAlign, static_cast<std::size_t>(padded_bytes(bytes)));
  if (p == nullptr) throw std::bad_alloc();
  return std::unique_ptr<std::byte, AlignedFree>(static_cast<std::byte*>(p));
}

std::unique_ptr<std::byte, AlignedFree> aligned_zeroed(int64_t bytes) {
  auto p = aligned_uninitialized(bytes);
  std::memset(p.get(), 0, static_cast<std::size_t>(padded_bytes(bytes)));
  return p;
}

}  // namespace detail

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::UInt8: return "uint8";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "unknown";
}

std::size_t dtype_size(DType t) {
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

std::vector<int64_t> AnyView::contiguous_strides(const std::vector<int64_t>& shape) {
  checked_numel(shape, "AnyView shape");  // the strides below cannot overflow
  std::vector<int64_t> strides(shape.size(), 1);
  int64_t s = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    strides[d] = s;
    s *= shape[d] > 0 ? shape[d] : 1;
  }
  return strides;
}

AnyView::AnyView(const void* data_, DType dtype_, std::vector<int64_t> shape_,
                 std::vector<int64_t> strides_)
    : data(data_), dtype(dtype_), shape(std::move(shape_)), strides(std::move(strides_)) {
  if (strides.size() != shape.size())
    throw Error("AnyView strides", fmt::format("{} strides (one per dimension)", shape.size()),
                shape_string(strides));
  checked_numel(shape, "AnyView shape");
  for (int64_t s : strides)
    if (s < 0) throw Error("AnyView strides", "non-negative strides", shape_string(strides));
  constexpr int64_t kSizes[] = {1, 1, 4, 8, 4, 8};  // Bool .. Float64, in DType's order
  const auto t = static_cast<std::size_t>(dtype);
  check_strided_extent(shape, strides, t < std::size(kSizes) ? kSizes[t] : 8, "AnyView strides");
}

bool AnyView::is_contiguous() const noexcept {
  int64_t expect = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] > 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

int64_t AnyView::numel() const noexcept {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

double AnyView::at(std::span<const int64_t> index) const noexcept {
  int64_t off = 0;
  for (std::size_t d = 0; d < index.size(); ++d) off += index[d] * strides[d];
  switch (dtype) {
    case DType::Bool: return static_cast<const bool*>(data)[off] ? 1.0 : 0.0;
    case DType::UInt8: return static_cast<const uint8_t*>(data)[off];
    case DType::Int32: return static_cast<const int32_t*>(data)[off];
    case DType::Int64: return static_cast<double>(static_cast<const int64_t*>(data)[off]);
    case DType::Float32: return static_cast<const float*>(data)[off];
    case DType::Float64: return static_cast<const double*>(data)[off];
  }
  return std::numeric_limits<double>::quiet_NaN();
}

int64_t AnyView::at_int(std::span<const int64_t> index) const noexcept {
  if (dtype != DType::Int64) return static_cast<int64_t>(at(index));
  int64_t off = 0;
  for (std::size_t d = 0; d < index.size(); ++d) off += index[d] * strides[d];
  return static_cast<const int64_t*>(data)[off];
}

std::string AnyView::describe() const {
  if (empty()) return "nothing";
  return fmt::format("{} {}", dtype_name(dtype), shape_string(shape));
}

Tensor<float> to_float32(const AnyView& v) {
  if (v.empty() && v.numel() != 0) throw Error("array", "an array with data", "an absent view");
  Tensor<float> t(v.shape);
  if (v.dtype == DType::Float32 && v.is_contiguous()) {
    const auto* p = static_cast<const float*>(v.data);
    std::copy(p, p + t.numel(), t.data());
    return t;
  }
  // A finite double beyond float's range would be undefined behaviour to
  // convert: it becomes +-inf, as numpy's astype(float32) gives.
  constexpr double kMax = std::numeric_limits<float>::max();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float* o = t.data();
  for_each_index(v.shape, [&](std::span<const int64_t> i) {
    const double x = v.at(i);
    *o++ = x > kMax ? kInf : x < -kMax ? -kInf : static_cast<float>(x);
  });
  return t;
}

}  // namespace maskattn
