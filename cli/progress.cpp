#include "progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace maskattn::cli {

ProgressBar::ProgressBar(std::string unit, std::FILE* out, bool terminal_only)
    : unit_(std::move(unit)),
      out_(out),
      terminal_(isatty(fileno(out)) != 0),
      silent_(terminal_only && !terminal_) {}

void ProgressBar::clear() {
  if (!terminal_) return;
  fmt::print(out_, "\r{:120}\r", "");
  std::fflush(out_);
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(int64_t done, int64_t total, const std::string& extra) {
  total = std::max<int64_t>(total, 1);
  if (silent_) return;
  const double elapsed = elapsed_seconds();
  if (!terminal_) {
    if (done < next_line_ && done != total) return;
    next_line_ = done + std::max<int64_t>(total / 10, 1);
  } else {
    if (done != total && elapsed - last_draw_ < 0.1) return;
    last_draw_ = elapsed;
  }
  constexpr int kWidth = 30;
  const auto filled =
      static_cast<int>(kWidth * static_cast<double>(done) / static_cast<double>(total));
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
  const std::string tail =
      done == total ? fmt::format("{:.1f} s", elapsed) : fmt::format("ETA {:.0f} s", eta);
  fmt::print(out_, "{}[{}{}] {}/{} {}  {:.1f}/s  {}{}{}", terminal_ ? "\r" : "",
             std::string(filled, '#'), std::string(kWidth - filled, '.'), done, total, unit_, rate,
             extra.empty() ? "" : extra + "  ", tail, !terminal_ || done == total ? "\n" : "   ");
  std::fflush(out_);
}

}  // namespace maskattn::cli
