// The modules on their own, without torch: each against an oracle written
// here — naive double loops for Linear, LayerNorm and MultiheadAttention, the
// sinusoidal formula for PositionalEncoding, counts for Dropout — and what
// every module shares: torch's state_dict names and shapes, load_state_dict's
// errors and LoadResult, train()/eval() and seed() through the tree, forward
// passes from several threads at once, and an Error naming the argument for
// every bad shape. (tests/nn/golden_test.cpp compares with torch's numbers.)
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

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

constexpr double kInf = std::numeric_limits<double>::infinity();
// Float results against double oracles: sums of at most ~40 products of
// numbers of order 1, each rounded to float (6e-8 relative): a few 1e-6.
constexpr double kTol = 1e-5;
// Written around the outputs of strided views; must survive every forward.
constexpr float kSentinel = 12345.0f;

// ---- helpers -------------------------------------------------------------------

void fill_uniform(float* p, int64_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < n; ++i) p[i] = dist(rng);
}

Tensor<float> random_tensor(std::vector<int64_t> shape, uint32_t seed, float lo = -1.0f,
                            float hi = 1.0f) {
  Tensor<float> t(std::move(shape));
  std::mt19937 rng(seed);
  fill_uniform(t.data(), t.numel(), rng, lo, hi);
  return t;
}

// Every parameter random: constructors start biases at 0 and norm weights at
// 1, which would hide a bias never added or a weight never applied.
void randomize(nn::Module& m, uint32_t seed) {
  std::mt19937 rng(seed);
  for (auto& [name, p] : m.named_parameters())
    fill_uniform(p->data(), p->numel(), rng, -0.5f, 0.5f);
}

using NamesAndShapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

NamesAndShapes names_and_shapes(const nn::Module& m) {
  NamesAndShapes out;
  for (const auto& [name, p] : m.named_parameters()) out.emplace_back(name, p->shape());
  return out;
}

std::vector<std::string> names(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(name);
  return out;
}

// Copies of every parameter, to check that a failed load changed nothing.
std::vector<Tensor<float>> snapshot(const nn::Module& m) {
  std::vector<Tensor<float>> out;
  for (const auto& [name, p] : m.named_parameters()) out.push_back(*p);
  return out;
}

bool same_bits(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}

bool same_parameters(const std::vector<Tensor<float>>& a, const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return false;
  return true;
}

// A contiguous float32 parameter of a state_dict, as doubles (empty if absent).
std::vector<double> param(const nn::StateDict& sd, const std::string& name) {
  const auto it = sd.find(name);
  if (it == sd.end()) return {};
  const auto* p = static_cast<const float*>(it->second.data);
  return std::vector<double>(p, p + it->second.numel());
}

// ---- Linear ----------------------------------------------------------------------

TEST(ModulesLinear, MatchesANaiveMatmulWithOddSizesAndStridedRows) {
  for (const bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "bias" : "no bias");
    const int64_t n = 13, in = 37, out = 19, x_stride = 41, y_stride = 23;
    nn::Linear linear(in, out, bias);
    randomize(linear, 1);
    std::mt19937 rng(2);
    std::vector<float> xs(n * x_stride), ys(n * y_stride, kSentinel);
    fill_uniform(xs.data(), static_cast<int64_t>(xs.size()), rng);
    const View<const float, 2> x(xs.data(), {n, in}, {x_stride, 1});  // (N, in), rows 41 apart
    const View<float, 2> y(ys.data(), {n, out}, {y_stride, 1});       // (N, out), rows 23 apart
    linear.forward(x, y);

    const float* w = linear.weight().data();  // (out, in)
    double max_diff = 0.0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double want = bias ? linear.bias().data()[o] : 0.0;
        for (int64_t c = 0; c < in; ++c) want += static_cast<double>(x(r, c)) * w[o * in + c];
        max_diff = std::max(max_diff, std::abs(y(r, o) - want));
      }
    EXPECT_LE(max_diff, kTol);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = out; c < y_stride; ++c) EXPECT_EQ(ys[r * y_stride + c], kSentinel);
  }
}

TEST(ModulesLinear, ZeroRowsIsANoOp) {
  nn::Linear linear(3, 2);
  std::vector<float> none;
  EXPECT_NO_THROW(linear.forward(View<const float, 2>(none.data(), {0, 3}),
                                 View<float, 2>(none.data(), {0, 2})));
}

// ---- LayerNorm -------------------------------------------------------------------

