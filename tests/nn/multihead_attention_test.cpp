// MultiheadAttention on its own, against a naive double-precision oracle
// written here (projections, softmax, weights): packed and separate
// projections, grouped-query heads, add_bias_kv / add_zero_attn, batch_first,
// torch's masks and any Mask. (python/tests/test_nn_parity.py compares with torch.)
#include <gtest/gtest.h>

#include "nn/module_fixtures.hpp"

namespace maskattn {
namespace {

using namespace testing_modules;  // NOLINT(google-build-using-namespace): the suite's fixtures

// ---- MultiheadAttention --------------------------------------------------------------

// Additive mask value of (batch b, head h, query i, key j): -inf = masked.
using MaskRule = std::function<double(int64_t b, int64_t h, int64_t i, int64_t j)>;

struct NaiveAttention {
  std::vector<double> out;      // (N, L, E), whatever the module's layout
  std::vector<double> weights;  // (N, H, L, S') per head
};

// MultiheadAttention::forward in double from the module's parameters: the
// projections; heads of D = E / H, query head h reading key/value head
// h / (H / Hkv); the added keys (bias_k/bias_v, then zeros) after the S real
// ones; softmax(q.k / sqrt(D) + rule) over all S' keys (a row with nothing
// allowed gives zeros); the heads side by side; out_proj.
NaiveAttention naive_mha(const nn::MultiheadAttention& m, View<const float, 3> query,
                         View<const float, 3> key, View<const float, 3> value,
                         const MaskRule& rule) {
  const nn::StateDict sd = m.state_dict();
  const bool bf = m.batch_first();
  const int64_t e = m.embed_dim(), h = m.num_heads(), hkv = m.num_kv_heads(), d = e / h;
  const int64_t ekv = hkv * d, group = h / hkv;
  const int64_t n = bf ? query.size(0) : query.size(1), l = bf ? query.size(1) : query.size(0);
  const int64_t s = bf ? key.size(1) : key.size(0), s2 = m.key_len(s);

  std::vector<double> wq, wk, wv;
  if (m.packed()) {
    const std::vector<double> w = param(sd, "in_proj_weight");  // (E + 2 Ekv, E)
    wq.assign(w.begin(), w.begin() + e * e);
    wk.assign(w.begin() + e * e, w.begin() + (e + ekv) * e);
    wv.assign(w.begin() + (e + ekv) * e, w.end());
  } else {
    wq = param(sd, "q_proj_weight");
    wk = param(sd, "k_proj_weight");
    wv = param(sd, "v_proj_weight");
  }
  const std::vector<double> b_in = param(sd, "in_proj_bias");  // (E + 2 Ekv) or empty
  const std::vector<double> wo = param(sd, "out_proj.weight"), bo = param(sd, "out_proj.bias");
  const std::vector<double> bias_k = param(sd, "bias_k"), bias_v = param(sd, "bias_v");

  // x's rows of batch b times w^T plus the bias from b_in[offset]: (len, out).
  const auto project = [&](View<const float, 3> x, int64_t b, const std::vector<double>& w,
                           int64_t offset, int64_t out) {
    const int64_t len = bf ? x.size(1) : x.size(0), in = x.size(2);
    std::vector<double> r(static_cast<std::size_t>(len * out));
    for (int64_t p = 0; p < len; ++p)
      for (int64_t o = 0; o < out; ++o) {
        double acc = b_in.empty() ? 0.0 : b_in[offset + o];
        for (int64_t c = 0; c < in; ++c) acc += (bf ? x(b, p, c) : x(p, b, c)) * w[o * in + c];
        r[p * out + o] = acc;
      }
    return r;
  };

  NaiveAttention r{std::vector<double>(n * l * e), std::vector<double>(n * h * l * s2)};
  for (int64_t b = 0; b < n; ++b) {
    const std::vector<double> q = project(query, b, wq, 0, e);  // (L, E)
    std::vector<double> k = project(key, b, wk, e, ekv);        // (S, Ekv) -> (S', Ekv)
    std::vector<double> v = project(value, b, wv, e + ekv, ekv);
    k.resize(s2 * ekv, 0.0);  // the zero key and value of add_zero_attn stay zero
    v.resize(s2 * ekv, 0.0);
    if (!bias_k.empty()) {
      std::copy(bias_k.begin(), bias_k.end(), k.begin() + s * ekv);
      std::copy(bias_v.begin(), bias_v.end(), v.begin() + s * ekv);
    }
    std::vector<double> ctx(l * e, 0.0);  // (L, E): heads side by side
    for (int64_t hh = 0; hh < h; ++hh) {
      const int64_t g = hh / group;
      for (int64_t i = 0; i < l; ++i) {
        std::vector<double> score(s2);
        double top = -kInf;
        for (int64_t j = 0; j < s2; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < d; ++c) dot += q[i * e + hh * d + c] * k[j * ekv + g * d + c];
          score[j] = dot / std::sqrt(static_cast<double>(d)) + rule(b, hh, i, j);
          top = std::max(top, score[j]);
        }
        double sum = 0.0;
        for (double& x : score) sum += x = top == -kInf ? 0.0 : std::exp(x - top);
        for (int64_t j = 0; j < s2; ++j) {
          const double p = sum > 0.0 ? score[j] / sum : 0.0;
          r.weights[((b * h + hh) * l + i) * s2 + j] = p;
          for (int64_t c = 0; c < d; ++c) ctx[i * e + hh * d + c] += p * v[j * ekv + g * d + c];
        }
      }
    }
    for (int64_t i = 0; i < l; ++i)
      for (int64_t o = 0; o < e; ++o) {
        double acc = bo.empty() ? 0.0 : bo[o];
        for (int64_t c = 0; c < e; ++c) acc += ctx[i * e + c] * wo[o * e + c];
        r.out[(b * l + i) * e + o] = acc;
      }
  }
  return r;
}

// max |got - want| with got (L, N, E), or (N, L, E) with batch_first, and
// want (N, L, E).
double max_out_diff(View<const float, 3> got, bool batch_first, const std::vector<double>& want) {
  const int64_t n = batch_first ? got.size(0) : got.size(1);
  const int64_t l = batch_first ? got.size(1) : got.size(0), e = got.size(2);
  double diff = 0.0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < l; ++i)
      for (int64_t c = 0; c < e; ++c) {
        const float g = batch_first ? got(b, i, c) : got(i, b, c);
        diff = std::max(diff, std::abs(g - want[(b * l + i) * e + c]));
      }
  return diff;
}

