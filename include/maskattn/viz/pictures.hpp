// Pictures of masks, positional encodings and attention weights, as the
// write-ups draw them, rendered into an Image (write it with io/png.hpp;
// html.hpp has the same pictures as an interactive page).
//
//   mask_picture       one panel per batch element (and per head where the
//                      mask differs between heads): may attend vs masked in
//                      two colours, the diagonal outlined, positions on the axes
//   encoding_picture   the encoding as a heatmap (position x dimension, diverging
//                      colours) above line plots of a few dimensions against position
//   attention_picture  each head's weights (and their mean over heads) for each
//                      layer and batch element, viridis, with the cells the mask
//                      forbids hatched grey: no weight may land there
//   heatmap_picture    any matrix of your own, with a colour bar
//
// Rows are queries (or positions), columns keys (or dimensions), row 0 at the
// top, as matplotlib's imshow draws them. Text is drawn with DejaVu Sans,
// rasterised at build time (FreeType) into the library; characters the font
// lacks show as '?'. A matrix larger than the picture's cell budget is
// averaged down (each pixel the mean of the cells it covers).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"
#include "maskattn/viz/image.hpp"

namespace maskattn::viz {

// The colours of a mask picture, and of forbidden cells in attention pictures.
inline constexpr Rgb kAllowedColor{33, 102, 172};   // may attend: blue
inline constexpr Rgb kMaskedColor{236, 236, 236};   // masked: light grey
inline constexpr Rgb kDiagonalColor{230, 120, 20};  // outline of the cells on the diagonal
inline constexpr Rgb kHatchColor{150, 150, 150};    // hatch lines over kMaskedColor

// Most panels one picture draws (select batch elements, heads or layers below).
inline constexpr int64_t kMaxPanels = 256;

struct HeatmapOptions {
  std::string title;
  std::string row_axis = "row", col_axis = "column", value_name = "value";
  // Tick labels (tokens); empty: the indices. Otherwise one per row / column.
  std::vector<std::string> row_labels, col_labels;
  Colormap colormap = Colormap::Viridis;
  // The colour scale; default: the finite values' range (Diverging: -m..m,
  // m = the largest |value|). vmin < vmax, both finite.
  std::optional<float> vmin, vmax;
  // Optional (rows, cols): true cells are drawn hatched instead of coloured.
  View<const bool, 2> masked;
};
// values (rows, cols), rows and cols >= 1.
Image heatmap_picture(View<const float, 2> values, const HeatmapOptions& options = {});

struct MaskPictureOptions {
  std::string title;  // default: "mask = " + mask.describe()
  // Tick labels (tokens) of queries (Lq) and keys (Lk); empty: the indices.
  std::vector<std::string> query_labels, key_labels;
  // The diagonal outlined: key j == query i (TopLeft) or j == i + Lk - Lq
  // (BottomRight: the last query lines up with the last key).
  Align diagonal = Align::TopLeft;
};
// The mask bound to `shape` (Error naming "mask" when it does not fit). Heads
// that allow the same pairs share one panel ("h=0..11").
Image mask_picture(const Mask& mask, const MaskShape& shape,
                   const MaskPictureOptions& options = {});

struct EncodingPictureOptions {
  std::string title;  // default: "sinusoidal positional encoding (length x dim)"
  // Dimensions drawn as curves against position (each in [0, dim)); default:
  // default_encoding_dims(dim).
  std::vector<int64_t> dims;
};
// pe (length, dim) with length, dim >= 1: what sinusoidal_encoding() gives.
Image encoding_picture(View<const float, 2> pe, const EncodingPictureOptions& options = {});
// The dimensions encoding_picture draws by default for an encoding of `dim`
// columns: four sine columns spread over it, 0, dim/8, dim/4 and 3 dim/8
// rounded down to even (slower and slower waves); the first min(dim, 4)
// columns when dim < 8.
std::vector<int64_t> default_encoding_dims(int64_t dim);

struct AttentionPictureOptions {
  std::string title;  // default: "attention weights" (+ " under <mask>")
  std::vector<std::string> query_labels, key_labels;  // tokens; empty: indices
  // What is drawn; empty: everything. Layer indices into `layers`, batch
  // elements, heads.
  std::vector<int64_t> layers, batch, heads;
  bool mean = true;  // a panel of the mean over the heads drawn
  // Top of the colour scale (bottom: 0); default: the largest weight drawn.
  std::optional<float> vmax;
};
// layers: one weights view (B, H, Lq, Lk) per layer, all of one shape (one
// view for a single attention() call); `mask`: the mask the weights were
// computed with, bound to (B, H, Lq, Lk); its forbidden cells are hatched (in
// the mean panel: cells every head drawn forbids). One row of panels per
// (layer, batch element), one column per head, then the mean.
Image attention_picture(std::span<const View<const float, 4>> layers, const Mask& mask = {},
                        const AttentionPictureOptions& options = {});
Image attention_picture(View<const float, 4> weights, const Mask& mask = {},
                        const AttentionPictureOptions& options = {});

}  // namespace maskattn::viz
