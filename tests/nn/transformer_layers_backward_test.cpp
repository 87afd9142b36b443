// TransformerEncoderLayer and TransformerDecoderLayer backward against
// central finite differences of L = sum(w * out) (gradient_check.hpp): post-
// norm and norm_first, batch_first, masks on every attention, dropout active
// from a fixed seed (every forward reseeded: the same draws each time). The
// feed-forward runs GELU here: a difference across ReLU's kink is no
// derivative, and the layers' ReLU path is checked against torch's autograd
// (python/tests/test_nn_backward.py) and FeedForward's own differences.
//
// Tolerance 1e-3 of max(1, |fd|); each check prints its worst error. Measured:
// 2.2e-4 at most (post-norm norm1.weight), the differences' own truncation
// error through two norms: at a step of 3e-3 it falls to 3.6e-5, while the
// other checks (~1e-5 to 1e-4, float32 rounding) rise.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "maskattn/nn/transformer_layers.hpp"
#include "nn/gradient_check.hpp"
#include "nn/module_fixtures.hpp"

namespace maskattn {
namespace {

using namespace testing_modules;    // NOLINT(google-build-using-namespace): the suites' fixtures
using namespace testing_gradients;  // NOLINT(google-build-using-namespace)

constexpr double kLayerTol = 1e-3;
constexpr uint64_t kSeed = 5;

struct LayerCase {
  const char* name;
  bool norm_first, batch_first;
  double dropout;
};

const LayerCase kCases[] = {{"post-norm", false, false, 0.0},
                            {"post-norm, dropout", false, false, 0.2},
                            {"norm_first, dropout", true, false, 0.2},
                            {"norm_first, batch_first", true, true, 0.0}};

nn::TransformerLayerOptions options_of(const LayerCase& c) {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 12;
  o.dropout = c.dropout;
  o.activation = nn::Activation::GELU;
  o.norm_first = c.norm_first;
  o.batch_first = c.batch_first;
  return o;
}

// (A, B, E) for L positions of N sequences in the case's layout.
std::vector<int64_t> seq_shape(const LayerCase& c, int64_t l, int64_t n, int64_t e) {
  return c.batch_first ? std::vector<int64_t>{n, l, e} : std::vector<int64_t>{l, n, e};
}

bool same_values(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}

TEST(BackwardTransformerEncoderLayer, GradientsMatchFiniteDifferences) {
  const int64_t l = 4, n = 2, e = 8;
  for (const LayerCase& c : kCases) {
    SCOPED_TRACE(c.name);
    std::printf("  %s\n", c.name);
    nn::TransformerEncoderLayer layer(e, 2, options_of(c));
    layer.train();
    randomize(layer, 30);
    Tensor<float> src = random_tensor(seq_shape(c, l, n, e), 31);
    const Tensor<float> w = random_tensor(src.shape(), 32);
    nn::AttentionMasks masks;
    masks.is_causal = true;
    const std::vector<int64_t> lengths{4, 3};
    masks.mask = key_lengths(lengths);
    Tensor<float> out(src.shape());
    const auto loss = [&] {
      layer.seed(kSeed);
      layer.forward(src.view<3>(), out.view<3>(), masks);
      return weighted_sum(out.data(), w.data(), out.numel());
    };
    layer.seed(kSeed);
    nn::TransformerEncoderLayer::Saved saved;
    layer.forward(src.view<3>(), out.view<3>(), masks, saved);
    const Tensor<float> trained = out;
    loss();
    EXPECT_TRUE(same_values(out, trained));  // the training forward is the forward
    nn::Gradients grads(layer);
    Tensor<float> dsrc(src.shape());
    layer.backward(src.view<3>(), saved, w.view<3>(), dsrc.view<3>(), grads);
    expect_gradient("src", src.data(), dsrc.data(), src.numel(), loss, kLayerTol);
    expect_parameter_gradients(layer, grads, loss, kLayerTol);
  }
}

TEST(BackwardTransformerDecoderLayer, GradientsMatchFiniteDifferences) {
  const int64_t t = 3, s = 4, n = 2, e = 8;
  for (const LayerCase& c : kCases) {
    SCOPED_TRACE(c.name);
    std::printf("  %s\n", c.name);
    nn::TransformerDecoderLayer layer(e, 2, options_of(c));
    layer.train();
    randomize(layer, 40);
    Tensor<float> tgt = random_tensor(seq_shape(c, t, n, e), 41);
    Tensor<float> memory = random_tensor(seq_shape(c, s, n, e), 42);
    const Tensor<float> w = random_tensor(tgt.shape(), 43);
    nn::AttentionMasks tgt_masks, memory_masks;
    tgt_masks.is_causal = true;
    const std::vector<int64_t> lengths{4, 2};
    memory_masks.mask = key_lengths(lengths);
    Tensor<float> out(tgt.shape());
    const auto loss = [&] {
      layer.seed(kSeed);
      layer.forward(tgt.view<3>(), memory.view<3>(), out.view<3>(), tgt_masks, memory_masks);
      return weighted_sum(out.data(), w.data(), out.numel());
    };
    layer.seed(kSeed);
    nn::TransformerDecoderLayer::Saved saved;
    layer.forward(tgt.view<3>(), memory.view<3>(), out.view<3>(), tgt_masks, memory_masks, saved);
    const Tensor<float> trained = out;
    loss();
    EXPECT_TRUE(same_values(out, trained));
    nn::Gradients grads(layer);
    Tensor<float> dtgt(tgt.shape()), dmemory(memory.shape());
    std::fill(dmemory.begin(), dmemory.end(), kSentinel);  // written, not added to
    layer.backward(tgt.view<3>(), memory.view<3>(), saved, w.view<3>(), dtgt.view<3>(),
                   dmemory.view<3>(), grads);
    expect_gradient("tgt", tgt.data(), dtgt.data(), tgt.numel(), loss, kLayerTol);
    expect_gradient("memory", memory.data(), dmemory.data(), memory.numel(), loss, kLayerTol);
    expect_parameter_gradients(layer, grads, loss, kLayerTol);
  }
}

TEST(BackwardTransformerLayers, TrainingForwardInPlaceIsAnErrorAndGradientsNeedNotBeWanted) {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 6;
  nn::TransformerEncoderLayer layer(4, 2, o);
  Tensor<float> src = random_tensor({3, 1, 4}, 50);
  nn::TransformerEncoderLayer::Saved saved;
  EXPECT_TRUE(
      throws_error_naming([&] { layer.forward(src.view<3>(), src.view<3>(), {}, saved); }, "out"));
  Tensor<float> out(src.shape());
  layer.forward(src.view<3>(), out.view<3>(), {}, saved);
  nn::Gradients with(layer), without(layer);
  Tensor<float> dsrc(src.shape());
  const Tensor<float> dout = random_tensor(src.shape(), 51);
  layer.backward(src.view<3>(), saved, dout.view<3>(), dsrc.view<3>(), with);
  layer.backward(src.view<3>(), saved, dout.view<3>(), View<float, 3>(), without);
  for (const auto& [name, param] : layer.named_parameters())
    EXPECT_TRUE(same_values(with[*param], without[*param])) << name;
  EXPECT_TRUE(throws_error_naming(
      [&] {
        layer.backward(src.view<3>(), saved, random_tensor({3, 2, 4}, 52).view<3>(), dsrc.view<3>(),
                       with);
      },
      "dout"));
}

}  // namespace
}  // namespace maskattn
