// The pictures as a person would look at them: each is encoded as PNG,
// decoded back, and the colour at known cells is checked (the renderer's
// layout says where the cells are; the decoded pixels say what is there).
#include "maskattn/viz/pictures.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "maskattn/attention.hpp"
#include "maskattn/io/png.hpp"
#include "maskattn/positional.hpp"
#include "throws_error.hpp"
#include "viz/canvas.hpp"
#include "viz/font.hpp"
#include "viz/panels.hpp"
#include "viz/render.hpp"

namespace maskattn::viz {
namespace {

using detail::Box;
using detail::Layout;
using detail::PanelStack;
using testing_errors::throws_error_naming;

// The picture of `stack` through a PNG file's bytes, and where its cells are.
Image render_via_png(const PanelStack& stack, Layout* layout) {
  return decode_png(encode_png(detail::render_stack(stack, layout)));
}

// Colour at the centre of cell (i, j) of a panel's cell area.
Rgb cell_center(const Image& im, const Box& b, int64_t rows, int64_t cols, int64_t i, int64_t j) {
  return im.at(b.x + (2 * j + 1) * b.w / (2 * cols), b.y + (2 * i + 1) * b.h / (2 * rows));
}

// The colours inside cell (i, j), borders left out.
std::set<std::tuple<int, int, int>> cell_colors(const Image& im, const Box& b, int64_t rows,
                                                int64_t cols, int64_t i, int64_t j) {
  std::set<std::tuple<int, int, int>> colors;
  for (int64_t y = b.y + i * b.h / rows + 1; y < b.y + (i + 1) * b.h / rows - 1; ++y)
    for (int64_t x = b.x + j * b.w / cols + 1; x < b.x + (j + 1) * b.w / cols - 1; ++x) {
      const Rgb c = im.at(x, y);
      colors.insert({c.r, c.g, c.b});
    }
  return colors;
}

std::tuple<int, int, int> tup(Rgb c) { return {c.r, c.g, c.b}; }

// Pixels darker than mid-grey in a rectangle: text (the cells and bars are
// never that dark in a mask picture's margins).
int64_t dark_pixels(const Image& im, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
  int64_t n = 0;
  for (int64_t y = std::max<int64_t>(y0, 0); y < std::min(y1, im.height()); ++y)
    for (int64_t x = std::max<int64_t>(x0, 0); x < std::min(x1, im.width()); ++x) {
      const Rgb c = im.at(x, y);
      n += (c.r + c.g + c.b) < 3 * 100;
    }
  return n;
}

bool near(Rgb a, Rgb b, int tolerance = 1) {
  return std::abs(a.r - b.r) <= tolerance && std::abs(a.g - b.g) <= tolerance &&
         std::abs(a.b - b.b) <= tolerance;
}

TEST(MaskPicture, CausalMaskCellsTheDiagonalAndTheTitle) {
  const PanelStack s = detail::mask_stack(causal(), {1, 1, 8, 8}, {});
  Layout layout;
  const Image im = render_via_png(s, &layout);
  ASSERT_EQ(layout.cells.size(), 1u);
  const Box b = layout.cells[0];
  EXPECT_EQ(b.w, b.h);
  EXPECT_GE(b.w / 8, 14) << "8 x 8 cells are drawn large";
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j)
      EXPECT_EQ(cell_center(im, b, 8, 8, i, j), j <= i ? kAllowedColor : kMaskedColor)
          << "cell (" << i << ", " << j << ")";
  // The diagonal cells are outlined; the allowed cell to their left is not.
  const int64_t cell = b.w / 8;
  for (int64_t i = 1; i < 8; ++i) {
    const int64_t y = b.y + i * cell + cell / 2;
    EXPECT_EQ(im.at(b.x + i * cell + 1, y), kDiagonalColor) << "row " << i;
    EXPECT_EQ(im.at(b.x + (i - 1) * cell + 1, y), kAllowedColor) << "row " << i;
  }
  // A title above the cells, tick labels left of and below them, a legend.
  EXPECT_GT(dark_pixels(im, 0, 0, im.width(), b.y - 4), 50) << "title";
  EXPECT_GT(dark_pixels(im, 0, b.y, b.x - 2, b.y + b.h), 30) << "row labels";
  EXPECT_GT(dark_pixels(im, b.x, b.y + b.h + 2, b.x + b.w, im.height()), 30) << "column labels";
  // The public function draws the same picture.
  const Image direct = mask_picture(causal(), {1, 1, 8, 8});
  EXPECT_TRUE(std::equal(direct.bytes().begin(), direct.bytes().end(), im.bytes().begin()));
}

TEST(MaskPicture, OnePanelPerBatchElementWithItsPadding) {
  const std::vector<int64_t> lengths = {5, 3, 8};
  const PanelStack s = detail::mask_stack(causal() & key_lengths(lengths), {3, 4, 8, 8}, {});
  ASSERT_EQ(s.selectors.size(), 1u) << "heads agree: no head selector";
  EXPECT_EQ(s.selectors[0].name, "batch");
  EXPECT_EQ(s.panel_title(2), "batch 2");
  Layout layout;
  const Image im = render_via_png(s, &layout);
  ASSERT_EQ(layout.cells.size(), 3u);
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t j = 0; j < 8; ++j)
      EXPECT_EQ(cell_center(im, layout.cells[static_cast<std::size_t>(b)], 8, 8, 7, j),
                j < lengths[static_cast<std::size_t>(b)] ? kAllowedColor : kMaskedColor)
          << "batch " << b << ", key " << j;
}

