// The pictures of pictures.hpp as one self-contained HTML page each: the
// data inline (base64 float32), a small script that draws it on a canvas, no
// network access and no external scripts or fonts. The page has
//   - a selector per leading dimension (layer, batch element, head with a
//     "mean" entry; for masks: batch element and head),
//   - a hover read-out of the cell under the pointer: (query, key, weight,
//     masked?) with token labels when given,
//   - zoom (buttons, and the mouse wheel with Ctrl) for long sequences, the
//     canvas scrolling inside the page,
//   - a colour bar, and masked cells hatched as in the PNG pictures.
// Open the file in any browser.
#pragma once

#include <span>
#include <string>

#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"
#include "maskattn/viz/pictures.hpp"

namespace maskattn::viz {

// Same arguments, same checks and same Errors as the *_picture functions,
// but for the PNG's panel limit (kMaxPanels): the page shows one panel at a
// time.
std::string heatmap_html(View<const float, 2> values, const HeatmapOptions& options = {});
std::string mask_html(const Mask& mask, const MaskShape& shape,
                      const MaskPictureOptions& options = {});
std::string encoding_html(View<const float, 2> pe, const EncodingPictureOptions& options = {});
std::string attention_html(std::span<const View<const float, 4>> layers, const Mask& mask = {},
                           const AttentionPictureOptions& options = {});
std::string attention_html(View<const float, 4> weights, const Mask& mask = {},
                           const AttentionPictureOptions& options = {});

}  // namespace maskattn::viz
