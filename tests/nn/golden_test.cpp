// The modules against torch's numbers: tests/data/nn_golden.safetensors holds
// small torch.nn modules with random weights, their inputs, masks and outputs
// (made by tools/export_state_dict.py golden; tests/data/README.md lists it).
// Each test builds the same module from the file's metadata, loads the weights
// by their torch names, runs it on the stored inputs with the masks in torch's
// convention (AttentionMasks), and compares every finite output of torch's —
// padded positions included — within kTolerance, printing the largest
// difference.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/io/safetensors.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/nn/multihead_attention.hpp"
#include "maskattn/nn/transformer.hpp"
#include "maskattn/nn/transformer_layers.hpp"

namespace maskattn {
namespace {

// Both sides compute in float32 with sums of at most 32 terms of order 1;
// what differs is the order of the additions (GEMM blocking, softmax), a few
// float ulps, 1e-6 at most in practice. 1e-4 leaves room for that and still
// catches any real mistake (a wrong mask, a missing bias, a swapped weight),
// which moves outputs by 1e-2 or more.
constexpr double kTolerance = 1e-4;

const std::string kGoldenPath = std::string(MASKATTN_TEST_DATA_DIR) + "/nn_golden.safetensors";

// One module's state_dict out of a file holding several: the views whose
// names start with `prefix`, renamed without it.
nn::StateDict strip_prefix(const std::map<std::string, AnyView>& views, std::string_view prefix) {
  nn::StateDict out;
  for (const auto& [name, view] : views)
    if (name.starts_with(prefix)) out.emplace(name.substr(prefix.size()), view);
  return out;
}

// A float32 tensor of the file as a View of rank N.
template <int N>
View<const float, N> float_view(const AnyView& v, std::string_view name) {
  if (v.dtype != DType::Float32 || v.rank() != N)
    throw std::runtime_error(
        fmt::format("{}: expected float32 of rank {}, got {}", name, N, v.describe()));
  std::array<int64_t, N> shape{};
  for (int d = 0; d < N; ++d) shape[d] = v.shape[static_cast<std::size_t>(d)];
  return View<const float, N>(static_cast<const float*>(v.data), shape);
}

// Every element of `ours` within kTolerance of torch's where torch's is
// finite; prints the largest difference.
template <int N>
void expect_matches_torch(const AnyView& torch_out, View<const float, N> ours,
                          std::string_view what) {
  const View<const float, N> expected = float_view<N>(torch_out, what);
  ASSERT_EQ(expected.shape(), ours.shape()) << what;
  double max_diff = 0.0;
  int64_t compared = 0, failures = 0;
  std::array<int64_t, N> index{};
  for (int64_t e = 0; e < expected.numel(); ++e) {
    int64_t rest = e;
    for (int d = N - 1; d >= 0; --d) {
      index[d] = rest % expected.size(d);
      rest /= expected.size(d);
    }
    const auto at = [&](const View<const float, N>& v) {
      int64_t off = 0;
      for (int d = 0; d < N; ++d) off += index[d] * v.stride(d);
      return static_cast<double>(v.data()[off]);
    };
    const double t = at(expected), o = at(ours);
    if (!std::isfinite(t)) continue;
    ++compared;
    const double diff = std::abs(o - t);
    if (!(diff <= kTolerance) && failures++ < 10)
      ADD_FAILURE() << what << " at " << fmt::format("{}", fmt::join(index, ", ")) << ": ours " << o
                    << ", torch " << t;
    if (!(diff <= max_diff)) max_diff = diff;
  }
  EXPECT_EQ(failures, 0) << what << ": elements off by more than " << kTolerance;
  EXPECT_GT(compared, 0) << what;
  std::printf("%s: max |maskattn - torch| = %.3g over %lld values (tolerance %g)\n",
              std::string(what).c_str(), max_diff, static_cast<long long>(compared), kTolerance);
}

// The file and its metadata (the modules' configuration, as strings).
class Golden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { file_ = SafetensorsFile::open(kGoldenPath); }
  static void TearDownTestSuite() { file_.reset(); }

