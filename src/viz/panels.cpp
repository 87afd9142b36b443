#include "viz/panels.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace maskattn::viz::detail {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Most cells one picture holds (panels x rows x cols): 2^26 floats, 256 MiB.
constexpr int64_t kMaxCells = int64_t{1} << 26;

void check_cells(int64_t panels, int64_t rows, int64_t cols, std::string_view what) {
  const int64_t cells =
      checked_mul(checked_mul(panels, rows, what), cols, what);  // throws on overflow
  if (cells > kMaxCells)
    throw Error(what,
                fmt::format("at most {} cells in one picture (select fewer layers, batch "
                            "elements or heads)",
                            kMaxCells),
                fmt::format("{} panels of {} x {}", panels, rows, cols));
}

// An index list: `given` (each in [0, n), Error naming what[k]) or 0..n-1.
std::vector<int64_t> selection(const std::vector<int64_t>& given, int64_t n,
                               std::string_view what) {
  if (given.empty()) {
    std::vector<int64_t> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), int64_t{0});
    return all;
  }
  for (std::size_t k = 0; k < given.size(); ++k)
    if (given[k] < 0 || given[k] >= n)
      throw Error(fmt::format("{}[{}]", what, k), fmt::format("an index in [0, {})", n),
                  std::to_string(given[k]));
  return given;
}

std::vector<std::string> labels_of(const std::vector<int64_t>& indices) {
  std::vector<std::string> v;
  for (int64_t i : indices) v.push_back(std::to_string(i));
  return v;
}

// "0", "1", ... "n-1".
std::vector<std::string> index_labels(int64_t n) { return labels_of(selection({}, n, "")); }

// The given labels (one per index) or the indices; Error naming `what` for a
// wrong count.
std::vector<std::string> labels_or_indices(const std::vector<std::string>& given, int64_t n,
                                           std::string_view what, bool& tokens) {
  tokens = !given.empty();
  if (given.empty()) return index_labels(n);
  if (static_cast<int64_t>(given.size()) != n)
    throw Error(what, fmt::format("{} labels (one per position) or none", n),
                fmt::format("{} labels", given.size()));
  return given;
}

// [vmin, vmax] of the finite values: given bounds win; Diverging is symmetric.
void set_scale(PanelStack& s, std::optional<float> vmin, std::optional<float> vmax,
               std::string_view vmin_name, std::string_view vmax_name) {
  if (vmin && !std::isfinite(*vmin))
    throw Error(vmin_name, "a finite number", fmt::format("{}", *vmin));
  if (vmax && !std::isfinite(*vmax))
    throw Error(vmax_name, "a finite number", fmt::format("{}", *vmax));
  float lo = std::numeric_limits<float>::infinity(), hi = -lo, absmax = 0.0f;
  for (float x : s.values)
    if (std::isfinite(x)) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      absmax = std::max(absmax, std::abs(x));
    }
  if (!(lo <= hi)) lo = 0.0f, hi = 1.0f;  // no finite value
  if (s.colormap == Colormap::Diverging) {
    const float m = absmax > 0.0f ? absmax : 1.0f;
    lo = -m, hi = m;
  }
  s.vmin = vmin.value_or(lo);
  s.vmax = vmax.value_or(hi);
  if (!vmin && !vmax && s.vmin == s.vmax) s.vmin -= 0.5f, s.vmax += 0.5f;  // a constant matrix
  if (!(s.vmin < s.vmax))
    throw Error(vmin ? vmin_name : vmax_name, "vmin < vmax",
                fmt::format("vmin = {}, vmax = {}", s.vmin, s.vmax));
}

}  // namespace

int64_t PanelStack::panel_count() const noexcept {
  int64_t n = 1;
  for (const Selector& s : selectors) n *= static_cast<int64_t>(s.labels.size());
  return n;
}

int64_t PanelStack::selector_index(int64_t p, std::size_t s) const noexcept {
  for (std::size_t k = selectors.size(); k-- > s + 1;)
    p /= static_cast<int64_t>(selectors[k].labels.size());
  return p % static_cast<int64_t>(selectors[s].labels.size());
}