TEST(MaskPicture, HeadsThatDifferGetTheirOwnPanels) {
  // keep (1, 3, 2, 2): heads 0 and 2 allow the same pairs, head 1 others.
  Tensor<bool> m({1, 3, 2, 2});
  const bool pattern[3][4] = {{1, 0, 1, 1}, {1, 1, 1, 1}, {1, 0, 1, 1}};
  for (int h = 0; h < 3; ++h)
    for (int k = 0; k < 4; ++k) m.data()[h * 4 + k] = pattern[h][k];
  const PanelStack s = detail::mask_stack(keep(m), {1, 3, 2, 2}, {});
  ASSERT_EQ(s.selectors.size(), 1u);
  EXPECT_EQ(s.selectors[0].name, "head");
  EXPECT_EQ(s.selectors[0].labels, (std::vector<std::string>{"0,2", "1"}));
  EXPECT_EQ(s.masked, (std::vector<uint8_t>{0, 1, 0, 0, 0, 0, 0, 0}));
  // Heads that all agree need no selector.
  const PanelStack all = detail::mask_stack(causal(), {1, 12, 3, 3}, {});
  EXPECT_TRUE(all.selectors.empty());
  // Consecutive heads read as a range: heads 0..2 pad at 3 keys, head 3 at 1.
  Tensor<bool> pad({1, 4, 1, 4});
  for (int h = 0; h < 4; ++h)
    for (int j = 0; j < 4; ++j) pad.data()[h * 4 + j] = j < (h < 3 ? 3 : 1);
  const PanelStack ranged = detail::mask_stack(keep(pad), {1, 4, 2, 4}, {});
  ASSERT_EQ(ranged.selectors.size(), 1u);
  EXPECT_EQ(ranged.selectors[0].labels, (std::vector<std::string>{"0..2", "3"}));
  EXPECT_EQ(ranged.panel_title(0), "head 0..2");
}

TEST(MaskPicture, BottomRightDiagonalForDecoding) {
  MaskPictureOptions o;
  o.diagonal = Align::BottomRight;
  const PanelStack s = detail::mask_stack(causal(Align::BottomRight), {1, 1, 4, 10}, o);
  EXPECT_EQ(s.diagonal_offset, 6);
  Layout layout;
  const Image im = render_via_png(s, &layout);
  const Box b = layout.cells[0];
  const int64_t cell = b.w / 10;
  EXPECT_EQ(cell_center(im, b, 4, 10, 0, 6), kAllowedColor);
  EXPECT_EQ(cell_center(im, b, 4, 10, 0, 7), kMaskedColor);
  EXPECT_EQ(im.at(b.x + 6 * cell + 1, b.y + cell / 2), kDiagonalColor);
  EXPECT_EQ(im.at(b.x + 9 * cell + 1, b.y + 3 * cell + cell / 2), kDiagonalColor);
}

