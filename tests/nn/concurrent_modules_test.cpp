// Many std::threads running forward passes (and training forwards with their
// backward, each with its own Saved and Gradients) of modules they share:
// MultiheadAttention in its variants, Transformer encoder and decoder layers,
// a whole nn::Transformer, the Seq2Seq model (teacher forcing and greedy
// decoding with its KV cache) and the tiny BERT sentence encoder. The weights
// are only read; each call writes outputs of its own. Every result must equal
// the single-threaded call's bit for bit (tests/concurrent_calls.hpp). Under
// ThreadSanitizer (the tsan preset) this is also the race detector's workload.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "concurrent_calls.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/models/sentence_encoder.hpp"
#include "maskattn/models/seq2seq.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/multihead_attention.hpp"
#include "maskattn/nn/transformer.hpp"
#include "maskattn/nn/transformer_layers.hpp"
#include "nn/module_fixtures.hpp"

namespace maskattn {
namespace {

using testing_modules::random_tensor;
using testing_modules::randomize;
using testing_threads::append;
using testing_threads::Call;
using testing_threads::same_bits_when_concurrent;

constexpr int64_t kE = 32, kHeads = 4, kL = 12, kS = 15, kN = 3;

// Everything the calls share: modules (eval mode: no dropout, so a result
// depends only on the input) and inputs. Built once, then only read.
struct Shared {
  nn::MultiheadAttention packed{kE, kHeads};
  nn::MultiheadAttention separate{kE, kHeads, [] {
                                    nn::MultiheadAttentionOptions o;
                                    o.kdim = 20;
                                    o.vdim = 24;
                                    o.add_bias_kv = true;
                                    o.add_zero_attn = true;
                                    o.batch_first = true;
                                    return o;
                                  }()};
  nn::MultiheadAttention grouped{kE, kHeads, [] {
                                   nn::MultiheadAttentionOptions o;
                                   o.num_kv_heads = 2;
                                   return o;
                                 }()};
  nn::TransformerEncoderLayer post_norm{kE, kHeads, layer_options(false)};
  nn::TransformerEncoderLayer pre_norm{kE, kHeads, layer_options(true)};
  nn::TransformerDecoderLayer decoder{kE, kHeads, layer_options(false)};
  nn::Transformer transformer{[] {
    nn::TransformerOptions o;
    o.d_model = kE;
    o.nhead = kHeads;
    o.num_encoder_layers = 2;
    o.num_decoder_layers = 2;
    o.layer = layer_options(true);
    return o;
  }()};
  models::Seq2SeqTransformer seq2seq{[] {
    models::Seq2SeqOptions o;
    o.src_vocab = 13;
    o.tgt_vocab = 11;
    o.transformer.d_model = 16;
    o.transformer.nhead = 4;
    o.transformer.num_encoder_layers = 2;
    o.transformer.num_decoder_layers = 2;
    o.transformer.layer.dim_feedforward = 32;
    o.max_len = 32;
    return o;
  }()};
  models::SentenceEncoder sentences = models::SentenceEncoder::from_folder(
      std::filesystem::path(MASKATTN_TEST_DATA_DIR) / "tiny_bert");

  // (L, N, E), (S, N, E) and the separate projections' (N, S, kdim/vdim).
  Tensor<float> query = random_tensor({kL, kN, kE}, 1), memory = random_tensor({kS, kN, kE}, 2);
  Tensor<float> query_bf = random_tensor({kN, kL, kE}, 3), key_bf = random_tensor({kN, kS, 20}, 4),
                value_bf = random_tensor({kN, kS, 24}, 5);
  Tensor<float> dout = random_tensor({kL, kN, kE}, 6);
  Tensor<bool> attn_mask{kL, kS}, key_padding{kN, kS};
  Tensor<float> head_mask = random_tensor({kHeads}, 7, 0.5f, 1.5f);
  std::vector<int64_t> key_lens{kS, 9, 4};
  Tensor<int64_t> src{kN, 10}, tgt{kN, 7};
  std::vector<int64_t> src_lens{10, 6, 3};

