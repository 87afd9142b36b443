#include "maskattn/viz/pictures.hpp"

#include "viz/panels.hpp"
#include "viz/render.hpp"

namespace maskattn::viz {

Image heatmap_picture(View<const float, 2> values, const HeatmapOptions& options) {
  return detail::render_stack(detail::heatmap_stack(values, options));
}

Image mask_picture(const Mask& mask, const MaskShape& shape, const MaskPictureOptions& options) {
  return detail::render_stack(detail::mask_stack(mask, shape, options));
}

Image encoding_picture(View<const float, 2> pe, const EncodingPictureOptions& options) {
  return detail::render_stack(detail::encoding_stack(pe, options));
}

Image attention_picture(std::span<const View<const float, 4>> layers, const Mask& mask,
                        const AttentionPictureOptions& options) {
  return detail::render_stack(detail::attention_stack(layers, mask, options));
}

Image attention_picture(View<const float, 4> weights, const Mask& mask,
                        const AttentionPictureOptions& options) {
  return attention_picture(std::span<const View<const float, 4>>(&weights, 1), mask, options);
}

}  // namespace maskattn::viz