TEST(MaskPicture, LongSequencesAreAveragedIntoPixels) {
  const PanelStack s = detail::mask_stack(sliding_window(64, 0), {1, 1, 1000, 1000}, {});
  Layout layout;
  const Image im = render_via_png(s, &layout);
  const Box b = layout.cells[0];
  EXPECT_LT(b.w, 1000);
  EXPECT_EQ(b.w, b.h);
  // Far below the band: masked; in the band (query 500, keys 450..500): allowed.
  const auto pixel = [&](int64_t i, int64_t j) {
    return im.at(b.x + j * b.w / 1000, b.y + i * b.h / 1000);
  };
  EXPECT_EQ(pixel(900, 100), kMaskedColor);
  EXPECT_EQ(pixel(100, 900), kMaskedColor);
  EXPECT_EQ(pixel(500, 470), kAllowedColor);
}

TEST(MaskPicture, Errors) {
  EXPECT_TRUE(throws_error_naming([] { (void)mask_picture(causal(), {1, 1, 0, 4}); }, "shape"));
  const std::vector<int64_t> lengths = {3, 3};
  EXPECT_TRUE(throws_error_naming(
      [&] {
        (void)mask_picture(key_lengths(lengths), {3, 1, 4, 4});
      },
      "mask"));
  MaskPictureOptions o;
  o.query_labels = {"a", "b"};
  EXPECT_TRUE(throws_error_naming(
      [&] {
        (void)mask_picture(causal(), {1, 1, 3, 3}, o);
      },
      "query_labels"));
  EXPECT_TRUE(throws_error_naming([&] { (void)mask_picture(causal(), {300, 1, 2, 2}); }, "panels"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        (void)mask_picture(causal(), {1 << 20, 1 << 20, 8, 8});
      },
      "shape"));
}

// Weights (1, 2, 4, 4) of random q, k under causal & key_lengths({3}).
struct SmallAttention {
  Tensor<float> w{1, 2, 4, 4};
  Mask mask;
  SmallAttention() {
    Tensor<float> q({1, 2, 4, 3}), k({1, 2, 4, 3}), v({1, 2, 4, 3}), out({1, 2, 4, 3});
    for (int64_t i = 0; i < q.numel(); ++i) {
      q.data()[i] = std::sin(1.7f * static_cast<float>(i));
      k.data()[i] = std::cos(0.9f * static_cast<float>(i));
    }
    const std::vector<int64_t> lengths = {3};
    mask = causal() & key_lengths(lengths);
    attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), mask, {}, w.view<4>());
  }
};

TEST(AttentionPicture, WeightsInViridisMaskedCellsHatchedAndAColourBar) {
  const SmallAttention a;
  AttentionPictureOptions o;
  o.query_labels = o.key_labels = {"the", "cat", "sat", "[PAD]"};
  const View<const float, 4> w = a.w.view<4>();
  const PanelStack s = detail::attention_stack(std::span(&w, 1), a.mask, o);
  ASSERT_EQ(s.selectors.size(), 1u);
  EXPECT_EQ(s.selectors[0].labels, (std::vector<std::string>{"0", "1", "mean"}));
  Layout layout;
  const Image im = render_via_png(s, &layout);
  ASSERT_EQ(layout.cells.size(), 3u);
  for (int64_t p = 0; p < 3; ++p)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        const Box& b = layout.cells[static_cast<std::size_t>(p)];
        if (j <= i && j < 3) {
          const float x = p < 2 ? a.w.view<4>()(0, p, i, j)
                                : (a.w.view<4>()(0, 0, i, j) + a.w.view<4>()(0, 1, i, j)) / 2;
          EXPECT_TRUE(near(cell_center(im, b, 4, 4, i, j), color_at(Colormap::Viridis, x / s.vmax)))
              << "panel " << p << " cell (" << i << ", " << j << ")";
        } else {
          // Forbidden: grey with hatch lines, never a colour-map colour.
          EXPECT_EQ(cell_colors(im, b, 4, 4, i, j), (std::set{tup(kMaskedColor), tup(kHatchColor)}))
              << "panel " << p << " cell (" << i << ", " << j << ")";
        }
      }
  // The colour bar runs from viridis(1) at the top to viridis(0) at the bottom.
  const Box bar = layout.colorbar;
  ASSERT_GT(bar.w, 0);
  EXPECT_TRUE(near(im.at(bar.x + bar.w / 2, bar.y), color_at(Colormap::Viridis, 1.0), 3));
  EXPECT_TRUE(
      near(im.at(bar.x + bar.w / 2, bar.y + bar.h - 1), color_at(Colormap::Viridis, 0.0), 3));
  EXPECT_GT(dark_pixels(im, bar.x + bar.w + 2, bar.y - 8, bar.x + bar.w + 60, bar.y + bar.h + 8),
            20)
      << "tick labels beside the colour bar";
  // The largest weight drawn tops the scale.
  float hi = 0.0f;
  for (float x : a.w) hi = std::max(hi, x);
  EXPECT_EQ(s.vmax, hi);
}

