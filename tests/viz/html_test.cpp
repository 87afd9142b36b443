// The HTML pages of viz/html.hpp without a browser: self-contained (nothing
// fetched from anywhere), the embedded JSON parses and decodes back to the
// PanelStack bit for bit, and no label text can end the script element that
// holds it. python/tests/test_viz_browser.py opens the pages in Chromium.
#include "maskattn/viz/html.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "throws_error.hpp"
#include "viz/panels.hpp"
#include "viz/viewer.hpp"

namespace maskattn::viz {
namespace {

using nlohmann::json;
using testing_errors::throws_error_naming;

constexpr float kInf = std::numeric_limits<float>::infinity();

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The text of <script type="application/json" id="data">, as the browser's
// HTML parser delimits it: up to the first "</script" (any case).
json page_data(const std::string& page) {
  const std::string open = R"(<script type="application/json" id="data">)";
  const std::size_t begin = page.find(open);
  EXPECT_NE(begin, std::string::npos);
  const std::size_t from = begin + open.size();
  const std::size_t end = lower(page).find("</script", from);
  EXPECT_NE(end, std::string::npos);
  return json::parse(page.substr(from, end - from));
}

// RFC 4648 base64, written here again so that the test does not trust the writer.
std::vector<uint8_t> unbase64(const std::string& text) {
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=')
      break;
    else {
      ADD_FAILURE() << "not base64: " << c;
      return out;
    }
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  EXPECT_EQ(text.size() % 4, 0u);
  return out;
}

// float32 bit patterns from little-endian bytes.
std::vector<uint32_t> float_bits(const std::vector<uint8_t>& bytes) {
  EXPECT_EQ(bytes.size() % 4, 0u);
  std::vector<uint32_t> bits(bytes.size() / 4);
  for (std::size_t i = 0; i < bits.size(); ++i)
    for (std::size_t b = 0; b < 4; ++b) bits[i] |= uint32_t{bytes[4 * i + b]} << (8 * b);
  return bits;
}

std::vector<uint32_t> float_bits(const std::vector<float>& values) {
  std::vector<uint32_t> bits;
  for (float x : values) bits.push_back(std::bit_cast<uint32_t>(x));
  return bits;
}

json rgb(Rgb c) { return json::array({c.r, c.g, c.b}); }

// Attention-like weights (B, H, Lq, Lk) = (2, 3, 4, 5): row sums of one,
// zeros where causal & key_lengths({5, 3}) forbids.
struct Weights {
  Tensor<float> t{2, 3, 4, 5};
  Mask mask = causal() & key_lengths(std::vector<int64_t>{5, 3});
  Weights() {
    const Tensor<float> m = mask.materialize(2, 3, 4, 5);
    for (int64_t k = 0; k < t.numel(); k += 5) {
      float sum = 0.0f;
      for (int64_t j = 0; j < 5; ++j) {
        const float w = m.data()[k + j] == -kInf ? 0.0f : static_cast<float>(1 + (k + j) % 7);
        t.data()[k + j] = w;
        sum += w;
      }
      for (int64_t j = 0; j < 5; ++j) t.data()[k + j] /= sum > 0.0f ? sum : 1.0f;
    }
  }
};

TEST(ViewerHtml, TemplateHasOneDataMarkerAndTheElementsTheBrowserTestsUse) {
  const std::string page(detail::kViewerTemplate);
  EXPECT_EQ(count(page, std::string(detail::kViewerDataMarker)), 1u);
  for (const char* id : {R"(id="heatmap")", R"(id="readout")", R"(id="zoom-in")",
                         R"(id="zoom-out")", R"(id="zoom-fit")", R"(id="curves")", R"(id="data")"})
    EXPECT_EQ(count(page, id), 1u) << id;
  EXPECT_NE(page.find(R"("select-" + )"), std::string::npos) << "the selectors' ids";
}

TEST(ViewerHtml, PageIsSelfContained) {
  const Weights w;
  AttentionPictureOptions o;
  o.query_labels = {"the", "cat", "sat", "down"};
  o.key_labels = {"<s>", "the", "cat", "sat", "down"};
  const std::string page = lower(attention_html(w.t.view<4>(), w.mask, o));
  ASSERT_EQ(page.rfind("<!doctype html>", 0), 0u);
  // Nothing to fetch: no URLs, no external scripts, styles, fonts or images.
  for (const char* banned : {"http://", "https://", "//cdn", "<link", "src=", "@import", "url(",
                             "@font-face", "<iframe", "<img", "fetch(", "xmlhttprequest"})
    EXPECT_EQ(page.find(banned), std::string::npos) << banned;
  // Exactly two scripts, both inline: the data and the viewer.
  EXPECT_EQ(count(page, "<script"), 2u);
  EXPECT_EQ(count(page, "</script"), 2u);
}

TEST(ViewerHtml, HeatmapJsonDecodesToTheStackBitForBit) {
  // Every kind of float: -inf, +inf, NaN, -0, a denormal, extremes, ordinary values.
  const std::vector<float> v{-kInf,
                             kInf,
                             std::numeric_limits<float>::quiet_NaN(),
                             -0.0f,
                             std::numeric_limits<float>::denorm_min(),
                             std::numeric_limits<float>::max(),
                             std::numeric_limits<float>::lowest(),
                             0.1f,
                             -1.2345678f,
                             3.0f,
                             0.0f,
                             1e-30f};
  const bool blocked[12] = {true,  false, false, false, true,  false,
                            false, false, false, false, false, true};
  HeatmapOptions o;
  o.title = "values";
  o.row_axis = "r";
  o.col_axis = "c";
  o.value_name = "v";
  o.masked = View<const bool, 2>(blocked, {3, 4});
  o.vmin = -2.0f;
  o.vmax = 0.1f;
  const View<const float, 2> values(v.data(), {3, 4});
  const detail::PanelStack s = detail::heatmap_stack(values, o);
  const json d = page_data(heatmap_html(values, o));

  EXPECT_EQ(d["title"], "values");
  EXPECT_EQ(d["row_axis"], "r");
  EXPECT_EQ(d["col_axis"], "c");
  EXPECT_EQ(d["value_name"], "v");
  EXPECT_EQ(d["rows"], 3);
  EXPECT_EQ(d["cols"], 4);
  EXPECT_EQ(d["style"], "heatmap");
  EXPECT_EQ(d["row_labels"], json({"0", "1", "2"}));
  EXPECT_EQ(d["row_tokens"], false);
  EXPECT_TRUE(d["selectors"].empty());
  EXPECT_EQ(d["panel_titles"], json({""}));
  EXPECT_EQ(float_bits(unbase64(d["values"])), float_bits(s.values));
  EXPECT_EQ(unbase64(d["masked"]), s.masked);
  // vmin and vmax as doubles: exactly the floats (0.1f is not 0.1).
  EXPECT_EQ(d["vmin"].get<double>(), static_cast<double>(s.vmin));
  EXPECT_EQ(d["vmax"].get<double>(), static_cast<double>(0.1f));
  json anchors = json::array();
  for (Rgb c : colormap_anchors(Colormap::Viridis)) anchors.push_back(rgb(c));
  EXPECT_EQ(d["colormap"], anchors);
  EXPECT_TRUE(d["diagonal_offset"].is_null());
  EXPECT_TRUE(d["curves"].empty());
  EXPECT_EQ(d["colors"]["masked"], rgb(kMaskedColor));
  EXPECT_EQ(d["colors"]["hatch"], rgb(kHatchColor));
  EXPECT_EQ(d["colors"]["nan"], rgb(kNanColor));
}

TEST(ViewerHtml, NoMaskedCellsGiveNull) {
  const std::vector<float> v{1, 2, 3, 4, 5};
  const json d = page_data(heatmap_html(View<const float, 2>(v.data(), {1, 5})));
  EXPECT_TRUE(d["masked"].is_null());
  EXPECT_EQ(float_bits(unbase64(d["values"])), float_bits(v));  // 20 bytes: base64 padding
}

TEST(ViewerHtml, AttentionJsonHasTheSelectorsPanelsAndForbiddenCells) {
  const Weights a, b;
  const std::vector<View<const float, 4>> layers{a.t.view<4>(), b.t.view<4>()};
  const detail::PanelStack s = detail::attention_stack(layers, a.mask, {});
  const json d = page_data(attention_html(layers, a.mask));
  ASSERT_EQ(d["selectors"].size(), 3u);
  EXPECT_EQ(d["selectors"][0]["name"], "layer");
  EXPECT_EQ(d["selectors"][1]["name"], "batch");
  EXPECT_EQ(d["selectors"][2]["name"], "head");
  EXPECT_EQ(d["selectors"][2]["labels"], json({"0", "1", "2", "mean"}));
  ASSERT_EQ(d["panel_titles"].size(), static_cast<std::size_t>(s.panel_count()));
  EXPECT_EQ(d["panel_titles"][1], s.panel_title(1));
  EXPECT_EQ(float_bits(unbase64(d["values"])), float_bits(s.values));
  EXPECT_EQ(unbase64(d["masked"]), s.masked);
  EXPECT_EQ(d["vmin"].get<double>(), static_cast<double>(s.vmin));
  EXPECT_EQ(d["vmax"].get<double>(), static_cast<double>(s.vmax));
}

TEST(ViewerHtml, MaskJsonHasMaskStyleAndTheDiagonal) {
  MaskPictureOptions o;
  o.diagonal = Align::BottomRight;
  const Mask m = causal(Align::BottomRight) & key_lengths(std::vector<int64_t>{6, 4});
  const MaskShape shape{2, 1, 3, 6};
  const detail::PanelStack s = detail::mask_stack(m, shape, o);
  const json d = page_data(mask_html(m, shape, o));
  EXPECT_EQ(d["style"], "mask");
  EXPECT_EQ(d["diagonal_offset"], 3);
  EXPECT_EQ(d["selectors"][0]["name"], "batch");
  EXPECT_EQ(d["colors"]["allowed"], rgb(kAllowedColor));
  EXPECT_EQ(d["colors"]["diagonal"], rgb(kDiagonalColor));
  EXPECT_EQ(float_bits(unbase64(d["values"])), float_bits(s.values));  // -inf where masked
  EXPECT_EQ(unbase64(d["masked"]), s.masked);
}

TEST(ViewerHtml, EncodingJsonHasTheCurves) {
  std::vector<float> pe(12 * 16);
  for (std::size_t k = 0; k < pe.size(); ++k) pe[k] = std::sin(static_cast<float>(k));
  const json d = page_data(encoding_html(View<const float, 2>(pe.data(), {12, 16})));
  EXPECT_EQ(d["curves"].get<std::vector<int64_t>>(), default_encoding_dims(16));
  json anchors = json::array();
  for (Rgb c : colormap_anchors(Colormap::Diverging)) anchors.push_back(rgb(c));
  EXPECT_EQ(d["colormap"], anchors);
  EXPECT_EQ(float_bits(unbase64(d["values"])), float_bits(pe));
}

TEST(ViewerHtml, LabelsCannotEndTheScriptElement) {
  const Weights w;
  AttentionPictureOptions o;
  o.query_labels = {"</script>", "</SCRIPT >", "<!--", "<script>"};
  o.key_labels = {"&amp;", "]]>", "\"quoted\"", "back\\slash", "\xe2\x80\xa8"};  // U+2028
  o.title = "<b>title</b></script><script>alert(1)</script>";
  const std::string page = attention_html(w.t.view<4>(), w.mask, o);
  EXPECT_EQ(count(lower(page), "</script"), 2u);
  EXPECT_EQ(count(lower(page), "<!--"), count(lower(std::string(detail::kViewerTemplate)), "<!--"));
  const json d = page_data(page);
  EXPECT_EQ(d["row_labels"].get<std::vector<std::string>>(), o.query_labels);
  EXPECT_EQ(d["col_labels"].get<std::vector<std::string>>(), o.key_labels);
  EXPECT_EQ(d["row_tokens"], true);
  EXPECT_EQ(d["title"], o.title);
}

TEST(ViewerHtml, LabelsThatAreNotUtf8AreReplacedNotThrown) {
  const std::vector<float> v{1, 2};
  HeatmapOptions o;
  o.col_labels = {"ok", "bad\xff"};
  const json d = page_data(heatmap_html(View<const float, 2>(v.data(), {1, 2}), o));
  EXPECT_EQ(d["col_labels"][1], "bad\xef\xbf\xbd");  // U+FFFD
}

TEST(ViewerHtml, ArgumentsAreCheckedAsForThePictures) {
  EXPECT_TRUE(throws_error_naming([] { heatmap_html(View<const float, 2>()); }, "values"));
  std::vector<float> pe(4 * 8);
  EncodingPictureOptions o;
  o.dims = {9};
  EXPECT_TRUE(throws_error_naming(
      [&] {
        encoding_html(View<const float, 2>(pe.data(), {4, 8}), o);
      },
      "dims[0]"));
  const Weights w;
  AttentionPictureOptions a;
  a.query_labels = {"one"};
  EXPECT_TRUE(
      throws_error_naming([&] { attention_html(w.t.view<4>(), w.mask, a); }, "query_labels"));
}

}  // namespace
}  // namespace maskattn::viz
