#include "leak/leak_search.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

namespace maskattn::detail {
namespace {

// The first `limit` leaks in (b, h, i, j) order, of however many are added.
class LeakList {
 public:
  explicit LeakList(int64_t limit) : limit_(static_cast<std::size_t>(limit)) {}

  void add(const Leak& leak) {
    if (limit_ == 0) return;
    leaks_.push_back(leak);
    if (leaks_.size() >= 2 * limit_ + 64) trim();
  }

  std::vector<Leak> take() {
    trim();
    return std::move(leaks_);
  }

 private:
  void trim() {
    const auto key = [](const Leak& l) { return std::tie(l.b, l.h, l.i, l.j); };
    std::sort(leaks_.begin(), leaks_.end(),
              [&](const Leak& x, const Leak& y) { return key(x) < key(y); });
    if (leaks_.size() > limit_) leaks_.resize(limit_);
  }

  std::size_t limit_;
  std::vector<Leak> leaks_;
};

}  // namespace

float row_change(const float* a, const float* b, int64_t n) noexcept {
  float change = 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    if (a[k] == b[k] || (std::isnan(a[k]) && std::isnan(b[k]))) continue;
    if (std::isnan(a[k]) || std::isnan(b[k])) return std::numeric_limits<float>::infinity();
    change = std::max(change, std::abs(a[k] - b[k]));
  }
  return change;
}

int64_t count_hidden(const BoundMask& expect, int64_t b, int64_t h, int64_t i, KeyRange r,
                     std::vector<float>& scratch) {
  switch (expect.classify(b, h, i, i + 1, r.begin, r.end)) {
    case TileClass::Empty: return r.size();
    case TileClass::Full: return 0;
    case TileClass::Partial: break;
  }
  scratch.resize(static_cast<std::size_t>(r.size()));
  expect.row_values(b, h, i, r.begin, r.end, scratch.data());
  return std::count(scratch.begin(), scratch.end(), -std::numeric_limits<float>::infinity());
}

BoundMask bind_named(const Mask& mask, const MaskShape& shape, std::string_view name) {
  try {
    return mask.bind(shape);
  } catch (const Error& e) {
    std::string_view arg = e.argument();
    if (name == "mask" || !arg.starts_with("mask")) throw;
    arg.remove_prefix(4);
    throw Error(fmt::format("{}{}", name, arg), e.expected(), e.actual());
  }
}

void check_search_options(float tolerance, int64_t max_listed) {
  if (!(tolerance >= 0.0f) || std::isinf(tolerance))
    throw Error("opts.tolerance", "a finite tolerance >= 0", fmt::format("{}", tolerance));
  if (max_listed < 0) throw Error("opts.max_listed", "a count >= 0", std::to_string(max_listed));
}

void search_leaks(const LeakSearch& s, LeakReport& report) {
  // Worth a run: some checked row of the lane must not see a key of r.
  const auto hides_any = [&](int64_t lane, KeyRange r) {
    for (int64_t row = 0; row < s.rows; ++row)
      if (s.hidden(lane, row, r) > 0) return true;
    return false;
  };
  std::vector<std::deque<KeyRange>> pending(static_cast<std::size_t>(s.lanes));
  for (int64_t lane = 0; lane < s.lanes; ++lane) {
    for (int64_t row = 0; row < s.rows; ++row)
      report.hidden_pairs += s.hidden(lane, row, {0, s.keys});
    if (hides_any(lane, {0, s.keys}))
      pending[static_cast<std::size_t>(lane)].push_back({0, s.keys});
  }

  LeakList listed(s.max_listed);
  std::vector<KeyRange> ranges(static_cast<std::size_t>(s.lanes));
  std::vector<float> change(static_cast<std::size_t>(s.lanes * s.rows));
  while (true) {
    bool any = false;
    for (std::size_t lane = 0; lane < pending.size(); ++lane) {
      ranges[lane] = KeyRange{};
      if (pending[lane].empty()) continue;
      ranges[lane] = pending[lane].front();
      pending[lane].pop_front();
      any = true;
    }
    if (!any) break;
    s.run(ranges, change);
    ++report.runs;

    for (int64_t lane = 0; lane < s.lanes; ++lane) {
      const KeyRange r = ranges[static_cast<std::size_t>(lane)];
      if (r.empty()) continue;
      bool split = false;
      for (int64_t row = 0; row < s.rows; ++row) {
        const int64_t n = s.hidden(lane, row, r);
        if (n == 0) continue;            // the row may see all of r: nothing to learn
        if (n < r.size()) split = true;  // sees part of r: ask about smaller ranges
        const float c = change[static_cast<std::size_t>(lane * s.rows + row)];
        if (n < r.size() || !(c > s.tolerance)) continue;
        if (r.size() > 1) {
          split = true;  // some key of r leaks into the row: find which
          continue;
        }
        const auto [b, h] = s.lane_index(lane);
        listed.add({b, h, row, r.begin, c});
        ++report.leak_count;
        report.max_change = std::max(report.max_change, c);
      }
      if (!split) continue;
      auto& queue = pending[static_cast<std::size_t>(lane)];
      const auto push = [&](KeyRange part) {
        if (hides_any(lane, part)) queue.push_back(part);
      };
      if (r.size() <= kSplitToSingleKeys) {
        for (int64_t j = r.begin; j < r.end; ++j) push({j, j + 1});
      } else {
        const int64_t mid = r.begin + r.size() / 2;
        push({r.begin, mid});
        push({mid, r.end});
      }
    }
  }
  report.leaks = listed.take();
}

}  // namespace maskattn::detail
