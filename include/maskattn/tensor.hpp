// Tensors without a tensor framework.
//
//   View<T, N>  non-owning: pointer + shape + strides (in elements). The last
//               dimension is contiguous (stride 1); the others may have any
//               non-negative stride, so BLHD memory is viewed as (B, H, L, D)
//               by swapping two strides, without a copy.
//   Tensor<T>   owning, 64-byte-aligned, row-major storage of any rank; hands
//               out Views.
//   AnyView     a View whose element type and rank are only known at run time,
//               for entry points that accept several (bool or float masks,
//               int or bool Hugging Face attention masks, ...).
//
// Sizes are int64_t. Products of sizes are overflow-checked before anything
// is allocated (checked_mul, checked_numel).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "maskattn/error.hpp"

namespace maskattn {

// a * b for sizes; throws Error(what, ...) if either is negative or the product
// overflows int64_t.
int64_t checked_mul(int64_t a, int64_t b, std::string_view what);
// Product of a shape's sizes, overflow-checked; throws Error(what, ...) on a
// negative size or overflow. The product of the non-zero sizes must fit too
// (a View's strides are made of it): (0, 2^40, 2^40) is an Error, not 0.
int64_t checked_numel(std::span<const int64_t> shape, std::string_view what);
// "(2, 3, 4)"
std::string shape_string(std::span<const int64_t> shape);
// Throws Error(what, ...) unless the byte offset of a strided view's last
// element, sum_d (shape[d] - 1) * strides[d] * element_size, fits in int64_t
// (a view with no elements always does): offsets are then computed without
// overflow wherever the view is read.
void check_strided_extent(std::span<const int64_t> shape, std::span<const int64_t> strides,
                          int64_t element_size, std::string_view what);

template <class T, int N>
class View {
  static_assert(N >= 1, "View needs at least one dimension");

 public:
  using value_type = T;
  static constexpr int rank = N;

  // An empty view (data() == nullptr): "absent" for optional arguments.
  View() = default;

  // Contiguous row-major view of `shape`.
  View(T* data, const std::array<int64_t, N>& shape) : data_(data), shape_(shape) {
    checked_numel(shape, "View shape");
    int64_t s = 1;
    for (int d = N - 1; d >= 0; --d) {
      strides_[d] = s;
      s *= shape_[d] > 0 ? shape_[d] : 1;
    }
  }

  // Strided view. Sizes and strides must be non-negative, the last
  // dimension contiguous (stride 1, or any stride when its size is <= 1), and
  // the last element's byte offset must fit in int64_t.
  View(T* data, const std::array<int64_t, N>& shape, const std::array<int64_t, N>& strides)
      : data_(data), shape_(shape), strides_(strides) {
    checked_numel(shape, "View shape");
    for (int d = 0; d < N; ++d) {
      if (strides_[d] < 0)
        throw Error("View strides", "non-negative strides", shape_string(strides_));
    }
    if (shape_[N - 1] > 1 && strides_[N - 1] != 1)
      throw Error("View strides", "last dimension contiguous (stride 1)", shape_string(strides_));
    if (shape_[N - 1] <= 1) strides_[N - 1] = 1;
    check_strided_extent(shape_, strides_, static_cast<int64_t>(sizeof(T)), "View strides");
  }

  // View<T, N> -> View<const T, N>
  template <class U>
  requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
      View(const View<U, N>& other)  // NOLINT(google-explicit-constructor)
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  T* data() const noexcept { return data_; }
  bool empty() const noexcept { return data_ == nullptr; }
  const std::array<int64_t, N>& shape() const noexcept { return shape_; }
  const std::array<int64_t, N>& strides() const noexcept { return strides_; }
  int64_t size(int d) const noexcept { return shape_[d]; }
  int64_t stride(int d) const noexcept { return strides_[d]; }
  int64_t numel() const noexcept {
    int64_t n = 1;
    for (int64_t s : shape_) n *= s;
    return n;
  }
  bool is_contiguous() const noexcept {
    int64_t s = 1;
    for (int d = N - 1; d >= 0; --d) {
      if (shape_[d] > 1 && strides_[d] != s) return false;
      s *= shape_[d];
    }
    return true;
  }

