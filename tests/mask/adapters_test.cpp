// The from_* adapters against element rules written from each library's
// documented convention; bad input names the adapter's argument.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "mask/mask_oracle.hpp"

namespace maskattn {
namespace {

using oracle::classify_exact;
using oracle::kNegInf;
using oracle::matches_rule;
using oracle::throws_error_naming;

constexpr float kF32Min = std::numeric_limits<float>::lowest();  // torch.finfo(torch.float32).min

Tensor<bool> random_bits(std::vector<int64_t> shape, unsigned seed) {
  std::mt19937 rng(seed);
  Tensor<bool> t(std::move(shape));
  for (bool& x : t) x = rng() % 3 != 0;
  return t;
}

Tensor<float> random_bias(std::vector<int64_t> shape, unsigned seed) {
  std::mt19937 rng(seed);
  Tensor<float> t(std::move(shape));
  for (float& x : t) x = rng() % 4 == 0 ? kNegInf : static_cast<float>(rng() % 9) * 0.5f - 2.0f;
  return t;
}

// ---- torch.nn.MultiheadAttention: bool true = masked -------------------------

TEST(TorchMha, BoolAttnMaskTrueIsMasked) {
  const Tensor<bool> m = random_bits({3, 4}, 1);
  EXPECT_TRUE(matches_rule(from_torch_mha_mask(m), {2, 2, 3, 4},
                           [&](int64_t, int64_t, int64_t i, int64_t j) {
                             return m.data()[i * 4 + j] ? kNegInf : 0.0f;
                           }));
}

TEST(TorchMha, FloatAttnMaskIsAdditive) {
  const Tensor<float> m = random_bias({3, 4}, 2);
  EXPECT_TRUE(
      matches_rule(from_torch_mha_mask(m), {1, 2, 3, 4},
                   [&](int64_t, int64_t, int64_t i, int64_t j) { return m.data()[i * 4 + j]; }));
}

TEST(TorchMha, ThreeDimAttnMaskIsBatchTimesHeads) {
  // (B * num_heads, L, S) with B = 2, num_heads = 3; row b * 3 + h.
  const Tensor<bool> m = random_bits({6, 2, 5}, 3);
  const Mask mask = from_torch_mha_mask(m, {}, 3);
  const MaskShape s{2, 3, 2, 5};
  EXPECT_TRUE(matches_rule(mask, s, [&](int64_t b, int64_t h, int64_t i, int64_t j) {
    return m.data()[((b * 3 + h) * 2 + i) * 5 + j] ? kNegInf : 0.0f;
  }));
  EXPECT_TRUE(classify_exact(mask, s, {{1, 1}, {2, 2}}, true));
  // B = 3 does not fit B * num_heads = 6 with num_heads = 3.
  EXPECT_TRUE(throws_error_naming(
      [&] {
        mask.bind({3, 3, 2, 5});
      },
      "mask: from_torch_mha_mask: attn_mask"));
}

TEST(TorchMha, KeyPaddingMaskBoolAndFloat) {
  const Tensor<bool> kpm = random_bits({2, 5}, 4);
  const Tensor<float> attn = random_bias({3, 5}, 5);
  const MaskShape s{2, 2, 3, 5};
  EXPECT_TRUE(
      matches_rule(from_torch_mha_mask({}, kpm), s, [&](int64_t b, int64_t, int64_t, int64_t j) {
        return kpm.data()[b * 5 + j] ? kNegInf : 0.0f;
      }));
  // Both: masked if either masks, biases add.
  EXPECT_TRUE(matches_rule(from_torch_mha_mask(attn, kpm), s,
                           [&](int64_t b, int64_t, int64_t i, int64_t j) {
                             return kpm.data()[b * 5 + j] ? kNegInf : attn.data()[i * 5 + j];
                           }));
  const Tensor<float> kpf = random_bias({2, 5}, 6);
  EXPECT_TRUE(
      matches_rule(from_torch_mha_mask({}, kpf), s,
                   [&](int64_t b, int64_t, int64_t, int64_t j) { return kpf.data()[b * 5 + j]; }));
  EXPECT_TRUE(from_torch_mha_mask().allows_all());
}

TEST(TorchMha, BadInput) {
  const Tensor<int64_t> ints({3, 4});
  const Tensor<bool> m3({6, 3, 4}), m4({1, 1, 3, 4}), kp1({4});
  const char* attn = "from_torch_mha_mask: attn_mask";
  const char* heads = "from_torch_mha_mask: num_heads";
  const char* kpm = "from_torch_mha_mask: key_padding_mask";
  // PyTorch accepts only bool and floating masks.
  EXPECT_TRUE(throws_error_naming([&] { from_torch_mha_mask(ints); }, attn));
  EXPECT_TRUE(throws_error_naming([&] { from_torch_mha_mask({}, ints); }, kpm));
  EXPECT_TRUE(throws_error_naming([&] { from_torch_mha_mask(m4); }, attn));
  EXPECT_TRUE(throws_error_naming([&] { from_torch_mha_mask(m3); }, heads));         // missing
  EXPECT_TRUE(throws_error_naming([&] { from_torch_mha_mask(m3, {}, 4); }, heads));  // 6 % 4
  EXPECT_TRUE(throws_error_naming([&] { from_torch_mha_mask(m3, {}, -1); }, heads));
  EXPECT_TRUE(throws_error_naming([&] { from_torch_mha_mask({}, kp1); }, kpm));
  // Key padding with another batch size.
  const Tensor<bool> kp({2, 4});
  EXPECT_TRUE(throws_error_naming(
      [&] {
        from_torch_mha_mask({}, kp).bind({3, 1, 4, 4});
      },
      "mask: from_torch_mha_mask: key_padding_mask"));
}

// ---- scaled_dot_product_attention: bool true = may attend ---------------------

TEST(Sdpa, BoolTrueMayAttendRightAligned) {
  const MaskShape s{2, 3, 4, 5};
  struct Shape {
    std::vector<int64_t> dims;
    // flat index of (b, h, i, j) under right-aligned broadcasting, written out
    std::function<int64_t(int64_t, int64_t, int64_t, int64_t)> index;
  };
  using I = int64_t;
  const std::vector<Shape> shapes{
      {{5}, [](I, I, I, I j) { return j; }},
      {{4, 5}, [](I, I, I i, I j) { return i * 5 + j; }},
      {{3, 4, 5},
       [](I, I h, I i, I j) { return (h * 4 + i) * 5 + j; }},  // (H, L, S), not (B, L, S)
      {{2, 3, 4, 5}, [](I b, I h, I i, I j) { return ((b * 3 + h) * 4 + i) * 5 + j; }},
      {{2, 1, 1, 5}, [](I b, I, I, I j) { return b * 5 + j; }},
      {{1, 4, 1}, [](I, I, I i, I) { return i; }},
  };
  unsigned seed = 10;
  for (const Shape& sh : shapes) {
    const Tensor<bool> m = random_bits(sh.dims, seed++);
    const Tensor<float> f = random_bias(sh.dims, seed++);
    EXPECT_TRUE(matches_rule(from_sdpa_mask(m), s, [&](I b, I h, I i, I j) {
      return m.data()[sh.index(b, h, i, j)] ? 0.0f : kNegInf;
    }));
    EXPECT_TRUE(matches_rule(from_sdpa_mask(f), s,
                             [&](I b, I h, I i, I j) { return f.data()[sh.index(b, h, i, j)]; }));
  }
  // Rank 3 is (H, L, S): a (B, L, S) mask with B != H does not fit.
  const Tensor<bool> bls({2, 4, 5});
  EXPECT_TRUE(
      throws_error_naming([&] { from_sdpa_mask(bls).bind(s); }, "mask: from_sdpa_mask: attn_mask"));
}

TEST(Sdpa, IsCausalIsTopLeft) {
  const Mask m = from_sdpa_mask({}, true);
  EXPECT_TRUE(matches_rule(
      m, {1, 1, 3, 5},
      oracle::allowed_rule([](int64_t, int64_t, int64_t i, int64_t j) { return j <= i; })));
  EXPECT_TRUE(from_sdpa_mask().allows_all());
}

TEST(Sdpa, BadInput) {
  const Tensor<bool> m({3, 3});
  const Tensor<int32_t> ints({3, 3});
  const Tensor<bool> r5({1, 1, 1, 3, 3});
  EXPECT_TRUE(throws_error_naming([&] { from_sdpa_mask(m, true); }, "from_sdpa_mask: is_causal"));
  EXPECT_TRUE(throws_error_naming([&] { from_sdpa_mask(ints); }, "from_sdpa_mask: attn_mask"));
  EXPECT_TRUE(throws_error_naming([&] { from_sdpa_mask(r5); }, "from_sdpa_mask: attn_mask"));
  Tensor<float> nan({2});
  nan.data()[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(throws_error_naming([&] { from_sdpa_mask(nan); }, "nan at [0, 0, 0, 1]"));
}

// ---- Hugging Face attention_mask: 1 = attend ----------------------------------

TEST(HuggingFace, TwoDimPaddingMaskAnyDtype) {
  const std::vector<int64_t> lens{3, 5};
  Tensor<int64_t> ids({2, 5});
  Tensor<bool> bits({2, 5});
  Tensor<float> floats({2, 5});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t j = 0; j < 5; ++j) {
      const bool on = j < lens[b];
      ids.data()[b * 5 + j] = on;
      bits.data()[b * 5 + j] = on;
      floats.data()[b * 5 + j] = on ? 1.0f : 0.0f;
    }
  const auto rule = oracle::allowed_rule([&](int64_t b, int64_t, int64_t, int64_t j) {
    return j < lens[static_cast<std::size_t>(b)];
  });
  for (const Mask& m :
       {from_hf_attention_mask(ids), from_hf_attention_mask(bits), from_hf_attention_mask(floats)})
    EXPECT_TRUE(matches_rule(m, {2, 3, 4, 5}, rule));
}

TEST(HuggingFace, FourDimFloatAsTransformersBuildsIt) {
  // _prepare_4d_attention_mask: (1 - expanded) * finfo(float32).min, (B, 1, L, S),
  // combined with a causal mask of the same form; masked sums overflow to -inf.
  const int64_t lens[2] = {4, 2};
  Tensor<float> m({2, 1, 4, 4});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        float x = 0.0f;
        if (j >= lens[b]) x += kF32Min;
        if (j > i) x += kF32Min;
        m.data()[(b * 4 + i) * 4 + j] = x;
      }
  m.data()[0] = -1.5f;  // an ordinary additive value stays a bias
  const Mask mask = from_hf_attention_mask(m);
  const MaskShape s{2, 3, 4, 4};
  EXPECT_TRUE(matches_rule(mask, s, [&](int64_t b, int64_t, int64_t i, int64_t j) {
    if (b == 0 && i == 0 && j == 0) return -1.5f;
    return (j >= lens[b] || j > i) ? kNegInf : 0.0f;
  }));
  EXPECT_TRUE(classify_exact(mask, s, {{1, 1}, {2, 2}}, true));
  // float64 with finfo(float64).min.
  Tensor<double> d({1, 1, 1, 3});
  d.data()[1] = std::numeric_limits<double>::lowest();
  EXPECT_TRUE(matches_rule(
      from_hf_attention_mask(d), {1, 2, 2, 3},
      oracle::allowed_rule([](int64_t, int64_t, int64_t, int64_t j) { return j != 1; })));
}

TEST(HuggingFace, FourDimBoolAndIntOneIsAttend) {
  const Tensor<bool> bits = random_bits({2, 3, 1, 4}, 30);  // (B, H, 1, S)
  Tensor<int32_t> ints({2, 3, 1, 4});
  for (int64_t k = 0; k < ints.numel(); ++k) ints.data()[k] = bits.data()[k] ? 1 : 0;
  for (const Mask& m : {from_hf_attention_mask(bits), from_hf_attention_mask(ints)})
    EXPECT_TRUE(matches_rule(m, {2, 3, 3, 4}, [&](int64_t b, int64_t h, int64_t, int64_t j) {
      return bits.data()[(b * 3 + h) * 4 + j] ? 0.0f : kNegInf;
    }));
}

TEST(HuggingFace, BadInput) {
  const char* arg = "from_hf_attention_mask: attention_mask";
  Tensor<int64_t> two({2, 3});
  two.data()[4] = 2;
  EXPECT_TRUE(throws_error_naming([&] { from_hf_attention_mask(two); }, arg));
  EXPECT_TRUE(throws_error_naming([&] { from_hf_attention_mask(two); }, "2 at [1, 1]"));
  const Tensor<int64_t> r3({2, 3, 3});
  EXPECT_TRUE(throws_error_naming([&] { from_hf_attention_mask(r3); }, arg));
  Tensor<float> nan({1, 1, 2, 2});
  nan.data()[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(throws_error_naming([&] { from_hf_attention_mask(nan); }, arg));
  const Tensor<bool> b4({2, 2, 3, 3});
  EXPECT_TRUE(throws_error_naming(
      [&] {
        from_hf_attention_mask(b4).bind({2, 3, 3, 3});
      },
      "mask: from_hf_attention_mask"));
}

// ---- Keras MultiHeadAttention: (B, T, S), 1 = attend ------------------------

TEST(Keras, MaskPerBatchSharedByHeadsWithCausal) {
  Tensor<int32_t> m({2, 3, 4});
  std::mt19937 rng(40);
  for (int32_t& x : m) x = static_cast<int32_t>(rng() % 2);
  const MaskShape s{2, 2, 3, 4};
  EXPECT_TRUE(matches_rule(from_keras_mask(m), s, [&](int64_t b, int64_t, int64_t i, int64_t j) {
    return m.data()[(b * 3 + i) * 4 + j] ? 0.0f : kNegInf;
  }));
  EXPECT_TRUE(
      matches_rule(from_keras_mask(m, true), s, [&](int64_t b, int64_t, int64_t i, int64_t j) {
        return m.data()[(b * 3 + i) * 4 + j] && j <= i ? 0.0f : kNegInf;
      }));
  EXPECT_TRUE(matches_rule(
      from_keras_mask({}, true), s,
      oracle::allowed_rule([](int64_t, int64_t, int64_t i, int64_t j) { return j <= i; })));
  // Never read as (B*H, T, S): 4 = B*H is still a batch of 4.
  const Tensor<bool> four({4, 3, 4});
  EXPECT_TRUE(throws_error_naming([&] { from_keras_mask(four).bind(s); }, "mask: from_keras_mask"));
}

TEST(Keras, BadInput) {
  const char* arg = "from_keras_mask: attention_mask";
  const Tensor<bool> r2({3, 4});
  EXPECT_TRUE(throws_error_naming([&] { from_keras_mask(r2); }, arg));
  Tensor<int32_t> bad({1, 2, 2});
  bad.data()[1] = -1;
  EXPECT_TRUE(throws_error_naming([&] { from_keras_mask(bad); }, "-1 at [0, 0, 1]"));
}

// ---- ONNX Attention (opset 23): bool true = attend, is_causal as well ---------

TEST(Onnx, MaskAndIsCausalBothApply) {
  const Tensor<bool> m = random_bits({3, 4, 4}, 50);  // (H, L, S), right-aligned
  const Tensor<float> f = random_bias({4, 4}, 51);
  const MaskShape s{2, 3, 4, 4};
  EXPECT_TRUE(matches_rule(from_onnx_attention_mask(m, true), s,
                           [&](int64_t, int64_t h, int64_t i, int64_t j) {
                             return m.data()[(h * 4 + i) * 4 + j] && j <= i ? 0.0f : kNegInf;
                           }));
  EXPECT_TRUE(
      matches_rule(from_onnx_attention_mask(f), s,
                   [&](int64_t, int64_t, int64_t i, int64_t j) { return f.data()[i * 4 + j]; }));
  EXPECT_TRUE(matches_rule(from_onnx_attention_mask(f, true), s,
                           [&](int64_t, int64_t, int64_t i, int64_t j) {
                             return j <= i ? f.data()[i * 4 + j] : kNegInf;
                           }));
  EXPECT_TRUE(from_onnx_attention_mask().allows_all());
}

TEST(Onnx, BadInput) {
  const Tensor<uint8_t> u8({2, 2});
  EXPECT_TRUE(throws_error_naming([&] { from_onnx_attention_mask(u8); },
                                  "from_onnx_attention_mask: attn_mask"));
  const Tensor<bool> m({3, 3});
  EXPECT_TRUE(throws_error_naming(
      [&] {
        from_onnx_attention_mask(m).bind({1, 1, 3, 4});
      },
      "mask: from_onnx_attention_mask: attn_mask"));
}

}  // namespace
}  // namespace maskattn