TEST(ModulesLayerNorm, MatchesANaiveDoubleComputation) {
  struct Case {
    const char* name;
    bool affine, bias;
    std::vector<std::string> params;
  };
  const std::vector<Case> cases = {{"affine", true, true, {"weight", "bias"}},
                                   {"no affine", false, true, {}},
                                   {"no bias", true, false, {"weight"}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t n = 6, d = 13, stride = 17;
    const double eps = 1e-3;  // large enough to matter for rows of small variance
    nn::LayerNorm norm(d, eps, c.affine, c.bias);
    EXPECT_EQ(names(norm), c.params);
    randomize(norm, 3);
    std::mt19937 rng(4);
    std::vector<float> xs(n * stride);
    // Mean 3: a mean left in would show; one row nearly constant: eps shows.
    fill_uniform(xs.data(), static_cast<int64_t>(xs.size()), rng, 2.0f, 4.0f);
    for (int64_t j = 0; j < d; ++j) xs[2 * stride + j] = 1.0f + 1e-3f * static_cast<float>(j);
    const View<const float, 2> x(xs.data(), {n, d}, {stride, 1});
    Tensor<float> y({n, d});
    norm.forward(x, y.view<2>());

    const float* w = c.affine ? norm.weight().data() : nullptr;
    const float* b = c.affine && c.bias ? norm.bias().data() : nullptr;
    double max_diff = 0.0;
    for (int64_t r = 0; r < n; ++r) {
      double mean = 0.0, var = 0.0;
      for (int64_t j = 0; j < d; ++j) mean += x(r, j);
      mean /= static_cast<double>(d);
      for (int64_t j = 0; j < d; ++j) var += (x(r, j) - mean) * (x(r, j) - mean);
      var /= static_cast<double>(d);  // biased, as torch
      for (int64_t j = 0; j < d; ++j) {
        double want = (x(r, j) - mean) / std::sqrt(var + eps);
        if (w) want *= w[j];
        if (b) want += b[j];
        max_diff = std::max(max_diff, std::abs(y.view<2>()(r, j) - want));
      }
    }
    EXPECT_LE(max_diff, kTol);

    // In place gives the same numbers.
    Tensor<float> inplace({n, d});
    for (int64_t r = 0; r < n; ++r) std::copy_n(x.row(r), d, inplace.data() + r * d);
    norm.forward(inplace.view<2>(), inplace.view<2>());
    EXPECT_TRUE(same_bits(inplace, y));
  }
}

TEST(ModulesLayerNorm, StartsAsTheIdentityAffineMap) {
  nn::LayerNorm norm(4);
  EXPECT_EQ(std::vector<float>(norm.weight().begin(), norm.weight().end()),
            std::vector<float>(4, 1.0f));
  EXPECT_EQ(std::vector<float>(norm.bias().begin(), norm.bias().end()),
            std::vector<float>(4, 0.0f));
}

// ---- Embedding -------------------------------------------------------------------

TEST(ModulesEmbedding, LooksUpRowsWithThePaddingRowZeroAndAnOptionalSqrtDimScale) {
  for (const bool scale : {false, true}) {
    SCOPED_TRACE(scale ? "scaled" : "unscaled");
    const int64_t num = 10, dim = 6, pad = 3;
    nn::Embedding emb(num, dim, pad, scale);
    for (int64_t j = 0; j < dim; ++j) EXPECT_EQ(emb.weight().data()[pad * dim + j], 0.0f);
    Tensor<int64_t> ids({2, 4});
    const std::vector<int64_t> values = {0, 3, 9, 3, 5, 1, 3, 2};
    std::copy(values.begin(), values.end(), ids.data());
    Tensor<float> out({2, 4, dim});
    emb.forward(ids.view<2>(), out.view<3>());
    const double factor = scale ? std::sqrt(static_cast<double>(dim)) : 1.0;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t l = 0; l < 4; ++l) {
        const int64_t id = ids.view<2>()(b, l);
        for (int64_t j = 0; j < dim; ++j) {
          const double want = emb.weight().data()[id * dim + j] * factor;
          EXPECT_NEAR(out.view<3>()(b, l, j), want, 1e-6) << "id " << id;
          if (id == pad) {
            EXPECT_EQ(out.view<3>()(b, l, j), 0.0f);
          }
        }
      }
  }
}

