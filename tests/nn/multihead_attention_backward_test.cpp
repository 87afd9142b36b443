// MultiheadAttention::backward against central finite differences of its own
// forward: loss = sum(w * out) over a fixed random w (summed in double), so
// dout = w and d loss / d theta = sum(w * d out / d theta) for every element
// theta of every parameter and input. Each case runs the module in training
// mode and reseeds it before every forward, so dropout (when on) draws the
// same pattern in every evaluation and the loss is a smooth function of theta.
// (python/tests/test_mha_backward.py compares with torch's autograd.)
#include <gtest/gtest.h>

#include <array>
#include <string>

#include "maskattn/nn/gradients.hpp"
#include "nn/module_fixtures.hpp"

namespace maskattn {
namespace {

using namespace testing_modules;  // NOLINT(google-build-using-namespace): the suite's fixtures

// Central differences step and tolerance. The forward runs in float32: each
// output carries a rounding error of ~1e-7 relative, so the loss (a few dozen
// outputs of order 1) is known to ~1e-6, and its difference quotient over
// 2h = 2e-2 to ~5e-5; the truncation error h^2/6 f''' is ~2e-5 for these
// O(1) functions. Measured worst over every case: see the report of each.
constexpr float kStep = 1e-2f;
constexpr double kFdTol = 3e-4;  // |fd - analytic| <= kFdTol * max(1, |analytic|)

constexpr uint64_t kSeed = 99;

nn::MultiheadAttentionCall no_weights() {
  nn::MultiheadAttentionCall call;
  call.need_weights = false;
  return call;
}

// One problem: the module, its inputs and its call.
struct Problem {
  nn::MultiheadAttention* mha;
  Tensor<float>* query;
  Tensor<float>* key;    // == query for self-attention
  Tensor<float>* value;  // == query for self-attention
  nn::AttentionMasks masks;
  nn::MultiheadAttentionCall call;
};

bool is_self(const Problem& p) { return p.key == p.query && p.value == p.query; }

Tensor<float> out_like(const Tensor<float>& query) { return Tensor<float>(query.shape()); }

// sum(w * out) in double after a forward reseeded to kSeed.
double loss(const Problem& p, const Tensor<float>& w) {
  Tensor<float> out = out_like(*p.query);
  p.mha->seed(kSeed);
  nn::MultiheadAttentionCall call = p.call;
  call.need_weights = false;  // the plain forward: what the training one must equal
  p.mha->forward(p.query->view<3>(), p.key->view<3>(), p.value->view<3>(), out.view<3>(), p.masks,
                 call);
  double sum = 0.0;
  for (int64_t i = 0; i < out.numel(); ++i)
    sum += static_cast<double>(w.data()[i]) * static_cast<double>(out.data()[i]);
  return sum;
}

// The central difference of the loss in element i of t.
double central_difference(const Problem& p, const Tensor<float>& w, Tensor<float>& t, int64_t i) {
  const float x = t.data()[i];
  t.data()[i] = x + kStep;
  const double up = loss(p, w);
  t.data()[i] = x - kStep;
  const double down = loss(p, w);
  t.data()[i] = x;
  return (up - down) / (2.0 * static_cast<double>(kStep));
}

struct Worst {
  double err = 0.0;
  std::string where;
  void add(double fd, double analytic, const std::string& name, int64_t i) {
    const double e = std::abs(fd - analytic) / std::max(1.0, std::abs(analytic));
    if (e > err) err = e, where = name + "[" + std::to_string(i) + "]";
  }
};

// The analytic gradients (training forward + backward) of every parameter and
// input of p against central differences; returns the worst relative error.
// Self-attention passes one View as dquery, dkey and dvalue (their sum).
Worst check_gradients(const Problem& p, uint32_t w_seed) {
  nn::MultiheadAttention& mha = *p.mha;
  const Tensor<float> w = random_tensor(p.query->shape(), w_seed);
  Tensor<float> out = out_like(*p.query);
  nn::MultiheadAttention::Saved saved;
  mha.seed(kSeed);
  mha.forward(p.query->view<3>(), p.key->view<3>(), p.value->view<3>(), out.view<3>(), p.masks,
              p.call, saved);
  nn::Gradients grads(mha);
  Tensor<float> dquery(p.query->shape()), dkey(p.key->shape()), dvalue(p.value->shape());
  const bool self = is_self(p);
  mha.backward(p.query->view<3>(), p.key->view<3>(), p.value->view<3>(), saved, w.view<3>(),
               dquery.view<3>(), self ? dquery.view<3>() : dkey.view<3>(),
               self ? dquery.view<3>() : dvalue.view<3>(), grads);

  Worst worst;
  for (auto& [name, param] : mha.named_parameters()) {
    const Tensor<float>& g = grads[*param];
    for (int64_t i = 0; i < param->numel(); ++i)
      worst.add(central_difference(p, w, *param, i), g.data()[i], name, i);
  }
  const auto check_input = [&](Tensor<float>& x, const Tensor<float>& dx, const char* name) {
    for (int64_t i = 0; i < x.numel(); ++i)
      worst.add(central_difference(p, w, x, i), dx.data()[i], name, i);
  };
  check_input(*p.query, dquery, self ? "x (self-attention)" : "query");
  if (!self) {
    check_input(*p.key, dkey, "key");
    check_input(*p.value, dvalue, "value");
  }
  return worst;
}

void expect_gradients(const Problem& p, uint32_t w_seed) {
  const Worst worst = check_gradients(p, w_seed);
  ::testing::Test::RecordProperty("worst_relative_error", std::to_string(worst.err));
  std::printf("    worst |fd - analytic| / max(1, |analytic|) = %.3g at %s\n", worst.err,
              worst.where.c_str());
  EXPECT_LE(worst.err, kFdTol) << "at " << worst.where;
}

nn::MultiheadAttention make(int64_t e, int64_t h, const nn::MultiheadAttentionOptions& o,
                            uint32_t seed) {
  nn::MultiheadAttention mha(e, h, o);
  mha.train();
  randomize(mha, seed);
  return mha;
}

TEST(MultiheadAttentionBackward, SelfAttentionCausalKeyPaddingAndHeadMask) {
  const int64_t e = 8, h = 2, l = 4, n = 2;
  nn::MultiheadAttention mha = make(e, h, {}, 1);
  Tensor<float> x = random_tensor({l, n, e}, 2);
  Tensor<bool> padding({n, l});  // lengths 4 and 3
  padding.view<2>()(1, 3) = true;
  Tensor<float> head_mask = random_tensor({n, h}, 3, 0.5f, 1.5f);
  Problem p{&mha, &x, &x, &x, {}, {}};
  p.masks.is_causal = true;
  p.masks.key_padding_mask = padding;
  p.call.head_mask = head_mask;
  expect_gradients(p, 4);
}

TEST(MultiheadAttentionBackward, CrossAttentionTorchFloatAndBoolAttnMasksBatchFirst) {
  const int64_t e = 8, h = 2, l = 3, s = 5, n = 2;
  nn::MultiheadAttentionOptions o;
  o.batch_first = true;
  nn::MultiheadAttention mha = make(e, h, o, 5);
  Tensor<float> query = random_tensor({n, l, e}, 6), key = random_tensor({n, s, e}, 7),
                value = random_tensor({n, s, e}, 8);
  {
    SCOPED_TRACE("float attn_mask (L, S): biases and -inf");
    Tensor<float> bias = random_tensor({l, s}, 9);
    bias.view<2>()(0, 4) = bias.view<2>()(2, 1) = -std::numeric_limits<float>::infinity();
    Problem p{&mha, &query, &key, &value, {}, {}};
    p.masks.attn_mask = bias;
    expect_gradients(p, 10);
  }
  {
    SCOPED_TRACE("bool attn_mask (N*H, L, S), True = masked, and a float key_padding_mask");
    Tensor<bool> blocked({n * h, l, s});
    for (int64_t b = 0; b < n * h; ++b)
      for (int64_t i = 0; i < l; ++i)
        for (int64_t j = 0; j < s; ++j) blocked.view<3>()(b, i, j) = (b + 2 * i + j) % 4 == 0;
    Tensor<float> padding({n, s});
    padding.view<2>()(0, 2) = -std::numeric_limits<float>::infinity();
    padding.view<2>()(1, 0) = 0.75f;
    Problem p{&mha, &query, &key, &value, {}, {}};
    p.masks.attn_mask = blocked;
    p.masks.key_padding_mask = padding;
    expect_gradients(p, 11);
  }
}

TEST(MultiheadAttentionBackward, GroupedQueryHeadsUnderAMask) {
  const int64_t e = 8, h = 4, l = 4, s = 5, n = 2;
  for (const int64_t hkv : {int64_t{2}, int64_t{1}}) {
    SCOPED_TRACE(::testing::Message() << "num_kv_heads " << hkv);
    nn::MultiheadAttentionOptions o;
    o.num_kv_heads = hkv;
    nn::MultiheadAttention mha = make(e, h, o, 12);
    Tensor<float> query = random_tensor({l, n, e}, 13), kv = random_tensor({s, n, e}, 14);
    const std::vector<int64_t> lengths = {5, 3};
    Problem p{&mha, &query, &kv, &kv, {}, {}};
    p.masks.mask = causal(Align::BottomRight) & key_lengths(lengths);
    // key and value are one tensor here but not the query: dkey and dvalue
    // are separate outputs and checked one by one (the central differences
    // move both through the shared tensor, so compare their sum).
    const Tensor<float> w = random_tensor(query.shape(), 15);
    Tensor<float> out = out_like(query);
    nn::MultiheadAttention::Saved saved;
    mha.seed(kSeed);
    mha.forward(query.view<3>(), kv.view<3>(), kv.view<3>(), out.view<3>(), p.masks, p.call, saved);
    nn::Gradients grads(mha);
    Tensor<float> dq(query.shape()), dk(kv.shape()), dv(kv.shape());
    mha.backward(query.view<3>(), kv.view<3>(), kv.view<3>(), saved, w.view<3>(), dq.view<3>(),
                 dk.view<3>(), dv.view<3>(), grads);
    Worst worst;
    for (auto& [name, param] : mha.named_parameters())
      for (int64_t i = 0; i < param->numel(); ++i)
        worst.add(central_difference(p, w, *param, i), grads[*param].data()[i], name, i);
    for (int64_t i = 0; i < query.numel(); ++i)
      worst.add(central_difference(p, w, query, i), dq.data()[i], "query", i);
    for (int64_t i = 0; i < kv.numel(); ++i)
      worst.add(central_difference(p, w, kv, i),
                static_cast<double>(dk.data()[i]) + static_cast<double>(dv.data()[i]),
                "key + value", i);
    std::printf("    worst |fd - analytic| / max(1, |analytic|) = %.3g at %s\n", worst.err,
                worst.where.c_str());
    EXPECT_LE(worst.err, kFdTol) << "at " << worst.where;
  }
}

TEST(MultiheadAttentionBackward, BiasKvZeroAttnSeparateProjectionsIsCausal) {
  const int64_t e = 8, h = 2, kdim = 5, vdim = 7, l = 4, s = 4, n = 2;
  nn::MultiheadAttentionOptions o;
  o.kdim = kdim;
  o.vdim = vdim;
  o.add_bias_kv = true;
  o.add_zero_attn = true;
  nn::MultiheadAttention mha = make(e, h, o, 16);
  ASSERT_FALSE(mha.packed());
  Tensor<float> query = random_tensor({l, n, e}, 17), key = random_tensor({s, n, kdim}, 18),
                value = random_tensor({s, n, vdim}, 19);
  Tensor<bool> padding({n, s});  // lengths 4 and 2; the added keys stay visible
  padding.view<2>()(1, 2) = padding.view<2>()(1, 3) = true;
  Problem p{&mha, &query, &key, &value, {}, {}};
  p.masks.is_causal = true;
  p.masks.key_padding_mask = padding;
  expect_gradients(p, 20);
}

TEST(MultiheadAttentionBackward, BiasKvWithoutBiasesBatchFirstGroupedKvdim) {
  const int64_t e = 8, h = 4, kdim = 6, l = 3, s = 4, n = 2;
  nn::MultiheadAttentionOptions o;
  o.kdim = kdim;
  o.vdim = kdim;
  o.bias = false;
  o.add_bias_kv = true;
  o.batch_first = true;
  o.num_kv_heads = 2;
  nn::MultiheadAttention mha = make(e, h, o, 21);
  Tensor<float> query = random_tensor({n, l, e}, 22), key = random_tensor({n, s, kdim}, 23),
                value = random_tensor({n, s, kdim}, 24);
  Problem p{&mha, &query, &key, &value, {}, {}};
  p.masks.mask = sliding_window(1, 1);
  expect_gradients(p, 25);
}

TEST(MultiheadAttentionBackward, DropoutReplayedFromTheSeed) {
  const int64_t e = 8, h = 2, l = 5, n = 2;
  nn::MultiheadAttentionOptions o;
  o.dropout = 0.3;
  nn::MultiheadAttention mha = make(e, h, o, 26);
  Tensor<float> x = random_tensor({l, n, e}, 27);
  Problem p{&mha, &x, &x, &x, {}, {}};
  p.masks.is_causal = true;
  // The pattern is on: with another seed the output differs.
  Tensor<float> a = out_like(x), b = out_like(x);
  mha.seed(kSeed);
  mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), a.view<3>(), p.masks, no_weights());
  mha.seed(kSeed + 1);
  mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), b.view<3>(), p.masks, no_weights());
  EXPECT_FALSE(same_bits(a, b));
  expect_gradients(p, 28);
}