  template <class... I>
  requires(sizeof...(I) == N && (std::is_integral_v<I> && ...)) T& operator()(
      I... index) const noexcept {
    const std::array<int64_t, N> idx{static_cast<int64_t>(index)...};
    int64_t off = 0;
    for (int d = 0; d < N; ++d) off += idx[d] * strides_[d];
    return data_[off];
  }

  // Pointer to the start of the contiguous last dimension at a leading index.
  template <class... I>
  requires(sizeof...(I) == N - 1 &&
           (std::is_integral_v<I> && ...)) T* row(I... index) const noexcept {
    const std::array<int64_t, N - 1> idx{static_cast<int64_t>(index)...};
    int64_t off = 0;
    for (int d = 0; d < N - 1; ++d) off += idx[d] * strides_[d];
    return data_ + off;
  }

  // Swap two dimensions other than the last: a BLHD buffer viewed as BHLD is
  // View<float, 4>(p, {B, L, H, D}).transposed(1, 2).
  View transposed(int a, int b) const {
    if (a < 0 || b < 0 || a >= N - 1 || b >= N - 1)
      throw Error("transposed", "two dimensions before the last",
                  std::to_string(a) + " and " + std::to_string(b));
    View r = *this;
    std::swap(r.shape_[a], r.shape_[b]);
    std::swap(r.strides_[a], r.strides_[b]);
    return r;
  }

 private:
  T* data_ = nullptr;
  std::array<int64_t, N> shape_{};
  std::array<int64_t, N> strides_{};
};

namespace detail {
struct AlignedFree {
  void operator()(void* p) const noexcept;
};
// 64-byte-aligned storage for `bytes` bytes (at least 1), uninitialised.
std::unique_ptr<std::byte, AlignedFree> aligned_uninitialized(int64_t bytes);
// The same, zero-filled.
std::unique_ptr<std::byte, AlignedFree> aligned_zeroed(int64_t bytes);
}  // namespace detail

// Owning, 64-byte-aligned, contiguous row-major tensor, zero-initialised.
// Copying copies the data.
template <class T>
class Tensor {
  static_assert(std::is_trivially_copyable_v<T>, "Tensor holds plain numbers");

 public:
  Tensor() = default;
  explicit Tensor(std::vector<int64_t> shape)
      : shape_(std::move(shape)),
        numel_(checked_numel(shape_, "Tensor shape")),
        storage_(detail::aligned_zeroed(checked_mul(numel_, sizeof(T), "Tensor bytes"))) {}
  Tensor(std::initializer_list<int64_t> shape) : Tensor(std::vector<int64_t>(shape)) {}

  // A copy of a default-constructed (empty) tensor is empty too.
  Tensor(const Tensor& other)
      : shape_(other.shape_),
        numel_(other.numel_),
        storage_(other.storage_ ? detail::aligned_uninitialized(numel_ * sizeof(T)) : nullptr) {
    std::copy(other.data(), other.data() + (storage_ ? numel_ : 0), data());
  }
  Tensor& operator=(const Tensor& other) {
    if (this != &other) *this = Tensor(other);
    return *this;
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  T* data() noexcept { return reinterpret_cast<T*>(storage_.get()); }
  const T* data() const noexcept { return reinterpret_cast<const T*>(storage_.get()); }
  const std::vector<int64_t>& shape() const noexcept { return shape_; }
  int64_t size(int d) const { return shape_.at(static_cast<std::size_t>(d)); }
  int rank() const noexcept { return static_cast<int>(shape_.size()); }
  int64_t numel() const noexcept { return numel_; }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + numel_; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + numel_; }

  // Rank-checked views of the whole tensor.
  template <int N>
  View<T, N> view() {
    return View<T, N>(data(), shape_array<N>());
  }
  template <int N>
  View<const T, N> view() const {
    return View<const T, N>(data(), shape_array<N>());
  }