TEST(ModulesEmbedding, IdOutOfRangeIsAnErrorNamingTheIndexAndWritesNothing) {
  nn::Embedding emb(10, 4);
  Tensor<int64_t> ids({2, 3});
  Tensor<float> out({2, 3, 4});
  std::fill(out.begin(), out.end(), kSentinel);
  ids.view<2>()(1, 2) = 10;
  EXPECT_TRUE(throws_error_naming([&] { emb.forward(ids.view<2>(), out.view<3>()); }, "ids[1, 2]"));
  ids.view<2>()(1, 2) = 0;
  ids.view<2>()(0, 1) = -1;
  EXPECT_TRUE(throws_error_naming([&] { emb.forward(ids.view<2>(), out.view<3>()); }, "ids[0, 1]"));
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](float v) { return v == kSentinel; }));
  EXPECT_TRUE(throws_error_naming([] { nn::Embedding(10, 4, 10); }, "padding_idx"));
}

// ---- Dropout ---------------------------------------------------------------------

TEST(ModulesDropout, EvalIsTheIdentity) {
  nn::Dropout dropout(0.5);
  dropout.eval();
  const Tensor<float> x = random_tensor({7, 9}, 5);
  Tensor<float> y({7, 9});
  dropout.forward(x.view<2>(), y.view<2>());
  EXPECT_TRUE(same_bits(x, y));
}

TEST(ModulesDropout, TrainingZeroesAFractionPAndScalesTheRestByOneOverOneMinusP) {
  const double p = 0.3;
  const int64_t rows = 250, cols = 400, n = rows * cols;
  nn::Dropout dropout(p);
  dropout.seed(6);
  const Tensor<float> x = random_tensor({rows, cols}, 7, 1.0f, 2.0f);  // no zeros of its own
  Tensor<float> y({rows, cols});
  dropout.forward(x.view<2>(), y.view<2>());
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (y.data()[i] == 0.0f) {
      ++zeros;
    } else {
      ASSERT_FLOAT_EQ(y.data()[i], static_cast<float>(x.data()[i] / (1.0 - p))) << "at " << i;
    }
  }
  // Binomial(n, p): within 5 standard deviations of n p.
  const double mean = static_cast<double>(n) * p, sigma = std::sqrt(mean * (1.0 - p));
  EXPECT_NEAR(static_cast<double>(zeros), mean, 5.0 * sigma);
}

TEST(ModulesDropout, SameSeedSamePatternAnotherCallAnotherInPlaceAsOutOfPlace) {
  nn::Dropout dropout(0.5);
  const Tensor<float> x = random_tensor({16, 33}, 8);
  Tensor<float> first({16, 33}), second({16, 33}), again({16, 33});
  dropout.seed(9);
  dropout.forward(x.view<2>(), first.view<2>());
  dropout.forward(x.view<2>(), second.view<2>());
  EXPECT_FALSE(same_bits(first, second));  // each call draws afresh
  dropout.seed(9);
  dropout.forward(x.view<2>(), again.view<2>());
  EXPECT_TRUE(same_bits(first, again));
  dropout.seed(9);
  Tensor<float> inplace = x;
  dropout.forward(inplace.view<2>(), inplace.view<2>());
  EXPECT_TRUE(same_bits(first, inplace));
  dropout.seed(10);
  dropout.forward(x.view<2>(), again.view<2>());
  EXPECT_FALSE(same_bits(first, again));
}

// ---- PositionalEncoding ------------------------------------------------------------

TEST(ModulesPositionalEncoding, AddsTheSinusoidalEncodingOfEachPositionFromAnOffset) {
  const int64_t d = 8, len = 5, batch = 3, max_len = 50;
  nn::PositionalEncoding pe(d, 0.1, max_len);
  pe.eval();
  EXPECT_TRUE(names(pe).empty());
  for (const bool batch_first : {false, true})
    for (const int64_t offset : {int64_t{0}, int64_t{7}, max_len - len}) {
      SCOPED_TRACE(::testing::Message() << "batch_first " << batch_first << " offset " << offset);
      const std::vector<int64_t> shape =
          batch_first ? std::vector<int64_t>{batch, len, d} : std::vector<int64_t>{len, batch, d};
      const Tensor<float> x = random_tensor(shape, 11);
      Tensor<float> y(shape);
      pe.forward(x.view<3>(), y.view<3>(), batch_first, offset);
      Tensor<float> enc({len, d});  // positions offset .. offset + len - 1
      sinusoidal_encoding(enc.view<2>(), 10000.0, PeLayout::Interleaved, offset);
      for (int64_t l = 0; l < len; ++l)
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t j = 0; j < d; ++j) {
            const float xv = batch_first ? x.view<3>()(b, l, j) : x.view<3>()(l, b, j);
            const float yv = batch_first ? y.view<3>()(b, l, j) : y.view<3>()(l, b, j);
            ASSERT_EQ(yv, xv + enc.view<2>()(l, j)) << "l " << l << " b " << b << " j " << j;
          }
      Tensor<float> inplace = x;
      pe.forward(inplace.view<3>(), inplace.view<3>(), batch_first, offset);
      EXPECT_TRUE(same_bits(inplace, y));
    }
}

