// check_leaks(): the mask under test in attention() on random q, k, v, with
// the keys and values of hidden positions perturbed (leak_search.hpp says
// which, and in what order).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "leak/leak_search.hpp"
#include "maskattn/leak_check.hpp"

namespace maskattn {
namespace {

void check_options(const LeakCheckOptions& opts) {
  if (opts.head_dim < 1)
    throw Error("opts.head_dim", "a head dimension >= 1", std::to_string(opts.head_dim));
  detail::check_search_options(opts.tolerance, opts.max_listed);
}

}  // namespace

LeakReport check_leaks(const Mask& mask, const Mask& expect, const MaskShape& shape,
                       const LeakCheckOptions& opts) {
  if (shape.batch < 1 || shape.heads < 1 || shape.q_len < 1 || shape.k_len < 1)
    throw Error(
        "shape", "(B, H, Lq, Lk) sizes >= 1",
        fmt::format("({}, {}, {}, {})", shape.batch, shape.heads, shape.q_len, shape.k_len));
  check_options(opts);
  // q, k, v and out hold (B, H, L, D) floats each: a size whose product
  // overflows is this argument's error, not the first Tensor's.
  checked_numel(std::array<int64_t, 4>{shape.batch, shape.heads, std::max(shape.q_len, shape.k_len),
                                       opts.head_dim},
                "shape");
  const BoundMask bound_mask = detail::bind_named(mask, shape, "mask");
  const BoundMask bound_expect = detail::bind_named(expect, shape, "expect");

  const int64_t B = shape.batch, H = shape.heads, Lq = shape.q_len, Lk = shape.k_len;
  const int64_t D = opts.head_dim;
  // q: (B, H, Lq, D)   k, v: (B, H, Lk, D) and their perturbed values   out: (B, H, Lq, D)
  Tensor<float> q({B, H, Lq, D}), k({B, H, Lk, D}), v({B, H, Lk, D});
  Tensor<float> k_perturbed({B, H, Lk, D}), v_perturbed({B, H, Lk, D});
  Tensor<float> base({B, H, Lq, D}), out({B, H, Lq, D});
  std::mt19937_64 rng(opts.seed);
  std::normal_distribution<float> normal;
  for (float& x : q) x = normal(rng);
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  for (float& x : k_perturbed) x = 4.0f * normal(rng);
  for (int64_t e = 0; e < v.numel(); ++e) v_perturbed.data()[e] = v.data()[e] + 4.0f + normal(rng);

  const auto call = [&](View<float, 4> o) {
    try {
      attention(q.view<4>(), k.view<4>(), v.view<4>(), o, mask, opts.attention);
    } catch (const Error& e) {
      if (!e.argument().starts_with("opts.")) throw;
      throw Error("opts.attention." + e.argument().substr(5), e.expected(), e.actual());
    }
  };
  LeakReport report;
  report.shape = shape;
  report.tolerance = opts.tolerance;
  call(base.view<4>());
  report.runs = 1;

  // Over-masking: allowed by the expectation, hidden by the mask.
  std::vector<float> mask_row(static_cast<std::size_t>(Lk)), expect_row(mask_row.size());
  constexpr float kMasked = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        bound_mask.row_values(b, h, i, 0, Lk, mask_row.data());
        bound_expect.row_values(b, h, i, 0, Lk, expect_row.data());
        for (int64_t j = 0; j < Lk; ++j) {
          const auto at = static_cast<std::size_t>(j);
          if (mask_row[at] != kMasked || expect_row[at] == kMasked) continue;
          if (report.over_masked++ == 0) report.first_over_masked = std::array{b, h, i, j};
        }
      }

  // A lane is one (b, h): the keys of one head reach only its own queries.
  std::vector<float> row;
  detail::LeakSearch s;
  s.lanes = B * H, s.rows = Lq, s.keys = Lk;
  s.tolerance = opts.tolerance;
  s.max_listed = opts.max_listed;
  s.lane_index = [H](int64_t lane) { return std::pair{lane / H, lane % H}; };
  s.hidden = [&](int64_t lane, int64_t i, detail::KeyRange r) {
    return detail::count_hidden(bound_expect, lane / H, lane % H, i, r, row);
  };
  const auto copy_rows = [&](Tensor<float>& to, const Tensor<float>& from,
                             std::span<const detail::KeyRange> ranges) {
    for (int64_t lane = 0; lane < B * H; ++lane) {
      const detail::KeyRange r = ranges[static_cast<std::size_t>(lane)];
      const int64_t offset = (lane * Lk + r.begin) * D;
      std::copy(from.data() + offset, from.data() + offset + r.size() * D, to.data() + offset);
    }
  };
  // The unperturbed k and v, to restore the ranges after each run.
  const Tensor<float> k_saved = k, v_saved = v;
  s.run = [&](std::span<const detail::KeyRange> ranges, std::span<float> change) {
    copy_rows(k, k_perturbed, ranges);
    copy_rows(v, v_perturbed, ranges);
    call(out.view<4>());
    copy_rows(k, k_saved, ranges);
    copy_rows(v, v_saved, ranges);
    for (int64_t r = 0; r < B * H * Lq; ++r)
      change[static_cast<std::size_t>(r)] =
          detail::row_change(out.data() + r * D, base.data() + r * D, D);
  };
  detail::search_leaks(s, report);
  return report;
}

}  // namespace maskattn