std::string PanelStack::panel_title(int64_t p) const {
  std::string t;
  for (std::size_t s = 0; s < selectors.size(); ++s) {
    if (!t.empty()) t += ", ";
    const std::string& label = selectors[s].labels[static_cast<std::size_t>(selector_index(p, s))];
    t += label == "mean" ? fmt::format("mean over {}s", selectors[s].name)
                         : fmt::format("{} {}", selectors[s].name, label);
  }
  return t;
}

PanelStack heatmap_stack(View<const float, 2> values, const HeatmapOptions& o) {
  if (values.empty() || values.size(0) < 1 || values.size(1) < 1)
    throw Error("values", "a (rows, cols) matrix with rows, cols >= 1",
                values.empty() ? std::string("an absent view") : shape_string(values.shape()));
  PanelStack s;
  s.rows = values.size(0);
  s.cols = values.size(1);
  check_cells(1, s.rows, s.cols, "values");
  s.title = o.title;
  s.row_axis = o.row_axis;
  s.col_axis = o.col_axis;
  s.value_name = o.value_name;
  s.row_labels = labels_or_indices(o.row_labels, s.rows, "row_labels", s.row_tokens);
  s.col_labels = labels_or_indices(o.col_labels, s.cols, "col_labels", s.col_tokens);
  s.values.reserve(static_cast<std::size_t>(s.rows * s.cols));
  for (int64_t i = 0; i < s.rows; ++i)
    s.values.insert(s.values.end(), values.row(i), values.row(i) + s.cols);
  if (!o.masked.empty()) {
    if (o.masked.shape() != values.shape())
      throw Error("masked", shape_string(values.shape()) + " as values",
                  shape_string(o.masked.shape()));
    for (int64_t i = 0; i < s.rows; ++i)
      for (int64_t j = 0; j < s.cols; ++j) s.masked.push_back(o.masked(i, j) ? 1 : 0);
  }
  s.colormap = o.colormap;
  set_scale(s, o.vmin, o.vmax, "vmin", "vmax");
  return s;
}

PanelStack mask_stack(const Mask& mask, const MaskShape& shape, const MaskPictureOptions& o) {
  if (shape.batch < 1 || shape.heads < 1 || shape.q_len < 1 || shape.k_len < 1)
    throw Error(
        "shape", "batch, heads, q_len and k_len >= 1",
        fmt::format("({}, {}, {}, {})", shape.batch, shape.heads, shape.q_len, shape.k_len));
  check_cells(checked_mul(shape.batch, shape.heads, "shape"), shape.q_len, shape.k_len, "shape");
  const BoundMask bound = mask.bind(shape);
  const int64_t rows = shape.q_len, cols = shape.k_len, cells = rows * cols;

  // All (b, h) matrices, then heads grouped: h joins the first group whose
  // head allows the same values for every batch element.
  std::vector<float> all(static_cast<std::size_t>(shape.batch * shape.heads * cells));
  const auto matrix = [&](int64_t b, int64_t h) {
    return all.data() + (b * shape.heads + h) * cells;
  };
  for (int64_t b = 0; b < shape.batch; ++b)
    for (int64_t h = 0; h < shape.heads; ++h)
      for (int64_t i = 0; i < rows; ++i)
        bound.row_values(b, h, i, 0, cols, matrix(b, h) + i * cols);
  std::vector<std::vector<int64_t>> groups;
  for (int64_t h = 0; h < shape.heads; ++h) {
    auto same = [&](int64_t g) {
      for (int64_t b = 0; b < shape.batch; ++b)
        if (!std::equal(matrix(b, g), matrix(b, g) + cells, matrix(b, h))) return false;
      return true;
    };
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const std::vector<int64_t>& grp) { return same(grp.front()); });
    if (it == groups.end())
      groups.push_back({h});
    else
      it->push_back(h);
  }

  PanelStack s;
  s.style = PanelStyle::Mask;
  s.title = o.title.empty() ? "mask = " + mask.describe() : o.title;
  s.row_axis = "query i";
  s.col_axis = "key j";
  s.value_name = "mask value";
  s.rows = rows;
  s.cols = cols;
  s.row_labels = labels_or_indices(o.query_labels, rows, "query_labels", s.row_tokens);
  s.col_labels = labels_or_indices(o.key_labels, cols, "key_labels", s.col_tokens);
  if (shape.batch > 1) s.selectors.push_back({"batch", index_labels(shape.batch)});
  if (groups.size() > 1) {
    Selector heads{"head", {}};
    for (const auto& g : groups) {
      // Consecutive heads as a range: "0..3"; others listed: "4,6".
      const bool run = g.back() - g.front() + 1 == static_cast<int64_t>(g.size());
      std::string label;
      if (g.size() == 1)
        label = std::to_string(g.front());
      else if (run)
        label = fmt::format("{}..{}", g.front(), g.back());
      else
        label = fmt::format("{}", fmt::join(g, ","));
      heads.labels.push_back(label);
    }
    s.selectors.push_back(std::move(heads));
  }
  for (int64_t b = 0; b < shape.batch; ++b)
    for (const auto& g : groups)
      s.values.insert(s.values.end(), matrix(b, g.front()), matrix(b, g.front()) + cells);
  s.masked.reserve(s.values.size());
  for (float x : s.values) s.masked.push_back(x == kNegInf ? 1 : 0);
  s.vmin = 0.0f;
  s.vmax = 1.0f;
  s.diagonal_offset = o.diagonal == Align::BottomRight ? cols - rows : 0;
  return s;
}

}  // namespace maskattn::viz::detail