TEST(ModulesPositionalEncoding, OffsetPastMaxLenIsAnError) {
  nn::PositionalEncoding pe(8, 0.0, 50);
  Tensor<float> x({5, 2, 8}), y({5, 2, 8});
  EXPECT_NO_THROW(pe.forward(x.view<3>(), y.view<3>(), false, 45));
  EXPECT_TRUE(
      throws_error_naming([&] { pe.forward(x.view<3>(), y.view<3>(), false, 46); }, "offset"));
  EXPECT_TRUE(
      throws_error_naming([&] { pe.forward(x.view<3>(), y.view<3>(), false, -1); }, "offset"));
}

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

// ---- state_dict names and shapes --------------------------------------------------------

TEST(ModulesStateDict, EveryModuleTypeHasTorchsNamesAndShapes) {
  EXPECT_EQ(names_and_shapes(nn::Linear(3, 4)),
            (NamesAndShapes{{"weight", {4, 3}}, {"bias", {4}}}));
  EXPECT_EQ(names_and_shapes(nn::Linear(3, 4, false)), (NamesAndShapes{{"weight", {4, 3}}}));
  EXPECT_EQ(names_and_shapes(nn::Embedding(5, 3)), (NamesAndShapes{{"weight", {5, 3}}}));
  EXPECT_EQ(names_and_shapes(nn::LayerNorm(5)), (NamesAndShapes{{"weight", {5}}, {"bias", {5}}}));
  EXPECT_TRUE(names(nn::Dropout(0.1)).empty());
  EXPECT_TRUE(names(nn::PositionalEncoding(8, 0.1, 10)).empty());
  EXPECT_EQ(names_and_shapes(nn::FeedForward(4, 6)), (NamesAndShapes{{"linear1.weight", {6, 4}},
                                                                     {"linear1.bias", {6}},
                                                                     {"linear2.weight", {4, 6}},
                                                                     {"linear2.bias", {4}}}));
  nn::MultiheadAttentionOptions no_bias;
  no_bias.bias = false;
  EXPECT_EQ(names_and_shapes(nn::MultiheadAttention(8, 2, no_bias)),
            (NamesAndShapes{{"in_proj_weight", {24, 8}}, {"out_proj.weight", {8, 8}}}));

  const int64_t d = 16, ff = 32;
  nn::TransformerLayerOptions o;
  o.dim_feedforward = ff;
  const nn::TransformerEncoderLayer enc(d, 4, o);
  const NamesAndShapes enc_names = {{"self_attn.in_proj_weight", {3 * d, d}},
                                    {"self_attn.in_proj_bias", {3 * d}},
                                    {"self_attn.out_proj.weight", {d, d}},
                                    {"self_attn.out_proj.bias", {d}},
                                    {"linear1.weight", {ff, d}},
                                    {"linear1.bias", {ff}},
                                    {"linear2.weight", {d, ff}},
                                    {"linear2.bias", {d}},
                                    {"norm1.weight", {d}},
                                    {"norm1.bias", {d}},
                                    {"norm2.weight", {d}},
                                    {"norm2.bias", {d}}};
  EXPECT_EQ(names_and_shapes(enc), enc_names);

  const nn::TransformerDecoderLayer dec(d, 4, o);
  const std::vector<std::string> dec_names = {"self_attn.in_proj_weight",
                                              "self_attn.in_proj_bias",
                                              "self_attn.out_proj.weight",
                                              "self_attn.out_proj.bias",
                                              "multihead_attn.in_proj_weight",
                                              "multihead_attn.in_proj_bias",
                                              "multihead_attn.out_proj.weight",
                                              "multihead_attn.out_proj.bias",
                                              "linear1.weight",
                                              "linear1.bias",
                                              "linear2.weight",
                                              "linear2.bias",
                                              "norm1.weight",
                                              "norm1.bias",
                                              "norm2.weight",
                                              "norm2.bias",
                                              "norm3.weight",
                                              "norm3.bias"};
  EXPECT_EQ(names(dec), dec_names);

  o.bias = false;  // torch's bias=False: no bias in any Linear or LayerNorm
  EXPECT_EQ(names(nn::TransformerEncoderLayer(d, 4, o)),
            (std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.out_proj.weight",
                                      "linear1.weight", "linear2.weight", "norm1.weight",
                                      "norm2.weight"}));
  o.bias = true;

  // Stacks: "layers.<i>." + the layer's names, then "norm.*"; the Transformer
  // puts "encoder." and "decoder." before those (46 names in torch for 2
  // encoder layers and 1 decoder layer).
  nn::TransformerOptions t;
  t.d_model = d;
  t.nhead = 4;
  t.num_encoder_layers = 2;
  t.num_decoder_layers = 1;
  t.layer = o;
  const nn::Transformer transformer(t);
  std::vector<std::string> want;
  for (int i = 0; i < 2; ++i)
    for (const auto& [name, shape] : enc_names)
      want.push_back("encoder.layers." + std::to_string(i) + "." + name);
  want.insert(want.end(), {"encoder.norm.weight", "encoder.norm.bias"});
  for (const std::string& name : dec_names) want.push_back("decoder.layers.0." + name);
  want.insert(want.end(), {"decoder.norm.weight", "decoder.norm.bias"});
  EXPECT_EQ(names(transformer), want);
  EXPECT_EQ(want.size(), 46u);
  // A stack without a final norm has no "norm.*".
  const std::vector<std::string> stack = names(nn::TransformerDecoder(dec, 2));
  ASSERT_EQ(stack.size(), 2 * dec_names.size());
  EXPECT_EQ(stack.front(), "layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(stack.back(), "layers.1.norm3.bias");

  // state_dict(): the same tensors by name, float32 views of the parameters.
  const nn::StateDict sd = enc.state_dict();
  ASSERT_EQ(sd.size(), enc_names.size());
  for (const auto& [name, shape] : enc_names) {
    ASSERT_TRUE(sd.count(name)) << name;
    EXPECT_EQ(sd.at(name).dtype, DType::Float32) << name;
    EXPECT_EQ(sd.at(name).shape, shape) << name;
  }
  EXPECT_EQ(enc.num_parameters(), 4 * d * d + 3 * d + d + 2 * ff * d + ff + d + 4 * d);
}

