// The modules on their own, without torch: each against an oracle written
// here — naive double loops for Linear, LayerNorm and MultiheadAttention, the
// sinusoidal formula for PositionalEncoding, counts for Dropout — and what
// every module shares: torch's state_dict names and shapes, load_state_dict's
// errors and LoadResult, train()/eval() and seed() through the tree, forward
// passes from several threads at once, and an Error naming the argument for
// every bad shape. (tests/nn/golden_test.cpp compares with torch's numbers.)
#include <gtest/gtest.h>

#include <cmath>

#include "nn/module_fixtures.hpp"

namespace maskattn {
namespace {

using namespace testing_modules;  // NOLINT(google-build-using-namespace): the suite's fixtures

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

// The constructor's errors came from sinusoidal_encoding(max_len, d_model),
// naming its "dim" and "length": now this module's d_model and max_len.
TEST(ModulesPositionalEncoding, ConstructorErrorsNameDModelAndMaxLen) {
  EXPECT_TRUE(throws_error_naming([] { nn::PositionalEncoding(5, 0.0, 10); },
                                  "PositionalEncoding: d_model: expected"));
  EXPECT_TRUE(throws_error_naming([] { nn::PositionalEncoding(8, 0.0, -1); },
                                  "PositionalEncoding: max_len: expected"));
}

// Sizes whose product overflows int64 failed at the weight's Tensor ("Tensor
// shape", "Tensor bytes"): now the module's arguments.
TEST(ModulesErrors, ParameterSizesWhoseProductOverflowsNameTheArguments) {
  constexpr int64_t kHuge = int64_t{1} << 40, kBytes = int64_t{1} << 31;
  EXPECT_TRUE(throws_error_naming([] { nn::Linear(kHuge, kHuge); },
                                  "Linear: in_features * out_features: expected"));
  EXPECT_TRUE(throws_error_naming([] { nn::Linear(kBytes, kBytes); },
                                  "Linear: in_features * out_features: expected"));
  EXPECT_TRUE(throws_error_naming([] { nn::Embedding(kHuge, kHuge); },
                                  "Embedding: num_embeddings * embedding_dim: expected"));
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
  EXPECT_TRUE(
      throws_error_for([&] { ff.forward(bad2.view<2>(), y2.view<2>()); }, "FeedForward: x"));
  EXPECT_TRUE(
      throws_error_for([&] { ff.forward(x2.view<2>(), short2.view<2>()); }, "FeedForward: y"));
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

// Regression: constructors whose sizes overflow named an internal tensor
// ("Tensor shape") or threw std::bad_alloc (KvCache allocated its lengths
// before checking), and PositionalEncoding(3) named "dim", an argument it
// does not have.
TEST(ModulesErrors, ConstructorsNameTheirArgumentsForOverflowingSizes) {
  constexpr int64_t kHuge = int64_t{1} << 32;
  EXPECT_TRUE(throws_error_naming([] { nn::Linear(kHuge, kHuge); }, "Linear:"));
  EXPECT_TRUE(
      throws_error_naming([] { nn::PositionalEncoding(3); }, "PositionalEncoding: d_model"));
  EXPECT_TRUE(throws_error_naming([] { nn::PositionalEncoding(4, 0.1, int64_t{1} << 62); },
                                  "PositionalEncoding: max_len"));
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 8;
  const nn::TransformerDecoder dec(nn::TransformerDecoderLayer(4, 2, o), 1);
  EXPECT_TRUE(throws_error_naming([&] { nn::KvCache(dec, kHuge, kHuge); }, "KvCache: batch"));
}

// A torch-style mask of a dtype the adapter refuses (int64), or with NaN or
// +inf, was an Error naming "from_torch_mha_mask: attn_mask" whichever mask of
// a decoder it was: now the name the caller gave it, as for a wrong shape.
TEST(ModulesErrors, MaskDtypeAndValuesNameTheMask) {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 16;
  const nn::TransformerDecoderLayer dec(8, 2, o);
  Tensor<float> tgt({5, 2, 8}), memory({7, 2, 8}), out({5, 2, 8});
  Tensor<int64_t> int_mask({5, 7});
  Tensor<float> nan_mask({5, 5}), inf_padding({2, 7});
  nan_mask.data()[3] = std::nanf("");
  inf_padding.data()[1] = INFINITY;
  nn::AttentionMasks bad_memory, bad_tgt, bad_padding;
  bad_memory.attn_mask = int_mask;
  bad_tgt.attn_mask = nan_mask;
  bad_padding.key_padding_mask = inf_padding;
  const auto decode = [&](const nn::AttentionMasks& tgt_masks,
                          const nn::AttentionMasks& memory_masks) {
    dec.forward(tgt.view<3>(), memory.view<3>(), out.view<3>(), tgt_masks, memory_masks);
  };
  EXPECT_TRUE(throws_error_for([&] { decode({}, bad_memory); }, "memory_mask"));
  EXPECT_TRUE(throws_error_for([&] { decode(bad_tgt, {}); }, "tgt_mask"));
  EXPECT_TRUE(throws_error_for([&] { decode({}, bad_padding); }, "memory_key_padding_mask"));
  // -inf is masked, not an error.
  Tensor<float> minus_inf({5, 7});
  minus_inf.data()[0] = -INFINITY;
  nn::AttentionMasks ok;
  ok.attn_mask = minus_inf;
  EXPECT_NO_THROW(decode({}, ok));
}

}  // namespace
}  // namespace maskattn
