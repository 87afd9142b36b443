// What a picture shows, before it is drawn: a stack of equally sized matrices
// ("panels") indexed by a few selectors (layer, batch element, head), their
// labels, colour scale and forbidden cells. One builder per picture kind turns
// the public arguments into a PanelStack (checking them); the PNG renderer
// (render.cpp) lays the panels out in a grid, the HTML viewer (viewer.cpp)
// shows one at a time with a selector per dimension. Both read only this.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "maskattn/viz/html.hpp"
#include "maskattn/viz/pictures.hpp"

namespace maskattn::viz::detail {

// The colours of the curves (PanelStack::curves), in turn: matplotlib's tab10
// cycle. The PNG renderer and the HTML page both draw with these.
inline constexpr std::array<Rgb, 10> kCurveColors{{{31, 119, 180},
                                                   {255, 127, 14},
                                                   {44, 160, 44},
                                                   {214, 39, 40},
                                                   {148, 103, 189},
                                                   {140, 86, 75},
                                                   {227, 119, 194},
                                                   {127, 127, 127},
                                                   {188, 189, 34},
                                                   {23, 190, 207}}};

// One leading dimension of the stack: its name ("layer", "batch", "head") and
// a label per index ("0", "1", ..., "mean"; "0..11" for a group of heads).
struct Selector {
  std::string name;
  std::vector<std::string> labels;
};

enum class PanelStyle {
  Heatmap,  // values coloured by `colormap` over [vmin, vmax], masked cells hatched
  Mask,     // two colours: masked cells kMaskedColor, the others kAllowedColor;
            // values are the mask's additive values (0 or a bias; -inf masked)
};

struct PanelStack {
  std::string title;
  std::string row_axis, col_axis, value_name;       // "query i", "key j", "weight"
  std::vector<std::string> row_labels, col_labels;  // one per row / column, always filled
  bool row_tokens = false, col_tokens = false;      // labels are tokens, not indices
  int64_t rows = 0, cols = 0;
  // Outermost first. Panel p is at the row-major multi-index of p over the
  // selectors' sizes; no selectors: one panel.
  std::vector<Selector> selectors;
  std::vector<float> values;    // (panels, rows, cols)
  std::vector<uint8_t> masked;  // empty, or (panels, rows, cols): 1 = forbidden
  PanelStyle style = PanelStyle::Heatmap;
  Colormap colormap = Colormap::Viridis;
  float vmin = 0.0f, vmax = 1.0f;  // vmin < vmax
  // Mask style: the cells (i, i + offset) are outlined.
  std::optional<int64_t> diagonal_offset;
  // Columns drawn as curves against the rows (the encoding's dimensions).
  std::vector<int64_t> curves;

  int64_t panel_count() const noexcept;
  // Selector index of panel p along selector s.
  int64_t selector_index(int64_t p, std::size_t s) const noexcept;
  // Title of panel p: "layer 2, batch 0, head 3"; "" for a single panel.
  std::string panel_title(int64_t p) const;
};

PanelStack heatmap_stack(View<const float, 2> values, const HeatmapOptions& options);
PanelStack mask_stack(const Mask& mask, const MaskShape& shape, const MaskPictureOptions& options);
PanelStack encoding_stack(View<const float, 2> pe, const EncodingPictureOptions& options);
PanelStack attention_stack(std::span<const View<const float, 4>> layers, const Mask& mask,
                           const AttentionPictureOptions& options);

}  // namespace maskattn::viz::detail
