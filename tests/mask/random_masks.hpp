// Random masks for the tests: every part kind (causal, sliding window,
// prefix-LM, key and query lengths, keep / block / bias in every supported
// shape, documents sorted or not, self or cross, predicate, ALiBi), combined
// with & at random, with densities skewed so Empty, Full and Partial tiles
// all occur. Used by the mask tests and the flash-vs-reference suite.
#pragma once

#include <algorithm>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::oracle {

class RandomMasks {
 public:
  explicit RandomMasks(unsigned seed) : rng_(seed) {}

  int64_t uniform(int64_t lo, int64_t hi) {  // [lo, hi]
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }

  Align align() { return uniform(0, 1) ? Align::TopLeft : Align::BottomRight; }

  // Probability of "allowed": skewed to the ends so Full and Empty tiles occur.
  double density() {
    const double d[] = {0.0, 0.05, 0.5, 0.95, 1.0};
    return d[uniform(0, 4)];
  }

  bool coin(double p) { return std::bernoulli_distribution(p)(rng_); }

  Mask part(const MaskShape& s) {
    switch (uniform(0, 11)) {
      case 0: return causal(align());
      case 1: return sliding_window(width(), width(), align());
      case 2: return prefix_lm(uniform(0, s.k_len + 1), align());
      case 3: return key_lengths(lengths(s.batch, s.k_len));
      case 4: return query_lengths(lengths(s.batch, s.q_len));
      case 5: return dense(s, 0);
      case 6: return dense(s, 1);
      case 7: return dense(s, 2);
      case 8: return ids(s);
      case 9: return ids(s);
      case 10: {
        auto bits = std::make_shared<std::vector<bool>>();
        const double p = density();
        for (int64_t k = 0; k < s.batch * s.heads * s.q_len * s.k_len; ++k)
          bits->push_back(coin(p));
        return predicate(
            [bits, s](int64_t b, int64_t h, int64_t i, int64_t j) {
              return (
                  *bits)[static_cast<std::size_t>(((b * s.heads + h) * s.q_len + i) * s.k_len + j)];
            },
            "random");
      }
      default: {
        std::vector<float> slopes;
        for (int64_t h = 0; h < s.heads; ++h)
          slopes.push_back(0.125f * static_cast<float>(uniform(0, 8)));
        return alibi(slopes, align());
      }
    }
  }

  Mask mask(const MaskShape& s) {
    Mask m = part(s);
    for (int64_t n = uniform(0, 2); n > 0; --n) m &= part(s);
    return m;
  }

 private:
  int64_t width() { return uniform(0, 4) == 0 ? kUnbounded : uniform(0, 3); }

  std::vector<int64_t> lengths(int64_t batch, int64_t len) {
    std::vector<int64_t> l;
    for (int64_t b = 0; b < batch; ++b) l.push_back(uniform(0, len));
    return l;
  }

  // keep (0), block (1) or bias (2) of a random supported shape.
  Mask dense(const MaskShape& s, int kind) {
    Dims2 dims2 = Dims2::QueryKey;
    std::vector<int64_t> shape;
    auto maybe1 = [&](int64_t n) { return coin(0.3) ? 1 : n; };
    switch (uniform(0, 6)) {
      case 0: shape = {maybe1(s.k_len)}; break;
      case 1: shape = {maybe1(s.q_len), maybe1(s.k_len)}; break;
      case 2: shape = {maybe1(s.batch), maybe1(s.k_len)}, dims2 = Dims2::BatchKey; break;
      case 3: shape = {s.batch, maybe1(s.q_len), maybe1(s.k_len)}; break;
      case 4: shape = {s.batch * s.heads, maybe1(s.q_len), maybe1(s.k_len)}; break;
      case 5: shape = {1, maybe1(s.q_len), maybe1(s.k_len)}; break;
      default: shape = {maybe1(s.batch), maybe1(s.heads), maybe1(s.q_len), maybe1(s.k_len)}; break;
    }
    const double p = density();
    if (kind == 2) {
      Tensor<float> t(shape);
      for (float& x : t)
        x = coin(p) ? 0.25f * static_cast<float>(uniform(-4, 4))
                    : -std::numeric_limits<float>::infinity();
      return bias(t, dims2);
    }
    Tensor<bool> t(shape);
    for (bool& x : t) x = coin(p) == (kind == 0);
    return kind == 0 ? keep(t, dims2) : block(t, dims2);
  }

  // documents: self (Lq == Lk) or cross, (L) or (B, L), sorted or not.
  Mask ids(const MaskShape& s) {
    const int64_t ndoc = uniform(1, 4);
    const bool sorted = coin(0.5);
    auto make = [&](int64_t len) {
      const int64_t rows = coin(0.5) ? 1 : s.batch;
      Tensor<int64_t> t({rows, len});
      for (int64_t& x : t) x = uniform(0, ndoc - 1);
      if (sorted)
        for (int64_t r = 0; r < rows; ++r) std::sort(t.data() + r * len, t.data() + (r + 1) * len);
      return t;
    };
    if (s.q_len == s.k_len && coin(0.5)) return documents(make(s.q_len));
    return documents(make(s.q_len), make(s.k_len));
  }

  std::mt19937_64 rng_;
};

}  // namespace maskattn::oracle