// ---- load_state_dict -------------------------------------------------------------------

class ModulesLoadStateDict : public ::testing::Test {
 protected:
  ModulesLoadStateDict() : layer_(16, 4, options()), source_(16, 4, options()) {
    randomize(layer_, 30);
    randomize(source_, 31);  // other values, the same names
  }
  static nn::TransformerLayerOptions options() {
    nn::TransformerLayerOptions o;
    o.dim_feedforward = 32;
    return o;
  }
  nn::TransformerEncoderLayer layer_, source_;
};

TEST_F(ModulesLoadStateDict, CopiesEveryTensorFromFloat32OrFloat64AnyStrides) {
  nn::StateDict sd = source_.state_dict();
  // linear1.weight (32, 16) from a float64 buffer with rows 20 apart.
  std::vector<double> wide(32 * 20, std::nan(""));
  const auto* w = static_cast<const float*>(sd.at("linear1.weight").data);
  for (int64_t r = 0; r < 32; ++r)
    for (int64_t c = 0; c < 16; ++c) wide[r * 20 + c] = w[r * 16 + c];
  sd["linear1.weight"] = View<const double, 2>(wide.data(), {32, 16}, {20, 1});
  const nn::Module::LoadResult result = layer_.load_state_dict(sd);
  EXPECT_TRUE(result.missing_keys.empty());
  EXPECT_TRUE(result.unexpected_keys.empty());
  EXPECT_TRUE(same_parameters(snapshot(layer_), snapshot(source_)));
}

