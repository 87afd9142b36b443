// The backward passes of the basic modules (Linear, LayerNorm, Dropout,
// Embedding and its tied output projection, FeedForward, PositionalEncoding)
// against central finite differences of L = sum(w * y) (gradient_check.hpp),
// with dropout active from a fixed seed (the forward is then a fixed
// function of its inputs), plus what the contract promises beyond values:
// parameter gradients add up over calls, an empty input gradient is skipped,
// in-place input gradients equal out-of-place ones.
//
// Tolerance: 2e-4 of max(1, |fd|) for every value, the finite differences'
// own error being ~1e-5 (gradient_check.hpp); each check prints its worst
// error (measured: 2.4e-5 at most, LayerNorm's x).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "nn/gradient_check.hpp"
#include "nn/module_fixtures.hpp"
#include "nn/projection.hpp"

namespace maskattn {
namespace {

using namespace testing_modules;    // NOLINT(google-build-using-namespace): the suites' fixtures
using namespace testing_gradients;  // NOLINT(google-build-using-namespace)

constexpr double kGradTol = 2e-4;
constexpr uint64_t kSeed = 77;

bool same_values(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(float)) == 0;
}

// ---- Linear ---------------------------------------------------------------------

TEST(BackwardLinear, GradientsMatchFiniteDifferencesWithStridedRows) {
  for (const bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "bias" : "no bias");
    const int64_t n = 5, in = 7, out = 6, stride = 9;
    nn::Linear linear(in, out, bias);
    randomize(linear, 1);
    // x and dx (N, in) with rows 9 apart: the gaps are neither read nor written.
    Tensor<float> xs = random_tensor({n, stride}, 2);
    const View<float, 2> x(xs.data(), {n, in}, {stride, 1});
    const Tensor<float> w = random_tensor({n, out}, 3);
    Tensor<float> y({n, out});
    const auto loss = [&] {
      linear.forward(x, y.view<2>());
      return weighted_sum(y.data(), w.data(), y.numel());
    };

    nn::Gradients grads(linear);
    nn::Linear::Saved saved;
    linear.forward(x, y.view<2>(), saved);
    Tensor<float> dxs({n, stride});
    std::fill(dxs.begin(), dxs.end(), kSentinel);
    const View<float, 2> dx(dxs.data(), {n, in}, {stride, 1});
    linear.backward(x, saved, w.view<2>(), dx, grads);

    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = in; c < stride; ++c) EXPECT_EQ(dxs.data()[r * stride + c], kSentinel);
      expect_gradient(fmt::format("x row {}", r), x.row(r), dx.row(r), in, loss, kGradTol);
    }
    expect_parameter_gradients(linear, grads, loss, kGradTol);
  }
}

TEST(BackwardLinear, ParameterGradientsAddUpAndAnEmptyDxIsSkipped) {
  const int64_t n = 4, in = 3, out = 5;
  nn::Linear linear(in, out);
  randomize(linear, 4);
  const Tensor<float> x = random_tensor({n, in}, 5);
  const Tensor<float> dy = random_tensor({n, out}, 6);
  nn::Gradients once(linear), twice(linear);
  linear.backward(x.view<2>(), {}, dy.view<2>(), View<float, 2>(), once);
  linear.backward(x.view<2>(), {}, dy.view<2>(), View<float, 2>(), twice);
  linear.backward(x.view<2>(), {}, dy.view<2>(), View<float, 2>(), twice);
  for (const auto& [name, param] : linear.named_parameters()) {
    SCOPED_TRACE(name);
    const Tensor<float>& a = once[*param];
    const Tensor<float>& b = twice[*param];
    for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(b.data()[i], 2.0f * a.data()[i]);
    EXPECT_GT(std::abs(a.data()[0]), 0.0f);
  }
}

