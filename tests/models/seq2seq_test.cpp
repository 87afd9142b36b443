// Seq2SeqTransformer: greedy decoding with the KV cache chooses the same
// tokens as re-running the whole model at every step; source padding changes
// nothing; the stop symbol ends sequences; bad arguments are Errors.
#include "maskattn/models/seq2seq.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "throws_error.hpp"

namespace maskattn::models {
namespace {

using testing_errors::throws_error_naming;

constexpr int64_t kVocab = 11, kStart = 1, kStop = 2;

Seq2SeqTransformer make_model() {
  Seq2SeqOptions o;
  o.src_vocab = kVocab;
  o.tgt_vocab = kVocab;
  o.transformer.d_model = 16;
  o.transformer.nhead = 4;
  o.transformer.num_encoder_layers = 2;
  o.transformer.num_decoder_layers = 2;
  o.transformer.layer.dim_feedforward = 32;
  o.max_len = 32;
  Seq2SeqTransformer model(o);
  // Every parameter drawn here, from one seed: the default initialisation
  // seeds modules in construction order, so it would depend on which tests
  // ran before. Matrices Xavier-scaled, biases and norm scales random too, so
  // none of them is a hidden 0 or 1.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.1f), unit(0.0f, 1.0f);
  for (auto& [name, p] : model.named_parameters()) {
    const bool bias = name.ends_with("bias"), norm = name.find("norm") != std::string::npos;
    if (bias || norm) {
      for (float& x : *p) x = (norm && !bias ? 1.0f : 0.0f) + normal(rng);
    } else {
      const float fan = static_cast<float>(p->size(0) + p->size(p->rank() - 1));
      for (float& x : *p) x = unit(rng) * std::sqrt(2.0f / fan);
    }
  }
  model.eval();
  return model;
}

// src (N, S) random ids in [3, kVocab), padding 0 past each length.
Tensor<int64_t> make_src(const std::vector<int64_t>& lengths, int64_t s) {
  Tensor<int64_t> src({static_cast<int64_t>(lengths.size()), s});
  std::mt19937 rng(5);
  std::uniform_int_distribution<int64_t> id(3, kVocab - 1);
  for (std::size_t b = 0; b < lengths.size(); ++b)
    for (int64_t j = 0; j < lengths[b]; ++j) src.data()[static_cast<int64_t>(b) * s + j] = id(rng);
  return src;
}

// Greedy decoding without a cache: the whole model on the prefix, every step.
Tensor<int64_t> naive_greedy(const Seq2SeqTransformer& model, const Tensor<int64_t>& src,
                             const std::vector<int64_t>& lengths, int64_t max_len) {
  const int64_t n = src.size(0);
  std::vector<std::vector<int64_t>> ys(static_cast<std::size_t>(n), {kStart});
  for (int64_t len = 1; len < max_len; ++len) {
    Tensor<int64_t> tgt({n, len});
    for (int64_t b = 0; b < n; ++b)
      std::copy_n(ys[static_cast<std::size_t>(b)].data(), len, tgt.data() + b * len);
    Tensor<float> logits({n, len, kVocab});
    model.forward(src.view<2>(), lengths, tgt.view<2>(), logits.view<3>());
    for (int64_t b = 0; b < n; ++b) {
      const float* last = logits.data() + (b * len + len - 1) * kVocab;
      ys[static_cast<std::size_t>(b)].push_back(std::max_element(last, last + kVocab) - last);
    }
  }
  Tensor<int64_t> out({n, max_len});
  for (int64_t b = 0; b < n; ++b)
    std::copy_n(ys[static_cast<std::size_t>(b)].data(), max_len, out.data() + b * max_len);
  return out;
}

TEST(Seq2Seq, GreedyDecodingWithTheCacheEqualsTheWholeModelAtEveryStep) {
  const Seq2SeqTransformer model = make_model();
  const std::vector<int64_t> lengths = {7, 3, 5};
  const Tensor<int64_t> src = make_src(lengths, 7);
  constexpr int64_t kMaxLen = 10;
  const Tensor<int64_t> cached = model.greedy_decode(src.view<2>(), lengths, kStart, kMaxLen);
  const Tensor<int64_t> naive = naive_greedy(model, src, lengths, kMaxLen);
  ASSERT_EQ(cached.shape(), naive.shape());
  EXPECT_TRUE(std::equal(cached.begin(), cached.end(), naive.begin()));
  // Not a constant sequence: the test would hide little otherwise.
  EXPECT_GT(std::set<int64_t>(cached.begin(), cached.end()).size(), 2u) << [&] {
    std::string ids;
    for (int64_t id : cached) ids += std::to_string(id) + " ";
    return ids;
  }();
}

TEST(Seq2Seq, SourcePaddingChangesNothing) {
  const Seq2SeqTransformer model = make_model();
  // Sequence 1 alone (length 3, no padding) and in a batch padded to 7.
  const std::vector<int64_t> lengths = {7, 3};
  const Tensor<int64_t> batch = make_src(lengths, 7);
  Tensor<int64_t> alone({1, 3});
  std::copy_n(batch.data() + 7, 3, alone.data());
  const std::vector<int64_t> alone_length = {3};
  Tensor<int64_t> tgt({2, 4});
  for (int64_t i = 0; i < 8; ++i) tgt.data()[i] = 3 + i % 5;
  Tensor<int64_t> tgt_alone({1, 4});
  std::copy_n(tgt.data() + 4, 4, tgt_alone.data());
  Tensor<float> logits({2, 4, kVocab}), logits_alone({1, 4, kVocab});
  model.forward(batch.view<2>(), lengths, tgt.view<2>(), logits.view<3>());
  model.forward(alone.view<2>(), alone_length, tgt_alone.view<2>(), logits_alone.view<3>());
  for (int64_t i = 0; i < 4 * kVocab; ++i)
    EXPECT_NEAR(logits.data()[4 * kVocab + i], logits_alone.data()[i], 1e-5) << i;
}

TEST(Seq2Seq, LogitsIntoAStridedView) {
  const Seq2SeqTransformer model = make_model();
  const std::vector<int64_t> lengths = {4, 2};
  const Tensor<int64_t> src = make_src(lengths, 4);
  Tensor<int64_t> tgt({2, 3});
  for (int64_t i = 0; i < 6; ++i) tgt.data()[i] = 3 + i;
  Tensor<float> dense({2, 3, kVocab});
  model.forward(src.view<2>(), lengths, tgt.view<2>(), dense.view<3>());
  // (N, T, V) viewed over a (T, N, V) buffer: its rows do not follow one stride.
  Tensor<float> buffer({3, 2, kVocab});
  model.forward(src.view<2>(), lengths, tgt.view<2>(), buffer.view<3>().transposed(0, 1));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t v = 0; v < kVocab; ++v)
        EXPECT_EQ(buffer.view<3>()(t, b, v), dense.view<3>()(b, t, v)) << b << " " << t << " " << v;
}

TEST(Seq2Seq, StopSymbolEndsEverySequence) {
  Seq2SeqTransformer model = make_model();
  // A generator that always prefers the stop symbol.
  for (auto& [name, p] : model.named_parameters())
    if (name == "generator.bias") p->data()[kStop] = 1e4f;
  const std::vector<int64_t> lengths = {4, 2};
  const Tensor<int64_t> src = make_src(lengths, 4);
  const Tensor<int64_t> ys = model.greedy_decode(src.view<2>(), lengths, kStart, 8, kStop);
  ASSERT_EQ(ys.shape(), (std::vector<int64_t>{2, 2}));  // start, stop: then everyone is done
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(ys.data()[b * 2], kStart);
    EXPECT_EQ(ys.data()[b * 2 + 1], kStop);
  }
}