TEST_F(ModulesLoadStateDict, EveryBadStateIsAnErrorNamingTheTensorAndChangesNothing) {
  const std::vector<Tensor<float>> before = snapshot(layer_);
  Tensor<float> wrong_shape({16, 15});
  Tensor<int32_t> wrong_dtype({16});
  Tensor<bool> bools({16});
  Tensor<float> nan = random_tensor({16}, 32), inf = random_tensor({16}, 33);
  nan.data()[5] = std::nanf("");
  inf.data()[0] = std::numeric_limits<float>::infinity();
  struct Case {
    const char* what;
    std::function<void(nn::StateDict&)> edit;
    const char* needle;
  };
  // norm2.bias is the last parameter: a load that copied as it checked would
  // have changed all the others first.
  const std::vector<Case> cases = {
      {"missing", [](nn::StateDict& s) { s.erase("linear1.bias"); }, "linear1.bias"},
      {"unexpected", [&](nn::StateDict& s) { s["linear3.weight"] = nan; }, "linear3.weight"},
      {"shape", [&](nn::StateDict& s) { s["self_attn.out_proj.weight"] = wrong_shape; },
       "self_attn.out_proj.weight"},
      {"dtype int32", [&](nn::StateDict& s) { s["norm2.bias"] = wrong_dtype; }, "norm2.bias"},
      {"dtype bool", [&](nn::StateDict& s) { s["norm2.bias"] = bools; }, "norm2.bias"},
      {"NaN", [&](nn::StateDict& s) { s["norm2.bias"] = nan; }, "norm2.bias"},
      {"inf", [&](nn::StateDict& s) { s["norm2.bias"] = inf; }, "norm2.bias"},
      {"absent", [](nn::StateDict& s) { s["norm2.bias"] = AnyView(); }, "norm2.bias"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    nn::StateDict sd = source_.state_dict();
    c.edit(sd);
    EXPECT_TRUE(throws_error_naming([&] { layer_.load_state_dict(sd); }, c.needle));
    EXPECT_TRUE(same_parameters(snapshot(layer_), before));
  }
}

TEST_F(ModulesLoadStateDict, NonStrictListsMissingAndUnexpectedNamesAndLoadsTheRest) {
  const std::vector<Tensor<float>> before = snapshot(layer_);
  nn::StateDict sd = source_.state_dict();
  sd.erase("linear2.weight");
  sd.erase("norm1.bias");
  Tensor<float> extra({3});
  sd["decoder.extra"] = extra;
  const nn::Module::LoadResult result = layer_.load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(result.missing_keys, (std::vector<std::string>{"linear2.weight", "norm1.bias"}));
  EXPECT_EQ(result.unexpected_keys, (std::vector<std::string>{"decoder.extra"}));
  const std::vector<Tensor<float>> after = snapshot(layer_), source = snapshot(source_);
  const std::vector<std::string> order = names(layer_);
  for (std::size_t i = 0; i < order.size(); ++i) {
    const bool missing = order[i] == "linear2.weight" || order[i] == "norm1.bias";
    EXPECT_TRUE(same_bits(after[i], missing ? before[i] : source[i])) << order[i];
  }
  // A non-strict load still checks what it copies.
  sd = source_.state_dict();
  Tensor<float> wrong({2});
  sd["norm1.weight"] = wrong;
  EXPECT_TRUE(throws_error_naming([&] { layer_.load_state_dict(sd, false); }, "norm1.weight"));
}

// ---- training mode and seeds ------------------------------------------------------------

nn::TransformerLayerOptions dropout_options(double p) {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 32;
  o.dropout = p;
  return o;
}

TEST(ModulesTraining, TrainAndEvalReachEveryChild) {
  nn::TransformerEncoder enc(nn::TransformerEncoderLayer(16, 4, dropout_options(0.5)), 2,
                             nn::LayerNorm(16));
  EXPECT_TRUE(enc.training());  // torch's default
  enc.eval();
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_FALSE(enc.layer(i).training());
    EXPECT_FALSE(enc.layer(i).self_attn().training());
    EXPECT_FALSE(enc.layer(i).self_attn().out_proj().training());
  }
  // Every dropout (attention weights, after attention, inside and after the
  // feed-forward) off: the same numbers as a copy without dropout.
  nn::TransformerEncoder plain(nn::TransformerEncoderLayer(16, 4, dropout_options(0.0)), 2,
                               nn::LayerNorm(16));
  randomize(enc, 34);
  plain.load_state_dict(enc.state_dict());
  plain.eval();
  const Tensor<float> src = random_tensor({6, 2, 16}, 35);
  Tensor<float> a({6, 2, 16}), b({6, 2, 16});
  enc.forward(src.view<3>(), a.view<3>());
  plain.forward(src.view<3>(), b.view<3>());
  EXPECT_TRUE(same_bits(a, b));

  enc.train();
  EXPECT_TRUE(enc.layer(1).self_attn().out_proj().training());
  enc.forward(src.view<3>(), a.view<3>());
  EXPECT_FALSE(same_bits(a, b));
}

