// A progress bar: "[#####.....] 640/2000 sentences  85.3/s  ETA 16 s", and
// whatever the caller adds after the count. On a terminal it redraws one line
// (at most ten times a second); elsewhere (a pipe, a log file) it prints a
// line at every tenth of the work, or nothing when made terminal_only.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace maskattn::cli {

class ProgressBar {
 public:
  // `unit`: what is counted ("sentences", "steps"); `out`: stderr or stdout.
  explicit ProgressBar(std::string unit, std::FILE* out = stderr, bool terminal_only = false);

  // done of total; `extra` follows the count ("loss 0.123  41,000 tok/s").
  void update(int64_t done, int64_t total, const std::string& extra = {});

  double elapsed_seconds() const;

  // Erases the bar's line on a terminal (before other output goes there).
  void clear();

 private:
  std::string unit_;
  std::FILE* out_;
  bool terminal_;
  bool silent_;            // not a terminal, and terminal_only
  double last_draw_ = -1;  // elapsed seconds at the last redraw on a terminal
  int64_t next_line_ = 0;  // when not a terminal: the next count that prints a line
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace maskattn::cli