// max |got - want| for weights (N, H', L, S'), want (N, H, L, S') per head:
// averaged over heads when H' == 1 < H.
double max_weights_diff(View<const float, 4> got, const std::vector<double>& want, int64_t heads) {
  const int64_t n = got.size(0), l = got.size(2), s2 = got.size(3);
  double diff = 0.0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t g = 0; g < got.size(1); ++g)
      for (int64_t i = 0; i < l; ++i)
        for (int64_t j = 0; j < s2; ++j) {
          double w = 0.0;
          if (got.size(1) == heads) {
            w = want[((b * heads + g) * l + i) * s2 + j];
          } else {
            for (int64_t hh = 0; hh < heads; ++hh) w += want[((b * heads + hh) * l + i) * s2 + j];
            w /= static_cast<double>(heads);
          }
          diff = std::max(diff, std::abs(got(b, g, i, j) - w));
        }
  return diff;
}

TEST(ModulesMultiheadAttention, PackedSelfAttentionWithTorchMasksAndAveragedWeights) {
  const int64_t e = 12, h = 3, l = 5, n = 2, row = e + 3;
  nn::MultiheadAttention mha(e, h);
  mha.eval();
  randomize(mha, 12);
  ASSERT_TRUE(mha.packed());
  // x (L, N, E) with rows `row` apart: query, key and value at once.
  std::vector<float> xs(l * n * row, kSentinel);
  std::mt19937 rng(13);
  for (int64_t r = 0; r < l * n; ++r) fill_uniform(xs.data() + r * row, e, rng);
  const View<const float, 3> x(xs.data(), {l, n, e}, {n * row, row, 1});
  // key_padding_mask (N, S): lengths 5 and 3. attn_mask (L, S): additive
  // biases, and -inf on keys 0-2 of query 4 — with batch 1's padding, an
  // empty row, which gives zeros.
  Tensor<bool> padding({n, l});
  for (int64_t j = 3; j < l; ++j) padding.view<2>()(1, j) = true;
  Tensor<float> bias = random_tensor({l, l}, 14);
  for (int64_t j = 0; j < 3; ++j) bias.view<2>()(4, j) = -std::numeric_limits<float>::infinity();
  nn::AttentionMasks masks;
  masks.attn_mask = bias;
  masks.key_padding_mask = padding;
  Tensor<float> out({l, n, e}), weights({n, 1, l, l});
  mha.forward(x, x, x, out.view<3>(), masks, {}, weights.view<4>());

  const NaiveAttention want =
      naive_mha(mha, x, x, x, [&](int64_t b, int64_t, int64_t i, int64_t j) {
        return padding.view<2>()(b, j) ? -kInf : static_cast<double>(bias.view<2>()(i, j));
      });
  EXPECT_LE(max_out_diff(out.view<3>(), false, want.out), kTol);
  EXPECT_LE(max_weights_diff(weights.view<4>(), want.weights, h), kTol);
  for (int64_t j = 0; j < l; ++j) EXPECT_EQ(weights.view<4>()(1, 0, 4, j), 0.0f);
}