  static const SafetensorsFile& file() { return *file_; }
  static AnyView tensor(std::string_view name) { return file().view(name); }
  static nn::StateDict weights(std::string_view prefix) {
    return strip_prefix(file().views(), prefix);
  }

  static const std::string& text(const std::string& key) {
    const auto it = file().metadata().find(key);
    if (it == file().metadata().end())
      throw std::runtime_error(fmt::format("{}: no metadata \"{}\"", kGoldenPath, key));
    return it->second;
  }
  static int64_t integer(const std::string& key) { return std::stoll(text(key)); }
  static double real(const std::string& key) { return std::stod(text(key)); }
  static bool flag(const std::string& key) {
    const std::string& v = text(key);
    if (v != "true" && v != "false")
      throw std::runtime_error(
          fmt::format("metadata \"{}\": expected true or false, got {}", key, v));
    return v == "true";
  }

  // torch's constructor arguments of the layers under `prefix` ("encoder.").
  static nn::TransformerLayerOptions layer_options(const std::string& prefix) {
    nn::TransformerLayerOptions o;
    o.dim_feedforward = integer(prefix + "dim_feedforward");
    o.activation = nn::activation_from_name(text(prefix + "activation"));
    o.layer_norm_eps = real(prefix + "layer_norm_eps");
    o.batch_first = flag(prefix + "batch_first");
    o.norm_first = flag(prefix + "norm_first");
    return o;
  }

 private:
  static inline std::optional<SafetensorsFile> file_;
};

TEST_F(Golden, StripPrefixKeepsOneModulesNamesWithoutThePrefix) {
  const nn::StateDict mha = weights("mha.");
  std::vector<std::string> names;
  for (const auto& [name, view] : mha) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"bias_k", "bias_v", "in_proj_bias", "k_proj_weight",
                                             "out_proj.bias", "out_proj.weight", "q_proj_weight",
                                             "v_proj_weight"}));
  EXPECT_EQ(mha.at("k_proj_weight").data, tensor("mha.k_proj_weight").data);
}

TEST_F(Golden, TransformerEncoderOnAPaddedBatch) {
  const std::string p = "encoder.";
  const int64_t d_model = integer(p + "d_model");
  const nn::TransformerLayerOptions o = layer_options(p);
  ASSERT_FALSE(o.batch_first) << "the test reads src as (L, N, E)";
  std::optional<nn::LayerNorm> final_norm;
  if (flag(p + "final_norm")) final_norm.emplace(d_model, o.layer_norm_eps);
  nn::TransformerEncoder encoder(nn::TransformerEncoderLayer(d_model, integer(p + "nhead"), o),
                                 integer(p + "num_layers"), final_norm);
  encoder.eval();
  encoder.load_state_dict(weights(p));  // strict: exactly torch's names

  const View<const float, 3> src = float_view<3>(tensor("input.encoder.src"), "src");  // (L, N, E)
  const AnyView padding = tensor("input.encoder.src_key_padding_mask");  // (N, L) True = padding
  ASSERT_EQ(padding.dtype, DType::Bool);
  Tensor<float> out({src.size(0), src.size(1), src.size(2)});
  nn::AttentionMasks masks;
  masks.key_padding_mask = padding;
  encoder.forward(src, out.view<3>(), masks);
  expect_matches_torch<3>(tensor("output.encoder.out"), out.view<3>(), "encoder out");

  // The same padding as a maskattn Mask (lengths), in place (out = src).
  std::vector<int64_t> lengths;
  for (int64_t n = 0; n < padding.shape[0]; ++n) {
    int64_t len = 0;
    while (len < padding.shape[1] && padding.at(std::array<int64_t, 2>{n, len}) == 0.0) ++len;
    lengths.push_back(len);
  }
  EXPECT_EQ(fmt::format("{}", fmt::join(lengths, ",")), text(p + "lengths"));
  Tensor<float> in_place({src.size(0), src.size(1), src.size(2)});
  std::copy(src.data(), src.data() + src.numel(), in_place.data());
  nn::AttentionMasks by_lengths;
  by_lengths.mask = key_lengths(lengths);
  encoder.forward(in_place.view<3>(), in_place.view<3>(), by_lengths);
  expect_matches_torch<3>(tensor("output.encoder.out"), in_place.view<3>(),
                          "encoder out (key_lengths, in place)");
}

