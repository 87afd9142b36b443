#include "maskattn/nn/embedding.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "nn/init.hpp"

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

}  // namespace maskattn::nn