TEST(ModulesTraining, SeedReplaysAWholeLayerInTrainingMode) {
  nn::TransformerEncoderLayer layer(16, 4, dropout_options(0.3));
  randomize(layer, 36);
  const Tensor<float> src = random_tensor({7, 3, 16}, 37);
  Tensor<float> first({7, 3, 16}), second({7, 3, 16}), again({7, 3, 16});
  layer.seed(2024);
  layer.forward(src.view<3>(), first.view<3>());
  layer.forward(src.view<3>(), second.view<3>());
  EXPECT_FALSE(same_bits(first, second));
  layer.seed(2024);
  layer.forward(src.view<3>(), again.view<3>());
  EXPECT_TRUE(same_bits(first, again));
  // A copy seeded alike draws alike; another seed draws otherwise.
  nn::TransformerEncoderLayer copy = layer;
  copy.seed(2024);
  copy.forward(src.view<3>(), again.view<3>());
  EXPECT_TRUE(same_bits(first, again));
  copy.seed(2025);
  copy.forward(src.view<3>(), again.view<3>());
  EXPECT_FALSE(same_bits(first, again));
}

// ---- threads ---------------------------------------------------------------------------

TEST(ModulesThreads, ConcurrentForwardPassesGiveTheSingleThreadedResults) {
  nn::TransformerLayerOptions o = dropout_options(0.1);
  o.dim_feedforward = 64;
  nn::TransformerEncoder enc(nn::TransformerEncoderLayer(32, 4, o), 2, nn::LayerNorm(32));
  randomize(enc, 38);
  enc.eval();
  constexpr int kThreads = 4, kRepeats = 10;
  std::vector<Tensor<float>> inputs, expected;
  std::vector<std::vector<int64_t>> lengths;
  for (int t = 0; t < kThreads; ++t) {
    // Different lengths per thread: different workspace sizes at once.
    const int64_t l = 5 + 3 * t;
    inputs.push_back(random_tensor({l, 3, 32}, 40 + static_cast<uint32_t>(t)));
    lengths.push_back({l, l - 1, 2});
    expected.emplace_back(inputs.back().shape());
    nn::AttentionMasks masks;
    masks.mask = key_lengths(lengths.back());
    enc.forward(inputs.back().view<3>(), expected.back().view<3>(), masks);
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      nn::AttentionMasks masks;
      masks.mask = key_lengths(lengths[static_cast<std::size_t>(t)]);
      Tensor<float> out(inputs[static_cast<std::size_t>(t)].shape());
      for (int r = 0; r < kRepeats; ++r) {
        std::fill(out.begin(), out.end(), 0.0f);
        enc.forward(inputs[static_cast<std::size_t>(t)].view<3>(), out.view<3>(), masks);
        mismatches[static_cast<std::size_t>(t)] +=
            !same_bits(out, expected[static_cast<std::size_t>(t)]);
      }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(kThreads, 0));
}

// ---- bad shapes ------------------------------------------------------------------------

// f() throws an Error for `argument` itself: the message starts
// "maskattn: <argument>: expected", so "key" does not match "key_padding_mask"
// nor "x" any word with an x.
template <class F>
::testing::AssertionResult throws_error_for(F&& f, const std::string& argument) {
  return throws_error_naming(std::forward<F>(f), "maskattn: " + argument + ": expected");
}

