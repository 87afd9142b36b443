// The stacks' and the Transformer's backward against central finite
// differences of L = sum(w * out) (gradient_check.hpp): TransformerEncoder and
// TransformerDecoder of two layers with a final norm (and without layers:
// the norm alone), Transformer of one encoder and two decoder layers, with
// masks and dropout active from a fixed seed (every forward reseeded). GELU,
// as in transformer_layers_backward_test.cpp (ReLU's kink; the ReLU path is
// checked against torch's autograd in python/tests/test_transformer_backward.py).
//
// Tolerance 1e-3 of max(1, |fd|), as the layers'; each check prints its worst
// error (measured: 2.9e-4 at most, a post-norm norm1.weight again: the
// differences' truncation error, see transformer_layers_backward_test.cpp).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "maskattn/nn/transformer.hpp"
#include "nn/gradient_check.hpp"
#include "nn/module_fixtures.hpp"

namespace maskattn {
namespace {

using namespace testing_modules;    // NOLINT(google-build-using-namespace): the suites' fixtures
using namespace testing_gradients;  // NOLINT(google-build-using-namespace)

constexpr double kStackTol = 1e-3;
constexpr uint64_t kSeed = 8;
constexpr int64_t kDim = 8, kHeads = 2;

nn::TransformerLayerOptions layer_options(bool norm_first) {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 12;
  o.dropout = 0.15;
  o.activation = nn::Activation::GELU;
  o.norm_first = norm_first;
  return o;
}

bool same_values(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}

TEST(BackwardTransformerEncoder, GradientsMatchFiniteDifferences) {
  for (const int64_t layers : {2, 0}) {
    SCOPED_TRACE(layers);
    std::printf("  %lld layers\n", static_cast<long long>(layers));
    nn::TransformerEncoder encoder(nn::TransformerEncoderLayer(kDim, kHeads, layer_options(true)),
                                   layers, nn::LayerNorm(kDim));
    encoder.train();
    randomize(encoder, 60);
    Tensor<float> src = random_tensor({4, 2, kDim}, 61);  // (L, N, E)
    const Tensor<float> w = random_tensor(src.shape(), 62);
    const std::vector<int64_t> lengths{4, 2};
    nn::AttentionMasks masks;
    masks.mask = key_lengths(lengths);
    Tensor<float> out(src.shape());
    const auto loss = [&] {
      encoder.seed(kSeed);
      encoder.forward(src.view<3>(), out.view<3>(), masks);
      return weighted_sum(out.data(), w.data(), out.numel());
    };
    encoder.seed(kSeed);
    nn::TransformerEncoder::Saved saved;
    encoder.forward(src.view<3>(), out.view<3>(), masks, saved);
    const Tensor<float> trained = out;
    loss();
    EXPECT_TRUE(same_values(out, trained));  // the training forward is the forward
    nn::Gradients grads(encoder);
    Tensor<float> dsrc(src.shape());
    encoder.backward(src.view<3>(), saved, w.view<3>(), dsrc.view<3>(), grads);
    expect_gradient("src", src.data(), dsrc.data(), src.numel(), loss, kStackTol);
    expect_parameter_gradients(encoder, grads, loss, kStackTol);
  }
}

TEST(BackwardTransformerDecoder, GradientsMatchFiniteDifferencesMemorySummedOverLayers) {
  nn::TransformerDecoder decoder(nn::TransformerDecoderLayer(kDim, kHeads, layer_options(false)), 2,
                                 nn::LayerNorm(kDim));
  decoder.train();
  randomize(decoder, 70);
  Tensor<float> tgt = random_tensor({3, 2, kDim}, 71);     // (T, N, E)
  Tensor<float> memory = random_tensor({5, 2, kDim}, 72);  // (S, N, E)
  const Tensor<float> w = random_tensor(tgt.shape(), 73);
  const std::vector<int64_t> lengths{5, 3};
  nn::AttentionMasks tgt_masks, memory_masks;
  tgt_masks.is_causal = true;
  memory_masks.mask = key_lengths(lengths);
  Tensor<float> out(tgt.shape());
  const auto loss = [&] {
    decoder.seed(kSeed);
    decoder.forward(tgt.view<3>(), memory.view<3>(), out.view<3>(), tgt_masks, memory_masks);
    return weighted_sum(out.data(), w.data(), out.numel());
  };
  decoder.seed(kSeed);
  nn::TransformerDecoder::Saved saved;
  decoder.forward(tgt.view<3>(), memory.view<3>(), out.view<3>(), tgt_masks, memory_masks, saved);
  nn::Gradients grads(decoder);
  Tensor<float> dtgt(tgt.shape()), dmemory(memory.shape());
  decoder.backward(tgt.view<3>(), memory.view<3>(), saved, w.view<3>(), dtgt.view<3>(),
                   dmemory.view<3>(), grads);
  expect_gradient("tgt", tgt.data(), dtgt.data(), tgt.numel(), loss, kStackTol);
  expect_gradient("memory", memory.data(), dmemory.data(), memory.numel(), loss, kStackTol);
  expect_parameter_gradients(decoder, grads, loss, kStackTol);
}

TEST(BackwardTransformer, GradientsMatchFiniteDifferences) {
  nn::TransformerOptions o;
  o.d_model = kDim;
  o.nhead = kHeads;
  o.num_encoder_layers = 1;
  o.num_decoder_layers = 2;
  o.layer = layer_options(true);
  o.layer.batch_first = true;
  nn::Transformer model(o);
  model.train();
  randomize(model, 80);
  Tensor<float> src = random_tensor({2, 4, kDim}, 81);  // (N, S, E)
  Tensor<float> tgt = random_tensor({2, 3, kDim}, 82);  // (N, T, E)
  const Tensor<float> w = random_tensor(tgt.shape(), 83);
  const std::vector<int64_t> lengths{4, 3};
  nn::AttentionMasks src_masks, tgt_masks, memory_masks;
  src_masks.mask = key_lengths(lengths);
  tgt_masks.is_causal = true;
  memory_masks.mask = key_lengths(lengths);
  Tensor<float> out(tgt.shape());
  const auto loss = [&] {
    model.seed(kSeed);
    model.forward(src.view<3>(), tgt.view<3>(), out.view<3>(), src_masks, tgt_masks, memory_masks);
    return weighted_sum(out.data(), w.data(), out.numel());
  };
  model.seed(kSeed);
  nn::Transformer::Saved saved;
  model.forward(src.view<3>(), tgt.view<3>(), out.view<3>(), src_masks, tgt_masks, memory_masks,
                saved);
  const Tensor<float> trained = out;
  loss();
  EXPECT_TRUE(same_values(out, trained));
  nn::Gradients grads(model);
  Tensor<float> dsrc(src.shape()), dtgt(tgt.shape());
  model.backward(src.view<3>(), tgt.view<3>(), saved, w.view<3>(), dsrc.view<3>(), dtgt.view<3>(),
                 grads);
  expect_gradient("src", src.data(), dsrc.data(), src.numel(), loss, kStackTol);
  expect_gradient("tgt", tgt.data(), dtgt.data(), tgt.numel(), loss, kStackTol);
  expect_parameter_gradients(model, grads, loss, kStackTol);

  // A second step with the same Saved: storage kept, the same gradients.
  nn::Gradients again(model);
  const float* memory_storage = saved.memory.data();
  model.seed(kSeed);
  model.forward(src.view<3>(), tgt.view<3>(), out.view<3>(), src_masks, tgt_masks, memory_masks,
                saved);
  EXPECT_EQ(saved.memory.data(), memory_storage);
  model.backward(src.view<3>(), tgt.view<3>(), saved, w.view<3>(), View<float, 3>(),
                 View<float, 3>(), again);
  for (const auto& [name, param] : model.named_parameters())
    EXPECT_TRUE(same_values(again[*param], grads[*param])) << name;
}

}  // namespace
}  // namespace maskattn
