// Dense masks (internal): an allowed-element map stored un-broadcast, with a
// summed-area table for exact O(1) tile classification. Shared by keep /
// block / bias, predicate and the from_* adapters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mask/mask_part.hpp"

namespace maskattn::detail {

// `slices` slices of (rows, cols), row-major. allowed[s, r, c] says whether
// the element may attend; bias (empty, or one value per element) holds the
// additive value, -inf where masked.
class DenseMap {
 public:
  DenseMap(int64_t slices, int64_t rows, int64_t cols, std::vector<uint8_t> allowed,
           std::vector<float> bias);

  int64_t slices() const noexcept { return slices_; }
  int64_t rows() const noexcept { return rows_; }
  int64_t cols() const noexcept { return cols_; }
  // True if some allowed element has a non-zero bias.
  bool has_bias() const noexcept { return has_bias_; }

  // Number of allowed elements in rows [r0, r1) x cols [c0, c1) of slice s.
  int64_t count(int64_t s, int64_t r0, int64_t r1, int64_t c0, int64_t c1) const noexcept;

  // row[j] for j in [0, n): the element (s, r, c0 + j) applied to row
  // (-inf where masked, += bias where allowed). With cols() == 1 every j reads
  // column 0 (c0 must be 0).
  void apply(int64_t s, int64_t r, int64_t c0, int64_t n, float* row) const noexcept;
  // The same for rows [r0, r1) x cols [c0, c1), key-major:
  // tile[(c - c0) * ld + (r - r0)]. A broadcast dimension (rows() or cols()
  // == 1) reads index 0 whatever the range.
  void apply_tile(int64_t s, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* tile,
                  int64_t ld) const noexcept;

 private:
  int64_t sat(int64_t s, int64_t r, int64_t c) const noexcept {
    const int64_t k = (s * (rows_ + 1) + r) * (cols_ + 1) + c;
    return sat32_.empty() ? sat64_[static_cast<std::size_t>(k)]
                          : sat32_[static_cast<std::size_t>(k)];
  }

  int64_t slices_, rows_, cols_;
  std::vector<uint8_t> allowed_;  // (slices, rows, cols)
  std::vector<float> bias_;       // (slices, rows, cols) or empty
  bool has_bias_ = false;
  // Summed-area table (slices, rows + 1, cols + 1): sat[s, r, c] = allowed
  // elements in rows [0, r) x cols [0, c). int32 when a slice fits, else int64.
  std::vector<int32_t> sat32_;
  std::vector<int64_t> sat64_;
};

// A bound part reading `map` for shape: slice = b' * nh + h' with b' = b (or
// 0 when nb == 1) and h' = h (or 0 when nh == 1); rows broadcast when
// map->rows() == 1, cols when map->cols() == 1. The caller has checked that
// the map fits the shape.
std::shared_ptr<const BoundMaskPart> bind_dense(std::shared_ptr<const DenseMap> map, int64_t nb,
                                                int64_t nh);

enum class DenseKind { Keep, Block, Bias };

// The dense part behind keep / block / bias. `name` is the argument named in
// errors and describe() ("keep", "from_sdpa_mask: attn_mask"). Checks dtype
// (bool for Keep/Block, float32/float64 for Bias), rank 1..4 and bias values;
// copies the data.
Mask dense_mask(const AnyView& m, DenseKind kind, Dims2 dims2, std::string_view name);

}  // namespace maskattn::detail
