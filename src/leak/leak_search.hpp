// The search shared by check_leaks() and check_model_leaks(): which hidden
// (lane, row, key) pairs change a row's output, found by perturbing ranges of
// keys and splitting the ranges that say too little (see leak_check.hpp).
//
// A lane is what one perturbation cannot cross: a (batch, head) of attention,
// a batch row of a model. Each run perturbs one range of keys in every lane
// at once.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "maskattn/leak_check.hpp"

namespace maskattn::detail {

struct KeyRange {
  int64_t begin = 0, end = 0;
  int64_t size() const noexcept { return end - begin; }
  bool empty() const noexcept { return end <= begin; }
};

struct LeakSearch {
  int64_t lanes = 0, rows = 0, keys = 0;
  // How many keys of `r` the expectation hides from `row` of `lane`; 0 for a
  // row that is not checked.
  std::function<int64_t(int64_t lane, int64_t row, KeyRange r)> hidden;
  // Perturbs ranges[lane] in every lane (an empty range: none), reruns, and
  // writes change[lane * rows + row]: the largest |difference| of that output
  // row from the unperturbed run (+inf where exactly one of them is NaN).
  std::function<void(std::span<const KeyRange> ranges, std::span<float> change)> run;
  // The (b, h) of a lane, for the report.
  std::function<std::pair<int64_t, int64_t>(int64_t lane)> lane_index;
  float tolerance = 0.0f;
  int64_t max_listed = 20;
};

// Fills report.hidden_pairs, runs (the perturbed ones; the caller adds its
// unperturbed run), leak_count, max_change and leaks.
void search_leaks(const LeakSearch& s, LeakReport& report);

// The largest |a - b| over n values; 0 where both are NaN, +inf where one is.
float row_change(const float* a, const float* b, int64_t n) noexcept;

// How many keys of r `expect` hides from query i of (b, h); `scratch` holds
// one row of mask values when the tile is neither empty nor full.
int64_t count_hidden(const BoundMask& expect, int64_t b, int64_t h, int64_t i, KeyRange r,
                     std::vector<float>& scratch);

// mask.bind(shape), its errors naming `name` where bind() names "mask".
BoundMask bind_named(const Mask& mask, const MaskShape& shape, std::string_view name);

// The options both checks share: Error naming "opts.tolerance" or
// "opts.max_listed".
void check_search_options(float tolerance, int64_t max_listed);

}  // namespace maskattn::detail