TEST(AttentionPicture, LayersBatchAndHeadSelection) {
  const SmallAttention a;
  const View<const float, 4> w = a.w.view<4>();
  const std::vector<View<const float, 4>> layers = {w, w, w};
  AttentionPictureOptions o;
  o.layers = {2, 0};
  o.heads = {1};
  const PanelStack s = detail::attention_stack(layers, a.mask, o);
  ASSERT_EQ(s.selectors.size(), 2u);
  EXPECT_EQ(s.selectors[0].labels, (std::vector<std::string>{"2", "0"}));
  EXPECT_EQ(s.selectors[1].labels, (std::vector<std::string>{"1"})) << "one head: no mean";
  EXPECT_EQ(s.panel_count(), 2);
  EXPECT_EQ(s.panel_title(0), "layer 2, head 1");
  EXPECT_EQ(s.values[5], a.w.view<4>()(0, 1, 1, 1));
  Layout layout;
  (void)render_via_png(s, &layout);
  EXPECT_EQ(layout.cells.size(), 2u);
  EXPECT_LT(layout.cells[0].y, layout.cells[1].y) << "one row per layer";
}

TEST(AttentionPicture, Errors) {
  const SmallAttention a;
  const View<const float, 4> w = a.w.view<4>();
  AttentionPictureOptions o;
  o.heads = {2};
  EXPECT_TRUE(throws_error_naming([&] { (void)attention_picture(w, a.mask, o); }, "heads[0]"));
  o = {};
  o.vmax = 0.0f;
  EXPECT_TRUE(throws_error_naming([&] { (void)attention_picture(w, a.mask, o); }, "vmax"));
  o = {};
  o.key_labels = {"a"};
  EXPECT_TRUE(throws_error_naming([&] { (void)attention_picture(w, a.mask, o); }, "key_labels"));
  const std::vector<int64_t> two = {3, 3};
  EXPECT_TRUE(throws_error_naming([&] { (void)attention_picture(w, key_lengths(two)); }, "mask"));
  Tensor<float> other({1, 2, 4, 5});
  const std::vector<View<const float, 4>> layers = {w, other.view<4>()};
  EXPECT_TRUE(throws_error_naming([&] { (void)attention_picture(layers); }, "layers[1]"));
  EXPECT_TRUE(throws_error_naming(
      [&] { (void)attention_picture(std::span<const View<const float, 4>>()); }, "layers"));
}

