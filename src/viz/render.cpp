#include "viz/render.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "viz/canvas.hpp"

namespace maskattn::viz::detail {
namespace {

constexpr int64_t kMargin = 16;       // around the picture
constexpr int64_t kGap = 24;          // between panels
constexpr int64_t kTick = 4;          // tick mark length
constexpr int kMaxTokenWidth = 110;   // longest token tick label, pixels
constexpr int64_t kMaxCell = 32;      // largest cell side, pixels
constexpr int64_t kTokenCell = 16;    // cell side that fits a token label
constexpr int64_t kBarWidth = 16;     // the colour bar
constexpr int64_t kHatchSpacing = 5;  // pixels between hatch lines
constexpr Rgb kText{34, 34, 34};
constexpr Rgb kAxis{110, 110, 110};
constexpr Rgb kGrid{255, 255, 255};  // cell separators of mask panels

// Where everything of one panel goes, relative to its box's top-left corner.
struct PanelGeometry {
  int64_t heat_w = 0, heat_h = 0;      // the cells' area
  int64_t cell = 0;                    // cell side, or 0 when cells are averaged into pixels
  int64_t row_step = 1, col_step = 1;  // every row_step-th row gets a label
  bool col_vertical = false;           // column labels turned (tokens)
  int64_t left = 0, top = 0, bottom = 0, right = 10;
  int64_t box_w() const { return left + heat_w + right; }
  int64_t box_h() const { return top + heat_h + bottom; }
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The smallest of 1, 2, 5, 10, 20, 50, ... that is >= x.
int64_t nice_step(int64_t x) {
  for (int64_t p = 1;; p *= 10)
    for (int64_t m : {1, 2, 5})
      if (m * p >= x) return m * p;
}

int max_label_width(const Font& f, const std::vector<std::string>& labels, int64_t step,
                    int limit) {
  int w = 0;
  for (std::size_t k = 0; k < labels.size(); k += static_cast<std::size_t>(step))
    w = std::max(w, std::min(f.text_width(labels[k]), limit));
  return w;
}

// Label step for `n` positions over `extent` pixels, each label needing `need` pixels.
int64_t label_step(int64_t n, int64_t extent, int64_t need, bool tokens) {
  const int64_t step = ceil_div(need * n, std::max<int64_t>(extent, 1));
  return tokens ? std::max<int64_t>(step, 1) : nice_step(std::max<int64_t>(step, 1));
}

PanelGeometry panel_geometry(const PanelStack& s, int64_t grid_cols) {
  const Font& f = label_font();
  PanelGeometry g;
  const int64_t n = std::max(s.rows, s.cols);
  const int64_t budget =
      s.panel_count() == 1 ? 640 : std::clamp<int64_t>(1500 / grid_cols, 160, 400);
  if (n <= budget) {
    g.cell = std::min(budget / n, kMaxCell);
    if ((s.row_tokens || s.col_tokens) && g.cell < kTokenCell && n * kTokenCell <= 960)
      g.cell = kTokenCell;
    g.heat_w = s.cols * g.cell;
    g.heat_h = s.rows * g.cell;
  } else {  // more cells than pixels: each pixel averages the cells it covers
    g.heat_w = std::max<int64_t>(1, s.cols * budget / n);
    g.heat_h = std::max<int64_t>(1, s.rows * budget / n);
  }
  const int64_t line = f.line_height();
  g.row_step = label_step(s.rows, g.heat_h, line + 4, s.row_tokens);
  g.col_vertical = s.col_tokens;
  const int64_t col_need =
      g.col_vertical ? line : max_label_width(f, s.col_labels, 1, kMaxTokenWidth) + 12;
  g.col_step = label_step(s.cols, g.heat_w, col_need, s.col_tokens);
  const int row_labels = max_label_width(f, s.row_labels, g.row_step, kMaxTokenWidth);
  g.left = line + 6 + row_labels + kTick + 3;
  const int64_t col_labels =
      g.col_vertical ? max_label_width(f, s.col_labels, g.col_step, kMaxTokenWidth) : line;
  g.bottom = kTick + 3 + col_labels + 6 + line;
  g.top = s.selectors.empty() ? 0 : title_font().line_height() + 6;
  int title_w = 0;
  for (int64_t p = 0; p < s.panel_count(); ++p)
    title_w = std::max(title_w, label_font().text_width(s.panel_title(p)));
  g.right = std::max<int64_t>(10, title_w + 8 - g.heat_w);
  return g;
}

Rgb value_color(const PanelStack& s, float x) {
  return color_at(s.colormap,
                  (static_cast<double>(x) - s.vmin) / (static_cast<double>(s.vmax) - s.vmin));
}

// The cells of panel p with their top-left corner at (x0, y0).
void draw_cells(Canvas& c, const PanelStack& s, int64_t p, int64_t x0, int64_t y0,
                const PanelGeometry& g) {
  const float* v = s.values.data() + p * s.rows * s.cols;
  const uint8_t* m = s.masked.empty() ? nullptr : s.masked.data() + p * s.rows * s.cols;
  const bool mask_style = s.style == PanelStyle::Mask;
  if (g.cell > 0) {
    for (int64_t i = 0; i < s.rows; ++i)
      for (int64_t j = 0; j < s.cols; ++j) {
        const int64_t x = x0 + j * g.cell, y = y0 + i * g.cell, k = i * s.cols + j;
        const bool masked = m != nullptr && m[k] != 0;
        if (mask_style)
          c.fill_rect(x, y, g.cell, g.cell, masked ? kMaskedColor : kAllowedColor);
        else if (masked)
          c.hatch_rect(x, y, g.cell, g.cell, kMaskedColor, kHatchColor, kHatchSpacing);
        else
          c.fill_rect(x, y, g.cell, g.cell, value_color(s, v[k]));
      }
    if (mask_style && g.cell >= 8) {  // separators, to count positions
      for (int64_t j = 1; j < s.cols; ++j) c.fill_rect(x0 + j * g.cell, y0, 1, g.heat_h, kGrid);
      for (int64_t i = 1; i < s.rows; ++i) c.fill_rect(x0, y0 + i * g.cell, g.heat_w, 1, kGrid);
    }
  } else {
    // Pixel (px, py) covers cells [px * cols / w, ceil((px + 1) * cols / w)).
    for (int64_t py = 0; py < g.heat_h; ++py) {
      const int64_t i0 = py * s.rows / g.heat_h, i1 = ceil_div((py + 1) * s.rows, g.heat_h);
      for (int64_t px = 0; px < g.heat_w; ++px) {
        const int64_t j0 = px * s.cols / g.heat_w, j1 = ceil_div((px + 1) * s.cols, g.heat_w);
        int64_t masked = 0, count = 0;
        double sum = 0.0;
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = j0; j < j1; ++j) {
            const int64_t k = i * s.cols + j;
            if (m != nullptr && m[k] != 0) {
              ++masked;
            } else if (!std::isnan(v[k])) {
              sum += v[k];
              ++count;
            }
          }
        const int64_t cells = (i1 - i0) * (j1 - j0), x = x0 + px, y = y0 + py;
        if (mask_style) {
          // The two colours mixed by the share of allowed cells.
          c.fill_rect(x, y, 1, 1, kMaskedColor);
          c.blend(x, y, kAllowedColor,
                  1.0f - static_cast<float>(masked) / static_cast<float>(cells));
        } else if (masked == cells) {
          c.hatch_rect(x, y, 1, 1, kMaskedColor, kHatchColor, kHatchSpacing);
        } else {
          c.fill_rect(x, y, 1, 1,
                      count > 0
                          ? value_color(s, static_cast<float>(sum / static_cast<double>(count)))
                          : kNanColor);
        }
      }
    }
  }
  // The diagonal of a mask: key j == i + offset.
  if (mask_style && s.diagonal_offset) {
    const int64_t off = *s.diagonal_offset;
    const int64_t first = std::max<int64_t>(0, -off), last = std::min(s.rows, s.cols - off) - 1;
    if (first <= last) {
      if (g.cell >= 6) {
        for (int64_t i = first; i <= last; ++i)
          c.outline_rect(x0 + (i + off) * g.cell, y0 + i * g.cell, g.cell, g.cell, kDiagonalColor,
                         g.cell >= 14 ? 2 : 1);
      } else {
        const double sx = static_cast<double>(g.heat_w) / static_cast<double>(s.cols);
        const double sy = static_cast<double>(g.heat_h) / static_cast<double>(s.rows);
        c.line(static_cast<double>(x0) + (static_cast<double>(first + off) + 0.5) * sx,
               static_cast<double>(y0) + (static_cast<double>(first) + 0.5) * sy,
               static_cast<double>(x0) + (static_cast<double>(last + off) + 0.5) * sx,
               static_cast<double>(y0) + (static_cast<double>(last) + 0.5) * sy, kDiagonalColor,
               1.5);
      }
    }
  }
  c.outline_rect(x0 - 1, y0 - 1, g.heat_w + 2, g.heat_h + 2, kAxis);
}

// Panel p's box at (bx, by): title, cells, ticks, labels, axis names.
void draw_panel(Canvas& c, const PanelStack& s, int64_t p, int64_t bx, int64_t by,
                const PanelGeometry& g) {
  const Font& f = label_font();
  const int64_t x0 = bx + g.left, y0 = by + g.top;
  if (!s.selectors.empty()) {
    const std::string title = s.panel_title(p);
    const int64_t w = f.text_width(title);
    const int64_t tx = std::clamp(x0 + g.heat_w / 2 - w / 2, bx, bx + g.box_w() - w);
    c.text(f, title, tx, by + 2, kText, HAlign::Left, VAlign::Top);
  }
  draw_cells(c, s, p, x0, y0, g);
  const double sx = static_cast<double>(g.heat_w) / static_cast<double>(s.cols);
  const double sy = static_cast<double>(g.heat_h) / static_cast<double>(s.rows);
  for (int64_t i = 0; i < s.rows; i += g.row_step) {
    const auto y = y0 + static_cast<int64_t>((static_cast<double>(i) + 0.5) * sy);
    c.fill_rect(x0 - 1 - kTick, y, kTick, 1, kAxis);
    c.text(f, fit_text(f, s.row_labels[static_cast<std::size_t>(i)], kMaxTokenWidth),
           x0 - kTick - 3, y, kText, HAlign::Right, VAlign::Middle);
  }
  for (int64_t j = 0; j < s.cols; j += g.col_step) {
    const auto x = x0 + static_cast<int64_t>((static_cast<double>(j) + 0.5) * sx);
    c.fill_rect(x, y0 + g.heat_h + 1, 1, kTick, kAxis);
    const std::string label =
        fit_text(f, s.col_labels[static_cast<std::size_t>(j)], kMaxTokenWidth);
    if (g.col_vertical)
      c.text(f, label, x, y0 + g.heat_h + kTick + 3, kText, HAlign::Right, VAlign::Middle, true);
    else
      c.text(f, label, x, y0 + g.heat_h + kTick + 3, kText, HAlign::Center, VAlign::Top);
  }
  c.text(f, s.row_axis, bx, y0 + g.heat_h / 2, kText, HAlign::Center, VAlign::Top, true);
  c.text(f, s.col_axis, x0 + g.heat_w / 2, by + g.box_h() - 2, kText, HAlign::Center,
         VAlign::Bottom);
}

// The colour bar at (x, y), `h` pixels tall: vmax at the top. Returns its width.
int64_t colorbar_width(const PanelStack& s) {
  const Font& f = label_font();
  int w = 0;
  for (double t : nice_ticks(s.vmin, s.vmax, 6)) w = std::max(w, f.text_width(tick_text(t)));
  return kBarWidth + kTick + 3 + w + 8 + f.line_height();
}

void draw_colorbar(Canvas& c, const PanelStack& s, int64_t x, int64_t y, int64_t h) {
  const Font& f = label_font();
  for (int64_t r = 0; r < h; ++r) {
    const double t = 1.0 - (static_cast<double>(r) + 0.5) / static_cast<double>(h);
    c.fill_rect(x, y + r, kBarWidth, 1, color_at(s.colormap, t));
  }
  c.outline_rect(x - 1, y - 1, kBarWidth + 2, h + 2, kAxis);
  int w = 0;
  for (double t : nice_ticks(s.vmin, s.vmax, 6)) {
    const auto ty =
        y + static_cast<int64_t>(std::lround((s.vmax - t) / (static_cast<double>(s.vmax) - s.vmin) *
                                             static_cast<double>(h - 1)));
    c.fill_rect(x + kBarWidth + 1, ty, kTick, 1, kAxis);
    w = std::max(w, c.text(f, tick_text(t), x + kBarWidth + kTick + 3, ty, kText, HAlign::Left,
                           VAlign::Middle));
  }
  c.text(f, s.value_name, x + kBarWidth + kTick + 3 + w + 6, y + h / 2, kText, HAlign::Center,
         VAlign::Top, true);
}

// The mask legend's entries: the two colours, and the diagonal when drawn.
std::vector<std::pair<Rgb, std::string>> legend_entries(const PanelStack& s) {
  std::vector<std::pair<Rgb, std::string>> e{{kAllowedColor, "may attend"},
                                             {kMaskedColor, "masked"}};
  if (s.diagonal_offset) {
    std::string diagonal = "diagonal: key j = query i";
    if (*s.diagonal_offset != 0)
      diagonal +=
          fmt::format(" {} {}", *s.diagonal_offset > 0 ? "+" : "-", std::abs(*s.diagonal_offset));
    e.emplace_back(kDiagonalColor, diagonal);
  }
  return e;
}

constexpr int64_t kSwatch = 12;  // a legend entry: swatch, 5 px, text, 18 px

int64_t legend_width(const PanelStack& s) {
  int64_t w = 0;
  for (const auto& [color, text] : legend_entries(s))
    w += kSwatch + 5 + label_font().text_width(text) + 18;
  return w;
}

// The mask legend, one line at (x, y).
void draw_legend(Canvas& c, const PanelStack& s, int64_t x, int64_t y) {
  const Font& f = label_font();
  const int64_t sy = y + (f.line_height() - kSwatch) / 2;
  for (const auto& [color, text] : legend_entries(s)) {
    const bool diagonal = color == kDiagonalColor;
    if (diagonal)
      c.outline_rect(x, sy, kSwatch, kSwatch, color, 2);
    else
      c.fill_rect(x, sy, kSwatch, kSwatch, color);
    c.outline_rect(x, sy, kSwatch, kSwatch, diagonal ? color : kAxis);
    x += kSwatch + 5;
    x += c.text(f, text, x, y, kText, HAlign::Left, VAlign::Top) + 18;
  }
}

// The curves of `stack.curves` against the rows: a title line, a legend line,
// then the plot area (w x kCurvesHeight) at `left` pixels into the box at (bx, by).
constexpr int64_t kCurvesHeight = 170;
int64_t curves_box_height() {
  return 8 + 2 * (label_font().line_height() + 4) + kCurvesHeight + kTick + 3 +
         2 * label_font().line_height() + 4;
}

void draw_curves(Canvas& c, const PanelStack& s, int64_t bx, int64_t by, int64_t left, int64_t w) {
  const Font& f = label_font();
  const int64_t line = f.line_height();
  const int64_t x0 = bx + left, y0 = by + 8 + 2 * (line + 4), h = kCurvesHeight;
  c.text(f, fmt::format("{} against {}", s.value_name, s.row_axis), x0 + w / 2, by + 8, kText,
         HAlign::Center, VAlign::Top);
  const double lo = s.vmin, hi = s.vmax;
  const auto ymap = [&](double v) {
    return static_cast<double>(y0) + (hi - v) / (hi - lo) * static_cast<double>(h - 1);
  };
  const auto xmap = [&](double r) {
    return static_cast<double>(x0) +
           (s.rows > 1 ? r / static_cast<double>(s.rows - 1) : 0.5) * static_cast<double>(w);
  };
  for (double t : nice_ticks(lo, hi, 5)) {
    const auto y = static_cast<int64_t>(std::lround(ymap(t)));
    c.fill_rect(x0, y, w, 1, t == 0.0 ? Rgb{200, 200, 200} : Rgb{235, 235, 235});
    c.fill_rect(x0 - 1 - kTick, y, kTick, 1, kAxis);
    c.text(f, tick_text(t), x0 - kTick - 3, y, kText, HAlign::Right, VAlign::Middle);
  }
  for (double t : nice_ticks(0, static_cast<double>(s.rows - 1), 8)) {
    const auto x = static_cast<int64_t>(std::lround(xmap(t)));
    c.fill_rect(x, y0 + h + 1, 1, kTick, kAxis);
    c.text(f, tick_text(t), x, y0 + h + kTick + 3, kText, HAlign::Center, VAlign::Top);
  }
  c.text(f, s.row_axis, x0 + w / 2, y0 + h + kTick + 3 + line + 2, kText, HAlign::Center,
         VAlign::Top);
  // One polyline per column, and its legend entry; the frame last, over the
  // curves' ends at +-1.
  int64_t lx = x0;
  for (std::size_t k = 0; k < s.curves.size(); ++k) {
    const Rgb color = kCurveColors[k % kCurveColors.size()];
    const int64_t d = s.curves[k];
    for (int64_t r = 0; r + 1 < s.rows; ++r)
      c.line(xmap(static_cast<double>(r)), ymap(s.values[static_cast<std::size_t>(r * s.cols + d)]),
             xmap(static_cast<double>(r + 1)),
             ymap(s.values[static_cast<std::size_t>((r + 1) * s.cols + d)]), color, 1.5);
    c.fill_rect(lx, by + 8 + line + 4 + line / 2, 16, 2, color);
    lx += 20;
    lx += c.text(f, fmt::format("{} {}", s.col_axis, d), lx, by + 8 + line + 4, kText, HAlign::Left,
                 VAlign::Top) +
          14;
  }
  c.outline_rect(x0 - 1, y0 - 1, w + 2, h + 2, kAxis);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_count) {
  std::vector<double> ticks;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(max_count - 1, 1);
  // step = m * 10^e; ticks k * m * 10^e computed as (k * m) / 10^-e when e < 0,
  // which rounds once (0.6, not 0.6000000000000001).
  const int e = static_cast<int>(std::floor(std::log10(raw)));
  const double p = std::pow(10.0, e), inv = std::pow(10.0, -e);
  double m = 10.0;
  for (double c : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (c * p >= raw) {
      m = c;
      break;
    }
  const auto tick = [&](double k) { return e < 0 ? k * m / inv : k * m * p; };
  for (double k = std::ceil(lo / (m * p) - 1e-9); tick(k) <= hi + m * p * 1e-9; ++k)
    ticks.push_back(tick(k) == 0.0 ? 0.0 : tick(k));
  return ticks;
}

std::string tick_text(double x) {
  std::string s = fmt::format("{:.4g}", x);
  return s == "-0" ? "0" : s;
}

Image render_stack(const PanelStack& s, Layout* layout) {
  const int64_t panels = s.panel_count();
  if (panels > kMaxPanels)
    throw Error("panels",
                fmt::format("at most {} panels in one picture (choose layers, batch elements or "
                            "heads)",
                            kMaxPanels),
                std::to_string(panels));
  // Grid: the last selector across when there are two or more; one selector wraps.
  int64_t grid_cols = 1;
  if (s.selectors.size() >= 2)
    grid_cols = static_cast<int64_t>(s.selectors.back().labels.size());
  else if (panels > 1)
    grid_cols = std::min<int64_t>(panels, 6);
  PanelGeometry g = panel_geometry(s, grid_cols);
  if (s.selectors.size() < 2 && panels > 1)
    grid_cols = std::clamp<int64_t>(2000 / g.box_w(), 1, std::min<int64_t>(panels, 6));
  const int64_t grid_rows = ceil_div(panels, grid_cols);

  const Font& tf = title_font();
  const int64_t title_h = s.title.empty() ? 0 : tf.line_height() + 10;
  const int64_t grid_w = grid_cols * g.box_w() + (grid_cols - 1) * kGap;
  const int64_t grid_h = grid_rows * g.box_h() + (grid_rows - 1) * kGap;
  const bool bar = s.style == PanelStyle::Heatmap;
  const int64_t bar_w = bar ? 12 + colorbar_width(s) : 0;
  const bool legend = s.style == PanelStyle::Mask;
  const int64_t below = legend ? 12 + label_font().line_height() : 0;
  const int64_t curves_w = std::max<int64_t>(g.heat_w, 360);
  const int64_t curves_h = s.curves.empty() ? 0 : curves_box_height();
  const int64_t width = std::max({grid_w + bar_w, g.left + curves_w + 10,
                                  static_cast<int64_t>(tf.text_width(s.title)),
                                  legend ? g.left + legend_width(s) : 0}) +
                        2 * kMargin;
  const int64_t height = kMargin + title_h + grid_h + below + curves_h + kMargin;
  Image image(width, height);
  Canvas c(image);
  if (!s.title.empty()) c.text(tf, s.title, kMargin, kMargin, kText, HAlign::Left, VAlign::Top);
  const int64_t gx = kMargin, gy = kMargin + title_h;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t bx = gx + (p % grid_cols) * (g.box_w() + kGap);
    const int64_t by = gy + (p / grid_cols) * (g.box_h() + kGap);
    draw_panel(c, s, p, bx, by, g);
    if (layout != nullptr) layout->cells.push_back({bx + g.left, by + g.top, g.heat_w, g.heat_h});
  }
  if (bar) {
    const Box b{gx + grid_w + 12, gy + g.top, kBarWidth,
                std::clamp<int64_t>(g.heat_h, std::min<int64_t>(120, grid_h - g.top), 320)};
    draw_colorbar(c, s, b.x, b.y, b.h);
    if (layout != nullptr) layout->colorbar = b;
  }
  if (legend) draw_legend(c, s, gx + g.left, gy + grid_h + 12);
  if (!s.curves.empty()) draw_curves(c, s, gx, gy + grid_h + below, g.left, curves_w);
  return image;
}

}  // namespace maskattn::viz::detail