TEST_F(Golden, TransformerDecoderLayerPreNormGeluWithLookAheadAndMemoryPadding) {
  const std::string p = "decoder_layer.";
  const nn::TransformerLayerOptions o = layer_options(p);
  ASSERT_TRUE(o.batch_first) << "the test reads tgt and memory as (N, L, E)";
  nn::TransformerDecoderLayer layer(integer(p + "d_model"), integer(p + "nhead"), o);
  layer.eval();
  layer.load_state_dict(weights(p));

  const auto tgt = float_view<3>(tensor("input.decoder_layer.tgt"), "tgt");           // (N, T, E)
  const auto memory = float_view<3>(tensor("input.decoder_layer.memory"), "memory");  // (N, S, E)
  nn::AttentionMasks tgt_masks, memory_masks;
  tgt_masks.attn_mask = tensor("input.decoder_layer.tgt_mask");  // (T, T) float, -inf above
  memory_masks.key_padding_mask = tensor("input.decoder_layer.memory_key_padding_mask");
  Tensor<float> out({tgt.size(0), tgt.size(1), tgt.size(2)});
  layer.forward(tgt, memory, out.view<3>(), tgt_masks, memory_masks);
  expect_matches_torch<3>(tensor("output.decoder_layer.out"), out.view<3>(), "decoder layer out");

  // The look-ahead mask as is_causal instead of torch's float matrix.
  nn::AttentionMasks causal_masks;
  causal_masks.is_causal = true;
  layer.forward(tgt, memory, out.view<3>(), causal_masks, memory_masks);
  expect_matches_torch<3>(tensor("output.decoder_layer.out"), out.view<3>(),
                          "decoder layer out (is_causal)");
}

TEST_F(Golden, MultiheadAttentionKdimVdimBiasKvBatchFirstPerHeadWeights) {
  const std::string p = "mha.";
  nn::MultiheadAttentionOptions o;
  o.kdim = integer(p + "kdim");
  o.vdim = integer(p + "vdim");
  o.add_bias_kv = flag(p + "add_bias_kv");
  o.add_zero_attn = flag(p + "add_zero_attn");
  o.batch_first = flag(p + "batch_first");
  ASSERT_TRUE(o.batch_first) << "the test reads query, key and value as (N, L, E)";
  nn::MultiheadAttention mha(integer(p + "embed_dim"), integer(p + "num_heads"), o);
  mha.eval();
  mha.load_state_dict(weights(p));
  ASSERT_FALSE(mha.packed());

  const auto query = float_view<3>(tensor("input.mha.query"), "query");  // (N, L, E)
  const auto key = float_view<3>(tensor("input.mha.key"), "key");        // (N, S, kdim)
  const auto value = float_view<3>(tensor("input.mha.value"), "value");  // (N, S, vdim)
  const int64_t n = query.size(0), l = query.size(1), s2 = mha.key_len(key.size(1));
  nn::AttentionMasks masks;
  masks.attn_mask = tensor("input.mha.attn_mask");                // (L, S) bool, True = masked
  masks.key_padding_mask = tensor("input.mha.key_padding_mask");  // (N, S) bool, True = padding
  nn::MultiheadAttentionCall call;
  call.need_weights = true;
  call.average_attn_weights = flag(p + "average_attn_weights");
  ASSERT_FALSE(call.average_attn_weights);
  Tensor<float> out({n, l, query.size(2)});
  Tensor<float> weights({n, mha.num_heads(), l, s2});  // (N, H, L, S + 1)
  mha.forward(query, key, value, out.view<3>(), masks, call, weights.view<4>());
  expect_matches_torch<3>(tensor("output.mha.attn_output"), out.view<3>(), "mha attn_output");
  expect_matches_torch<4>(tensor("output.mha.attn_weights"), weights.view<4>(), "mha attn_weights");
}

}  // namespace
}  // namespace maskattn
