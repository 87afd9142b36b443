// maskattn.viz: the pictures of viz/pictures.hpp as PNG bytes and of
// viz/html.hpp as HTML text (python/maskattn/viz.py re-exports them and adds
// show(), which draws a PNG with matplotlib when it is installed).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/io/png.hpp"
#include "maskattn/viz/html.hpp"
#include "maskattn/viz/pictures.hpp"

namespace maskattn::python {
namespace {

using Labels = std::optional<std::vector<std::string>>;
using Indices = std::optional<std::vector<int64_t>>;

nb::object to_python(std::vector<uint8_t>&& png) {
  return nb::bytes(reinterpret_cast<const char*>(png.data()), png.size());
}
nb::object to_python(std::string&& html) { return nb::str(html.data(), html.size()); }

// f(args) with the GIL released, its result converted with the GIL held.
template <class F, class A>
nb::object compute(F f, const A& args) {
  decltype(f(args)) out;
  {
    nb::gil_scoped_release release;
    out = f(args);
  }
  return to_python(std::move(out));
}

// A float array of rank N read as float32: in place when it is float32 (the
// array kept alive), else converted (float64, integers) into `copy`. Error
// naming `name` and `dims` for another rank or a bool array.
template <int N>
struct FloatArg {
  ArrayArg array;
  Tensor<float> copy;
  View<const float, N> view;
};

template <int N>
FloatArg<N> read_floats(nb::handle obj, std::string_view name, std::string_view dims) {
  const std::string want = fmt::format("a float array of rank {} {}", N, dims);
  FloatArg<N> a{read_array(obj, name, want), {}, {}};
  if (a.array.view.rank() != N || a.array.view.dtype == DType::Bool)
    throw Error(name, want, a.array.view.describe());
  if (a.array.view.dtype == DType::Float32) {
    a.view = float32_view<N>(a.array, name, dims);
  } else {
    a.copy = to_float32(a.array.view);
    a.view = a.copy.template view<N>();
  }
  return a;
}

// ---- the arguments each picture takes, as the C++ options ----------------------

struct MaskArgs {
  Mask mask;
  MaskShape shape;
  viz::MaskPictureOptions options;
};

MaskArgs mask_args(const Mask* mask, int64_t batch, int64_t heads, int64_t q_len, int64_t k_len,
                   Labels query_labels, Labels key_labels, const std::string& diagonal,
                   std::string title) {
  MaskArgs a;
  if (mask != nullptr) a.mask = *mask;
  a.shape = {batch, heads, q_len, k_len};
  a.options.query_labels = query_labels.value_or(std::vector<std::string>{});
  a.options.key_labels = key_labels.value_or(std::vector<std::string>{});
  a.options.diagonal = read_choice<Align>(
      "diagonal", diagonal, {{"top_left", Align::TopLeft}, {"bottom_right", Align::BottomRight}});
  a.options.title = std::move(title);
  return a;
}

struct EncodingArgs {
  FloatArg<2> pe;
  viz::EncodingPictureOptions options;
};

EncodingArgs encoding_args(nb::handle pe, Indices dims, std::string title) {
  EncodingArgs a{read_floats<2>(pe, "pe", "(length, dim)"), {}};
  a.options.dims = dims.value_or(std::vector<int64_t>{});
  a.options.title = std::move(title);
  return a;
}

struct AttentionArgs {
  std::vector<FloatArg<4>> layers;
  std::vector<View<const float, 4>> views;
  Mask mask;
  viz::AttentionPictureOptions options;
};

AttentionArgs attention_args(nb::handle weights, const Mask* mask, Labels query_labels,
                             Labels key_labels, Indices layers, Indices batch, Indices heads,
                             bool mean, std::optional<float> vmax, std::string title) {
  AttentionArgs a;
  // One array (B, H, Lq, Lk), or a list / tuple of them (one per layer).
  if (nb::isinstance<nb::list>(weights) || nb::isinstance<nb::tuple>(weights)) {
    std::size_t l = 0;
    for (nb::handle w : weights)
      a.layers.push_back(read_floats<4>(w, fmt::format("weights[{}]", l++), "(B, H, Lq, Lk)"));
    if (a.layers.empty())
      throw Error("weights", "an array (B, H, Lq, Lk) or a list of them", "an empty list");
  } else {
    a.layers.push_back(read_floats<4>(weights, "weights", "(B, H, Lq, Lk)"));
  }
  for (const FloatArg<4>& w : a.layers) a.views.push_back(w.view);
  if (mask != nullptr) a.mask = *mask;
  viz::AttentionPictureOptions& o = a.options;
  o.query_labels = query_labels.value_or(std::vector<std::string>{});
  o.key_labels = key_labels.value_or(std::vector<std::string>{});
  o.layers = layers.value_or(std::vector<int64_t>{});
  o.batch = batch.value_or(std::vector<int64_t>{});
  o.heads = heads.value_or(std::vector<int64_t>{});
  o.mean = mean;
  o.vmax = vmax;
  o.title = std::move(title);
  return a;
}

// The C++ names a list of layers "layers[i]"; here it is weights[i].
template <class F>
decltype(auto) with_weights_names(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const Error& e) {
    std::string arg = e.argument();
    if (arg.starts_with("layers[")) arg.replace(0, 6, "weights");
    throw Error(arg, e.expected(), e.actual());
  }
}

struct HeatmapArgs {
  FloatArg<2> values;
  Tensor<bool> masked;
  viz::HeatmapOptions options;
};

HeatmapArgs heatmap_args(nb::handle values, std::string title, std::string row_axis,
                         std::string col_axis, std::string value_name, Labels row_labels,
                         Labels col_labels, const std::string& colormap, std::optional<float> vmin,
                         std::optional<float> vmax, nb::handle masked) {
  HeatmapArgs a{read_floats<2>(values, "values", "(rows, cols)"), {}, {}};
  viz::HeatmapOptions& o = a.options;
  o.title = std::move(title);
  o.row_axis = std::move(row_axis);
  o.col_axis = std::move(col_axis);
  o.value_name = std::move(value_name);
  o.row_labels = row_labels.value_or(std::vector<std::string>{});
  o.col_labels = col_labels.value_or(std::vector<std::string>{});
  o.colormap = read_choice<viz::Colormap>(
      "colormap", colormap,
      {{"viridis", viz::Colormap::Viridis}, {"diverging", viz::Colormap::Diverging}});
  o.vmin = vmin;
  o.vmax = vmax;
  if (!masked.is_none()) {
    const ArrayArg m = read_array(masked, "masked", "a bool array (rows, cols)");
    if (m.view.rank() != 2 || m.view.dtype != DType::Bool)
      throw Error("masked", "a bool array (rows, cols)", m.view.describe());
    a.masked = Tensor<bool>(m.view.shape);
    int64_t n = 0;
    for_each_index(m.view.shape, [&](std::span<const int64_t> i) {
      a.masked.data()[n++] = m.view.at_int(i) != 0;
    });
    o.masked = a.masked.view<2>();
  }
  return a;
}

constexpr const char* kMaskDoc =
    R"(A picture of `mask` over (batch, heads, q_len, k_len): one panel per batch
element (and per group of heads that allow different pairs), may attend (blue)
vs masked (light grey), the cells of the diagonal outlined (key j == query i,
or j == i + k_len - q_len with diagonal="bottom_right", as causal() aligns), positions or the
given labels (tokens, one per query / key) on the axes. mask None: every pair
allowed. ValueError naming the argument for a mask that does not fit the shape
or labels of the wrong count.)";
constexpr const char* kEncodingDoc =
    R"(A picture of a positional encoding pe (length, dim), as sinusoidal_encoding()
