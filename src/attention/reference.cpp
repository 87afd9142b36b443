// Reference attention: for each (b, h, i), in double precision,
//   s_j  = scale * q_i . k_j;  s_j = c * tanh(s_j / c) (softcap c > 0);  s_j += mask(b, h, i, j)
//   lse  = log sum_j exp(s_j);  p_j = exp(s_j - lse) * head_mask[b, h] * dropout_j
//   out_i = sum_j p_j v_j
// exactly as include/maskattn/attention.hpp states it.
#include "attention/reference.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "core/parallel_for.hpp"

namespace maskattn::detail {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double widen(float x) { return x; }
double widen(BFloat16 x) { return to_float(x); }

// Scratch for one (b, h) task, sized once per task.
struct RowScratch {
  std::vector<float> mask;  // (Lk) additive mask values of the row
  std::vector<double> s;    // (Lk) scores, then probabilities
  std::vector<double> acc;  // (Dv) output accumulator
};

// Writes the result of an empty row (no allowed key) under c.empty_rows.
void write_empty_row(const AttentionCall& c, int64_t b, int64_t h, int64_t i) {
  const float fill = c.empty_fill();
  const int64_t lk = c.lk, dv = c.dv;
  float* o = c.out.row(b, h, i);
  for (int64_t d = 0; d < dv; ++d) o[d] = fill;
  if (!c.weights.empty()) {
    float* w = c.weights.row(b, h, i);
    for (int64_t j = 0; j < lk; ++j) w[j] = fill;
  }
  if (!c.lse.empty()) c.lse(b, h, i) = -std::numeric_limits<float>::infinity();
}

// One query row (b, h, i) reading key/value head hk.
template <class T>
void attend_row(const AttentionCall& c, const Inputs<T>& in, int64_t b, int64_t h, int64_t hk,
                int64_t i, RowScratch& r) {
  const int64_t lk = c.lk, d_qk = c.d, dv = c.dv;
  const MaskShape& shape = c.mask->shape();

  // Scores of allowed keys; masked keys stay -inf.
  c.mask->row_values(b, h, i, 0, lk, r.mask.data());
  const T* qi = in.q.row(b, h, i);
  bool any_allowed = false;
  double max_s = kNegInf;
  for (int64_t j = 0; j < lk; ++j) {
    const auto js = static_cast<std::size_t>(j);
    if (r.mask[js] == -std::numeric_limits<float>::infinity()) {
      r.s[js] = kNegInf;
      continue;
    }
    const T* kj = in.k.row(b, hk, j);
    double dot = 0.0;
    for (int64_t d = 0; d < d_qk; ++d) dot += widen(qi[d]) * widen(kj[d]);
    double s = c.scale * dot;
    if (c.softcap > 0.0) s = c.softcap * std::tanh(s / c.softcap);
    s += r.mask[js];
    r.s[js] = s;
    max_s = std::max(max_s, s);
    any_allowed = true;
  }
  if (!any_allowed) {
    write_empty_row(c, b, h, i);
    return;
  }

  // lse = max + log sum_j exp(s_j - max): the shift keeps exp() in range.
  // Masked keys (-inf) contribute exactly 0: skip their exp() (a packed row
  // of many documents masks most of its keys).
  double sum = 0.0;
  for (int64_t j = 0; j < lk; ++j) {
    const double s = r.s[static_cast<std::size_t>(j)];
    if (s != kNegInf) sum += std::exp(s - max_s);
  }
  const double lse = max_s + std::log(sum);

  const double head = c.head_multiplier(b, h);
  const double inv_keep = 1.0 / (1.0 - static_cast<double>(c.dropout_p));
  for (int64_t j = 0; j < lk; ++j) {
    double& p = r.s[static_cast<std::size_t>(j)];
    if (p == kNegInf) {
      p = 0.0;
      continue;
    }
    p = std::exp(p - lse) * head;
    if (c.dropout_p > 0.0f)
      p = dropout_keep(c.seed, c.dropout_p, shape, b, h, i, j) ? p * inv_keep : 0.0;
  }

  std::fill(r.acc.begin(), r.acc.end(), 0.0);
  for (int64_t j = 0; j < lk; ++j) {
    const double p = r.s[static_cast<std::size_t>(j)];
    if (p == 0.0) continue;
    const T* vj = in.v.row(b, hk, j);
    for (int64_t d = 0; d < dv; ++d) r.acc[static_cast<std::size_t>(d)] += p * widen(vj[d]);
  }
  float* o = c.out.row(b, h, i);
  for (int64_t d = 0; d < dv; ++d) o[d] = static_cast<float>(r.acc[static_cast<std::size_t>(d)]);
  if (!c.weights.empty()) {
    float* w = c.weights.row(b, h, i);
    for (int64_t j = 0; j < lk; ++j) w[j] = static_cast<float>(r.s[static_cast<std::size_t>(j)]);
  }
  if (!c.lse.empty()) c.lse(b, h, i) = static_cast<float>(lse);
}

}  // namespace

void attention_reference(const AttentionCall& c) {
  // One task per (b, h): each writes only its own rows, in a fixed order, so
  // the result does not depend on the thread count.
  parallel_for(c.batch * c.hq, [&](int64_t bh) {
    const int64_t b = bh / c.hq, h = bh % c.hq;
    RowScratch r{std::vector<float>(static_cast<std::size_t>(c.lk)),
                 std::vector<double>(static_cast<std::size_t>(c.lk)),
                 std::vector<double>(static_cast<std::size_t>(c.dv))};
    for (int64_t i = 0; i < c.lq; ++i) {
      if (c.is_bf16)
        attend_row(c, c.bf16, b, h, h / c.group(), i, r);
      else
        attend_row(c, c.f32, b, h, h / c.group(), i, r);
    }
  });
}

}  // namespace maskattn::detail