TEST(BackwardLinear, ProjectionBackwardAccumulatesDxOnRequest) {
  // Several projections of one input (self-attention's q, k, v) add their dx.
  const int64_t n = 3, in = 4, out = 2;
  const Tensor<float> x = random_tensor({n, in}, 7), weight = random_tensor({out, in}, 8);
  const Tensor<float> dy = random_tensor({n, out}, 9);
  Tensor<float> dx({n, in}), twice({n, in});
  nn::detail::project_backward(x.view<2>(), weight.data(), dy.view<2>(), dx.view<2>(), nullptr,
                               nullptr);
  nn::detail::project_backward(x.view<2>(), weight.data(), dy.view<2>(), twice.view<2>(), nullptr,
                               nullptr);
  nn::detail::project_backward(x.view<2>(), weight.data(), dy.view<2>(), twice.view<2>(), nullptr,
                               nullptr, /*accumulate_dx=*/true);
  for (int64_t i = 0; i < dx.numel(); ++i) {
    double want = 0.0;  // dx = dy W
    for (int64_t o = 0; o < out; ++o)
      want += static_cast<double>(dy.data()[i / in * out + o]) * weight.data()[o * in + i % in];
    EXPECT_NEAR(dx.data()[i], want, kTol);
    EXPECT_FLOAT_EQ(twice.data()[i], 2.0f * dx.data()[i]);
  }
}

// ---- LayerNorm ------------------------------------------------------------------

TEST(BackwardLayerNorm, GradientsMatchFiniteDifferencesAndDxMayBeDy) {
  struct Case {
    const char* name;
    bool affine, bias;
  };
  for (const Case& c :
       {Case{"affine", true, true}, Case{"no affine", false, true}, Case{"no bias", true, false}}) {
    SCOPED_TRACE(c.name);
    const int64_t n = 4, d = 9;
    nn::LayerNorm norm(d, 1e-3, c.affine, c.bias);
    randomize(norm, 10);
    Tensor<float> x = random_tensor({n, d}, 11, 1.0f, 3.0f);  // a mean that matters
    const Tensor<float> w = random_tensor({n, d}, 12);
    Tensor<float> y({n, d});
    const auto loss = [&] {
      norm.forward(x.view<2>(), y.view<2>());
      return weighted_sum(y.data(), w.data(), y.numel());
    };
    nn::Gradients grads(norm);
    nn::LayerNorm::Saved saved;
    norm.forward(x.view<2>(), y.view<2>(), saved);
    const Tensor<float> y_plain = [&] {
      Tensor<float> t({n, d});
      norm.forward(x.view<2>(), t.view<2>());
      return t;
    }();
    EXPECT_TRUE(same_values(y.data(), y_plain.data(), y.numel()));  // one forward
    Tensor<float> dx({n, d});
    norm.backward(x.view<2>(), saved, w.view<2>(), dx.view<2>(), grads);
    expect_gradient("x", x.data(), dx.data(), x.numel(), loss, kGradTol);
    expect_parameter_gradients(norm, grads, loss, kGradTol);

    // In place: dx written over dy gives the same values.
    nn::Gradients again(norm);
    Tensor<float> g = w;
    norm.backward(x.view<2>(), saved, g.view<2>(), g.view<2>(), again);
    EXPECT_TRUE(same_values(g.data(), dx.data(), dx.numel()));
    for (const auto& [name, param] : norm.named_parameters())
      EXPECT_TRUE(same_values(again[*param].data(), grads[*param].data(), param->numel()));
  }
}

TEST(BackwardLayerNorm, TrainingForwardInPlaceIsAnError) {
  nn::LayerNorm norm(3);
  Tensor<float> x = random_tensor({2, 3}, 13);
  nn::LayerNorm::Saved saved;
  EXPECT_TRUE(
      throws_error_naming([&] { norm.forward(x.view<2>(), x.view<2>(), saved); }, "LayerNorm: y"));
}

// ---- Dropout --------------------------------------------------------------------

TEST(BackwardDropout, ReplaysTheForwardsMaskFromItsSeed) {
  const int64_t n = 6, d = 10;
  nn::Dropout dropout(0.4);
  dropout.train();
  Tensor<float> x = random_tensor({n, d}, 14, 0.5f, 1.5f);  // never 0: a kept value shows
  const Tensor<float> w = random_tensor({n, d}, 15);
  Tensor<float> y({n, d});
  const auto loss = [&] {
    dropout.seed(kSeed);  // the same draw in every forward
    dropout.forward(x.view<2>(), y.view<2>());
    return weighted_sum(y.data(), w.data(), y.numel());
  };
  dropout.seed(kSeed);
  nn::Dropout::Saved saved;
  dropout.forward(x.view<2>(), y.view<2>(), saved);
  EXPECT_TRUE(saved.active);
  Tensor<float> dx({n, d});
  dropout.backward(saved, w.view<2>(), dx.view<2>());
  int64_t dropped = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    // dx = w where y = x / (1 - p), 0 where y = 0.
    const bool kept = y.data()[i] != 0.0f;
    dropped += kept ? 0 : 1;
    EXPECT_EQ(dx.data()[i], kept ? w.data()[i] * static_cast<float>(1.0 / 0.6) : 0.0f) << i;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, x.numel());
  expect_gradient("x", x.data(), dx.data(), x.numel(), loss, kGradTol);

  // Eval mode: inactive, dx = dy.
  dropout.eval();
  dropout.forward(x.view<2>(), y.view<2>(), saved);
  EXPECT_FALSE(saved.active);
  dropout.backward(saved, w.view<2>(), dx.view<2>());
  EXPECT_TRUE(same_values(dx.data(), w.data(), w.numel()));
}