namespace maskattn::viz {

std::vector<int64_t> default_encoding_dims(int64_t dim) {
  std::vector<int64_t> dims;
  if (dim < 8) {
    for (int64_t d = 0; d < std::min<int64_t>(dim, 4); ++d) dims.push_back(d);
    return dims;
  }
  for (int64_t k = 0; k < 4; ++k) {
    const int64_t d = (k * dim / 8) / 2 * 2;
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) dims.push_back(d);
  }
  return dims;
}

}  // namespace maskattn::viz

namespace maskattn::viz::detail {

PanelStack encoding_stack(View<const float, 2> pe, const EncodingPictureOptions& o) {
  if (pe.empty() || pe.size(0) < 1 || pe.size(1) < 1)
    throw Error("pe", "a (length, dim) encoding with length, dim >= 1",
                pe.empty() ? std::string("an absent view") : shape_string(pe.shape()));
  HeatmapOptions h;
  h.title = o.title.empty() ? fmt::format(
                                  "sinusoidal positional encoding ({} positions x {} "
                                  "dimensions)",
                                  pe.size(0), pe.size(1))
                            : o.title;
  h.row_axis = "position";
  h.col_axis = "dimension";
  h.value_name = "PE";
  h.colormap = Colormap::Diverging;
  PanelStack s = heatmap_stack(pe, h);
  s.curves = o.dims.empty() ? default_encoding_dims(pe.size(1)) : o.dims;
  for (std::size_t k = 0; k < s.curves.size(); ++k)
    if (s.curves[k] < 0 || s.curves[k] >= pe.size(1))
      throw Error(fmt::format("dims[{}]", k), fmt::format("a dimension in [0, {})", pe.size(1)),
                  std::to_string(s.curves[k]));
  return s;
}

PanelStack attention_stack(std::span<const View<const float, 4>> layers, const Mask& mask,
                           const AttentionPictureOptions& o) {
  if (layers.empty()) throw Error("layers", "at least one weights view (B, H, Lq, Lk)", "none");
  const std::array<int64_t, 4> shape = layers[0].shape();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string name = layers.size() == 1 ? "weights" : fmt::format("layers[{}]", l);
    if (layers[l].empty()) throw Error(name, "a weights view (B, H, Lq, Lk)", "an absent view");
    if (layers[l].shape() != shape)
      throw Error(name, shape_string(shape) + ", the shape of the first layer's weights",
                  shape_string(layers[l].shape()));
  }
  if (std::any_of(shape.begin(), shape.end(), [](int64_t x) { return x < 1; }))
    throw Error(layers.size() == 1 ? "weights" : "layers[0]", "(B, H, Lq, Lk) with every size >= 1",
                shape_string(shape));
  const int64_t nb = shape[0], nh = shape[1], rows = shape[2], cols = shape[3], cells = rows * cols;
  const std::vector<int64_t> ls =
                                 selection(o.layers, static_cast<int64_t>(layers.size()), "layers"),
                             bs = selection(o.batch, nb, "batch"),
                             hs = selection(o.heads, nh, "heads");
  const bool mean = o.mean && hs.size() > 1;
  const auto columns = static_cast<int64_t>(hs.size()) + (mean ? 1 : 0);
  check_cells(checked_mul(static_cast<int64_t>(ls.size() * bs.size()), columns, "weights"), rows,
              cols, "weights");
  if (o.vmax && !(std::isfinite(*o.vmax) && *o.vmax > 0.0f))
    throw Error("vmax", "a finite number > 0", fmt::format("{}", *o.vmax));
  const BoundMask bound = mask.bind({nb, nh, rows, cols});

