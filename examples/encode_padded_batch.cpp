// Load a Transformer encoder trained in PyTorch, run a padded batch through
// it, print one pooled vector per sequence.
//
//   encode_padded_batch [model.safetensors [prefix]]
//
// The file is a torch.nn.TransformerEncoder's state_dict saved as safetensors,
// with its configuration in the file's metadata, as tools/export_state_dict.py
// writes it:
//
//   .venv/bin/python tools/export_state_dict.py build encoder model.safetensors
//       --d-model 16 --nhead 4 --num-layers 2 --dim-feedforward 32   (one line)
//
// Without arguments it reads the encoder of the tests' golden file.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "maskattn/io/safetensors.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/nn/transformer.hpp"

namespace {

using maskattn::SafetensorsFile;
using maskattn::Tensor;

// A configuration value of the file's metadata ("<prefix>d_model" = "16").
std::string config(const SafetensorsFile& file, const std::string& prefix, const std::string& key,
                   const std::string& fallback = "") {
  const auto& meta = file.metadata();
  const auto it = meta.find(prefix + key);
  if (it != meta.end()) return it->second;
  if (!fallback.empty()) return fallback;
  throw std::runtime_error("metadata has no \"" + prefix + key + "\"");
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string path = argc > 1 ? argv[1] : MASKATTN_EXAMPLE_MODEL;
  const std::string prefix = argc > 2 ? argv[2] : (argc > 1 ? "" : "encoder.");
  const SafetensorsFile file = SafetensorsFile::open(path);  // memory-mapped

  // 1. Build the encoder torch had, from the metadata.
  namespace nn = maskattn::nn;
  nn::TransformerLayerOptions o;
  o.dim_feedforward = std::stoll(config(file, prefix, "dim_feedforward"));
  o.activation = nn::activation_from_name(config(file, prefix, "activation"));
  o.layer_norm_eps = std::stod(config(file, prefix, "layer_norm_eps"));
  o.norm_first = config(file, prefix, "norm_first") == "true";
  o.batch_first = true;  // this program's layout; the weights do not depend on it
  const int64_t d_model = std::stoll(config(file, prefix, "d_model"));
  const int64_t nhead = std::stoll(config(file, prefix, "nhead"));
  const int64_t layers = std::stoll(config(file, prefix, "num_layers"));
  std::optional<nn::LayerNorm> final_norm;
  if (file.contains(prefix + "norm.weight")) final_norm.emplace(d_model, o.layer_norm_eps);
  nn::TransformerEncoder encoder(nn::TransformerEncoderLayer(d_model, nhead, o), layers,
                                 final_norm);

  // 2. Load torch's weights by their names (strict: every name must match).
  nn::StateDict weights;
  for (const auto& [name, view] : file.views())
    if (name.starts_with(prefix)) weights.emplace(name.substr(prefix.size()), view);
  encoder.load_state_dict(weights);
  encoder.eval();  // no dropout
  std::printf("loaded %s: %lld layers, d_model %lld, %lld heads, %lld parameters\n", path.c_str(),
              static_cast<long long>(layers), static_cast<long long>(d_model),
              static_cast<long long>(nhead), static_cast<long long>(encoder.num_parameters()));

  // 3. A padded batch: three sequences of 7, 5 and 2 tokens in (N, L, E) =
  // (3, 7, d_model). In a real model the vectors come from an embedding layer;
  // here they are random. Padding positions hold anything: the mask hides them.
  const std::vector<int64_t> lengths = {7, 5, 2};
  const int64_t n = 3, len = 7;
  Tensor<float> x({n, len, d_model}), y({n, len, d_model});
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (float& v : x) v = normal(rng);
  nn::AttentionMasks masks;
  masks.mask = maskattn::key_lengths(lengths);  // key j of sequence b visible iff j < lengths[b]
  encoder.forward(x.view<3>(), y.view<3>(), masks);

  // 4. Mean-pool each sequence over its real tokens.
  for (int64_t b = 0; b < n; ++b) {
    std::printf("sequence %lld (%lld tokens):", static_cast<long long>(b),
                static_cast<long long>(lengths[static_cast<std::size_t>(b)]));
    for (int64_t e = 0; e < std::min<int64_t>(d_model, 6); ++e) {
      double sum = 0;
      for (int64_t l = 0; l < lengths[static_cast<std::size_t>(b)]; ++l)
        sum += y.view<3>()(b, l, e);
      std::printf(" %+.4f", sum / static_cast<double>(lengths[static_cast<std::size_t>(b)]));
    }
    std::printf(" ...\n");
  }

  // 5. Padding changes nothing: the last sequence alone, without padding.
  Tensor<float> alone({1, 2, d_model}), alone_out({1, 2, d_model});
  std::copy_n(x.view<3>().row(2, 0), 2 * d_model, alone.data());
  encoder.forward(alone.view<3>(), alone_out.view<3>());
  double diff = 0;
  for (int64_t i = 0; i < 2 * d_model; ++i)
    diff = std::max(diff, std::abs(double{alone_out.data()[i]} - y.view<3>().row(2, 0)[i]));
  std::printf("sequence 2 alone vs in the padded batch: max difference %.2g\n", diff);
  return diff <= 1e-5 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "encode_padded_batch: %s\n", e.what());
  return 1;
}
