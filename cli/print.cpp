#include "print.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace maskattn::cli {
namespace {

// Terminal columns of a UTF-8 string: one per code point (continuation bytes
// 10xxxxxx do not count), so "█" is 1 wide, not 3.
std::size_t display_width(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string pad_left(std::string_view s, std::size_t width) {
  const std::size_t w = display_width(s);
  return std::string(width > w ? width - w : 0, ' ') + std::string(s);
}

std::string pad_right(std::string_view s, std::size_t width) {
  const std::size_t w = display_width(s);
  return std::string(s) + std::string(width > w ? width - w : 0, ' ');
}

// A (rows, cols) table of cells, right-aligned in equal columns, with
// "<col>:" indices on top and "<row>=i" down the left side; one string per line.
std::vector<std::string> table_lines(int64_t rows, int64_t cols,
                                     const std::function<std::string(int64_t, int64_t)>& cell,
                                     Axes axes) {
  std::vector<std::string> cells;
  cells.reserve(static_cast<std::size_t>(rows * cols));
  std::size_t width = std::to_string(std::max<int64_t>(cols - 1, 0)).size();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      cells.push_back(cell(i, j));
      width = std::max(width, display_width(cells.back()));
    }
  const std::size_t label =
      std::max(display_width(axes.col) + 1,
               display_width(axes.row) + 1 + std::to_string(std::max<int64_t>(rows - 1, 0)).size());
  std::vector<std::string> lines;
  std::string line = pad_left(fmt::format("{}:", axes.col), label);
  for (int64_t j = 0; j < cols; ++j) line += " " + pad_left(std::to_string(j), width);
  lines.push_back(line);
  for (int64_t i = 0; i < rows; ++i) {
    line = pad_left(fmt::format("{}={}", axes.row, i), label);
    for (int64_t j = 0; j < cols; ++j)
      line += " " + pad_left(cells[static_cast<std::size_t>(i * cols + j)], width);
    lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> allowed_lines(View<const float, 2> additive, Glyphs glyphs, Axes axes) {
  return table_lines(
      additive.size(0), additive.size(1),
      [&](int64_t i, int64_t j) {
        const float x = additive(i, j);
        return std::string(std::isinf(x) && x < 0 ? glyphs.no : glyphs.yes);
      },
      axes);
}

void print_lines(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) fmt::print("  {}\n", line);
}

}  // namespace

std::string format_number(float x, int precision) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  return fmt::format("{:.{}f}", x, precision);
}

void print_grid(View<const bool, 2> m, Glyphs glyphs, Axes axes) {
  print_lines(table_lines(
      m.size(0), m.size(1),
      [&](int64_t i, int64_t j) { return std::string(m(i, j) ? glyphs.yes : glyphs.no); }, axes));
}

void print_allowed(View<const float, 2> additive, Glyphs glyphs, Axes axes) {
  print_lines(allowed_lines(additive, glyphs, axes));
}

void print_allowed_side_by_side(std::span<const View<const float, 2>> additive,
                                std::span<const std::string> titles, Glyphs glyphs, Axes axes) {
  constexpr std::size_t kGap = 4;
  std::vector<std::string> out(1);
  std::size_t used = 0;  // columns taken by the blocks so far
  for (std::size_t k = 0; k < additive.size(); ++k) {
    const std::vector<std::string> block = allowed_lines(additive[k], glyphs, axes);
    std::size_t width = k < titles.size() ? display_width(titles[k]) : 0;
    for (const std::string& line : block) width = std::max(width, display_width(line));
    const bool last = k + 1 == additive.size();
    auto cell = [&](std::string_view s) {
      return last ? std::string(s) : pad_right(s, width + kGap);
    };
    out.resize(std::max(out.size(), block.size() + 1), std::string(used, ' '));
    out[0] += cell(k < titles.size() ? titles[k] : "");
    for (std::size_t r = 0; r + 1 < out.size(); ++r)
      out[r + 1] += cell(r < block.size() ? block[r] : "");
    used += width + kGap;
  }
  print_lines(out);
}

void print_matrix(View<const float, 2> m, int precision, Axes axes) {
  print_lines(table_lines(
      m.size(0), m.size(1), [&](int64_t i, int64_t j) { return format_number(m(i, j), precision); },
      axes));
}

View<const float, 2> slice(const Tensor<float>& t, int64_t b, int64_t h) {
  const int64_t heads = t.size(1), rows = t.size(2), cols = t.size(3);
  return View<const float, 2>(t.data() + ((b * heads + h) * rows) * cols, {rows, cols});
}

}  // namespace maskattn::cli
