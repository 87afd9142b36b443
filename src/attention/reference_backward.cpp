// Reference attention backward: the gradients of include/maskattn/attention.hpp's
// forward, row by row in double precision. For row (b, h, i) with saved lse L
// (natural log) and key/value head hk, over its allowed keys j:
//   x_j  = q_i . k_j;  s_j = scale x_j;  t_j = c tanh(s_j / c) (softcap c > 0, else s_j)
//   z_j  = t_j + mask(b, h, i, j);  P_j = exp(z_j - L)        (recomputed from L)
//   m_j  = head_mask[b, h] * keep_j / (1 - dropout_p)     (the forward's dropout, replayed)
//   out_i = sum_j P_j m_j v_j
// so, with dout_i the gradient of out_i,
//   dv_j += P_j m_j dout_i
//   dP_j  = m_j (dout_i . v_j)
//   dz_j  = P_j (dP_j - D_i),  D_i = sum_j P_j dP_j = dout_i . out_i   (softmax backward)
//   ds_j  = dz_j (1 - (t_j / c)^2)                                      (tanh' ; 1 without softcap)
//   dq_i += scale ds_j k_j;   dk_j += scale ds_j q_i
// D_i from the saved out: one dot product instead of a sweep over the keys. A
// row with lse = -inf (no allowed key) contributes nothing and gets dq_i = 0.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "attention/reference.hpp"
#include "core/parallel_for.hpp"

namespace maskattn::detail {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Scratch of one (b, hk) task.
struct Scratch {
  std::vector<float> mask;  // (Lk) additive mask values of a row
  std::vector<double> dk;   // (Lk, D) accumulated over the group's query heads
  std::vector<double> dv;   // (Lk, Dv)
  std::vector<double> dq;   // (D) one row
};

// Row (b, h, i)'s contributions: dq row written, dk and dv of key/value head
// hk accumulated into r.
void backward_row(const BackwardCall& bc, int64_t b, int64_t h, int64_t hk, int64_t i, Scratch& r) {
  const AttentionCall& c = bc.fwd;
  const int64_t lk = c.lk, dim = c.d, dv = c.dv;
  float* dq = bc.dq.row(b, h, i);
  const double lse = bc.lse(b, h, i);
  if (lse == kNegInf) {  // an empty row
    for (int64_t x = 0; x < dim; ++x) dq[x] = 0.0f;
    return;
  }
  const float* qi = c.f32.q.row(b, h, i);
  const float* oi = bc.out.row(b, h, i);
  const float* gi = bc.dout.row(b, h, i);
  double d_i = 0.0;
  for (int64_t x = 0; x < dv; ++x) d_i += static_cast<double>(gi[x]) * oi[x];
  const double head = c.head_multiplier(b, h);
  const double inv_keep = 1.0 / (1.0 - static_cast<double>(c.dropout_p));
  const MaskShape& shape = c.mask->shape();

  c.mask->row_values(b, h, i, 0, lk, r.mask.data());
  std::fill(r.dq.begin(), r.dq.end(), 0.0);
  for (int64_t j = 0; j < lk; ++j) {
    const float mask_value = r.mask[static_cast<std::size_t>(j)];
    if (mask_value == -std::numeric_limits<float>::infinity()) continue;
    const float* kj = c.f32.k.row(b, hk, j);
    const float* vj = c.f32.v.row(b, hk, j);
    double x = 0.0;
    for (int64_t e = 0; e < dim; ++e) x += static_cast<double>(qi[e]) * kj[e];
    double t = c.scale * x, tanh_derivative = 1.0;
    if (c.softcap > 0.0) {
      const double u = std::tanh(t / c.softcap);
      t = c.softcap * u;
      tanh_derivative = 1.0 - u * u;
    }
    const double p = std::exp(t + mask_value - lse);
    double m = head;
    if (c.dropout_p > 0.0f)
      m *= dropout_keep(c.seed, c.dropout_p, shape, b, h, i, j) ? inv_keep : 0.0;
    double dot = 0.0;  // dout_i . v_j
    for (int64_t e = 0; e < dv; ++e) dot += static_cast<double>(gi[e]) * vj[e];
    const double ds = c.scale * p * (m * dot - d_i) * tanh_derivative;
    double* dvj = r.dv.data() + j * dv;
    for (int64_t e = 0; e < dv; ++e) dvj[e] += p * m * gi[e];
    double* dkj = r.dk.data() + j * dim;
    for (int64_t e = 0; e < dim; ++e) dkj[e] += ds * qi[e];
    for (int64_t e = 0; e < dim; ++e) r.dq[static_cast<std::size_t>(e)] += ds * kj[e];
  }
  for (int64_t e = 0; e < dim; ++e) dq[e] = static_cast<float>(r.dq[static_cast<std::size_t>(e)]);
}

}  // namespace

void attention_backward_reference(const BackwardCall& bc) {
  const AttentionCall& c = bc.fwd;
  // One task per (b, hk): it owns dk and dv of that key/value head and dq of
  // the query heads that read it, and visits them in a fixed order, so there
  // are no races and the result does not depend on the thread count.
  parallel_for(c.batch * c.hkv, [&](int64_t bk) {
    const int64_t b = bk / c.hkv, hk = bk % c.hkv;
    Scratch r{std::vector<float>(static_cast<std::size_t>(c.lk)),
              std::vector<double>(static_cast<std::size_t>(c.lk * c.d)),
              std::vector<double>(static_cast<std::size_t>(c.lk * c.dv)),
              std::vector<double>(static_cast<std::size_t>(c.d))};
    for (int64_t h = hk * c.group(); h < (hk + 1) * c.group(); ++h)
      for (int64_t i = 0; i < c.lq; ++i) backward_row(bc, b, h, hk, i, r);
    for (int64_t j = 0; j < c.lk; ++j) {
      float* dk = bc.dk.row(b, hk, j);
      float* dv = bc.dv.row(b, hk, j);
      for (int64_t e = 0; e < c.d; ++e)
        dk[e] = static_cast<float>(r.dk[static_cast<std::size_t>(j * c.d + e)]);
      for (int64_t e = 0; e < c.dv; ++e)
        dv[e] = static_cast<float>(r.dv[static_cast<std::size_t>(j * c.dv + e)]);
    }
  });
}

}  // namespace maskattn::detail