gives: a heatmap (position x dimension) in diverging colours (blue negative,
red positive) with a colour bar, above curves of the columns `dims` against
position (default: four sine columns, 0, dim/8, dim/4, 3 dim/8).)";
constexpr const char* kAttentionDoc =
    R"(A picture of attention weights: `weights` is one array (B, H, Lq, Lk), as
attention(..., need_weights=True) returns, or a list of them (one per layer,
as BertModel(..., output_attentions=True) gives). One row of panels per
(layer, batch element), one column per head and one for the mean over the
heads (mean=True); viridis colours from 0 to vmax (default: the largest
weight drawn), a colour bar; the cells `mask` forbids are hatched grey, so
you see at once that no weight lands there. layers / batch / heads select
what is drawn (default: all); query_labels / key_labels label the axes
(tokens).)";
constexpr const char* kHeatmapDoc =
    R"(A picture of any matrix values (rows, cols): colormap "viridis" or "diverging"
(symmetric around 0) over [vmin, vmax] (default: the finite values' range),
a colour bar named value_name, axis names and tick labels (default: indices);
cells where `masked` (bool, same shape) is True are hatched grey.)";

template <class Out>
void def_pictures(nb::module_& viz, const char* suffix, const char* returns,
                  Out (*mask_out)(const MaskArgs&), Out (*encoding_out)(const EncodingArgs&),
                  Out (*attention_out)(const AttentionArgs&),
                  Out (*heatmap_out)(const HeatmapArgs&)) {
  const auto doc = [returns](const char* text) { return fmt::format("{}\n\n{}", text, returns); };
  viz.def(
      fmt::format("mask_{}", suffix).c_str(),
      [mask_out](nb::handle mask_obj, int64_t batch, int64_t heads, int64_t q_len, int64_t k_len,
                 Labels query_labels, Labels key_labels, const std::string& diagonal,
                 std::string title) {
        // A raw array is a ValueError saying which adapter to use, as in attention().
        const Mask mask = read_mask(mask_obj, "mask");
        return compute(mask_out,
                       mask_args(&mask, batch, heads, q_len, k_len, std::move(query_labels),
                                 std::move(key_labels), diagonal, std::move(title)));
      },
      "mask"_a.none(), "batch"_a, "heads"_a, "q_len"_a, "k_len"_a, nb::kw_only(),
      "query_labels"_a = nb::none(), "key_labels"_a = nb::none(), "diagonal"_a = "top_left",
      "title"_a = "", doc(kMaskDoc).c_str());
  viz.def(
      fmt::format("encoding_{}", suffix).c_str(),
      [encoding_out](nb::handle pe, Indices dims, std::string title) {
        return compute(encoding_out, encoding_args(pe, std::move(dims), std::move(title)));
      },
      "pe"_a, nb::kw_only(), "dims"_a = nb::none(), "title"_a = "", doc(kEncodingDoc).c_str());
  viz.def(
      fmt::format("attention_{}", suffix).c_str(),
      [attention_out](nb::handle weights, nb::handle mask_obj, Labels query_labels,
                      Labels key_labels, Indices layers, Indices batch, Indices heads, bool mean,
                      std::optional<float> vmax, std::string title) {
        const Mask mask = read_mask(mask_obj, "mask");
        const AttentionArgs a = attention_args(
            weights, &mask, std::move(query_labels), std::move(key_labels), std::move(layers),
            std::move(batch), std::move(heads), mean, vmax, std::move(title));
        return with_weights_names([&] { return compute(attention_out, a); });
      },
      "weights"_a, "mask"_a.none() = nb::none(), nb::kw_only(), "query_labels"_a = nb::none(),
      "key_labels"_a = nb::none(), "layers"_a = nb::none(), "batch"_a = nb::none(),
      "heads"_a = nb::none(), "mean"_a = true, "vmax"_a = nb::none(), "title"_a = "",
      doc(kAttentionDoc).c_str());
  viz.def(
      fmt::format("heatmap_{}", suffix).c_str(),
      [heatmap_out](nb::handle values, std::string title, std::string row_axis,
                    std::string col_axis, std::string value_name, Labels row_labels,
                    Labels col_labels, const std::string& colormap, std::optional<float> vmin,
                    std::optional<float> vmax, nb::handle masked) {
        return compute(heatmap_out, heatmap_args(values, std::move(title), std::move(row_axis),
                                                 std::move(col_axis), std::move(value_name),
                                                 std::move(row_labels), std::move(col_labels),
                                                 colormap, vmin, vmax, masked));
      },
      "values"_a, nb::kw_only(), "title"_a = "", "row_axis"_a = "row", "col_axis"_a = "column",
      "value_name"_a = "value", "row_labels"_a = nb::none(), "col_labels"_a = nb::none(),
      "colormap"_a = "viridis", "vmin"_a = nb::none(), "vmax"_a = nb::none(),
      "masked"_a = nb::none(), doc(kHeatmapDoc).c_str());
}