TEST(ModulesMultiheadAttention, GroupedQueryCrossAttentionWithAMaskAndPerHeadWeights) {
  const int64_t e = 16, h = 4, d = e / h, l = 3, s = 6, n = 2;
  const std::vector<int64_t> lengths = {6, 4};
  const Tensor<float> query = random_tensor({l, n, e}, 15), kv = random_tensor({s, n, e}, 16);
  for (const int64_t hkv : {int64_t{4}, int64_t{2}, int64_t{1}}) {
    SCOPED_TRACE(::testing::Message() << "num_kv_heads " << hkv);
    nn::MultiheadAttentionOptions o;
    o.num_kv_heads = hkv;
    nn::MultiheadAttention mha(e, h, o);
    mha.eval();
    randomize(mha, 17);
    EXPECT_EQ(names_and_shapes(mha), (NamesAndShapes{{"in_proj_weight", {e + 2 * hkv * d, e}},
                                                     {"in_proj_bias", {e + 2 * hkv * d}},
                                                     {"out_proj.weight", {e, e}},
                                                     {"out_proj.bias", {e}}}));
    nn::AttentionMasks masks;
    masks.mask = causal(Align::BottomRight) & key_lengths(lengths);
    nn::MultiheadAttentionCall call;
    call.average_attn_weights = false;
    Tensor<float> out({l, n, e}), weights({n, h, l, s});
    mha.forward(query.view<3>(), kv.view<3>(), kv.view<3>(), out.view<3>(), masks, call,
                weights.view<4>());
    const NaiveAttention want = naive_mha(
        mha, query.view<3>(), kv.view<3>(), kv.view<3>(),
        [&](int64_t b, int64_t, int64_t i, int64_t j) {
          return j <= i + (s - l) && j < lengths[static_cast<std::size_t>(b)] ? 0.0 : -kInf;
        });
    EXPECT_LE(max_out_diff(out.view<3>(), false, want.out), kTol);
    EXPECT_LE(max_weights_diff(weights.view<4>(), want.weights, h), kTol);
  }
}

TEST(ModulesMultiheadAttention, BiasKvZeroAttnBatchFirstSeparateProjectionsAndAPredicate) {
  const int64_t e = 8, h = 2, kdim = 5, vdim = 7, n = 2, l = 4, s = 3;
  nn::MultiheadAttentionOptions o;
  o.kdim = kdim;
  o.vdim = vdim;
  o.add_bias_kv = true;
  o.add_zero_attn = true;
  o.batch_first = true;
  nn::MultiheadAttention mha(e, h, o);
  mha.eval();
  randomize(mha, 18);
  EXPECT_EQ(names_and_shapes(mha), (NamesAndShapes{{"q_proj_weight", {e, e}},
                                                   {"k_proj_weight", {e, kdim}},
                                                   {"v_proj_weight", {e, vdim}},
                                                   {"in_proj_bias", {3 * e}},
                                                   {"bias_k", {1, 1, e}},
                                                   {"bias_v", {1, 1, e}},
                                                   {"out_proj.weight", {e, e}},
                                                   {"out_proj.bias", {e}}}));
  ASSERT_EQ(mha.key_len(s), s + 2);
  const Tensor<float> query = random_tensor({n, l, e}, 19), key = random_tensor({n, s, kdim}, 20),
                      value = random_tensor({n, s, vdim}, 21);
  // Padding (lengths 3, 1) from torch's key_padding_mask, which leaves the
  // added keys visible, and a rule per head as a predicate over all S + 2
  // keys that allows the added ones too.
  Tensor<bool> padding({n, s});
  padding.view<2>()(1, 1) = padding.view<2>()(1, 2) = true;
  const auto rule = [](int64_t, int64_t hh, int64_t i, int64_t j) { return (i + j + hh) % 3 != 1; };
  nn::AttentionMasks masks;
  masks.key_padding_mask = padding;
  masks.mask = predicate(
      [&](int64_t b, int64_t hh, int64_t i, int64_t j) { return j >= s || rule(b, hh, i, j); });
  nn::MultiheadAttentionCall call;
  call.average_attn_weights = false;
  Tensor<float> out({n, l, e}), weights({n, h, l, s + 2});
  mha.forward(query.view<3>(), key.view<3>(), value.view<3>(), out.view<3>(), masks, call,
              weights.view<4>());
  const NaiveAttention want =
      naive_mha(mha, query.view<3>(), key.view<3>(), value.view<3>(),
                [&](int64_t b, int64_t hh, int64_t i, int64_t j) {
                  return j < s && (padding.view<2>()(b, j) || !rule(b, hh, i, j)) ? -kInf : 0.0;
                });
  EXPECT_LE(max_out_diff(out.view<3>(), true, want.out), kTol);
  EXPECT_LE(max_weights_diff(weights.view<4>(), want.weights, h), kTol);
}

