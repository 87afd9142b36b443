// `maskattn viz mask | pe | attention`: pictures of masks, positional
// encodings and attention weights as PNG or self-contained HTML files.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "app.hpp"
#include "maskattn/viz/pictures.hpp"

namespace maskattn::cli {

// Registers the `viz` subcommand and its three subcommands on app (Mode:
// app.hpp).
void add_viz_command(CLI::App& app, Mode mode);

// Writes `image` to `path` and says so on stdout: "wrote mask.png (640 x 402)".
void write_png_file(const std::string& path, const viz::Image& image);
// Writes `html` to `path` (replaced if it exists); Error naming the file when
// it cannot be written.
void save_html(const std::string& path, const std::string& html);
// save_html, and says so: "wrote attention.html (212 KiB)".
void write_html_file(const std::string& path, const std::string& html);

}  // namespace maskattn::cli