// The pictures as PNG files' bytes and as HTML text.
std::vector<uint8_t> mask_png(const MaskArgs& a) {
  return encode_png(viz::mask_picture(a.mask, a.shape, a.options));
}
std::vector<uint8_t> encoding_png(const EncodingArgs& a) {
  return encode_png(viz::encoding_picture(a.pe.view, a.options));
}
std::vector<uint8_t> attention_png(const AttentionArgs& a) {
  return encode_png(viz::attention_picture(a.views, a.mask, a.options));
}
std::vector<uint8_t> heatmap_png(const HeatmapArgs& a) {
  return encode_png(viz::heatmap_picture(a.values.view, a.options));
}
std::string mask_html(const MaskArgs& a) { return viz::mask_html(a.mask, a.shape, a.options); }
std::string encoding_html(const EncodingArgs& a) {
  return viz::encoding_html(a.pe.view, a.options);
}
std::string attention_html(const AttentionArgs& a) {
  return viz::attention_html(a.views, a.mask, a.options);
}
std::string heatmap_html(const HeatmapArgs& a) {
  return viz::heatmap_html(a.values.view, a.options);
}

}  // namespace

void bind_viz(nb::module_& m) {
  nb::module_ viz = m.def_submodule(
      "viz",
      "Pictures of masks, positional encodings and attention weights: *_png functions\n"
      "return PNG bytes, *_html functions a self-contained interactive HTML page.");
  def_pictures<std::vector<uint8_t>>(viz, "png", "Returns the PNG file's bytes.", &mask_png,
                                     &encoding_png, &attention_png, &heatmap_png);
  def_pictures<std::string>(
      viz, "html",
      "Returns one self-contained HTML page (str): selectors, hover read-out, zoom; no\n"
      "network access. Write it to a .html file and open it in a browser.",
      &mask_html, &encoding_html, &attention_html, &heatmap_html);
}

}  // namespace maskattn::python
