#include "viz/viewer.hpp"

#include <bit>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

namespace maskattn::viz::detail {
namespace {

// RFC 4648 base64 with '=' padding: what the page's atob() decodes.
std::string base64(std::span<const uint8_t> bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t n = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8 | bytes[i + 2];
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    const uint32_t n = uint32_t{bytes[i]} << 16 | (rest == 2 ? uint32_t{bytes[i + 1]} << 8 : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// float32 bits, little-endian whatever the host: -inf and NaN survive as they are.
std::string base64_floats(std::span<const float> values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto bits = std::bit_cast<uint32_t>(values[i]);
    for (std::size_t b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<uint8_t>(bits >> (8 * b));
  }
  return base64(bytes);
}

nlohmann::json rgb(Rgb c) { return nlohmann::json::array({c.r, c.g, c.b}); }

}  // namespace

std::string viewer_json(const PanelStack& s) {
  nlohmann::json j;
  j["title"] = s.title;
  j["row_axis"] = s.row_axis;
  j["col_axis"] = s.col_axis;
  j["value_name"] = s.value_name;
  j["row_labels"] = s.row_labels;
  j["col_labels"] = s.col_labels;
  j["row_tokens"] = s.row_tokens;
  j["col_tokens"] = s.col_tokens;
  j["rows"] = s.rows;
  j["cols"] = s.cols;
  j["selectors"] = nlohmann::json::array();
  for (const Selector& sel : s.selectors)
    j["selectors"].push_back({{"name", sel.name}, {"labels", sel.labels}});
  j["panel_titles"] = nlohmann::json::array();
  for (int64_t p = 0; p < s.panel_count(); ++p) j["panel_titles"].push_back(s.panel_title(p));
  j["values"] = base64_floats(s.values);
  j["masked"] = s.masked.empty() ? nlohmann::json(nullptr) : nlohmann::json(base64(s.masked));
  j["style"] = s.style == PanelStyle::Mask ? "mask" : "heatmap";
  j["colormap"] = nlohmann::json::array();
  for (Rgb c : colormap_anchors(s.colormap)) j["colormap"].push_back(rgb(c));
  // As doubles: the exact float values, so the page's t = (x - vmin) / (vmax -
  // vmin) is the PNG renderer's to the last bit.
  j["vmin"] = static_cast<double>(s.vmin);
  j["vmax"] = static_cast<double>(s.vmax);
  j["diagonal_offset"] =
      s.diagonal_offset ? nlohmann::json(*s.diagonal_offset) : nlohmann::json(nullptr);
  j["curves"] = s.curves;
  j["curve_colors"] = nlohmann::json::array();
  for (const Rgb& c : kCurveColors) j["curve_colors"].push_back(rgb(c));
  j["colors"] = {{"allowed", rgb(kAllowedColor)},
                 {"masked", rgb(kMaskedColor)},
                 {"diagonal", rgb(kDiagonalColor)},
                 {"hatch", rgb(kHatchColor)},
                 {"nan", rgb(kNanColor)}};
  // Labels are user text: bytes that are not UTF-8 become U+FFFD instead of an exception.
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // '<', '>' and '&' occur only inside JSON strings, where \u escapes mean the
  // same: nothing like "</script>" or "<!--" reaches the HTML parser.
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<': out += "\\u003c"; break;
      case '>': out += "\\u003e"; break;
      case '&': out += "\\u0026"; break;
      default: out += c;
    }
  }
  return out;
}

std::string viewer_html(const PanelStack& stack) {
  // Exactly one marker: tests/viz/html_test.cpp checks the template.
  const std::size_t at = kViewerTemplate.find(kViewerDataMarker);
  const std::string json = viewer_json(stack);
  std::string page;
  page.reserve(kViewerTemplate.size() + json.size());
  page += kViewerTemplate.substr(0, at);
  page += json;
  page += kViewerTemplate.substr(at + kViewerDataMarker.size());
  return page;
}

}  // namespace maskattn::viz::detail
