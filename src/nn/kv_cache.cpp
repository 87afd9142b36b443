#include "maskattn/nn/kv_cache.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "maskattn/nn/transformer.hpp"

namespace maskattn::nn {

KvCache::KvCache(const TransformerDecoder& decoder, int64_t batch, int64_t capacity)
    : capacity_(capacity) {
  if (batch < 1) throw Error("KvCache: batch", ">= 1", std::to_string(batch));
  if (capacity < 1) throw Error("KvCache: capacity", ">= 1", std::to_string(capacity));
  // Every size checked before anything is allocated (lengths_ included).
  for (int64_t i = 0; i < decoder.num_layers(); ++i) {
    const MultiheadAttention& sa = decoder.layer(i).self_attn();
    const std::vector<int64_t> shape{batch, sa.num_kv_heads(), capacity, sa.head_dim(), 4};
    checked_numel(shape, "KvCache: batch * heads * capacity * head_dim");
  }
  lengths_.assign(static_cast<std::size_t>(batch), 0);
  for (int64_t i = 0; i < decoder.num_layers(); ++i) {
    const MultiheadAttention& sa = decoder.layer(i).self_attn();
    const std::vector<int64_t> shape{batch, sa.num_kv_heads(), capacity, sa.head_dim()};
    layers_.push_back(Layer{Tensor<float>(shape), Tensor<float>(shape), {}, {}});
  }
}

void KvCache::reset() noexcept {
  std::fill(lengths_.begin(), lengths_.end(), 0);
  for (Layer& l : layers_) l.mem_k = l.mem_v = Tensor<float>();
  memory_data_ = nullptr;
  memory_shape_.clear();
}

}  // namespace maskattn::nn
