// The keys and values of a decoder's past tokens, for generating step by step
// (TransformerDecoder::decode_step).
//
// Per layer, the self-attention's keys and values of every token so far,
// (N, Hkv, capacity, D), and the cross-attention's keys and values of the
// memory, (N, Hkv, S, D), projected once at the first step. Each sequence of
// the batch has its own length: sequence b's next token sits at position
// lengths()[b]. A step appends T tokens to every sequence; query i of
// sequence b sits at absolute position lengths()[b] + i and attends to keys
// 0 .. lengths()[b] + i — the look-ahead mask aligned bottom-right.
//
// Prompts of different lengths: give the first step every prompt right-padded
// to the longest, and advance each sequence by its own length
// (`advance`); from then on, steps of one token each, which may sit at a
// different position in each sequence (padding is never attended: the
// key_lengths of each step hide it).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn::nn {

class TransformerDecoder;

class KvCache {
 public:
  // For `decoder`'s layers, a batch of `batch` sequences of up to `capacity`
  // tokens each (memory allocated here, once).
  KvCache(const TransformerDecoder& decoder, int64_t batch, int64_t capacity);

  int64_t batch() const noexcept { return static_cast<int64_t>(lengths_.size()); }
  int64_t capacity() const noexcept { return capacity_; }
  // Tokens cached per sequence.
  std::span<const int64_t> lengths() const noexcept { return lengths_; }
  // Forgets every token and the memory (a new batch of sequences).
  void reset() noexcept;

 private:
  friend class TransformerDecoder;
  friend class TransformerDecoderLayer;

  struct Layer {
    Tensor<float> k, v;          // self-attention: (N, Hkv, capacity, D)
    Tensor<float> mem_k, mem_v;  // cross-attention: (N, Hkv, S, D), from the first step
  };
  std::vector<Layer> layers_;
  std::vector<int64_t> lengths_;
  int64_t capacity_ = 0;
  // The memory the cross-attention keys were projected from (checked at
  // every step: another memory needs reset()).
  const float* memory_data_ = nullptr;
  std::vector<int64_t> memory_shape_;
};

}  // namespace maskattn::nn