TEST(ModulesErrors, EveryForwardNamesItsBadArgument) {
  Tensor<float> x2({4, 6}), y2({4, 6}), bad2({4, 5}), short2({3, 6});
  nn::Linear linear(6, 6);
  EXPECT_TRUE(throws_error_for([&] { linear.forward(bad2.view<2>(), y2.view<2>()); }, "Linear: x"));
  EXPECT_TRUE(
      throws_error_for([&] { linear.forward(x2.view<2>(), short2.view<2>()); }, "Linear: y"));
  nn::LayerNorm norm(6);
  EXPECT_TRUE(
      throws_error_for([&] { norm.forward(bad2.view<2>(), y2.view<2>()); }, "LayerNorm: x"));
  EXPECT_TRUE(
      throws_error_for([&] { norm.forward(x2.view<2>(), short2.view<2>()); }, "LayerNorm: y"));
  nn::Dropout dropout(0.1);
  EXPECT_TRUE(
      throws_error_for([&] { dropout.forward(x2.view<2>(), short2.view<2>()); }, "Dropout: y"));
  nn::FeedForward ff(6, 8);
  EXPECT_TRUE(throws_error_for([&] { ff.forward(bad2.view<2>(), y2.view<2>()); }, "Linear: x"));
  EXPECT_TRUE(throws_error_for([&] { ff.forward(x2.view<2>(), short2.view<2>()); }, "Linear: y"));
  nn::Embedding emb(5, 6);
  Tensor<int64_t> ids({2, 3});
  Tensor<float> emb_bad({2, 3, 5});
  EXPECT_TRUE(
      throws_error_for([&] { emb.forward(ids.view<2>(), emb_bad.view<3>()); }, "Embedding: out"));

  Tensor<float> x3({5, 2, 8}), y3({5, 2, 8}), e7({5, 2, 7}), n3({5, 3, 8});
  nn::PositionalEncoding pe(8, 0.0, 20);
  EXPECT_TRUE(
      throws_error_for([&] { pe.forward(e7.view<3>(), e7.view<3>()); }, "PositionalEncoding: x"));
  EXPECT_TRUE(
      throws_error_for([&] { pe.forward(x3.view<3>(), n3.view<3>()); }, "PositionalEncoding: y"));

  nn::MultiheadAttention mha(8, 2);
  Tensor<float> w({2, 1, 5, 5}), w_bad({2, 1, 5, 4});
  const auto attend = [&](const Tensor<float>& q, const Tensor<float>& k, const Tensor<float>& v,
                          Tensor<float>& out, const nn::AttentionMasks& m, Tensor<float>& weights) {
    mha.forward(q.view<3>(), k.view<3>(), v.view<3>(), out.view<3>(), m, {}, weights.view<4>());
  };
  EXPECT_TRUE(throws_error_for([&] { attend(e7, x3, x3, y3, {}, w); }, "query"));
  EXPECT_TRUE(throws_error_for([&] { attend(x3, n3, x3, y3, {}, w); }, "key"));
  EXPECT_TRUE(throws_error_for([&] { attend(x3, x3, e7, y3, {}, w); }, "value"));
  EXPECT_TRUE(throws_error_for([&] { attend(x3, x3, x3, n3, {}, w); }, "out"));
  EXPECT_TRUE(throws_error_for([&] { attend(x3, x3, x3, y3, {}, w_bad); }, "weights"));
  Tensor<bool> am({5, 4}), kpm({3, 5});
  nn::AttentionMasks bad_am, bad_kpm;
  bad_am.attn_mask = am;
  bad_kpm.key_padding_mask = kpm;
  EXPECT_TRUE(throws_error_for([&] { attend(x3, x3, x3, y3, bad_am, w); }, "attn_mask"));
  EXPECT_TRUE(throws_error_for([&] { attend(x3, x3, x3, y3, bad_kpm, w); }, "key_padding_mask"));

  nn::TransformerLayerOptions o;
  o.dim_feedforward = 16;
  nn::TransformerEncoderLayer enc_layer(8, 2, o);
  EXPECT_TRUE(throws_error_for([&] { enc_layer.forward(e7.view<3>(), e7.view<3>()); }, "src"));
  EXPECT_TRUE(throws_error_for([&] { enc_layer.forward(x3.view<3>(), n3.view<3>()); }, "out"));
  nn::TransformerEncoder enc(enc_layer, 2);
  EXPECT_TRUE(throws_error_for([&] { enc.forward(e7.view<3>(), e7.view<3>()); }, "src"));
  EXPECT_TRUE(throws_error_for([&] { enc.forward(x3.view<3>(), n3.view<3>()); }, "out"));

  nn::TransformerDecoderLayer dec_layer(8, 2, o);
  const auto decode = [&](const Tensor<float>& tgt, const Tensor<float>& memory,
                          Tensor<float>& out) {
    dec_layer.forward(tgt.view<3>(), memory.view<3>(), out.view<3>());
  };
  Tensor<float> mem({7, 2, 8}), mem_batch({7, 3, 8});
  EXPECT_TRUE(throws_error_for([&] { decode(e7, mem, e7); }, "tgt"));
  EXPECT_TRUE(throws_error_for([&] { decode(x3, e7, y3); }, "memory"));
  EXPECT_TRUE(throws_error_for([&] { decode(x3, mem_batch, y3); }, "memory"));
  EXPECT_TRUE(throws_error_for([&] { decode(x3, mem, n3); }, "out"));

  nn::TransformerOptions t;
  t.d_model = 8;
  t.nhead = 2;
  t.num_encoder_layers = t.num_decoder_layers = 1;
  t.layer = o;
  nn::Transformer transformer(t);
  EXPECT_TRUE(throws_error_for(
      [&] { transformer.forward(mem.view<3>(), n3.view<3>(), n3.view<3>()); }, "tgt"));
  EXPECT_TRUE(throws_error_for(
      [&] { transformer.forward(e7.view<3>(), x3.view<3>(), y3.view<3>()); }, "src"));
}

}  // namespace
}  // namespace maskattn