 private:
  template <int N>
  std::array<int64_t, N> shape_array() const {
    if (static_cast<int>(shape_.size()) != N)
      throw Error("Tensor::view", "rank " + std::to_string(N),
                  "rank " + std::to_string(shape_.size()) + " " + shape_string(shape_));
    std::array<int64_t, N> a{};
    for (int d = 0; d < N; ++d) a[d] = shape_[static_cast<std::size_t>(d)];
    return a;
  }

  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  std::unique_ptr<std::byte, detail::AlignedFree> storage_;
};

// Calls f(index) — an std::span<const int64_t> — for every multi-index of
// `shape` in row-major order: once for rank 0, never when a size is 0.
template <class F>
void for_each_index(std::span<const int64_t> shape, F&& f) {
  for (int64_t s : shape)
    if (s <= 0) return;
  std::vector<int64_t> index(shape.size(), 0);
  while (true) {
    f(std::span<const int64_t>(index));
    std::size_t d = shape.size();
    while (d > 0 && ++index[d - 1] == shape[d - 1]) index[--d] = 0;
    if (d == 0) return;
  }
}

// Element types an AnyView may carry.
enum class DType { Bool, UInt8, Int32, Int64, Float32, Float64 };
std::string_view dtype_name(DType t);
// Bytes per element: 1 (Bool, UInt8), 4 (Int32, Float32) or 8 (Int64, Float64).
std::size_t dtype_size(DType t);

template <class T>
constexpr DType dtype_of() {
  using U = std::remove_const_t<T>;
  if constexpr (std::is_same_v<U, bool>)
    return DType::Bool;
  else if constexpr (std::is_same_v<U, uint8_t>)
    return DType::UInt8;
  else if constexpr (std::is_same_v<U, int32_t>)
    return DType::Int32;
  else if constexpr (std::is_same_v<U, int64_t>)
    return DType::Int64;
  else if constexpr (std::is_same_v<U, float>)
    return DType::Float32;
  else if constexpr (std::is_same_v<U, double>)
    return DType::Float64;
  else
    static_assert(sizeof(U) == 0, "unsupported element type");
}

// A read-only view whose dtype and rank are known at run time. Any View<T, N>
// or Tensor<T> converts to it. Default-constructed: absent (data == nullptr).
struct AnyView {
  const void* data = nullptr;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements, non-negative

  AnyView() = default;
  AnyView(const void* data, DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides);
  template <class T, int N>
  AnyView(const View<T, N>& v)  // NOLINT(google-explicit-constructor)
      : data(v.data()),
        dtype(dtype_of<T>()),
        shape(v.shape().begin(), v.shape().end()),
        strides(v.strides().begin(), v.strides().end()) {}
  template <class T>
  AnyView(const Tensor<T>& t)  // NOLINT(google-explicit-constructor)
      : AnyView(t.data(), dtype_of<T>(), t.shape(), contiguous_strides(t.shape())) {}

  bool empty() const noexcept { return data == nullptr; }
  int rank() const noexcept { return static_cast<int>(shape.size()); }
  int64_t numel() const noexcept;
  bool is_float() const noexcept { return dtype == DType::Float32 || dtype == DType::Float64; }
  // Row-major contiguous (as View::is_contiguous).
  bool is_contiguous() const noexcept;
  // Element at a multi-index (size rank()), converted to double.
  double at(std::span<const int64_t> index) const noexcept;
  // Element of an integer or bool view, exactly (at() rounds int64 past 2^53).
  int64_t at_int(std::span<const int64_t> index) const noexcept;
  // "bool (2, 5)"
  std::string describe() const;

  static std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);
};

// A contiguous float32 copy of any view (bool, integer and float64 elements
// converted; float64 beyond float32's range becomes +-inf), in row-major
// order. Error naming "array" when it is absent.
Tensor<float> to_float32(const AnyView& v);

}  // namespace maskattn