  static nn::TransformerLayerOptions layer_options(bool norm_first) {
    nn::TransformerLayerOptions o;
    o.dim_feedforward = 48;
    o.norm_first = norm_first;
    o.activation = norm_first ? nn::Activation::GELU : nn::Activation::ReLU;
    return o;
  }

  Shared() {
    uint32_t seed = 100;
    for (nn::Module* m :
         std::initializer_list<nn::Module*>{&packed, &separate, &grouped, &post_norm, &pre_norm,
                                            &decoder, &transformer, &seq2seq}) {
      randomize(*m, seed++);
      m->eval();
    }
    for (int64_t i = 0; i < kL; ++i)
      for (int64_t j = 0; j < kS; ++j) attn_mask.data()[i * kS + j] = (i * 7 + j * 3) % 5 == 0;
    for (int64_t b = 0; b < kN; ++b)
      for (int64_t j = 0; j < kS; ++j) key_padding.data()[b * kS + j] = j >= key_lens[b];
    for (int64_t b = 0; b < kN; ++b) {
      for (int64_t j = 0; j < 10; ++j)
        src.data()[b * 10 + j] = j < src_lens[b] ? 3 + (b + j) % 10 : 0;
      for (int64_t j = 0; j < 7; ++j) tgt.data()[b * 7 + j] = j == 0 ? 1 : 3 + (2 * b + j) % 8;
    }
  }
};

std::vector<Call> module_calls(const Shared& m) {
  std::vector<Call> calls;
  const View<const float, 3> query = m.query.view<3>(), memory = m.memory.view<3>();
  // MultiheadAttention, packed projections: torch's bool masks, per-head weights.
  calls.push_back({"MultiheadAttention packed", [&m, query, memory] {
                     nn::AttentionMasks masks;
                     masks.attn_mask = m.attn_mask;
                     masks.key_padding_mask = m.key_padding;
                     nn::MultiheadAttentionCall call;
                     call.average_attn_weights = false;
                     Tensor<float> out({kL, kN, kE}), w({kN, kHeads, kL, kS});
                     m.packed.forward(query, memory, memory, out.view<3>(), masks, call,
                                      w.view<4>());
                     std::vector<float> r;
                     append(r, out);
                     append(r, w);
                     return r;
                   }});
  // Separate projections (kdim, vdim), bias_k/bias_v, a zero key, batch first,
  // head-averaged weights, the look-ahead mask.
  calls.push_back({"MultiheadAttention separate", [&m] {
                     nn::AttentionMasks masks;
                     masks.is_causal = true;
                     const int64_t s = m.separate.key_len(kS);
                     Tensor<float> out({kN, kL, kE}), w({kN, 1, kL, s});
                     m.separate.forward(m.query_bf.view<3>(), m.key_bf.view<3>(),
                                        m.value_bf.view<3>(), out.view<3>(), masks, {},
                                        w.view<4>());
                     std::vector<float> r;
                     append(r, out);
                     append(r, w);
                     return r;
                   }});
  // Grouped-query attention under a maskattn Mask and a head mask.
  calls.push_back({"MultiheadAttention grouped", [&m, query, memory] {
                     nn::AttentionMasks masks;
                     masks.mask = key_lengths(m.key_lens) & sliding_window(6, 6);
                     nn::MultiheadAttentionCall call;
                     call.head_mask = m.head_mask;
                     call.need_weights = false;
                     Tensor<float> out({kL, kN, kE});
                     m.grouped.forward(query, memory, memory, out.view<3>(), masks, call);
                     std::vector<float> r;
                     append(r, out);
                     return r;
                   }});
  // The training forward and backward, with a Saved and Gradients per call.
  calls.push_back({"MultiheadAttention backward", [&m, query, memory] {
                     nn::AttentionMasks masks;
                     masks.key_padding_mask = m.key_padding;
                     nn::MultiheadAttention::Saved saved;
                     Tensor<float> out({kL, kN, kE}), dq({kL, kN, kE}), dkv({kS, kN, kE});
                     m.packed.forward(query, memory, memory, out.view<3>(), masks, {}, saved);
                     nn::Gradients grads(const_cast<nn::MultiheadAttention&>(m.packed));
                     m.packed.backward(query, memory, memory, saved, m.dout.view<3>(), dq.view<3>(),
                                       dkv.view<3>(), dkv.view<3>(), grads);
                     std::vector<float> r;
                     append(r, out);
                     append(r, dq);
                     append(r, dkv);
                     for (const auto& e : grads.entries()) append(r, e.grad);
                     return r;
                   }});
  for (const nn::TransformerEncoderLayer* layer : {&m.post_norm, &m.pre_norm})
    calls.push_back(
        {layer->options().norm_first ? "encoder layer pre-norm" : "encoder layer", [layer, query] {
           nn::AttentionMasks masks;
           masks.mask = causal();
           Tensor<float> out({kL, kN, kE});
           layer->forward(query, out.view<3>(), masks);
           std::vector<float> r;
           append(r, out);
           return r;
         }});
  calls.push_back({"encoder layer backward", [&m, query] {
                     nn::TransformerEncoderLayer::Saved saved;
                     Tensor<float> out({kL, kN, kE}), dsrc({kL, kN, kE});
                     m.post_norm.forward(query, out.view<3>(), {}, saved);
                     nn::Gradients grads(const_cast<nn::TransformerEncoderLayer&>(m.post_norm));
                     m.post_norm.backward(query, saved, m.dout.view<3>(), dsrc.view<3>(), grads);
                     std::vector<float> r;
                     append(r, out);
                     append(r, dsrc);
                     for (const auto& e : grads.entries()) append(r, e.grad);
                     return r;
                   }});
  calls.push_back({"decoder layer", [&m, query, memory] {
                     nn::AttentionMasks self, cross;
                     self.is_causal = true;
                     cross.key_padding_mask = m.key_padding;
                     Tensor<float> out({kL, kN, kE});
                     m.decoder.forward(query, memory, out.view<3>(), self, cross);
                     std::vector<float> r;
                     append(r, out);
                     return r;
                   }});
  calls.push_back({"Transformer", [&m, query, memory] {
                     nn::AttentionMasks src_masks, tgt_masks, memory_masks;
                     src_masks.mask = key_lengths(m.key_lens);
                     tgt_masks.mask = causal();
                     memory_masks.mask = key_lengths(m.key_lens);
                     Tensor<float> out({kL, kN, kE});
                     m.transformer.forward(memory, query, out.view<3>(), src_masks, tgt_masks,
                                           memory_masks);
                     std::vector<float> r;
                     append(r, out);
                     return r;
                   }});
  calls.push_back({"Seq2Seq teacher forcing", [&m] {
                     Tensor<float> logits({kN, 7, 11});
                     m.seq2seq.forward(m.src.view<2>(), m.src_lens, m.tgt.view<2>(),
                                       logits.view<3>());
                     std::vector<float> r;
                     append(r, logits);
                     return r;
                   }});
  calls.push_back({"Seq2Seq greedy decoding", [&m] {
                     std::vector<float> r;
                     append(r, m.seq2seq.greedy_decode(m.src.view<2>(), m.src_lens, 1, 9, 2));
                     return r;
                   }});
  for (bool pack : {true, false})
    calls.push_back({pack ? "sentence encoder packed" : "sentence encoder padded", [&m, pack] {
                       models::EncodeOptions o;
                       o.batch_size = 2;
                       o.pack = pack;
                       std::vector<float> r;
                       append(r, m.sentences.encode({"the cat sat on the mat", "a dog",
                                                     "threads share one encoder", "hello world"},
                                                    o));
                       return r;
                     }});
  return calls;
}

// 8 threads x 4 rounds x 13 calls = 416 concurrent module calls.
TEST(ConcurrentModules, SharedWeightsGiveEveryThreadTheSingleThreadedBits) {
  const auto shared = std::make_unique<Shared>();
  const std::vector<Call> calls = module_calls(*shared);
  ASSERT_EQ(calls.size(), 13U);
  EXPECT_TRUE(same_bits_when_concurrent(calls, {8, 4}));
}

}  // namespace
}  // namespace maskattn
