#include "maskattn/nn/embedding.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/parallel_for.hpp"
#include "nn/init.hpp"
#include "nn/projection.hpp"

namespace maskattn::nn {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim,
                     std::optional<int64_t> padding_idx, bool scale_by_sqrt_dim)
    : padding_idx_(padding_idx) {
  if (num_embeddings < 1 || embedding_dim < 1)
    throw Error("Embedding", "num_embeddings >= 1 and embedding_dim >= 1",
                fmt::format("({}, {})", num_embeddings, embedding_dim));
  if (padding_idx && (*padding_idx < -num_embeddings || *padding_idx >= num_embeddings))
    throw Error(
        "Embedding: padding_idx",
        fmt::format("an id in [-{0}, {0}) (negative: from the end, as torch)", num_embeddings),
        std::to_string(*padding_idx));
  if (padding_idx && *padding_idx < 0) padding_idx_ = *padding_idx + num_embeddings;
  checked_mul(
      checked_mul(num_embeddings, embedding_dim, "Embedding: num_embeddings * embedding_dim"),
      sizeof(float), "Embedding: num_embeddings * embedding_dim");
  weight_ = Tensor<float>({num_embeddings, embedding_dim});
  detail::init_normal(weight_, 0.0, 1.0, seed_value());
  if (padding_idx_)
    std::fill_n(weight_.data() + *padding_idx_ * embedding_dim, embedding_dim, 0.0f);
  if (scale_by_sqrt_dim) scale_ = static_cast<float>(std::sqrt(static_cast<double>(embedding_dim)));
}

void Embedding::for_each_param(const ParamFn& fn) { fn("weight", weight_); }

void Embedding::forward(View<const int64_t, 2> ids, View<float, 3> out) const {
  const int64_t rows = ids.size(0), cols = ids.size(1), dim = embedding_dim();
  if (out.size(0) != rows || out.size(1) != cols || out.size(2) != dim)
    throw Error("Embedding: out", fmt::format("({}, {}, {})", rows, cols, dim),
                shape_string(out.shape()));
  // Every id first: a bad one changes nothing.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t id = ids(r, c);
      if (id < 0 || id >= num_embeddings())
        throw Error(fmt::format("Embedding: ids[{}, {}]", r, c),
                    fmt::format("an id in [0, {})", num_embeddings()), std::to_string(id));
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float* w = weight_.data() + ids(r, c) * dim;
      float* o = out.row(r, c);
      for (int64_t d = 0; d < dim; ++d) o[d] = w[d] * scale_;
    }
}

void Embedding::forward(View<const int64_t, 2> ids, View<float, 3> out, Saved& /*saved*/) const {
  forward(ids, out);
}

void Embedding::backward(View<const int64_t, 2> ids, const Saved& /*saved*/,
                         View<const float, 3> dout, Gradients& grads) const {
  const int64_t rows = ids.size(0), cols = ids.size(1), dim = embedding_dim();
  if (dout.size(0) != rows || dout.size(1) != cols || dout.size(2) != dim)
    throw Error("Embedding: dout", fmt::format("({}, {}, {})", rows, cols, dim),
                shape_string(dout.shape()));
  // The ids were checked by the forward; checked again, as they index memory.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      if (ids(r, c) < 0 || ids(r, c) >= num_embeddings())
        throw Error(fmt::format("Embedding: ids[{}, {}]", r, c),
                    fmt::format("an id in [0, {})", num_embeddings()), std::to_string(ids(r, c)));
  float* dw = grads[weight_].data();
  // A scatter-add: tokens with the same id add to the same row, so threads
  // split the columns, not the tokens (no races; the same sums in the same
  // order whatever the thread count).
  maskattn::detail::parallel_for_ranges(dim, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t id = ids(r, c);
        if (padding_idx_ && id == *padding_idx_) continue;
        const float* g = dout.row(r, c);
        float* w = dw + id * dim;
        for (int64_t d = begin; d < end; ++d) w[d] += g[d] * scale_;
      }
  });
}

void Embedding::check_unembed(const char* name, View<const float, 2> x, int64_t logits_rows,
                              int64_t logits_cols) const {
  if (x.size(1) != embedding_dim())
    throw Error("Embedding::unembed: x", fmt::format("(N, {})", embedding_dim()),
                shape_string(x.shape()));
  if (logits_rows != x.size(0) || logits_cols != num_embeddings())
    throw Error(name, fmt::format("({}, {})", x.size(0), num_embeddings()),
                fmt::format("({}, {})", logits_rows, logits_cols));
}

void Embedding::unembed(View<const float, 2> x, View<float, 2> logits) const {
  check_unembed("Embedding::unembed: logits", x, logits.size(0), logits.size(1));
  detail::project(x, weight_.data(), nullptr, logits);
}

void Embedding::unembed_backward(View<const float, 2> x, View<const float, 2> dlogits,
                                 View<float, 2> dx, Gradients& grads) const {
  check_unembed("Embedding::unembed_backward: dlogits", x, dlogits.size(0), dlogits.size(1));
  if (dx.data() != nullptr && dx.shape() != x.shape())
    throw Error("Embedding::unembed_backward: dx", shape_string(x.shape()),
                shape_string(dx.shape()));
  detail::project_backward(x, weight_.data(), dlogits, dx, grads[weight_].data(), nullptr);
}

}  // namespace maskattn::nn
