// Bad-input matrix rows (bad_input_matrix.hpp) of mask.hpp, positional.hpp,
// mlm.hpp and leak_check.hpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "api/bad_input_matrix.hpp"
#include "maskattn/leak_check.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/mlm.hpp"
#include "maskattn/positional.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::testing_bad_input {
namespace {

const bool kBools[64] = {};
const float kFloats[64] = {};
const int32_t kInts[64] = {};

View<const bool, 2> bools(int64_t r, int64_t c) { return View<const bool, 2>(kBools, {r, c}); }
View<const float, 2> floats(int64_t r, int64_t c) { return View<const float, 2>(kFloats, {r, c}); }

std::vector<Case> mask_rows() {
  const std::string hdr = "mask.hpp";
  return {
      covered(hdr, "keep/block/bias", MaskDims, "shapes that do not broadcast, at bind()",
              "Dense.WrongShapeAtBind"),
      covered(hdr, "from_torch_mha_mask", MaskDtype, "dtypes, ranks, num_heads it rejects",
              "TorchMha.BadInput"),
      covered(hdr, "from_sdpa_mask", MaskDtype, "dtypes and ranks it rejects", "Sdpa.BadInput"),
      covered(hdr, "from_hf_attention_mask", MaskDtype, "values other than 0/1, ranks",
              "HuggingFace.BadInput"),
      covered(hdr, "from_keras_mask", MaskDtype, "values other than 0/1, ranks", "Keras.BadInput"),
      covered(hdr, "from_onnx_attention_mask", MaskDtype, "dtypes and ranks", "Onnx.BadInput"),
      covered(hdr, "bias", NonFinite, "NaN and +inf named by index",
              "Dense.NanAndPlusInfBiasAreErrorsNamingTheIndex"),
      error(hdr, "Mask::bind", Negative, "a negative Lq", "mask shape",
            [] {
              causal().bind({1, 1, -1, 2});
            }),
      error(hdr, "Mask::materialize", Huge, "(2^16)^4 elements overflow int64", "mask shape",
            [] { causal().materialize(1 << 16, 1 << 16, 1 << 16, 1 << 16); }),
      error(hdr, "Mask::materialize", Negative, "batch -1", "mask shape",
            [] { Mask().materialize(-1, 1, 2, 2); }),
      defined(hdr, "Mask::materialize", ZeroSize, "Lk = 0: a (1, 1, 2, 0) tensor",
              [] {
                const Tensor<float> m = causal().materialize(1, 1, 2, 0);
                EXPECT_EQ(m.shape(), (std::vector<int64_t>{1, 1, 2, 0}));
              }),
      error(hdr, "predicate", Huge, "bound to a shape whose B*H*Lq*Lk overflows",
            "mask: rule (B, H, Lq, Lk)",
            [] {
              predicate([](int64_t, int64_t, int64_t, int64_t) { return true; }, "rule")
                  .bind({kHugeSide, 1, kHugeSide, 2});
            }),
      error(hdr, "predicate", Absent, "an empty std::function", "predicate: fn",
            [] { predicate(MaskPredicate{}); }),
      error(hdr, "sliding_window", Negative, "left = -1", "sliding_window: left",
            [] { sliding_window(-1, 0); }),
      error(hdr, "sliding_window", Negative, "right = -3", "sliding_window: right",
            [] { sliding_window(2, -3); }),
      defined(
          hdr, "sliding_window", Huge, "kUnbounded both ways with BottomRight: all pairs",
          [] {
            const Tensor<float> m =
                sliding_window(kUnbounded, kUnbounded, Align::BottomRight).materialize(1, 1, 3, 5);
            for (float x : m) EXPECT_EQ(x, 0.0f);
          }),
      error(hdr, "prefix_lm", Negative, "n = -1", "prefix_lm: n", [] { prefix_lm(-1); }),
      defined(hdr, "prefix_lm", Huge, "n = INT64_MAX: every key visible",
              [] {
                for (float x : prefix_lm(kMax64).materialize(1, 1, 3, 4)) EXPECT_EQ(x, 0.0f);
              }),
      error(hdr, "causal", Option, "an Align value out of range", "causal: align",
            [] { causal(static_cast<Align>(5)); }),
      error(hdr, "documents", MaskDtype, "float ids", "documents: ids",
            [] { documents(floats(1, 4)); }),
      error(hdr, "documents", Rank, "rank-3 ids", "documents: ids",
            [] {
              documents(View<const int32_t, 3>(kInts, {1, 2, 2}));
            }),
      error(hdr, "documents", Absent, "absent ids", "documents: ids", [] { documents(AnyView{}); }),
      error(hdr, "documents", MaskDims, "ids of length 3 bound to Lq = Lk = 4", "mask: documents",
            [] {
              documents(View<const int32_t, 1>(kInts, {3})).bind({1, 1, 4, 4});
            }),
      error(hdr, "documents(q, k)", MaskDims, "key ids of another batch", "mask: documents key_ids",
            [] {
              documents(View<const int32_t, 2>(kInts, {2, 3}),
                        View<const int32_t, 2>(kInts, {3, 4}))
                  .bind({2, 1, 3, 4});
            }),
      error(hdr, "key_lengths", Negative, "lengths[1] = -1", "key_lengths",
            [] {
              key_lengths(std::vector<int64_t>{2, -1});
            }),
      error(hdr, "key_lengths", MaskDims, "a length past Lk at bind()", "mask: key_lengths",
            [] {
              key_lengths(std::vector<int64_t>{2, 5}).bind({2, 1, 3, 4});
            }),
      error(hdr, "key_lengths", EmptyBatch, "no lengths for B = 2", "mask: key_lengths",
            [] {
              key_lengths(std::vector<int64_t>{}).bind({2, 1, 3, 4});
            }),
      defined(hdr, "key_lengths", EmptyBatch, "no lengths for B = 0: binds, nothing to mask",
              [] {
                EXPECT_EQ(key_lengths(std::vector<int64_t>{}).materialize(0, 1, 3, 4).numel(), 0);
              }),
      error(hdr, "query_lengths", Negative, "lengths[0] = -2", "query_lengths",
            [] { query_lengths(std::vector<int64_t>{-2}); }),
      error(hdr, "query_lengths", MaskDims, "a length past Lq at bind()", "mask: query_lengths",
            [] {
              query_lengths(std::vector<int64_t>{4}).bind({1, 1, 3, 4});
            }),
      error(hdr, "keep", MaskDtype, "a float mask", "keep", [] { keep(floats(2, 2)); }),
      error(hdr, "keep", Rank, "rank 5", "keep",
            [] {
              keep(View<const bool, 4>(kBools, {1, 1, 2, 2})),
                  keep(AnyView(kBools, DType::Bool, {1, 1, 1, 2, 2}, {4, 4, 4, 2, 1}));
            }),
      error(hdr, "keep", Absent, "an absent view", "keep", [] { keep(AnyView{}); }),
      error(hdr, "block", MaskDtype, "an int32 mask", "block",
            [] {
              block(View<const int32_t, 2>(kInts, {2, 2}));
            }),
      error(hdr, "block", MaskDims, "(3, 3) bound to (L, S) = (2, 2)", "mask: block",
            [] {
              block(bools(3, 3)).bind({1, 1, 2, 2});
            }),
      error(hdr, "bias", MaskDtype, "a bool mask", "bias", [] { bias(bools(2, 2)); }),
      error(hdr, "bias", NonFinite, "a NaN value", "bias",
            [] {
              const float m[4] = {0.0f, kNaNf, 0.0f, 0.0f};
              bias(View<const float, 2>(m, {2, 2}));
            }),
      error(hdr, "bias", NonFinite, "+inf", "bias",
            [] {
              const float m[4] = {0.0f, kInff, 0.0f, 0.0f};
              bias(View<const float, 2>(m, {2, 2}));
            }),
      error(hdr, "bias", NonFinite, "float64 1e300 (beyond float32)", "bias",
            [] {
              const double m[2] = {0.0, 1e300};
              bias(View<const double, 1>(m, {2}));
            }),
      defined(hdr, "bias", NonFinite, "-inf: masked",
              [] {
                const float m[2] = {0.0f, -kInff};
                const Tensor<float> t = bias(View<const float, 1>(m, {2})).materialize(1, 1, 1, 2);
                EXPECT_EQ(t.data()[0], 0.0f);
                EXPECT_EQ(t.data()[1], -kInff);
              }),
      error(hdr, "alibi", NonFinite, "a NaN slope", "alibi: slopes",
            [] {
              alibi(std::vector<float>{0.5f, kNaNf});
            }),
      error(hdr, "alibi", MaskDims, "2 slopes for H = 4", "mask: alibi",
            [] {
              alibi(std::vector<float>{0.5f, 0.25f}).bind({1, 4, 2, 2});
            }),
      error(hdr, "alibi_slopes", ZeroSize, "num_heads = 0", "alibi_slopes: num_heads",
            [] { alibi_slopes(0); }),
      error(hdr, "alibi_slopes", Negative, "num_heads = -4", "alibi_slopes: num_heads",
            [] { alibi_slopes(-4); }),
      error(hdr, "subsequent_mask", Negative, "size -1", "subsequent_mask: size",
            [] { subsequent_mask(-1); }),
      error(hdr, "subsequent_mask", Huge, "size 2^32: size^2 overflows", "subsequent_mask: size",
            [] { subsequent_mask(kHugeSide); }),
      defined(hdr, "subsequent_mask", ZeroSize, "size 0: (1, 0, 0)",
              [] {
                EXPECT_EQ(subsequent_mask(0).shape(), (std::vector<int64_t>{1, 0, 0}));
              }),
      error(hdr, "from_torch_mha_mask", MaskDtype, "an int32 attn_mask",
            "from_torch_mha_mask: attn_mask",
            [] {
              from_torch_mha_mask(View<const int32_t, 2>(kInts, {2, 2}));
            }),
      error(hdr, "from_torch_mha_mask", Rank, "a rank-4 attn_mask",
            "from_torch_mha_mask: attn_mask",
            [] {
              from_torch_mha_mask(View<const bool, 4>(kBools, {1, 1, 2, 2}));
            }),
      error(hdr, "from_torch_mha_mask", Dims, "a 3-D attn_mask without num_heads",
            "from_torch_mha_mask: num_heads",
            [] {
              from_torch_mha_mask(View<const bool, 3>(kBools, {4, 2, 2}));
            }),
      error(hdr, "from_torch_mha_mask", Dims, "num_heads 3 not dividing B*H = 4",
            "from_torch_mha_mask: num_heads",
            [] {
              from_torch_mha_mask(View<const bool, 3>(kBools, {4, 2, 2}), {}, 3);
            }),
      error(hdr, "from_torch_mha_mask", Negative, "num_heads -1", "from_torch_mha_mask: num_heads",
            [] { from_torch_mha_mask({}, {}, -1); }),
      error(hdr, "from_torch_mha_mask", Rank, "a rank-3 key_padding_mask",
            "from_torch_mha_mask: key_padding_mask",
            [] {
              from_torch_mha_mask({}, View<const bool, 3>(kBools, {1, 2, 2}));
            }),
      error(hdr, "from_sdpa_mask", Option, "attn_mask and is_causal together",
            "from_sdpa_mask: is_causal", [] { from_sdpa_mask(bools(2, 2), true); }),
      error(hdr, "from_sdpa_mask", Rank, "rank 5", "from_sdpa_mask: attn_mask",
            [] {
              from_sdpa_mask(AnyView(kBools, DType::Bool, {1, 1, 1, 2, 2}, {4, 4, 4, 2, 1}));
            }),
      error(hdr, "from_sdpa_mask", MaskDtype, "uint8", "from_sdpa_mask: attn_mask",
            [] {
              from_sdpa_mask(AnyView(kBools, DType::UInt8, {2, 2}, {2, 1}));
            }),
      error(hdr, "from_hf_attention_mask", MaskDtype, "value 2 in an int mask",
            "from_hf_attention_mask: attention_mask",
            [] {
              const int32_t m[4] = {1, 1, 2, 0};
              from_hf_attention_mask(View<const int32_t, 2>(m, {2, 2}));
            }),
      error(hdr, "from_hf_attention_mask", Rank, "rank 3", "from_hf_attention_mask: attention_mask",
            [] {
              from_hf_attention_mask(View<const int32_t, 3>(kInts, {1, 2, 2}));
            }),
      error(hdr, "from_hf_attention_mask", NonFinite, "NaN in a 4-D float mask",
            "from_hf_attention_mask: attention_mask",
            [] {
              const float m[4] = {0.0f, kNaNf, 0.0f, 0.0f};
              from_hf_attention_mask(View<const float, 4>(m, {1, 1, 2, 2}));
            }),
      error(hdr, "from_hf_attention_mask", NonFinite, "NaN in a 2-D float mask",
            "from_hf_attention_mask: attention_mask",
            [] {
              const float m[2] = {1.0f, kNaNf};
              from_hf_attention_mask(View<const float, 2>(m, {1, 2}));
            }),
      error(hdr, "from_keras_mask", Rank, "rank 2", "from_keras_mask: attention_mask",
            [] { from_keras_mask(bools(2, 2)); }),
      error(hdr, "from_keras_mask", MaskDtype, "value 0.5", "from_keras_mask: attention_mask",
            [] {
              const float m[4] = {1.0f, 0.5f, 1.0f, 1.0f};
              from_keras_mask(View<const float, 3>(m, {1, 2, 2}));
            }),
      error(hdr, "from_onnx_attention_mask", MaskDtype, "int32",
            "from_onnx_attention_mask: attn_mask",
            [] {
              from_onnx_attention_mask(View<const int32_t, 2>(kInts, {2, 2}));
            }),
      error(hdr, "from_onnx_attention_mask", NonFinite, "+inf additive",
            "from_onnx_attention_mask: attn_mask",
            [] {
              const float m[2] = {0.0f, kInff};
              from_onnx_attention_mask(View<const float, 1>(m, {2}));
            }),
      defined(
          hdr, "BoundMask::classify", Dims, "a tile past Lq: clipped to the shape",
          [] {
            EXPECT_EQ(causal().bind({1, 1, 2, 2}).classify(0, 0, 0, 5, 0, 2), TileClass::Partial);
            EXPECT_EQ(causal().bind({1, 1, 2, 2}).classify(0, 0, 2, 5, 0, 2), TileClass::Empty);
          }),
      error(hdr, "BoundMask::classify", Dims, "batch 1 of a bound B = 1", "b",
            [] {
              key_lengths(std::vector<int64_t>{1}).bind({1, 1, 2, 2}).classify(1, 0, 0, 2, 0, 2);
            }),
      error(
          hdr, "BoundMask::row_values", Dims, "batch 3 of a bound B = 1", "b",
          [] {
            float out[2];
            key_lengths(std::vector<int64_t>{1}).bind({1, 1, 2, 2}).row_values(3, 0, 0, 0, 2, out);
          }),
      error(hdr, "BoundMask::row_values", Dims, "keys [0, 3) of Lk = 2", "k_begin, k_end",
            [] {
              float out[3];
              causal().bind({1, 1, 2, 2}).row_values(0, 0, 0, 0, 3, out);
            }),
      error(hdr, "BoundMask::tile_values", Dims, "ld smaller than the tile's queries", "ld",
            [] {
              float out[4];
              causal().bind({1, 1, 2, 2}).tile_values(0, 0, 0, 2, 0, 2, out, 1);
            }),
      error(hdr, "BoundMask::tile_values", Negative, "head -1", "h",
            [] {
              float out[4];
              alibi(std::vector<float>{0.5f})
                  .bind({1, 1, 2, 2})
                  .tile_values(0, -1, 0, 2, 0, 2, out, 2);
            }),
      error(hdr, "BoundMask::value", Negative, "query -1", "i",
            [] {
              causal().bind({1, 1, 2, 2}).value(0, 0, -1, 0);
            }),
      error(hdr, "BoundMask::allowed", Dims, "key 2 of Lk = 2", "j",
            [] {
              causal().bind({1, 1, 2, 2}).allowed(0, 0, 1, 2);
            }),
      error(hdr, "sliding_window", Option, "an Align value out of range", "sliding_window: align",
            [] { sliding_window(1, 1, static_cast<Align>(-1)); }),
      error(hdr, "prefix_lm", Option, "an Align value out of range", "prefix_lm: align",
            [] { prefix_lm(1, static_cast<Align>(2)); }),
      error(hdr, "alibi", Option, "an Align value out of range", "alibi: align",
            [] { alibi(std::vector<float>{0.5f}, static_cast<Align>(2)); }),
      error(hdr, "keep", Option, "a Dims2 value out of range", "keep: dims2",
            [] { keep(bools(2, 2), static_cast<Dims2>(2)); }),
      error(hdr, "bias", Option, "a Dims2 value out of range", "bias: dims2",
            [] { bias(floats(2, 2), static_cast<Dims2>(7)); }),
  };
}

std::vector<Case> positional_rows() {
  const std::string hdr = "positional.hpp";
  return {
      covered(hdr, "sinusoidal_encoding", Option, "odd / zero dim, base <= 1 or not finite",
              "Positional.BadInput"),
      error(hdr, "sinusoidal_encoding", Negative, "length -1", "length",
            [] { sinusoidal_encoding(-1, 4); }),
      error(hdr, "sinusoidal_encoding", Huge, "length 2^62, dim 4: overflows", "length",
            [] { sinusoidal_encoding(int64_t{1} << 62, 4); }),
      error(hdr, "sinusoidal_encoding", NonFinite, "base NaN", "base",
            [] { sinusoidal_encoding(2, 4, kNaN); }),
      defined(hdr, "sinusoidal_encoding", ZeroSize, "length 0: (0, dim)",
              [] {
                EXPECT_EQ(sinusoidal_encoding(0, 4).shape(), (std::vector<int64_t>{0, 4}));
              }),
      error(hdr, "sinusoidal_encoding(out)", Negative, "offset -1", "offset",
            [] {
              Tensor<float> t({2, 4});
              sinusoidal_encoding(t.view<2>(), 10000.0, PeLayout::Interleaved, -1);
            }),
      error(hdr, "sinusoidal_encoding(out)", Huge, "offset + length overflows", "offset",
            [] {
              Tensor<float> t({2, 4});
              sinusoidal_encoding(t.view<2>(), 10000.0, PeLayout::Interleaved, kMax64);
            }),
      error(hdr, "sinusoidal_encoding(out)", Absent, "a null view of shape (2, 4)", "out",
            [] {
              sinusoidal_encoding(View<float, 2>(nullptr, {2, 4}));
            }),
      error(hdr, "sinusoidal_encoding", Option, "a PeLayout out of range", "layout",
            [] { sinusoidal_encoding(2, 4, 10000.0, static_cast<PeLayout>(3)); }),
  };
}

std::vector<Case> mlm_rows() {
  const std::string hdr = "mlm.hpp";
  static const int64_t ids[6] = {3, 4, 5, 6, 7, 8};
  auto opts = [] {
    MlmOptions o;
    o.vocab_size = 10;
    o.mask_token_id = 2;
    o.special_token_ids = {0, 1};
    return o;
  };
  return {
      covered(hdr, "mlm_mask", Option, "probabilities, vocab_size, mask_token_id out of range",
              "Mlm.BadInput"),
      error(hdr, "mlm_mask", TokenId, "id 10 with vocab_size 10", "token_ids[1, 2]",
            [opts] {
              const int64_t bad[6] = {3, 4, 5, 6, 7, 10};
              mlm_mask(View<const int64_t, 2>(bad, {2, 3}), opts());
            }),
      error(hdr, "mlm_mask", TokenId, "id -1", "token_ids[0, 0]",
            [opts] {
              const int64_t bad[2] = {-1, 4};
              mlm_mask(View<const int64_t, 2>(bad, {1, 2}), opts());
            }),
      error(hdr, "mlm_mask", NonFinite, "mlm_probability NaN", "options.mlm_probability",
            [opts] {
              MlmOptions o = opts();
              o.mlm_probability = kNaN;
              mlm_mask(View<const int64_t, 2>(ids, {2, 3}), o);
            }),
      error(hdr, "mlm_mask", Option, "random_replace_prob > 1 - mask_replace_prob",
            "options.random_replace_prob",
            [opts] {
              MlmOptions o = opts();
              o.random_replace_prob = 0.5;
              mlm_mask(View<const int64_t, 2>(ids, {2, 3}), o);
            }),
      error(hdr, "mlm_mask", TokenId, "a special id outside the vocabulary",
            "options.special_token_ids[1]",
            [opts] {
              MlmOptions o = opts();
              o.special_token_ids = {0, 99};
              mlm_mask(View<const int64_t, 2>(ids, {2, 3}), o);
            }),
      error(hdr, "mlm_mask", Dims, "word_ids (2, 2) for tokens (2, 3)", "options.word_ids",
            [opts] {
              MlmOptions o = opts();
              o.word_ids = View<const int64_t, 2>(ids, {2, 2});
              mlm_mask(View<const int64_t, 2>(ids, {2, 3}), o);
            }),
      error(hdr, "mlm_mask", Negative, "word id -2", "options.word_ids[0, 1]",
            [opts] {
              MlmOptions o = opts();
              const int64_t w[6] = {0, -2, 1, 0, 1, 2};
              o.word_ids = View<const int64_t, 2>(w, {2, 3});
              mlm_mask(View<const int64_t, 2>(ids, {2, 3}), o);
            }),
      error(hdr, "mlm_mask", Absent, "a null (2, 3) token view", "token_ids",
            [opts] {
              mlm_mask(View<const int64_t, 2>(nullptr, {2, 3}), opts());
            }),
      defined(hdr, "mlm_mask", EmptyBatch, "(0, 3) tokens: empty results",
              [opts] {
                const MlmResult r = mlm_mask(View<const int64_t, 2>(ids, {0, 3}), opts());
                EXPECT_EQ(r.input_ids.shape(), (std::vector<int64_t>{0, 3}));
                EXPECT_EQ(r.labels.shape(), (std::vector<int64_t>{0, 3}));
              }),
  };
}

std::vector<Case> leak_rows() {
  const std::string hdr = "leak_check.hpp";
  auto ok_model = [](View<const int64_t, 2> t) {
    Tensor<float> out({t.size(0), t.size(1), 1});
    return out;
  };
  static const int64_t tokens[6] = {1, 2, 3, 1, 2, 3};
  return {
      covered(hdr, "check_leaks", Option, "head_dim, tolerance, max_listed, attention options",
              "CheckLeaks.ErrorsNameTheArgument"),
      covered(hdr, "check_model_leaks", Option, "vocab_size, tokens, model output",
              "CheckModelLeaks.ErrorsNameTheArgument"),
      error(hdr, "check_leaks", Negative, "shape with Lq = -1", "shape",
            [] {
              check_leaks(causal(), causal(), {1, 1, -1, 4});
            }),
      error(hdr, "check_leaks", Huge, "shape whose B*H*Lq*Lk overflows", "shape",
            [] {
              check_leaks(causal(), causal(), {kHugeSide, kHugeSide, kHugeSide, 2});
            }),
      error(hdr, "check_leaks", MaskDims, "a mask that does not fit the shape", "mask: key_lengths",
            [] {
              check_leaks(key_lengths(std::vector<int64_t>{9}), causal(), {1, 1, 4, 4});
            }),
      error(hdr, "check_leaks", MaskDims, "an expectation that does not fit", "expect: key_lengths",
            [] {
              check_leaks(causal(), key_lengths(std::vector<int64_t>{1, 1}), {1, 1, 4, 4});
            }),
      error(hdr, "check_leaks", NonFinite, "tolerance NaN", "opts.tolerance",
            [] {
              LeakCheckOptions o;
              o.tolerance = kNaNf;
              check_leaks(causal(), causal(), {1, 1, 4, 4}, o);
            }),
      error(hdr, "check_leaks", ZeroSize, "Lq = Lk = 0 (sizes >= 1 documented)", "shape",
            [] {
              check_leaks(causal(), causal(), {1, 1, 0, 0});
            }),
      error(hdr, "check_model_leaks", Absent, "an empty model function", "model",
            [] {
              ModelLeakOptions o;
              o.vocab_size = 4;
              check_model_leaks({}, View<const int64_t, 2>(tokens, {2, 3}), causal(), o);
            }),
      error(hdr, "check_model_leaks", TokenId, "token 3 with vocab_size 3", "tokens",
            [ok_model] {
              ModelLeakOptions o;
              o.vocab_size = 3;
              check_model_leaks(ok_model, View<const int64_t, 2>(tokens, {2, 3}), causal(), o);
            }),
      error(hdr, "check_model_leaks", EmptyBatch, "(0, 3) tokens", "tokens",
            [ok_model] {
              ModelLeakOptions o;
              o.vocab_size = 4;
              check_model_leaks(ok_model, View<const int64_t, 2>(tokens, {0, 3}), causal(), o);
            }),
      error(hdr, "check_model_leaks", Dims, "a model output of another batch", "model output",
            [] {
              ModelLeakOptions o;
              o.vocab_size = 4;
              check_model_leaks(
                  [](View<const int64_t, 2>) {
                    return Tensor<float>({5, 3, 1});
                  },
                  View<const int64_t, 2>(tokens, {2, 3}), causal(), o);
            }),
      error(hdr, "check_model_leaks", NonFinite,
            "a model whose outputs are all NaN (no output could move: \"no leak\" would claim "
            "what was not seen)",
            "model output",
            [] {
              ModelLeakOptions o;
              o.vocab_size = 4;
              check_model_leaks(
                  [](View<const int64_t, 2> t) {
                    Tensor<float> out({t.size(0), t.size(1), 2});
                    for (float& x : out) x = kNaNf;
                    return out;
                  },
                  View<const int64_t, 2>(tokens, {2, 3}), causal(), o);
            }),
      error(hdr, "check_model_leaks", MaskDims, "an expectation that does not fit",
            "expect: key_lengths",
            [ok_model] {
              ModelLeakOptions o;
              o.vocab_size = 4;
              check_model_leaks(ok_model, View<const int64_t, 2>(tokens, {2, 3}),
                                key_lengths(std::vector<int64_t>{1}), o);
            }),
      defined(hdr, "leak_verdict/describe", ZeroSize, "a default LeakReport",
              [] {
                EXPECT_FALSE(leak_verdict(LeakReport{}).empty());
                EXPECT_FALSE(describe(LeakReport{}).empty());
              }),
  };
}

MASKATTN_BAD_INPUT_ROWS(mask) {
  std::vector<Case> r;
  for (auto* f : {mask_rows, positional_rows, mlm_rows, leak_rows})
    for (Case& c : f()) r.push_back(std::move(c));
  return r;
}

}  // namespace
}  // namespace maskattn::testing_bad_input