// ---- Embedding and the tied output projection -----------------------------------

TEST(BackwardEmbedding, ScatterAddsScaledRowsAndThePaddingRowGetsNone) {
  const int64_t vocab = 6, d = 4, padding = 2;
  nn::Embedding emb(vocab, d, padding, /*scale_by_sqrt_dim=*/true);
  randomize(emb, 16);  // the padding row too: its use in the forward shows
  // Repeated ids (their rows sum), the padding id, and id 5 unused.
  const std::vector<int64_t> id_values{1, 3, 2, 1, 0, 3, 3, 2};
  const View<const int64_t, 2> ids(id_values.data(), {2, 4});
  const Tensor<float> w = random_tensor({2, 4, d}, 17);
  Tensor<float> out({2, 4, d});
  const auto loss = [&] {
    emb.forward(ids, out.view<3>());
    return weighted_sum(out.data(), w.data(), out.numel());
  };
  nn::Gradients grads(emb);
  nn::Embedding::Saved saved;
  emb.forward(ids, out.view<3>(), saved);
  emb.backward(ids, saved, w.view<3>(), grads);
  const float* g = grads[emb.weight()].data();
  // Row `padding` is zero although the forward read it (torch's rule); the
  // other rows are the loss's derivative.
  for (int64_t j = 0; j < d; ++j) EXPECT_EQ(g[padding * d + j], 0.0f);
  for (int64_t j = 0; j < d; ++j) EXPECT_EQ(g[5 * d + j], 0.0f);
  for (const int64_t row : {0, 1, 3, 4, 5})
    expect_gradient(fmt::format("weight row {}", row), emb.weight().data() + row * d, g + row * d,
                    d, loss, kGradTol);
  // Row 3: three tokens, sqrt(d) = 2 each.
  for (int64_t j = 0; j < d; ++j)
    EXPECT_FLOAT_EQ(g[3 * d + j],
                    2.0f * (w.data()[1 * d + j] + w.data()[5 * d + j] + w.data()[6 * d + j]));
}

TEST(BackwardEmbedding, TiedOutputProjectionSumsIntoTheSameGradient) {
  // logits = unembed(embed(ids)): the table is used twice, its gradient is
  // the sum of both uses.
  const int64_t vocab = 7, d = 5, b = 2, l = 3;
  nn::Embedding emb(vocab, d, /*padding_idx=*/std::nullopt, /*scale_by_sqrt_dim=*/true);
  randomize(emb, 18);
  const std::vector<int64_t> id_values{4, 0, 6, 4, 2, 1};
  const View<const int64_t, 2> ids(id_values.data(), {b, l});
  const Tensor<float> w = random_tensor({b * l, vocab}, 19);
  Tensor<float> e({b, l, d}), logits({b * l, vocab});
  const View<float, 2> e_rows(e.data(), {b * l, d});
  const auto loss = [&] {
    emb.forward(ids, e.view<3>());
    emb.unembed(e_rows, logits.view<2>());
    return weighted_sum(logits.data(), w.data(), logits.numel());
  };
  nn::Gradients grads(emb);
  nn::Embedding::Saved saved;
  emb.forward(ids, e.view<3>(), saved);
  emb.unembed(e_rows, logits.view<2>());
  Tensor<float> de({b, l, d});
  emb.unembed_backward(e_rows, w.view<2>(), View<float, 2>(de.data(), {b * l, d}), grads);
  emb.backward(ids, saved, de.view<3>(), grads);
  expect_parameter_gradients(emb, grads, loss, kGradTol);

  // The projection alone: dx and the weight's share against differences in x.
  Tensor<float> x = random_tensor({b * l, d}, 20);
  const auto loss_x = [&] {
    emb.unembed(x.view<2>(), logits.view<2>());
    return weighted_sum(logits.data(), w.data(), logits.numel());
  };
  nn::Gradients alone(emb);
  Tensor<float> dx({b * l, d});
  emb.unembed_backward(x.view<2>(), w.view<2>(), dx.view<2>(), alone);
  expect_gradient("unembed x", x.data(), dx.data(), x.numel(), loss_x, kGradTol);
  expect_parameter_gradients(emb, alone, loss_x, kGradTol);
}

