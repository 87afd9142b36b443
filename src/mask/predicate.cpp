// predicate(fn): any rule, evaluated once per bound shape into a dense
// (B, H, Lq, Lk) map whose summed-area table classifies tiles exactly.
#include <fmt/format.h>

#include <array>
#include <utility>
#include <vector>

#include "mask/dense.hpp"

namespace maskattn {
namespace {

class PredicatePart final : public detail::MaskPart {
 public:
  PredicatePart(MaskPredicate fn, std::string name) : fn_(std::move(fn)), name_(std::move(name)) {}

  std::string describe() const override { return name_; }

  std::shared_ptr<const detail::BoundMaskPart> bind(const MaskShape& s) const override {
    const std::array<int64_t, 4> shape{s.batch, s.heads, s.q_len, s.k_len};
    const int64_t n = checked_numel(shape, fmt::format("mask: {} (B, H, Lq, Lk)", name_));
    std::vector<uint8_t> allowed(static_cast<std::size_t>(n));
    std::size_t k = 0;
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.heads; ++h)
        for (int64_t i = 0; i < s.q_len; ++i)
          for (int64_t j = 0; j < s.k_len; ++j) allowed[k++] = fn_(b, h, i, j) ? 1 : 0;
    auto map = std::make_shared<const detail::DenseMap>(
        checked_mul(s.batch, s.heads, "mask: predicate B*H"), s.q_len, s.k_len, std::move(allowed),
        std::vector<float>{});
    return detail::bind_dense(std::move(map), s.batch, s.heads);
  }

 private:
  MaskPredicate fn_;
  std::string name_;
};

}  // namespace

Mask predicate(MaskPredicate fn, std::string name) {
  if (!fn) throw Error("predicate: fn", "a callable rule", "an empty std::function");
  return Mask(std::make_shared<PredicatePart>(std::move(fn), std::move(name)));
}

}  // namespace maskattn
