// Sequences as rows (internal). A module's 3-D activations — (L, N, E), or
// (N, L, E) with batch_first — are token rows to every per-token operation
// (Linear, LayerNorm, feed-forward): a (L*N, E) matrix in memory order. Only
// attention needs to know which row is which (batch n, position l); heads()
// gives it that as a strided (N, H, L, D) view of a slice of the columns.
#pragma once

#include <cstdint>
#include <functional>

#include "core/arena.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::nn::detail {

// The positions of a (len, batch) sequence in row order.
struct SeqLayout {
  int64_t len = 0;    // L
  int64_t batch = 0;  // N
  bool batch_first = false;

  int64_t rows() const noexcept { return len * batch; }
  // Row of (batch n, position l).
  int64_t row(int64_t n, int64_t l) const noexcept {
    return batch_first ? n * len + l : l * batch + n;
  }
};

// x (A, B, E) as an (A*B, E) row matrix: the same memory when its first two
// dimensions collapse into one row stride, else a contiguous copy in `frame`.
View<const float, 2> as_rows(View<const float, 3> x, maskattn::detail::Arena::Frame& frame);

// acc += x, row by row (the residual connections).
void add_rows(View<float, 2> acc, View<const float, 2> x);
// out (A, B, E) = rows (A*B, E), whatever out's strides.
void copy_rows(View<const float, 2> rows, View<float, 3> out);
// fill(rows) writes out's (A*B, E) rows: into out itself when they collapse to
// one stride, else into scratch from `frame` that is then copied into out.
void write_rows(View<float, 3> out, maskattn::detail::Arena::Frame& frame,
                const std::function<void(View<float, 2> rows)>& fill);

// Columns [col, col + heads*dim) of a (seq.rows(), width) row matrix with row
// stride `stride`, as (N, heads, L, dim).
template <class T>
View<T, 4> heads(T* rows, int64_t stride, int64_t col, const SeqLayout& seq, int64_t heads,
                 int64_t dim) {
  const int64_t sn = seq.batch_first ? seq.len * stride : stride;
  const int64_t sl = seq.batch_first ? stride : seq.batch * stride;
  return View<T, 4>(rows + col, {seq.batch, heads, seq.len, dim}, {sn, dim, sl, 1});
}

// to = from (same shape (N, H, L, D)), whatever their strides.
void copy_heads(View<const float, 4> from, View<float, 4> to);

}  // namespace maskattn::nn::detail