// ---- FeedForward ----------------------------------------------------------------

TEST(BackwardFeedForward, GradientsMatchFiniteDifferencesReluGeluWithDropout) {
  for (const nn::Activation act : {nn::Activation::ReLU, nn::Activation::GELU})
    for (const double p : {0.0, 0.3}) {
      SCOPED_TRACE(fmt::format("{} dropout {}", act == nn::Activation::ReLU ? "relu" : "gelu", p));
      std::printf("  %s, dropout %.1f\n", act == nn::Activation::ReLU ? "relu" : "gelu", p);
      const int64_t n = 4, d = 5, hidden = 8;
      nn::FeedForward ff(d, hidden, act, p);
      ff.train();
      randomize(ff, 21);
      Tensor<float> x = random_tensor({n, d}, 22);
      const Tensor<float> w = random_tensor({n, d}, 23);
      Tensor<float> y({n, d});
      const auto loss = [&] {
        ff.seed(kSeed);
        ff.forward(x.view<2>(), y.view<2>());
        return weighted_sum(y.data(), w.data(), y.numel());
      };
      ff.seed(kSeed);
      nn::FeedForward::Saved saved;
      ff.forward(x.view<2>(), y.view<2>(), saved);
      const double plain = loss();  // the forward without Saved: the same numbers
      EXPECT_EQ(plain, weighted_sum(y.data(), w.data(), y.numel()));
      EXPECT_EQ(saved.dropout.active, p > 0.0);
      if (act == nn::Activation::ReLU) {
        // A difference across ReLU's kink is no derivative: every
        // pre-activation stays on its side for a step of x (|W1| <= 0.5),
        // of W1 (|x| <= 1) or of b1.
        double closest = 1e9;
        for (const float v : saved.pre) closest = std::min(closest, std::abs(double{v}));
        ASSERT_GT(closest, kStep) << "choose other random values";
      }
      nn::Gradients grads(ff);
      Tensor<float> dx({n, d});
      ff.backward(x.view<2>(), saved, w.view<2>(), dx.view<2>(), grads);
      expect_gradient("x", x.data(), dx.data(), x.numel(), loss, kGradTol);
      expect_parameter_gradients(ff, grads, loss, kGradTol);
    }
}

// ---- PositionalEncoding ---------------------------------------------------------

TEST(BackwardPositionalEncoding, DropoutReplayedForBothLayoutsAndAnOffset) {
  for (const bool batch_first : {false, true}) {
    SCOPED_TRACE(batch_first ? "batch_first" : "(L, N, E)");
    const int64_t a = 3, b = 2, d = 6;
    nn::PositionalEncoding pe(d, 0.5, 16);
    pe.train();
    Tensor<float> x = random_tensor({a, b, d}, 24);
    const Tensor<float> w = random_tensor({a, b, d}, 25);
    Tensor<float> y({a, b, d});
    const auto loss = [&] {
      pe.seed(kSeed);
      pe.forward(x.view<3>(), y.view<3>(), batch_first, 4);
      return weighted_sum(y.data(), w.data(), y.numel());
    };
    pe.seed(kSeed);
    nn::PositionalEncoding::Saved saved;
    pe.forward(x.view<3>(), y.view<3>(), batch_first, 4, saved);
    Tensor<float> dx({a, b, d});
    pe.backward(saved, w.view<3>(), dx.view<3>());
    int64_t dropped = 0;
    for (int64_t i = 0; i < dx.numel(); ++i) dropped += dx.data()[i] == 0.0f ? 1 : 0;
    EXPECT_GT(dropped, 0);
    EXPECT_LT(dropped, dx.numel());
    expect_gradient("x", x.data(), dx.data(), x.numel(), loss, kGradTol);
    // In place.
    Tensor<float> g = w;
    pe.backward(saved, g.view<3>(), g.view<3>());
    EXPECT_TRUE(same_values(g.data(), dx.data(), dx.numel()));
  }
}

}  // namespace
}  // namespace maskattn
