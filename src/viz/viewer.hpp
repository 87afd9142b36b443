// The interactive page of html.hpp: a PanelStack written as one JSON object
// into the page template src/viz/viewer.html (HTML, CSS and a small script
// that draws one panel at a time on a canvas). CMake compiles the template
// into the library, so writing a page needs no files at run time.
#pragma once

#include <string>
#include <string_view>

#include "viz/panels.hpp"

namespace maskattn::viz::detail {

// src/viz/viewer.html, verbatim (generated/viz_viewer_html.cpp, written by CMake).
extern const std::string_view kViewerTemplate;

// The word in the template that the data replaces, once: the text of
// <script type="application/json" id="data">.
inline constexpr std::string_view kViewerDataMarker = "MASKATTN_DATA";

// The stack as the JSON object the page reads (see viewer.html for the
// fields). Values are base64 of little-endian float32, forbidden cells base64
// of bytes; '<', '>' and '&' are written as \u escapes, so no text of the
// data (a token "</script>") can end the script element that holds it.
std::string viewer_json(const PanelStack& stack);

// The whole page: the template with the JSON in place of kViewerDataMarker.
std::string viewer_html(const PanelStack& stack);

}  // namespace maskattn::viz::detail
