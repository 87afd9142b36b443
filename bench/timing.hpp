// Timing statistics of the benchmark programs: medians over repeated calls,
// the coefficient of variation over rounds.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

inline double median(std::vector<double> x) {
  if (x.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(x.begin(), x.end());
  const std::size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// Coefficient of variation (sample standard deviation / mean); NaN for fewer than 2.
inline double cv(const std::vector<double>& x) {
  if (x.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  double mean = 0.0;
  for (double v : x) mean += v;
  mean /= static_cast<double>(x.size());
  double ss = 0.0;
  for (double v : x) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / static_cast<double>(x.size() - 1)) / mean;
}

// Median of one_call()'s seconds, called until min_seconds of wall time have
// passed (at least once); nullopt if a call fails.
inline std::optional<double> median_call(const std::function<std::optional<double>()>& one_call,
                                         double min_seconds) {
  std::vector<double> times;
  const auto start = Clock::now();
  do {
    const std::optional<double> t = one_call();
    if (!t) return std::nullopt;
    times.push_back(*t);
  } while (seconds_since(start) < min_seconds);
  return median(times);
}

}  // namespace bench