  PanelStack s;
  s.title = o.title.empty() ? (mask.allows_all() ? std::string("attention weights")
                                                 : "attention weights under " + mask.describe())
                            : o.title;
  s.row_axis = "query";
  s.col_axis = "key";
  s.value_name = "weight";
  s.rows = rows;
  s.cols = cols;
  s.row_labels = labels_or_indices(o.query_labels, rows, "query_labels", s.row_tokens);
  s.col_labels = labels_or_indices(o.key_labels, cols, "key_labels", s.col_tokens);
  if (layers.size() > 1) s.selectors.push_back({"layer", labels_of(ls)});
  if (nb > 1) s.selectors.push_back({"batch", labels_of(bs)});
  if (nh > 1) {
    s.selectors.push_back({"head", labels_of(hs)});
    if (mean) s.selectors.back().labels.push_back("mean");
  }

  // The forbidden cells of each (batch element, head) drawn, and of all the
  // heads drawn (the mean panel's): the same for every layer, so found once.
  const auto nbs = static_cast<int64_t>(bs.size()), nhs = static_cast<int64_t>(hs.size());
  std::vector<uint8_t> forbidden(static_cast<std::size_t>(nbs * nhs * cells));
  std::vector<uint8_t> all_forbidden(static_cast<std::size_t>(nbs * cells), 1);
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (int64_t kb = 0; kb < nbs; ++kb)
    for (int64_t kh = 0; kh < nhs; ++kh)
      for (int64_t i = 0; i < rows; ++i) {
        bound.row_values(bs[static_cast<std::size_t>(kb)], hs[static_cast<std::size_t>(kh)], i, 0,
                         cols, row.data());
        for (int64_t j = 0; j < cols; ++j) {
          const uint8_t m = row[static_cast<std::size_t>(j)] == kNegInf ? 1 : 0;
          forbidden[static_cast<std::size_t>((kb * nhs + kh) * cells + i * cols + j)] = m;
          all_forbidden[static_cast<std::size_t>(kb * cells + i * cols + j)] &= m;
        }
      }

  std::vector<double> sum(static_cast<std::size_t>(cells));
  for (int64_t l : ls) {
    const View<const float, 4>& w = layers[static_cast<std::size_t>(l)];
    for (int64_t kb = 0; kb < nbs; ++kb) {
      const int64_t b = bs[static_cast<std::size_t>(kb)];
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t kh = 0; kh < nhs; ++kh) {
        const int64_t h = hs[static_cast<std::size_t>(kh)];
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j) {
            s.values.push_back(w(b, h, i, j));
            sum[static_cast<std::size_t>(i * cols + j)] += w(b, h, i, j);
          }
        const auto first = forbidden.begin() + (kb * nhs + kh) * cells;
        s.masked.insert(s.masked.end(), first, first + cells);
      }
      if (mean) {
        for (double x : sum) s.values.push_back(static_cast<float>(x / static_cast<double>(nhs)));
        const auto first = all_forbidden.begin() + kb * cells;
        s.masked.insert(s.masked.end(), first, first + cells);
      }
    }
  }
  // Default: the largest weight drawn; all zero (every row empty): 1.
  float hi = 0.0f;
  for (float x : s.values)
    if (std::isfinite(x)) hi = std::max(hi, x);
  s.vmin = 0.0f;
  s.vmax = o.vmax.value_or(hi > 0.0f ? hi : 1.0f);
  return s;
}

}  // namespace maskattn::viz::detail