// The keys add_bias_kv / add_zero_attn append are never masked by torch's
// masks nor by is_causal (torch pads its masks for them), while a Mask covers
// all S' = S + 2 keys, the added ones last.
TEST(ModulesMultiheadAttention, AddedKeysEscapeTorchsMasksAndIsCausalButNotAMask) {
  const int64_t e = 8, h = 2, n = 2, l = 4, s = 4, s2 = s + 2;
  nn::MultiheadAttentionOptions o;
  o.add_bias_kv = true;
  o.add_zero_attn = true;
  nn::MultiheadAttention mha(e, h, o);
  mha.eval();
  randomize(mha, 22);
  const Tensor<float> x = random_tensor({l, n, e}, 23), kv = random_tensor({s, n, e}, 24);
  Tensor<bool> padding({n, s});  // True = padding: lengths 4 and 2
  padding.view<2>()(1, 2) = padding.view<2>()(1, 3) = true;
  nn::MultiheadAttentionCall call;
  call.average_attn_weights = false;
  Tensor<float> out({l, n, e}), weights({n, h, l, s2});
  const auto check = [&](const nn::AttentionMasks& masks, const MaskRule& rule) {
    mha.forward(x.view<3>(), kv.view<3>(), kv.view<3>(), out.view<3>(), masks, call,
                weights.view<4>());
    const NaiveAttention want = naive_mha(mha, x.view<3>(), kv.view<3>(), kv.view<3>(), rule);
    EXPECT_LE(max_out_diff(out.view<3>(), false, want.out), kTol);
    EXPECT_LE(max_weights_diff(weights.view<4>(), want.weights, h), kTol);
  };
  {
    SCOPED_TRACE("key_padding_mask and is_causal: real keys only");
    nn::AttentionMasks masks;
    masks.key_padding_mask = padding;
    masks.is_causal = true;
    check(masks, [&](int64_t b, int64_t, int64_t i, int64_t j) {
      return j >= s || (!padding.view<2>()(b, j) && j <= i) ? 0.0 : -kInf;
    });
  }
  {
    SCOPED_TRACE("a Mask over S' keys: lengths 6 and 3 leave batch 1 without the added keys");
    const std::vector<int64_t> lengths = {s2, 3};
    nn::AttentionMasks masks;
    masks.mask = key_lengths(lengths);
    check(masks, [&](int64_t b, int64_t, int64_t, int64_t j) {
      return j < lengths[static_cast<std::size_t>(b)] ? 0.0 : -kInf;
    });
  }
  {
    SCOPED_TRACE("a dense (N, S') Mask binds; a (N, S) one is an Error naming the mask");
    Tensor<bool> blocked({n, s2});
    blocked.view<2>()(0, s) = blocked.view<2>()(1, 0) = true;  // batch 0's bias_k, batch 1's key 0
    nn::AttentionMasks masks;
    masks.mask = block(blocked, Dims2::BatchKey);
    check(masks, [&](int64_t b, int64_t, int64_t, int64_t j) {
      return blocked.view<2>()(b, j) ? -kInf : 0.0;
    });
    masks.mask = block(padding, Dims2::BatchKey);
    EXPECT_TRUE(throws_error_naming(
        [&] {
          mha.forward(x.view<3>(), kv.view<3>(), kv.view<3>(), out.view<3>(), masks, call,
                      weights.view<4>());
        },
        "mask"));
  }
}

}  // namespace
}  // namespace maskattn