TEST(MultiheadAttentionBackward, AFullyMaskedRowPassesNoGradientToItsQuery) {
  const int64_t e = 8, h = 2, l = 4, s = 3, n = 2;
  nn::MultiheadAttention mha = make(e, h, {}, 29);
  Tensor<float> query = random_tensor({l, n, e}, 30), key = random_tensor({s, n, e}, 31),
                value = random_tensor({s, n, e}, 32);
  // Batch 1 has one key; attn_mask hides it from query 2: an empty row.
  Tensor<bool> padding({n, s}), blocked({l, s});
  padding.view<2>()(1, 1) = padding.view<2>()(1, 2) = true;
  blocked.view<2>()(2, 0) = true;
  Problem p{&mha, &query, &key, &value, {}, {}};
  p.masks.key_padding_mask = padding;
  p.masks.attn_mask = blocked;
  expect_gradients(p, 33);

  const Tensor<float> w = random_tensor(query.shape(), 33);
  Tensor<float> out = out_like(query), dq(query.shape());
  nn::MultiheadAttention::Saved saved;
  mha.forward(query.view<3>(), key.view<3>(), value.view<3>(), out.view<3>(), p.masks, p.call,
              saved);
  nn::Gradients grads(mha);
  mha.backward(query.view<3>(), key.view<3>(), value.view<3>(), saved, w.view<3>(), dq.view<3>(),
               {}, {}, grads);
  for (int64_t c = 0; c < e; ++c) EXPECT_EQ(dq.view<3>()(2, 1, c), 0.0f) << c;
  EXPECT_NE(dq.view<3>()(2, 0, 0), 0.0f);
}

