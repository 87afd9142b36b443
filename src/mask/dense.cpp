// Dense masks: keep (true = may attend), block (true = masked) and bias
// (additive, -inf = masked), with PyTorch broadcasting against (B, H, Lq, Lk).
//
// The data is copied at construction into a DenseMap of (slices, rows, cols):
//   (S)          -> (1, 1, S)        (L, S)  -> (1, L, S)
//   (B, S)       -> (B, 1, S)        (X, L, S) -> (X, L, S), X = 1 | B*H | B
//   (B, H, L, S) -> (B*H, L, S)
// so the stored layout never depends on the bound shape; only the meaning of
// the slice index does (resolved in bind()). The map's summed-area table makes
// tile classification exact and O(1).
#include "mask/dense.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

namespace maskattn::detail {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Calls f(index, value) for every element of m in row-major order; index is
// the multi-index (size m.rank()), value the element as T.
template <class T, class F>
void for_each_element(const AnyView& m, F&& f) {
  const int rank = m.rank();
  if (m.numel() == 0) return;
  const T* data = static_cast<const T*>(m.data);
  std::vector<int64_t> index(static_cast<std::size_t>(rank), 0);
  const int64_t last = m.shape.back(), last_stride = m.strides.back();
  while (true) {
    int64_t base = 0;
    for (int d = 0; d + 1 < rank; ++d) base += index[d] * m.strides[d];
    for (int64_t c = 0; c < last; ++c) {
      index.back() = c;
      f(index, data[base + c * last_stride]);
    }
    // Advance the leading multi-index (odometer).
    int d = rank - 2;
    for (; d >= 0; --d) {
      if (++index[d] < m.shape[d]) break;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

std::string index_string(const std::vector<int64_t>& index) {
  return fmt::format("[{}]", fmt::join(index, ", "));
}

class BoundDense final : public BoundMaskPart {
 public:
  BoundDense(std::shared_ptr<const DenseMap> map, int64_t nb, int64_t nh)
      : map_(std::move(map)), nb_(nb), nh_(nh) {}

  TileClass classify(int64_t b, int64_t h, int64_t q0, int64_t q1, int64_t k0,
                     int64_t k1) const override {
    // A broadcast dimension (size 1) projects the tile onto index 0; the tile
    // is Empty / Full exactly when the projected rectangle is.
    if (map_->rows() == 1) q0 = 0, q1 = 1;
    if (map_->cols() == 1) k0 = 0, k1 = 1;
    const int64_t allowed = map_->count(slice(b, h), q0, q1, k0, k1);
    return class_of_count(allowed, (q1 - q0) * (k1 - k0));
  }

  void apply_row(int64_t b, int64_t h, int64_t i, int64_t k0, int64_t k1,
                 float* row) const override {
    const int64_t r = map_->rows() == 1 ? 0 : i;
    map_->apply(slice(b, h), r, map_->cols() == 1 ? 0 : k0, k1 - k0, row);
  }

  void apply_tile(int64_t b, int64_t h, int64_t q0, int64_t q1, int64_t k0, int64_t k1, float* tile,
                  int64_t ld) const override {
    map_->apply_tile(slice(b, h), q0, q1, k0, k1, tile, ld);
  }

  bool has_bias() const override { return map_->has_bias(); }

 private:
  int64_t slice(int64_t b, int64_t h) const noexcept {
    return (nb_ == 1 ? 0 : b) * nh_ + (nh_ == 1 ? 0 : h);
  }

  std::shared_ptr<const DenseMap> map_;
  int64_t nb_, nh_;
};

class DensePart final : public MaskPart {
 public:
  DensePart(std::string name, std::vector<int64_t> shape, Dims2 dims2,
            std::shared_ptr<const DenseMap> map)
      : name_(std::move(name)), shape_(std::move(shape)), dims2_(dims2), map_(std::move(map)) {}

  std::string describe() const override {
    return fmt::format("{}({})", name_, fmt::join(shape_, ", "));
  }

  std::shared_ptr<const BoundMaskPart> bind(const MaskShape& s) const override {
    const int rank = static_cast<int>(shape_.size());
    int64_t nb = 1, nh = 1;
    const char* layout = "(S)";
    bool fits = true;
    if (rank == 2 && dims2_ == Dims2::BatchKey) {
      layout = "(B, S) key padding";
      nb = shape_[0];
    } else if (rank == 2) {
      layout = "(L, S)";
    } else if (rank == 3) {
      layout = "(B*H | B | 1, L, S)";
      const int64_t x = shape_[0];
      // B*H first: with H == 1 both readings agree.
      if (x == checked_mul(s.batch, s.heads, "mask shape B*H")) {
        nb = s.batch, nh = s.heads;
      } else if (x == s.batch) {
        nb = s.batch;
      } else {
        fits = x == 1;
      }
    } else if (rank == 4) {
      layout = "(B, H, L, S)";
      nb = shape_[0], nh = shape_[1];
    }
    fits = fits && (nb == 1 || nb == s.batch) && (nh == 1 || nh == s.heads) &&
           (map_->rows() == 1 || map_->rows() == s.q_len) &&
           (map_->cols() == 1 || map_->cols() == s.k_len);
    if (!fits)
      throw Error(fmt::format("mask: {}", name_),
                  fmt::format("{}, each dim equal or 1, broadcastable to (B, H, Lq, Lk) = "
                              "({}, {}, {}, {})",
                              layout, s.batch, s.heads, s.q_len, s.k_len),
                  fmt::format("shape {}", shape_string(shape_)));
    return bind_dense(map_, nb, nh);
  }

 private:
  std::string name_;
  std::vector<int64_t> shape_;
  Dims2 dims2_;
  std::shared_ptr<const DenseMap> map_;
};

}  // namespace

DenseMap::DenseMap(int64_t slices, int64_t rows, int64_t cols, std::vector<uint8_t> allowed,
                   std::vector<float> bias)
    : slices_(slices),
      rows_(rows),
      cols_(cols),
      allowed_(std::move(allowed)),
      bias_(std::move(bias)) {
  for (std::size_t k = 0; k < bias_.size(); ++k)
    if (allowed_[k] && bias_[k] != 0.0f) has_bias_ = true;
  const int64_t sat_size =
      checked_mul(checked_mul(slices_, rows_ + 1, "mask table"), cols_ + 1, "mask table");
  const bool narrow =
      checked_mul(rows_, cols_, "mask slice") <= std::numeric_limits<int32_t>::max();
  auto build = [&](auto& sat) {
    sat.assign(static_cast<std::size_t>(sat_size), 0);
    const int64_t w = cols_ + 1;
    for (int64_t s = 0; s < slices_; ++s) {
      const int64_t base = s * (rows_ + 1) * w;
      for (int64_t r = 0; r < rows_; ++r) {
        const uint8_t* a = allowed_.data() + (s * rows_ + r) * cols_;
        auto* prev = sat.data() + base + r * w;
        auto* cur = prev + w;
        // cur[c + 1] = allowed in rows [0, r] x cols [0, c].
        int64_t run = 0;
        for (int64_t c = 0; c < cols_; ++c) {
          run += a[c];
          cur[c + 1] =
              static_cast<typename std::decay_t<decltype(sat)>::value_type>(prev[c + 1] + run);
        }
      }
    }
  };
  if (narrow)
    build(sat32_);
  else
    build(sat64_);
}

int64_t DenseMap::count(int64_t s, int64_t r0, int64_t r1, int64_t c0, int64_t c1) const noexcept {
  return sat(s, r1, c1) - sat(s, r0, c1) - sat(s, r1, c0) + sat(s, r0, c0);
}

void DenseMap::apply(int64_t s, int64_t r, int64_t c0, int64_t n, float* row) const noexcept {
  const std::size_t base = static_cast<std::size_t>((s * rows_ + r) * cols_ + c0);
  if (cols_ == 1) {
    if (!bias_.empty()) {
      const float v = bias_[base];
      for (int64_t j = 0; j < n; ++j) row[j] = add_bias(row[j], v);
    } else if (!allowed_[base]) {
      std::fill(row, row + n, kNegInf);
    }
    return;
  }
  if (!bias_.empty()) {
    // -inf (masked) + anything finite or -inf stays -inf.
    const float* v = bias_.data() + base;
    for (int64_t j = 0; j < n; ++j) row[j] = add_bias(row[j], v[j]);
  } else {
    const uint8_t* a = allowed_.data() + base;
    for (int64_t j = 0; j < n; ++j)
      if (!a[j]) row[j] = kNegInf;
  }
}

void DenseMap::apply_tile(int64_t s, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* tile,
                          int64_t ld) const noexcept {
  // A broadcast dimension (size 1) reads index 0 for every row or column.
  const int64_t row_step = rows_ == 1 ? 0 : cols_;
  const int64_t col_step = cols_ == 1 ? 0 : 1;
  const std::size_t base = static_cast<std::size_t>(s * rows_ * cols_);
  for (int64_t c = c0; c < c1; ++c) {
    float* t = tile + (c - c0) * ld;
    // Element (r, c) sits at base + r * row_step + c * col_step.
    const std::size_t col = base + static_cast<std::size_t>(c * col_step + r0 * row_step);
    if (!bias_.empty()) {
      const float* v = bias_.data() + col;
      for (int64_t r = 0; r < r1 - r0; ++r) t[r] = add_bias(t[r], v[r * row_step]);
    } else {
      const uint8_t* a = allowed_.data() + col;
      for (int64_t r = 0; r < r1 - r0; ++r)
        if (!a[r * row_step]) t[r] = kNegInf;
    }
  }
}

std::shared_ptr<const BoundMaskPart> bind_dense(std::shared_ptr<const DenseMap> map, int64_t nb,
                                                int64_t nh) {
  return std::make_shared<BoundDense>(std::move(map), nb, nh);
}

Mask dense_mask(const AnyView& m, DenseKind kind, Dims2 dims2, std::string_view name) {
  const std::string arg(name);
  if (dims2 != Dims2::QueryKey && dims2 != Dims2::BatchKey)
    throw Error(arg + ": dims2", "Dims2::QueryKey or Dims2::BatchKey",
                std::to_string(static_cast<int>(dims2)));
  if (m.empty()) throw Error(arg, "a mask tensor", "nothing");
  if (kind == DenseKind::Bias) {
    if (!m.is_float())
      throw Error(arg, "dtype float32 or float64 (additive, -inf = masked)", m.describe());
  } else if (m.dtype != DType::Bool) {
    throw Error(
        arg,
        kind == DenseKind::Keep ? "dtype bool (true = may attend)" : "dtype bool (true = masked)",
        m.describe());
  }
  const int rank = m.rank();
  if (rank < 1 || rank > 4)
    throw Error(arg, "rank 1..4: (S), (L, S) or (B, S), (B*H | B, L, S), (B, H, L, S)",
                m.describe());

  const int64_t cols = m.shape[static_cast<std::size_t>(rank - 1)];
  int64_t rows = 1, slices = 1;
  if (rank == 2 && dims2 == Dims2::BatchKey)
    slices = m.shape[0];
  else if (rank >= 2)
    rows = m.shape[static_cast<std::size_t>(rank - 2)];
  for (int d = 0; d + 2 < rank; ++d) slices = checked_mul(slices, m.shape[d], arg);
  const int64_t n = checked_mul(checked_mul(slices, rows, arg), cols, arg);

  std::vector<uint8_t> allowed(static_cast<std::size_t>(n));
  std::vector<float> values;
  std::size_t k = 0;
  if (kind == DenseKind::Bias) {
    values.resize(static_cast<std::size_t>(n));
    auto store = [&](const std::vector<int64_t>& index, double v) {
      if (std::isnan(v) || v == std::numeric_limits<double>::infinity())
        throw Error(arg, "finite values or -inf (masked)",
                    fmt::format("{} at {}", v, index_string(index)));
      if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max())
        throw Error(arg, "finite values within float32 range, or -inf (masked)",
                    fmt::format("{} at {}", v, index_string(index)));
      values[k] = static_cast<float>(v);
      allowed[k] = values[k] != kNegInf;
      ++k;
    };
    if (m.dtype == DType::Float32)
      for_each_element<float>(m, [&](const auto& index, float v) { store(index, v); });
    else
      for_each_element<double>(m, store);
  } else {
    const bool keep_value = kind == DenseKind::Keep;
    for_each_element<bool>(m, [&](const auto&, bool v) { allowed[k++] = v == keep_value; });
  }
  auto map =
      std::make_shared<const DenseMap>(slices, rows, cols, std::move(allowed), std::move(values));
  return Mask(std::make_shared<DensePart>(arg, m.shape, dims2, std::move(map)));
}

}  // namespace maskattn::detail

namespace maskattn {

Mask keep(const AnyView& m, Dims2 dims2) {
  return detail::dense_mask(m, detail::DenseKind::Keep, dims2, "keep");
}

Mask block(const AnyView& m, Dims2 dims2) {
  return detail::dense_mask(m, detail::DenseKind::Block, dims2, "block");
}

Mask bias(const AnyView& m, Dims2 dims2) {
  return detail::dense_mask(m, detail::DenseKind::Bias, dims2, "bias");
}

}  // namespace maskattn
