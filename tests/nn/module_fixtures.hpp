// Test fixtures shared by the module suites (modules_test.cpp,
// multihead_attention_test.cpp): random parameters, snapshots, state_dict
// lookups, and the tolerance of float results against double oracles.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "maskattn/mask.hpp"
#include "maskattn/nn/dropout.hpp"
#include "maskattn/nn/embedding.hpp"
#include "maskattn/nn/feed_forward.hpp"
#include "maskattn/nn/layer_norm.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/module.hpp"
#include "maskattn/nn/multihead_attention.hpp"
#include "maskattn/nn/positional_encoding.hpp"
#include "maskattn/nn/transformer.hpp"
#include "maskattn/nn/transformer_layers.hpp"
#include "maskattn/positional.hpp"
#include "throws_error.hpp"

namespace maskattn::testing_modules {

using testing_errors::throws_error_naming;

constexpr double kInf = std::numeric_limits<double>::infinity();
// Float results against double oracles: sums of at most ~40 products of
// numbers of order 1, each rounded to float (6e-8 relative): a few 1e-6.
constexpr double kTol = 1e-5;
// Written around the outputs of strided views; must survive every forward.
constexpr float kSentinel = 12345.0f;

inline void fill_uniform(float* p, int64_t n, std::mt19937& rng, float lo = -1.0f,
                         float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < n; ++i) p[i] = dist(rng);
}

inline Tensor<float> random_tensor(std::vector<int64_t> shape, uint32_t seed, float lo = -1.0f,
                                   float hi = 1.0f) {
  Tensor<float> t(std::move(shape));
  std::mt19937 rng(seed);
  fill_uniform(t.data(), t.numel(), rng, lo, hi);
  return t;
}

// Every parameter random: constructors start biases at 0 and norm weights at
// 1, which would hide a bias never added or a weight never applied.
inline void randomize(nn::Module& m, uint32_t seed) {
  std::mt19937 rng(seed);
  for (auto& [name, p] : m.named_parameters())
    fill_uniform(p->data(), p->numel(), rng, -0.5f, 0.5f);
}

using NamesAndShapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

inline NamesAndShapes names_and_shapes(const nn::Module& m) {
  NamesAndShapes out;
  for (const auto& [name, p] : m.named_parameters()) out.emplace_back(name, p->shape());
  return out;
}

inline std::vector<std::string> names(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(name);
  return out;
}

// Copies of every parameter, to check that a failed load changed nothing.
inline std::vector<Tensor<float>> snapshot(const nn::Module& m) {
  std::vector<Tensor<float>> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(*p);
  return out;
}

inline bool same_bits(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}

inline bool same_parameters(const std::vector<Tensor<float>>& a,
                            const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return false;
  return true;
}

// A contiguous float32 parameter of a state_dict, as doubles (empty if absent).
inline std::vector<double> param(const nn::StateDict& sd, const std::string& name) {
  const auto it = sd.find(name);
  if (it == sd.end()) return {};
  const auto* p = static_cast<const float*>(it->second.data);
  return std::vector<double>(p, p + it->second.numel());
}

}  // namespace maskattn::testing_modules
