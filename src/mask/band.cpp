// Masks defined by the distance j - i from the (aligned) diagonal: causal,
// sliding_window, prefix_lm. Computed from indices, never stored.
//
// With offset o = 0 (TopLeft) or Lk - Lq (BottomRight), a sliding window
// allows o - left <= j - i <= o + right; causal is left = unbounded, right = 0.
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "mask/mask_part.hpp"

namespace maskattn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

const char* align_name(Align a) { return a == Align::TopLeft ? "top_left" : "bottom_right"; }

// The band's limit offset + extent (offset - extent when `below`) on the
// distance d = j - i, clamped to [-Lq, Lk]: every d of the shape lies in
// [-(Lq - 1), Lk - 1], so a limit beyond means "no limit" (or "nothing") as
// the unclamped one does, and the arithmetic on limits and indices below
// stays within int64 for any shape (Lq, Lk up to 2^63 - 1). Computed in 128
// bits: offset +- extent may not fit in 64.
int64_t band_limit(Align a, const MaskShape& s, int64_t extent, bool below) {
  const __int128 offset = a == Align::TopLeft ? 0 : __int128{s.k_len} - s.q_len;
  const __int128 limit = below ? offset - extent : offset + extent;
  return static_cast<int64_t>(std::clamp<__int128>(limit, -__int128{s.q_len}, s.k_len));
}

// clamp(j - x, lo, hi) without overflow (j >= 0, x in [-Lq, Lk]).
int64_t clamped_difference(int64_t j, int64_t x, int64_t lo, int64_t hi) {
  return static_cast<int64_t>(std::clamp<__int128>(__int128{j} - x, lo, hi));
}

// allowed iff lo <= j - i <= hi, or j < prefix; lo, hi in [-Lq, Lk].
class BoundBand final : public detail::BoundMaskPart {
 public:
  BoundBand(int64_t lo, int64_t hi, int64_t prefix) : lo_(lo), hi_(hi), prefix_(prefix) {}

  TileClass classify(int64_t, int64_t, int64_t q0, int64_t q1, int64_t k0,
                     int64_t k1) const override {
    // Keys [k0, min(k1, prefix)) are always allowed; the rest follow the band.
    const int64_t band_k0 = std::max(k0, prefix_);
    if (band_k0 >= k1) return TileClass::Full;
    const TileClass band = detail::classify_band(lo_, hi_, q0, q1, band_k0, k1);
    if (band_k0 == k0) return band;
    return band == TileClass::Full ? TileClass::Full : TileClass::Partial;
  }

  void apply_row(int64_t, int64_t, int64_t i, int64_t k0, int64_t k1, float* row) const override {
    // Allowed keys: [0, prefix) and [i + lo, i + hi] (as distances: i + lo
    // may not fit in int64).
    for (int64_t j = std::max(k0, prefix_); j < k1; ++j)
      if (j - i < lo_ || j - i > hi_) row[j - k0] = kNegInf;
  }

  void apply_tile(int64_t, int64_t, int64_t q0, int64_t q1, int64_t k0, int64_t k1, float* tile,
                  int64_t ld) const override {
    // Key j is seen by the queries [j - hi, j - lo] (and by all when j < prefix).
    for (int64_t j = std::max(k0, prefix_); j < k1; ++j) {
      float* r = tile + (j - k0) * ld;
      const int64_t first = clamped_difference(j, hi_, q0, q1);
      const int64_t last = clamped_difference(j, lo_, q0 - 1, q1 - 1) + 1;
      std::fill(r, r + (first - q0), kNegInf);
      std::fill(r + (std::max(first, last) - q0), r + (q1 - q0), kNegInf);
    }
  }

 private:
  int64_t lo_, hi_, prefix_;
};

class BandPart final : public detail::MaskPart {
 public:
  enum class Kind { Causal, Window, PrefixLm };
  BandPart(Kind kind, int64_t left, int64_t right, int64_t prefix, Align align)
      : kind_(kind), left_(left), right_(right), prefix_(prefix), align_(align) {}

  std::string describe() const override {
    switch (kind_) {
      case Kind::Causal: return fmt::format("causal({})", align_name(align_));
      case Kind::Window:
        return fmt::format("sliding_window({}, {}, {})", extent(left_), extent(right_),
                           align_name(align_));
      case Kind::PrefixLm: return fmt::format("prefix_lm({}, {})", prefix_, align_name(align_));
    }
    return "band";
  }

  std::shared_ptr<const detail::BoundMaskPart> bind(const MaskShape& s) const override {
    return std::make_shared<BoundBand>(band_limit(align_, s, left_, true),
                                       band_limit(align_, s, right_, false),
                                       std::min(prefix_, s.k_len));
  }

 private:
  static std::string extent(int64_t x) {
    return x == kUnbounded ? std::string("unbounded") : std::to_string(x);
  }
  Kind kind_;
  int64_t left_, right_, prefix_;
  Align align_;
};

}  // namespace

Mask causal(Align align) {
  detail::check_align(align, "causal: align");
  return Mask(std::make_shared<BandPart>(BandPart::Kind::Causal, kUnbounded, 0, 0, align));
}

Mask sliding_window(int64_t left, int64_t right, Align align) {
  detail::check_align(align, "sliding_window: align");
  if (left < 0)
    throw Error("sliding_window: left", "a width >= 0 (or kUnbounded)", std::to_string(left));
  if (right < 0)
    throw Error("sliding_window: right", "a width >= 0 (or kUnbounded)", std::to_string(right));
  return Mask(std::make_shared<BandPart>(BandPart::Kind::Window, left, right, 0, align));
}

Mask prefix_lm(int64_t n, Align align) {
  detail::check_align(align, "prefix_lm: align");
  if (n < 0) throw Error("prefix_lm: n", "a prefix length >= 0", std::to_string(n));
  return Mask(std::make_shared<BandPart>(BandPart::Kind::PrefixLm, kUnbounded, 0, n, align));
}

Tensor<bool> subsequent_mask(int64_t size) {
  if (size < 0) throw Error("subsequent_mask: size", "a size >= 0", std::to_string(size));
  checked_mul(size, size, "subsequent_mask: size");
  Tensor<bool> m({1, size, size});
  View<bool, 3> v = m.view<3>();
  for (int64_t i = 0; i < size; ++i)
    for (int64_t j = 0; j <= i; ++j) v(0, i, j) = true;
  return m;
}

}  // namespace maskattn