// One View for dquery, dkey and dvalue receives their sum; three separate
// Views receive each part; strided outputs are written in place.
TEST(MultiheadAttentionBackward, SelfAttentionSumsIntoOneViewAndStridedOutputs) {
  const int64_t e = 8, h = 2, l = 4, n = 3, row = e + 5;
  nn::MultiheadAttention mha = make(e, h, {}, 34);
  const Tensor<float> x = random_tensor({l, n, e}, 35), w = random_tensor({l, n, e}, 36);
  nn::AttentionMasks masks;
  masks.is_causal = true;
  Tensor<float> out = out_like(x);
  nn::MultiheadAttention::Saved saved;
  mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), out.view<3>(), masks, {}, saved);

  nn::Gradients parts_grads(mha), sum_grads(mha);
  Tensor<float> dq(x.shape()), dk(x.shape()), dv(x.shape());
  mha.backward(x.view<3>(), x.view<3>(), x.view<3>(), saved, w.view<3>(), dq.view<3>(),
               dk.view<3>(), dv.view<3>(), parts_grads);
  std::vector<float> strided(l * n * row, kSentinel);
  const View<float, 3> dx(strided.data(), {l, n, e}, {n * row, row, 1});
  mha.backward(x.view<3>(), x.view<3>(), x.view<3>(), saved, w.view<3>(), dx, dx, dx, sum_grads);
  double diff = 0.0;
  for (int64_t i = 0; i < l; ++i)
    for (int64_t b = 0; b < n; ++b)
      for (int64_t c = 0; c < e; ++c) {
        const double sum = static_cast<double>(dq.view<3>()(i, b, c)) + dk.view<3>()(i, b, c) +
                           dv.view<3>()(i, b, c);
        diff = std::max(diff, std::abs(dx(i, b, c) - sum));
        for (int64_t pad = e; pad < row; ++pad)
          ASSERT_EQ(strided[(i * n + b) * row + pad], kSentinel);
      }
  EXPECT_LE(diff, 1e-6);
  for (std::size_t i = 0; i < parts_grads.entries().size(); ++i)
    EXPECT_TRUE(same_bits(parts_grads.entries()[i].grad, sum_grads.entries()[i].grad))
        << parts_grads.entries()[i].name;
}