TEST(EncodingPicture, HeatmapInDivergingColoursAndCurves) {
  const Tensor<float> pe = sinusoidal_encoding(20, 16);
  const PanelStack s = detail::encoding_stack(pe.view<2>(), {});
  EXPECT_EQ(s.curves, (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(s.vmin, -s.vmax);
  Layout layout;
  const Image im = render_via_png(s, &layout);
  const Box b = layout.cells[0];
  for (int64_t pos : {0, 7, 19})
    for (int64_t d : {0, 1, 9, 15})
      EXPECT_TRUE(
          near(cell_center(im, b, 20, 16, pos, d),
               color_at(Colormap::Diverging, (pe.view<2>()(pos, d) - s.vmin) / (s.vmax - s.vmin))))
          << "PE(" << pos << ", " << d << ")";
  // Below the heatmap: the curves, in tab10 blue (dim 0) and orange (dim 2).
  int64_t blue = 0, orange = 0;
  for (int64_t y = b.y + b.h + 40; y < im.height(); ++y)
    for (int64_t x = 0; x < im.width(); ++x) {
      blue += im.at(x, y) == Rgb{31, 119, 180};
      orange += im.at(x, y) == Rgb{255, 127, 14};
    }
  EXPECT_GT(blue, 20);
  EXPECT_GT(orange, 20);
}

TEST(EncodingPicture, DefaultDimsAndErrors) {
  EXPECT_EQ(default_encoding_dims(64), (std::vector<int64_t>{0, 8, 16, 24}));
  EXPECT_EQ(default_encoding_dims(512), (std::vector<int64_t>{0, 64, 128, 192}));
  EXPECT_EQ(default_encoding_dims(2), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(default_encoding_dims(6), (std::vector<int64_t>{0, 1, 2, 3}));
  const Tensor<float> pe = sinusoidal_encoding(4, 4);
  EncodingPictureOptions o;
  o.dims = {0, 4};
  EXPECT_TRUE(throws_error_naming([&] { (void)encoding_picture(pe.view<2>(), o); }, "dims[1]"));
  EXPECT_TRUE(throws_error_naming([] { (void)encoding_picture(View<const float, 2>()); }, "pe"));
}

TEST(HeatmapPicture, ScaleMaskAndNaN) {
  Tensor<float> m({2, 3});
  for (int64_t i = 0; i < 6; ++i) m.data()[i] = static_cast<float>(i);
  m.data()[4] = std::nanf("");
  Tensor<bool> masked({2, 3});
  masked.data()[5] = true;
  HeatmapOptions o;
  o.masked = masked.view<2>();
  const PanelStack s = detail::heatmap_stack(m.view<2>(), o);
  EXPECT_EQ(s.vmin, 0.0f);
  EXPECT_EQ(s.vmax, 5.0f) << "finite values' range (the masked one included)";
  Layout layout;
  const Image im = render_via_png(s, &layout);
  const Box b = layout.cells[0];
  EXPECT_EQ(cell_center(im, b, 2, 3, 0, 0), color_at(Colormap::Viridis, 0.0));
  EXPECT_EQ(cell_center(im, b, 2, 3, 0, 2), color_at(Colormap::Viridis, 0.4));
  EXPECT_EQ(cell_center(im, b, 2, 3, 1, 1), kNanColor);
  EXPECT_EQ(cell_colors(im, b, 2, 3, 1, 2), (std::set{tup(kMaskedColor), tup(kHatchColor)}));

  HeatmapOptions bad;
  bad.vmin = 2.0f;
  bad.vmax = 1.0f;
  EXPECT_TRUE(throws_error_naming([&] { (void)heatmap_picture(m.view<2>(), bad); }, "vmin"));
  bad = {};
  Tensor<bool> wrong({3, 2});
  bad.masked = wrong.view<2>();
  EXPECT_TRUE(throws_error_naming([&] { (void)heatmap_picture(m.view<2>(), bad); }, "masked"));
  bad = {};
  bad.row_labels = {"x"};
  EXPECT_TRUE(throws_error_naming([&] { (void)heatmap_picture(m.view<2>(), bad); }, "row_labels"));
  // A constant matrix still has a scale.
  Tensor<float> flat({2, 2});
  const PanelStack f = detail::heatmap_stack(flat.view<2>(), {});
  EXPECT_LT(f.vmin, f.vmax);
}

TEST(Colormap, AnchorsAndInterpolation) {
  EXPECT_EQ(color_at(Colormap::Viridis, 0.0), (Rgb{0x44, 0x01, 0x54}));
  EXPECT_EQ(color_at(Colormap::Viridis, 1.0), (Rgb{0xFD, 0xE7, 0x25}));
  EXPECT_EQ(color_at(Colormap::Viridis, -3.0), color_at(Colormap::Viridis, 0.0));
  EXPECT_EQ(color_at(Colormap::Diverging, 0.5), (Rgb{0xF7, 0xF7, 0xF7})) << "0 is white-ish";
  EXPECT_EQ(color_at(Colormap::Diverging, std::nan("")), kNanColor);
  // Half way between two anchors.
  const auto a = colormap_anchors(Colormap::Viridis);
  const Rgb mid = color_at(Colormap::Viridis, 0.5 / static_cast<double>(a.size() - 1));
  EXPECT_NEAR(mid.r, (a[0].r + a[1].r) / 2.0, 0.51);
  EXPECT_NEAR(mid.g, (a[0].g + a[1].g) / 2.0, 0.51);
}

TEST(Font, GlyphsTextWidthAndUtf8) {
  const detail::Font& f = detail::label_font();
  ASSERT_GT(f.glyphs.size(), 300u);
  for (std::size_t i = 1; i < f.glyphs.size(); ++i)
    ASSERT_LT(f.glyphs[i - 1].code, f.glyphs[i].code);
  for (char32_t c = 0x20; c < 0x7F; ++c) EXPECT_EQ(f.glyph(c).code, c);
  EXPECT_EQ(f.glyph(U'é').code, U'é');
  EXPECT_EQ(f.glyph(U'\u4E00').code, U'?') << "a CJK character this font lacks";
  EXPECT_GT(f.text_width("mm"), f.text_width("ii"));
  EXPECT_GT(detail::title_font().text_width("abc"), f.text_width("abc"));
  EXPECT_EQ(detail::decode_utf8("a\xC3\xA9\xE2\x82\xAC"), U"aé€");
  EXPECT_EQ(detail::decode_utf8("\xFF\xC3"), U"\uFFFD\uFFFD") << "invalid bytes";
  EXPECT_EQ(detail::decode_utf8("\xC0\xAF"), U"\uFFFD\uFFFD") << "overlong";
  const std::string cut = detail::fit_text(f, "a very long token indeed", 40);
  EXPECT_LE(f.text_width(cut), 40);
  EXPECT_TRUE(cut.ends_with("\u2026"));
  EXPECT_EQ(detail::fit_text(f, "ok", 40), "ok");
}

TEST(Canvas, TextIsDrawnWhereItIsAnchored) {
  Image im(120, 120);
  detail::Canvas c(im);
  const detail::Font& f = detail::label_font();
  const int w = c.text(f, "query", 10, 20, kBlack, detail::HAlign::Left, detail::VAlign::Top);
  EXPECT_EQ(w, f.text_width("query"));
  EXPECT_GT(dark_pixels(im, 10, 20, 10 + w, 20 + f.line_height()), 20);
  EXPECT_EQ(dark_pixels(im, 0, 0, 120, 19) + dark_pixels(im, 0, 20 + f.line_height(), 120, 120), 0);
  // Turned: the same text stands in a column at x = 60 above y = 100.
  Image v(120, 120);
  detail::Canvas cv(v);
  cv.text(f, "query", 60, 100, kBlack, detail::HAlign::Left, detail::VAlign::Top, true);
  EXPECT_GT(dark_pixels(v, 60, 100 - w, 60 + f.line_height(), 100), 20);
  EXPECT_EQ(dark_pixels(v, 0, 0, 59, 120), 0);
}

TEST(Ticks, NiceValues) {
  EXPECT_EQ(detail::nice_ticks(0.0, 1.0, 6), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  EXPECT_EQ(detail::nice_ticks(-1.0, 1.0, 5), (std::vector<double>{-1, -0.5, 0, 0.5, 1}));
  EXPECT_EQ(detail::nice_ticks(0.0, 99.0, 8).back(), 80.0);  // steps of 20
  EXPECT_EQ(detail::nice_ticks(0.0, 0.87, 6), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8}));
  EXPECT_EQ(detail::tick_text(0.25), "0.25");
  EXPECT_EQ(detail::tick_text(-0.0), "0");
}

}  // namespace
}  // namespace maskattn::viz