TEST(Seq2Seq, StateDictNames) {
  const Seq2SeqTransformer model = make_model();
  const nn::StateDict sd = model.state_dict();
  EXPECT_TRUE(sd.count("src_embed.weight"));
  EXPECT_TRUE(sd.count("tgt_embed.weight"));
  EXPECT_TRUE(sd.count("generator.weight"));
  EXPECT_TRUE(sd.count("transformer.encoder.layers.0.self_attn.in_proj_weight"));
  EXPECT_TRUE(sd.count("transformer.decoder.norm.bias"));
}

TEST(Seq2Seq, BadArguments) {
  const Seq2SeqTransformer model = make_model();
  const std::vector<int64_t> lengths = {4, 2};
  const Tensor<int64_t> src = make_src(lengths, 4);
  const std::vector<int64_t> too_long = {5, 2}, one = {4};
  EXPECT_TRUE(throws_error_naming([&] { model.greedy_decode(src.view<2>(), too_long, kStart, 4); },
                                  "src_lengths[0]"));
  EXPECT_TRUE(throws_error_naming([&] { model.greedy_decode(src.view<2>(), one, kStart, 4); },
                                  "src_lengths"));
  EXPECT_TRUE(throws_error_naming([&] { model.greedy_decode(src.view<2>(), lengths, kStart, 33); },
                                  "max_len"));
  EXPECT_TRUE(throws_error_naming([&] { model.greedy_decode(src.view<2>(), lengths, kVocab, 4); },
                                  "start_symbol"));
  EXPECT_TRUE(throws_error_naming(
      [&] { model.greedy_decode(src.view<2>(), lengths, kStart, 4, -1); }, "stop_symbol"));
  Tensor<int64_t> bad = src;
  bad.data()[0] = kVocab;
  EXPECT_TRUE(throws_error_naming([&] { model.greedy_decode(bad.view<2>(), lengths, kStart, 4); },
                                  "src[0, 0]"));
  // The teacher-forcing forward named an id outside the vocabularies by the
  // embedding that met it, "Embedding: ids[0, 0]", the same for src and tgt:
  // now src[b, i] / tgt[b, i]. (In this test, not one of its own: another
  // model constructed would shift the default seeds of every model after it,
  // Seq2SeqTrainer.LearnsToCopy's included.)
  Tensor<int64_t> tgt({2, 3});
  Tensor<float> logits({2, 3, kVocab});
  bad.data()[0] = 3;
  bad.data()[5] = kVocab;
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(bad.view<2>(), lengths, tgt.view<2>(), logits.view<3>()); },
      "src[1, 1]: expected an id in [0, 11)"));
  bad.data()[5] = 3;
  tgt.data()[2] = -1;
  EXPECT_TRUE(throws_error_naming(
      [&] { model.forward(bad.view<2>(), lengths, tgt.view<2>(), logits.view<3>()); },
      "tgt[0, 2]: expected an id in [0, 11)"));
}

}  // namespace
}  // namespace maskattn::models