// The training forward gives forward()'s output; its Saved keeps its storage
// from step to step; backward() adds into the gradients.
TEST(MultiheadAttentionBackward, TrainingForwardMatchesForwardKeepsStorageAndAccumulates) {
  const int64_t e = 8, h = 2, l = 4, n = 2;
  nn::MultiheadAttentionOptions o;
  o.add_zero_attn = true;
  nn::MultiheadAttention mha = make(e, h, o, 37);
  const Tensor<float> x = random_tensor({l, n, e}, 38), w = random_tensor({l, n, e}, 39);
  nn::AttentionMasks masks;
  masks.is_causal = true;
  Tensor<float> want = out_like(x), got = out_like(x);
  mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), want.view<3>(), masks, no_weights());
  nn::MultiheadAttention::Saved saved;
  mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), got.view<3>(), masks, {}, saved);
  EXPECT_TRUE(same_bits(want, got));
  const std::array<const float*, 5> storage{saved.q.data(), saved.k.data(), saved.v.data(),
                                            saved.attn.data(), saved.lse.data()};
  EXPECT_EQ(saved.k.shape(), (std::vector<int64_t>{n, h, l + 1, e / h}));

  nn::Gradients once(mha), twice(mha);
  mha.backward(x.view<3>(), x.view<3>(), x.view<3>(), saved, w.view<3>(), {}, {}, {}, once);
  mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), got.view<3>(), masks, {}, saved);
  EXPECT_EQ(storage, (std::array<const float*, 5>{saved.q.data(), saved.k.data(), saved.v.data(),
                                                  saved.attn.data(), saved.lse.data()}));
  mha.backward(x.view<3>(), x.view<3>(), x.view<3>(), saved, w.view<3>(), {}, {}, {}, twice);
  mha.backward(x.view<3>(), x.view<3>(), x.view<3>(), saved, w.view<3>(), {}, {}, {}, twice);
  for (std::size_t i = 0; i < once.entries().size(); ++i) {
    const Tensor<float>& g1 = once.entries()[i].grad;
    const Tensor<float>& g2 = twice.entries()[i].grad;
    for (int64_t j = 0; j < g1.numel(); ++j)
      ASSERT_FLOAT_EQ(g2.data()[j], 2.0f * g1.data()[j]) << once.entries()[i].name << j;
  }
}

