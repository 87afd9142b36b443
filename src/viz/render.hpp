// Draws a PanelStack as one PNG-ready Image: the title, a grid of panels
// (the last selector across, the others down; a single selector wraps),
// each with its title, tick labels and axis names, then a colour bar (heatmaps)
// or a legend (masks), and the curves of `curves` below.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maskattn/viz/image.hpp"
#include "viz/panels.hpp"

namespace maskattn::viz::detail {

// Where render_stack put things (for tests, and for callers who annotate).
struct Box {
  int64_t x = 0, y = 0, w = 0, h = 0;
};
struct Layout {
  std::vector<Box> cells;  // per panel: the area of its cells (rows x cols evenly)
  Box colorbar;            // w == 0 when there is none
};

Image render_stack(const PanelStack& stack, Layout* layout = nullptr);

// Tick values for an axis from lo to hi: multiples of 1, 2, 2.5 or 5 x 10^k,
// at most max_count of them.
std::vector<double> nice_ticks(double lo, double hi, int max_count);

// A tick value as text: "0", "0.25", "-1", "1e+04".
std::string tick_text(double x);

}  // namespace maskattn::viz::detail
