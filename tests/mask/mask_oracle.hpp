// Brute-force references for the mask tests: an element rule written in the
// test, compared with Mask::materialize(); tile classes recomputed from the
// materialized matrix by counting; a check that bad input throws an Error
// naming the argument.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "maskattn/mask.hpp"
#include "throws_error.hpp"

namespace maskattn::oracle {

inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Expected additive value of (b, h, i, j): -inf where masked, else the bias.
using Rule = std::function<float(int64_t b, int64_t h, int64_t i, int64_t j)>;

// A rule from an allowed-test (no bias).
inline Rule allowed_rule(std::function<bool(int64_t, int64_t, int64_t, int64_t)> allowed) {
  return [allowed = std::move(allowed)](int64_t b, int64_t h, int64_t i, int64_t j) {
    return allowed(b, h, i, j) ? 0.0f : kNegInf;
  };
}

inline std::string shape_text(const MaskShape& s) {
  return "(B, H, Lq, Lk) = (" + std::to_string(s.batch) + ", " + std::to_string(s.heads) + ", " +
         std::to_string(s.q_len) + ", " + std::to_string(s.k_len) + ")";
}

// materialize() equals the rule everywhere: -inf exactly where the rule says
// -inf, elsewhere within tol (absolute + relative).
inline ::testing::AssertionResult matches_rule(const Mask& mask, const MaskShape& s,
                                               const Rule& rule, float tol = 0.0f) {
  const Tensor<float> m = mask.materialize(s.batch, s.heads, s.q_len, s.k_len);
  const View<const float, 4> v = m.view<4>();
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i)
        for (int64_t j = 0; j < s.k_len; ++j) {
          const float want = rule(b, h, i, j), got = v(b, h, i, j);
          const bool ok = want == kNegInf
                              ? got == kNegInf
                              : got != kNegInf && std::isfinite(got) &&
                                    std::fabs(got - want) <= tol * (1.0f + std::fabs(want));
          if (!ok)
            return ::testing::AssertionFailure()
                   << mask.describe() << " at (b, h, i, j) = (" << b << ", " << h << ", " << i
                   << ", " << j << ") of " << shape_text(s) << ": expected " << want << ", got "
                   << got;
        }
  return ::testing::AssertionSuccess();
}

// Allowed-element counts of a materialized mask, for exact tile classes.
class AllowedCounts {
 public:
  AllowedCounts(const Mask& mask, const MaskShape& s) : s_(s) {
    const Tensor<float> m = mask.materialize(s.batch, s.heads, s.q_len, s.k_len);
    const View<const float, 4> v = m.view<4>();
    const int64_t w = s.k_len + 1;
    sat_.assign(static_cast<std::size_t>(s.batch * s.heads * (s.q_len + 1) * w), 0);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < s.heads; ++h)
        for (int64_t i = 0; i < s.q_len; ++i)
          for (int64_t j = 0; j < s.k_len; ++j)
            at(b, h, i + 1, j + 1) = (v(b, h, i, j) != kNegInf ? 1 : 0) + at(b, h, i, j + 1) +
                                     at(b, h, i + 1, j) - at(b, h, i, j);
  }

  TileClass expected(int64_t b, int64_t h, int64_t q0, int64_t q1, int64_t k0, int64_t k1) const {
    const int64_t n = at(b, h, q1, k1) - at(b, h, q0, k1) - at(b, h, q1, k0) + at(b, h, q0, k0);
    if (n == 0) return TileClass::Empty;
    return n == (q1 - q0) * (k1 - k0) ? TileClass::Full : TileClass::Partial;
  }

 private:
  int64_t& at(int64_t b, int64_t h, int64_t i, int64_t j) {
    return sat_[static_cast<std::size_t>(
        ((b * s_.heads + h) * (s_.q_len + 1) + i) * (s_.k_len + 1) + j)];
  }
  int64_t at(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return sat_[static_cast<std::size_t>(
        ((b * s_.heads + h) * (s_.q_len + 1) + i) * (s_.k_len + 1) + j)];
  }

  MaskShape s_;
  std::vector<int64_t> sat_;
};

inline const char* class_name(TileClass c) {
  return c == TileClass::Empty ? "Empty" : c == TileClass::Full ? "Full" : "Partial";
}

// How many tiles of each class (Empty, Full, Partial) were checked.
using ClassCounts = std::array<int64_t, 3>;

// BoundMask::classify agrees with the allowed-element count of every tile of
// the grid of tq x tk tiles (the last ones clipped), and — when all_rects —
// of every rectangle [q0, q1) x [k0, k1).
inline ::testing::AssertionResult classify_exact(
    const Mask& mask, const MaskShape& s, const std::vector<std::pair<int64_t, int64_t>>& tiles,
    bool all_rects, ClassCounts* seen = nullptr) {
  const BoundMask bound = mask.bind(s);
  const AllowedCounts counts(mask, s);
  auto one = [&](int64_t b, int64_t h, int64_t q0, int64_t q1, int64_t k0,
                 int64_t k1) -> ::testing::AssertionResult {
    const TileClass want = counts.expected(b, h, q0, q1, k0, k1);
    const TileClass got = bound.classify(b, h, q0, q1, k0, k1);
    if (seen != nullptr) ++(*seen)[static_cast<std::size_t>(want)];
    if (want == got) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << mask.describe() << " of " << shape_text(s) << ", (b, h) = (" << b << ", " << h
           << "), tile q [" << q0 << ", " << q1 << ") x k [" << k0 << ", " << k1
           << "): classify says " << class_name(got) << ", materialize says " << class_name(want);
  };
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h) {
      for (const auto& [tq, tk] : tiles)
        for (int64_t q0 = 0; q0 < s.q_len; q0 += tq)
          for (int64_t k0 = 0; k0 < s.k_len; k0 += tk) {
            auto r = one(b, h, q0, std::min(q0 + tq, s.q_len), k0, std::min(k0 + tk, s.k_len));
            if (!r) return r;
          }
      if (!all_rects) continue;
      for (int64_t q0 = 0; q0 < s.q_len; ++q0)
        for (int64_t q1 = q0 + 1; q1 <= s.q_len; ++q1)
          for (int64_t k0 = 0; k0 < s.k_len; ++k0)
            for (int64_t k1 = k0 + 1; k1 <= s.k_len; ++k1) {
              auto r = one(b, h, q0, q1, k0, k1);
              if (!r) return r;
            }
    }
  return ::testing::AssertionSuccess();
}

using testing_errors::throws_error_naming;

}  // namespace maskattn::oracle