TEST(MultiheadAttentionBackward, ErrorsNameTheArgument) {
  const int64_t e = 8, h = 2, l = 4, n = 2;
  nn::MultiheadAttention mha = make(e, h, {}, 40);
  nn::MultiheadAttention other = make(e, h, {}, 41);
  const Tensor<float> x = random_tensor({l, n, e}, 42), longer = random_tensor({l + 1, n, e}, 43);
  Tensor<float> out = out_like(x), dx(x.shape()), wrong({l, n, e + 1});
  nn::Gradients grads(mha), others(other);
  nn::MultiheadAttention::Saved saved;
  const auto backward = [&](const Tensor<float>& in, View<const float, 3> dout, View<float, 3> dq,
                            nn::Gradients& g) {
    mha.backward(in.view<3>(), in.view<3>(), in.view<3>(), saved, dout, dq, {}, {}, g);
  };
  EXPECT_TRUE(throws_error_naming([&] { backward(x, x.view<3>(), {}, grads); }, "saved"));
  mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), out.view<3>(), {}, {}, saved);
  EXPECT_TRUE(throws_error_naming(
      [&] {
        Tensor<float> dl(longer.shape());
        backward(longer, longer.view<3>(), dl.view<3>(), grads);
      },
      "saved"));
  EXPECT_TRUE(throws_error_naming([&] { backward(x, wrong.view<3>(), {}, grads); }, "dout"));
  EXPECT_TRUE(
      throws_error_naming([&] { backward(x, x.view<3>(), wrong.view<3>(), grads); }, "dquery"));
  EXPECT_TRUE(throws_error_naming([&] { backward(x, x.view<3>(), {}, others); }, "Gradients"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        const Tensor<bool> bools({n, h});
        nn::MultiheadAttentionCall call;
        call.head_mask = bools;
        mha.forward(x.view<3>(), x.view<3>(), x.view<3>(), out.view<3>(), {}, call, saved);
      },
      "head_mask"));
}

}  // namespace
}  // namespace maskattn
