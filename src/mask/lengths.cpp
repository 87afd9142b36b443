// Padding from lengths: key_lengths (keys j >= len[b] masked) and
// query_lengths (query rows i >= len[b] empty).
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "mask/mask_part.hpp"

namespace maskattn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

class BoundLengths final : public detail::BoundMaskPart {
 public:
  BoundLengths(std::vector<int64_t> lengths, bool keys)
      : lengths_(std::move(lengths)), keys_(keys) {}

  TileClass classify(int64_t b, int64_t, int64_t q0, int64_t q1, int64_t k0,
                     int64_t k1) const override {
    const int64_t n = lengths_[static_cast<std::size_t>(b)];
    const int64_t lo = keys_ ? k0 : q0, hi = keys_ ? k1 : q1;
    return lo >= n ? TileClass::Empty : hi <= n ? TileClass::Full : TileClass::Partial;
  }

  void apply_row(int64_t b, int64_t, int64_t i, int64_t k0, int64_t k1, float* row) const override {
    const int64_t n = lengths_[static_cast<std::size_t>(b)];
    if (keys_) {
      for (int64_t j = std::max(k0, n); j < k1; ++j) row[j - k0] = kNegInf;
    } else if (i >= n) {
      std::fill(row, row + (k1 - k0), kNegInf);
    }
  }

  void apply_tile(int64_t b, int64_t, int64_t q0, int64_t q1, int64_t k0, int64_t k1, float* tile,
                  int64_t ld) const override {
    const int64_t n = lengths_[static_cast<std::size_t>(b)];
    for (int64_t j = k0; j < k1; ++j) {
      float* r = tile + (j - k0) * ld;
      const int64_t first_masked = keys_ ? (j >= n ? q0 : q1) : std::clamp(n, q0, q1);
      std::fill(r + (first_masked - q0), r + (q1 - q0), kNegInf);
    }
  }

 private:
  std::vector<int64_t> lengths_;  // (B)
  bool keys_;
};

class LengthsPart final : public detail::MaskPart {
 public:
  LengthsPart(std::span<const int64_t> lengths, bool keys)
      : lengths_(lengths.begin(), lengths.end()), keys_(keys) {}

  std::string describe() const override { return fmt::format("{}(B={})", name(), lengths_.size()); }

  std::shared_ptr<const detail::BoundMaskPart> bind(const MaskShape& s) const override {
    const std::string arg = fmt::format("mask: {}", name());
    if (static_cast<int64_t>(lengths_.size()) != s.batch)
      throw Error(arg, fmt::format("one length per batch element (B = {})", s.batch),
                  fmt::format("{} lengths", lengths_.size()));
    const int64_t limit = keys_ ? s.k_len : s.q_len;
    for (std::size_t b = 0; b < lengths_.size(); ++b)
      if (lengths_[b] > limit)
        throw Error(arg, fmt::format("lengths <= {} = {}", keys_ ? "Lk" : "Lq", limit),
                    fmt::format("lengths[{}] = {}", b, lengths_[b]));
    return std::make_shared<BoundLengths>(lengths_, keys_);
  }

 private:
  const char* name() const { return keys_ ? "key_lengths" : "query_lengths"; }
  std::vector<int64_t> lengths_;
  bool keys_;
};

Mask make_lengths(std::span<const int64_t> lengths, bool keys) {
  const char* name = keys ? "key_lengths" : "query_lengths";
  for (std::size_t b = 0; b < lengths.size(); ++b)
    if (lengths[b] < 0)
      throw Error(name, "lengths >= 0", fmt::format("lengths[{}] = {}", b, lengths[b]));
  return Mask(std::make_shared<LengthsPart>(lengths, keys));
}

}  // namespace

Mask key_lengths(std::span<const int64_t> lengths) { return make_lengths(lengths, true); }
Mask query_lengths(std::span<const int64_t> lengths) { return make_lengths(lengths, false); }

}  // namespace maskattn
