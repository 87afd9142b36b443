// Mask, BoundMask: combining parts, binding, classification, materialize.
#include "maskattn/mask.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>

#include "mask/mask_part.hpp"

namespace maskattn {

namespace detail {

TileClass classify_band(int64_t lo, int64_t hi, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
  const int64_t dmin = k0 - (q1 - 1);
  const int64_t dmax = (k1 - 1) - q0;
  if (dmax < lo || dmin > hi) return TileClass::Empty;
  if (dmin >= lo && dmax <= hi) return TileClass::Full;
  return TileClass::Partial;
}

}  // namespace detail

Mask::Mask(std::shared_ptr<const detail::MaskPart> part) { parts_.push_back(std::move(part)); }

Mask operator&(const Mask& a, const Mask& b) {
  Mask r = a;
  r &= b;
  return r;
}

Mask& Mask::operator&=(const Mask& other) {
  parts_.insert(parts_.end(), other.parts_.begin(), other.parts_.end());
  return *this;
}

std::string Mask::describe() const {
  if (parts_.empty()) return "all";
  std::string s;
  for (const auto& p : parts_) {
    if (!s.empty()) s += " & ";
    s += p->describe();
  }
  return s;
}

namespace detail {
void check_align(Align align, std::string_view argument) {
  if (align != Align::TopLeft && align != Align::BottomRight)
    throw Error(argument, "Align::TopLeft or Align::BottomRight",
                std::to_string(static_cast<int>(align)));
}
}  // namespace detail

BoundMask Mask::bind(const MaskShape& shape) const {
  if (shape.batch < 0 || shape.heads < 0 || shape.q_len < 0 || shape.k_len < 0)
    throw Error(
        "mask shape", "non-negative (B, H, Lq, Lk)",
        fmt::format("({}, {}, {}, {})", shape.batch, shape.heads, shape.q_len, shape.k_len));
  BoundMask bound;
  bound.shape_ = shape;
  for (const auto& p : parts_) {
    bound.parts_.push_back(p->bind(shape));
    bound.has_bias_ = bound.has_bias_ || bound.parts_.back()->has_bias();
  }
  return bound;
}

namespace {

// index in [0, size): else Error naming it (what BoundMask's callers pass is
// the caller's input: a position outside the bound shape would read past the
// parts' data).
void check_index(int64_t index, int64_t size, const char* name, const MaskShape& s) {
  if (index < 0 || index >= size)
    throw Error(name,
                fmt::format("an index in [0, {}) of the bound (B, H, Lq, Lk) = ({}, {}, {}, {})",
                            size, s.batch, s.heads, s.q_len, s.k_len),
                std::to_string(index));
}

// 0 <= begin <= end <= size.
void check_range(int64_t begin, int64_t end, int64_t size, const char* name) {
  if (begin < 0 || begin > end || end > size)
    throw Error(name, fmt::format("0 <= begin <= end <= {}", size),
                fmt::format("[{}, {})", begin, end));
}

}  // namespace

TileClass BoundMask::classify(int64_t b, int64_t h, int64_t q_begin, int64_t q_end, int64_t k_begin,
                              int64_t k_end) const {
  check_index(b, shape_.batch, "b", shape_);
  check_index(h, shape_.heads, "h", shape_);
  q_begin = std::max<int64_t>(q_begin, 0);
  k_begin = std::max<int64_t>(k_begin, 0);
  q_end = std::min(q_end, shape_.q_len);
  k_end = std::min(k_end, shape_.k_len);
  if (q_begin >= q_end || k_begin >= k_end) return TileClass::Empty;
  int partial = 0;
  for (const auto& p : parts_) {
    switch (p->classify(b, h, q_begin, q_end, k_begin, k_end)) {
      case TileClass::Empty: return TileClass::Empty;
      case TileClass::Partial: ++partial; break;
      case TileClass::Full: break;
    }
  }
  if (partial == 0) return TileClass::Full;
  // One partial part decides alone (the others allow everything). Several
  // partial parts may still exclude each other everywhere: look for one
  // element they all allow, a row chunk at a time (a tile may be as wide as
  // int64 allows: no buffer of its width). Not Full either way: a partial
  // part masks one.
  if (partial == 1) return TileClass::Partial;
  constexpr int64_t kChunk = 256;
  std::array<float, kChunk> chunk;
  for (int64_t i = q_begin; i < q_end; ++i)
    for (int64_t k0 = k_begin, n = 0; k0 < k_end; k0 += n) {
      n = std::min(kChunk, k_end - k0);  // k0 + kChunk may overflow
      row_values(b, h, i, k0, k0 + n, chunk.data());
      for (int64_t x = 0; x < n; ++x)
        if (chunk[static_cast<std::size_t>(x)] != -std::numeric_limits<float>::infinity())
          return TileClass::Partial;
    }
  return TileClass::Empty;
}

void BoundMask::row_values(int64_t b, int64_t h, int64_t i, int64_t k_begin, int64_t k_end,
                           float* out) const {
  check_index(b, shape_.batch, "b", shape_);
  check_index(h, shape_.heads, "h", shape_);
  check_index(i, shape_.q_len, "i", shape_);
  check_range(k_begin, k_end, shape_.k_len, "k_begin, k_end");
  std::fill(out, out + (k_end - k_begin), 0.0f);
  for (const auto& p : parts_) p->apply_row(b, h, i, k_begin, k_end, out);
}

void BoundMask::tile_values(int64_t b, int64_t h, int64_t q_begin, int64_t q_end, int64_t k_begin,
                            int64_t k_end, float* out, int64_t ld) const {
  check_index(b, shape_.batch, "b", shape_);
  check_index(h, shape_.heads, "h", shape_);
  check_range(q_begin, q_end, shape_.q_len, "q_begin, q_end");
  check_range(k_begin, k_end, shape_.k_len, "k_begin, k_end");
  const int64_t nq = q_end - q_begin;
  if (ld < nq) throw Error("ld", fmt::format("ld >= q_end - q_begin = {}", nq), std::to_string(ld));
  for (int64_t j = k_begin; j < k_end; ++j) std::fill_n(out + (j - k_begin) * ld, nq, 0.0f);
  for (const auto& p : parts_) p->apply_tile(b, h, q_begin, q_end, k_begin, k_end, out, ld);
}

float BoundMask::value(int64_t b, int64_t h, int64_t i, int64_t j) const {
  check_index(j, shape_.k_len, "j", shape_);
  float x = 0.0f;
  row_values(b, h, i, j, j + 1, &x);
  return x;
}

bool BoundMask::allowed(int64_t b, int64_t h, int64_t i, int64_t j) const {
  return value(b, h, i, j) != -std::numeric_limits<float>::infinity();
}

Tensor<float> Mask::materialize(int64_t batch, int64_t heads, int64_t q_len, int64_t k_len) const {
  const BoundMask bound = bind({batch, heads, q_len, k_len});
  checked_numel(std::array<int64_t, 4>{batch, heads, q_len, k_len}, "mask shape");
  Tensor<float> out({batch, heads, q_len, k_len});
  View<float, 4> o = out.view<4>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < q_len; ++i) bound.row_values(b, h, i, 0, k_len, o.row(b, h, i));
  return out;
}

}  // namespace maskattn
