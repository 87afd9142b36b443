#include "maskattn/viz/html.hpp"

#include "viz/panels.hpp"
#include "viz/viewer.hpp"

namespace maskattn::viz {

std::string heatmap_html(View<const float, 2> values, const HeatmapOptions& options) {
  return detail::viewer_html(detail::heatmap_stack(values, options));
}

std::string mask_html(const Mask& mask, const MaskShape& shape, const MaskPictureOptions& options) {
  return detail::viewer_html(detail::mask_stack(mask, shape, options));
}

std::string encoding_html(View<const float, 2> pe, const EncodingPictureOptions& options) {
  return detail::viewer_html(detail::encoding_stack(pe, options));
}

std::string attention_html(std::span<const View<const float, 4>> layers, const Mask& mask,
                           const AttentionPictureOptions& options) {
  return detail::viewer_html(detail::attention_stack(layers, mask, options));
}

std::string attention_html(View<const float, 4> weights, const Mask& mask,
                           const AttentionPictureOptions& options) {
  return attention_html(std::span<const View<const float, 4>>(&weights, 1), mask, options);
}

}  // namespace maskattn::viz
