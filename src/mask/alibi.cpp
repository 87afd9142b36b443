// ALiBi (Press et al., "Train Short, Test Long"): a per-head linear distance
// penalty bias(b, h, i, j) = -slopes[h] * |i + offset - j|. It masks nothing,
// so every tile is Full; combine with causal() for the decoder form.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>
#include <vector>

#include "mask/mask_part.hpp"

namespace maskattn {
namespace {

const char* align_name(Align a) { return a == Align::TopLeft ? "top_left" : "bottom_right"; }

// -slope * distance, saturated at float's finite range: a large slope times a
// long distance overflows float, and an infinite bias would mask an allowed
// element (-inf, while classify() says Full) or turn a masked one into NaN
// (-inf + inf) — row_values() promises finite values where allowed.
inline float alibi_bias(float slope, int64_t distance) {
  const double x = -static_cast<double>(slope) * static_cast<double>(distance);
  constexpr double kMax = std::numeric_limits<float>::max();
  return static_cast<float>(std::clamp(x, -kMax, kMax));
}

class BoundAlibi final : public detail::BoundMaskPart {
 public:
  BoundAlibi(std::shared_ptr<const std::vector<float>> slopes, int64_t offset, bool nonzero)
      : slopes_(std::move(slopes)), offset_(offset), nonzero_(nonzero) {}

  TileClass classify(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t) const override {
    return TileClass::Full;
  }

  void apply_row(int64_t, int64_t h, int64_t i, int64_t k0, int64_t k1, float* row) const override {
    const float slope = (*slopes_)[static_cast<std::size_t>(h)];
    const int64_t d = i + offset_;
    for (int64_t j = k0; j < k1; ++j)
      row[j - k0] = detail::add_bias(row[j - k0], alibi_bias(slope, std::llabs(d - j)));
  }

  void apply_tile(int64_t, int64_t h, int64_t q0, int64_t q1, int64_t k0, int64_t k1, float* tile,
                  int64_t ld) const override {
    const float slope = (*slopes_)[static_cast<std::size_t>(h)];
    for (int64_t j = k0; j < k1; ++j) {
      float* r = tile + (j - k0) * ld;
      for (int64_t i = q0; i < q1; ++i)
        r[i - q0] = detail::add_bias(r[i - q0], alibi_bias(slope, std::llabs(i + offset_ - j)));
    }
  }

  bool has_bias() const override { return nonzero_; }

 private:
  std::shared_ptr<const std::vector<float>> slopes_;  // (H)
  int64_t offset_;
  bool nonzero_;
};

class AlibiPart final : public detail::MaskPart {
 public:
  AlibiPart(std::vector<float> slopes, Align align)
      : slopes_(std::make_shared<const std::vector<float>>(std::move(slopes))), align_(align) {}

  std::string describe() const override {
    return fmt::format("alibi(H={}, {})", slopes_->size(), align_name(align_));
  }

  std::shared_ptr<const detail::BoundMaskPart> bind(const MaskShape& s) const override {
    if (static_cast<int64_t>(slopes_->size()) != s.heads)
      throw Error("mask: alibi", fmt::format("one slope per head (H = {})", s.heads),
                  fmt::format("{} slopes", slopes_->size()));
    bool nonzero = false;
    for (float x : *slopes_) nonzero = nonzero || x != 0.0f;
    const int64_t offset = align_ == Align::TopLeft ? 0 : s.k_len - s.q_len;
    return std::make_shared<BoundAlibi>(slopes_, offset, nonzero);
  }

 private:
  std::shared_ptr<const std::vector<float>> slopes_;
  Align align_;
};

// get_slopes_power_of_2 of the paper's code: start = 2^(-8 / n), slope k
// (1-based) = start^k = 2^(-8 k / n).
void power_of_two_slopes(int64_t n, std::vector<double>& out) {
  for (int64_t k = 1; k <= n; ++k)
    out.push_back(std::exp2(-8.0 * static_cast<double>(k) / static_cast<double>(n)));
}

}  // namespace

Mask alibi(std::span<const float> slopes, Align align) {
  detail::check_align(align, "alibi: align");
  for (std::size_t h = 0; h < slopes.size(); ++h)
    if (!std::isfinite(slopes[h]))
      throw Error("alibi: slopes", "finite slopes", fmt::format("slopes[{}] = {}", h, slopes[h]));
  return Mask(std::make_shared<AlibiPart>(std::vector<float>(slopes.begin(), slopes.end()), align));
}

std::vector<float> alibi_slopes(int64_t num_heads) {
  if (num_heads <= 0)
    throw Error("alibi_slopes: num_heads", "num_heads >= 1", std::to_string(num_heads));
  // Not a power of two: the slopes of the closest smaller power of two p, then
  // every other slope of 2p (the odd-numbered ones, which interleave the first
  // set), as many as needed.
  int64_t p = 1;
  while (p <= num_heads / 2) p *= 2;
  std::vector<double> slopes;
  slopes.reserve(static_cast<std::size_t>(num_heads));
  power_of_two_slopes(p, slopes);
  if (p != num_heads) {
    std::vector<double> twice;
    power_of_two_slopes(2 * p, twice);
    for (std::size_t k = 0; static_cast<int64_t>(slopes.size()) < num_heads; k += 2)
      slopes.push_back(twice[k]);
  }
  return std::vector<float>(slopes.begin(), slopes.end());
}

}  // namespace maskattn
