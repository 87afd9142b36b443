// Bad-input matrix rows (bad_input_matrix.hpp) of include/maskattn/nn/.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "api/bad_input_matrix.hpp"
#include "maskattn/nn/adam.hpp"
#include "maskattn/nn/bert.hpp"
#include "maskattn/nn/checkpoint.hpp"
#include "maskattn/nn/cross_entropy.hpp"
#include "maskattn/nn/dropout.hpp"
#include "maskattn/nn/embedding.hpp"
#include "maskattn/nn/feed_forward.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/kv_cache.hpp"
#include "maskattn/nn/layer_norm.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/lr_schedule.hpp"
#include "maskattn/nn/module.hpp"
#include "maskattn/nn/multihead_attention.hpp"
#include "maskattn/nn/positional_encoding.hpp"
#include "maskattn/nn/transformer.hpp"
#include "maskattn/nn/transformer_layers.hpp"

namespace maskattn::testing_bad_input {
namespace {

using namespace maskattn::nn;  // NOLINT(build/namespaces)

nn::TransformerLayerOptions small_layer() {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 8;
  o.dropout = 0.0;
  return o;
}

std::vector<Case> module_rows() {
  return {
      covered("nn/module.hpp", "Module::load_state_dict", Dims,
              "wrong shape, dtype, non-finite value, missing / unexpected names",
              "ModulesLoadStateDict.EveryBadStateIsAnErrorNamingTheTensorAndChangesNothing"),
      error("nn/module.hpp", "Module::load_state_dict", Rank, "weight given as rank 1",
            "state_dict[\"weight\"]",
            [] {
              Linear l(3, 2);
              const std::vector<float> w(6, 0.5f), b(2, 0.0f);
              l.load_state_dict({{"weight", View<const float, 1>(w.data(), {6})},
                                 {"bias", View<const float, 1>(b.data(), {2})}});
            }),
      error("nn/module.hpp", "Module::load_state_dict", NonFinite, "an inf weight",
            "state_dict[\"weight\"]",
            [] {
              Linear l(1, 1, false);
              const float w = kInff;
              l.load_state_dict({{"weight", View<const float, 2>(&w, {1, 1})}});
            }),
      error("nn/module.hpp", "Module::load_state_dict", MaskDtype, "int32 weights",
            "state_dict[\"weight\"]",
            [] {
              Linear l(1, 1, false);
              const int32_t w = 1;
              l.load_state_dict({{"weight", View<const int32_t, 2>(&w, {1, 1})}});
            }),
      error("nn/module.hpp", "Module::load_state_dict", Absent, "an absent view",
            "state_dict[\"weight\"]",
            [] {
              Linear l(1, 1, false);
              l.load_state_dict({{"weight", AnyView{}}});
            }),
      error("nn/module.hpp", "Module::set_random_state", EmptyBatch, "no streams", "random state",
            [] { Linear(2, 2).set_random_state({}); }),
      covered("nn/linear.hpp", "Linear / LayerNorm / FeedForward / Dropout / MHA forward", Dims,
              "every forward's mismatched dims", "ModulesErrors.EveryForwardNamesItsBadArgument"),
      error("nn/linear.hpp", "Linear", ZeroSize, "in_features 0", "Linear", [] { Linear(0, 2); }),
      error("nn/linear.hpp", "Linear", Huge, "in * out overflows", "Linear",
            [] { Linear(kHugeSide, kHugeSide); }),
      error("nn/linear.hpp", "Linear::forward", Dims, "x (2, 4) for in_features 3", "Linear: x",
            [] {
              Tensor<float> x({2, 4}), y({2, 2});
              Linear(3, 2).forward(x.view<2>(), y.view<2>());
            }),
      defined("nn/linear.hpp", "Linear::forward", EmptyBatch, "N = 0: nothing written",
              [] {
                Tensor<float> x({0, 3}), y({0, 2});
                Linear(3, 2).forward(x.view<2>(), y.view<2>());
              }),
      defined("nn/linear.hpp", "Linear::forward", NonFinite, "NaN in row 0 of x: row 0 NaN only",
              [] {
                Tensor<float> x({2, 3}), y({2, 2});
                x.data()[1] = kNaNf;
                Linear(3, 2).forward(x.view<2>(), y.view<2>());
                EXPECT_TRUE(std::isnan(y.data()[0]) && std::isnan(y.data()[1]));
                EXPECT_TRUE(std::isfinite(y.data()[2]) && std::isfinite(y.data()[3]));
              }),
      error("nn/linear.hpp", "Linear::backward", Dims, "dy of another N", "Linear: dy",
            [] {
              Linear l(3, 2);
              Gradients g(l);
              Tensor<float> x({2, 3}), dy({3, 2});
              l.backward(x.view<2>(), {}, dy.view<2>(), {}, g);
            }),
      error("nn/embedding.hpp", "Embedding", Negative, "embedding_dim -1", "Embedding",
            [] { Embedding(4, -1); }),
      error("nn/embedding.hpp", "Embedding", TokenId, "padding_idx 9 of 4",
            "Embedding: padding_idx", [] { Embedding(4, 2, 9); }),
      error("nn/embedding.hpp", "Embedding::forward", TokenId, "id 4 of 4", "Embedding: ids[0, 1]",
            [] {
              const int64_t ids[2] = {0, 4};
              Tensor<float> out({1, 2, 2});
              Embedding(4, 2).forward(View<const int64_t, 2>(ids, {1, 2}), out.view<3>());
            }),
      error("nn/embedding.hpp", "Embedding::forward", TokenId, "id -1", "Embedding: ids[0, 0]",
            [] {
              const int64_t ids[1] = {-1};
              Tensor<float> out({1, 1, 2});
              Embedding(4, 2).forward(View<const int64_t, 2>(ids, {1, 1}), out.view<3>());
            }),
      covered("nn/embedding.hpp", "Embedding::forward", TokenId, "out of range, nothing written",
              "ModulesEmbedding.IdOutOfRangeIsAnErrorNamingTheIndexAndWritesNothing"),
      error("nn/embedding.hpp", "Embedding::backward", TokenId, "id 7 of 4", "Embedding: ids[0, 0]",
            [] {
              Embedding e(4, 2);
              Gradients g(e);
              const int64_t ids[1] = {7};
              Tensor<float> dout({1, 1, 2});
              e.backward(View<const int64_t, 2>(ids, {1, 1}), {}, dout.view<3>(), g);
            }),
      error("nn/embedding.hpp", "Embedding::unembed", Dims, "x (2, 3) for dim 2",
            "Embedding::unembed: x",
            [] {
              Tensor<float> x({2, 3}), logits({2, 4});
              Embedding(4, 2).unembed(x.view<2>(), logits.view<2>());
            }),
      error("nn/layer_norm.hpp", "LayerNorm", NonFinite, "eps NaN", "LayerNorm: eps",
            [] { LayerNorm(4, kNaN); }),
      error("nn/layer_norm.hpp", "LayerNorm", ZeroSize, "normalized_shape 0",
            "LayerNorm: normalized_shape", [] { LayerNorm(0); }),
      defined("nn/layer_norm.hpp", "LayerNorm::forward", NonFinite, "a constant row: finite (eps)",
              [] {
                Tensor<float> x({1, 4}), y({1, 4});
                for (float& e : x) e = 1e30f;
                LayerNorm(4).forward(x.view<2>(), y.view<2>());
                for (float e : y) EXPECT_EQ(e, 0.0f);
              }),
      error("nn/layer_norm.hpp", "LayerNorm::backward", Dims, "saved of another N",
            "LayerNorm: saved",
            [] {
              LayerNorm ln(4);
              Gradients g(ln);
              Tensor<float> x({2, 4}), dy({2, 4});
              ln.backward(x.view<2>(), LayerNorm::Saved{}, dy.view<2>(), {}, g);
            }),
      error("nn/dropout.hpp", "Dropout", Option, "p = 1", "Dropout: p", [] { Dropout(1.0); }),
      error("nn/dropout.hpp", "Dropout", NonFinite, "p NaN", "Dropout: p", [] { Dropout{kNaN}; }),
      error("nn/dropout.hpp", "Dropout::forward", Dims, "y of another shape", "Dropout: y",
            [] {
              Tensor<float> x({2, 3}), y({3, 2});
              Dropout(0.5).forward(x.view<2>(), y.view<2>());
            }),
      error("nn/feed_forward.hpp", "activation_from_name", Option, "\"swish\"", "activation",
            [] { activation_from_name("swish"); }),
      error("nn/feed_forward.hpp", "FeedForward", ZeroSize, "dim_feedforward 0", "FeedForward",
            [] { FeedForward(4, 0); }),
      error("nn/feed_forward.hpp", "FeedForward", ZeroSize, "d_model 0", "FeedForward",
            [] { FeedForward(0, 8); }),
      error("nn/feed_forward.hpp", "FeedForward::forward", Dims, "x (2, 3) for d_model 4",
            "FeedForward: x",
            [] {
              Tensor<float> x({2, 3}), y({2, 4});
              FeedForward(4, 8).forward(x.view<2>(), y.view<2>());
            }),
      error("nn/positional_encoding.hpp", "PositionalEncoding", Option, "odd d_model",
            "PositionalEncoding: d_model", [] { PositionalEncoding(3); }),
      error("nn/positional_encoding.hpp", "PositionalEncoding", Huge, "max_len 2^62",
            "PositionalEncoding: max_len", [] { PositionalEncoding(4, 0.1, int64_t{1} << 62); }),
      covered("nn/positional_encoding.hpp", "PositionalEncoding::forward", Huge,
              "offset past max_len", "ModulesPositionalEncoding.OffsetPastMaxLenIsAnError"),
      error("nn/positional_encoding.hpp", "PositionalEncoding::forward", Negative, "offset -1",
            "PositionalEncoding: offset",
            [] {
              Tensor<float> x({2, 1, 4});
              PositionalEncoding(4, 0.0, 8).forward(x.view<3>(), x.view<3>(), false, -1);
            }),
      error("nn/positional_encoding.hpp", "PositionalEncoding::forward", Huge,
            "offset INT64_MAX (offset + L overflows)", "PositionalEncoding: offset",
            [] {
              Tensor<float> x({2, 1, 4});
              PositionalEncoding(4, 0.0, 8).forward(x.view<3>(), x.view<3>(), false, kMax64);
            }),
  };
}

MultiheadAttentionCall no_weights() {
  MultiheadAttentionCall c;
  c.need_weights = false;
  return c;
}

std::vector<Case> attention_module_rows() {
  const std::string hdr = "nn/multihead_attention.hpp";
  return {
      covered(hdr, "MultiheadAttention::backward", Dims, "dout, saved and gradients",
              "MultiheadAttentionBackward.ErrorsNameTheArgument"),
      error(hdr, "MultiheadAttention", Dims, "embed_dim 6 not divisible by 4 heads",
            "MultiheadAttention", [] { MultiheadAttention(6, 4); }),
      error(hdr, "MultiheadAttention", Negative, "num_heads -2", "MultiheadAttention",
            [] { MultiheadAttention(4, -2); }),
      error(hdr, "MultiheadAttention", Option, "num_kv_heads 3 of 2 heads",
            "MultiheadAttention: num_kv_heads",
            [] {
              MultiheadAttentionOptions o;
              o.num_kv_heads = 3;
              MultiheadAttention(4, 2, o);
            }),
      error(hdr, "MultiheadAttention", NonFinite, "dropout NaN", "MultiheadAttention: dropout",
            [] {
              MultiheadAttentionOptions o;
              o.dropout = kNaN;
              MultiheadAttention(4, 2, o);
            }),
      error(hdr, "MultiheadAttention::forward", Dims, "key of another batch", "key",
            [] {
              Tensor<float> q({3, 2, 4}), k({5, 1, 4}), out({3, 2, 4});
              MultiheadAttention(4, 2).forward(q.view<3>(), k.view<3>(), k.view<3>(), out.view<3>(),
                                               {}, no_weights());
            }),
      error(hdr, "MultiheadAttention::forward", MaskDims, "attn_mask (2, 2) for (L, S) = (3, 5)",
            "attn_mask",
            [] {
              Tensor<float> q({3, 1, 4}), k({5, 1, 4}), out({3, 1, 4});
              const bool m[4] = {};
              AttentionMasks masks;
              masks.attn_mask = View<const bool, 2>(m, {2, 2});
              MultiheadAttention(4, 2).forward(q.view<3>(), k.view<3>(), k.view<3>(), out.view<3>(),
                                               masks, no_weights());
            }),
      error(hdr, "MultiheadAttention::forward", MaskDtype, "int32 key_padding_mask",
            "key_padding_mask",
            [] {
              Tensor<float> q({3, 1, 4}), k({5, 1, 4}), out({3, 1, 4});
              const int32_t m[5] = {};
              AttentionMasks masks;
              masks.key_padding_mask = View<const int32_t, 2>(m, {1, 5});
              MultiheadAttention(4, 2).forward(q.view<3>(), k.view<3>(), k.view<3>(), out.view<3>(),
                                               masks, no_weights());
            }),
      defined(hdr, "MultiheadAttention::forward", EmptyBatch, "N = 0",
              [] {
                Tensor<float> q({3, 0, 4}), out({3, 0, 4});
                MultiheadAttention(4, 2).forward(q.view<3>(), q.view<3>(), q.view<3>(),
                                                 out.view<3>(), {}, no_weights());
              }),
      error(hdr, "MultiheadAttention::attend", Dims, "k of head dim 3", "k",
            [] {
              Tensor<float> q({2, 1, 4}), k({1, 2, 3, 3}), out({2, 1, 4});
              MultiheadAttention(4, 2).attend(q.view<3>(), k.view<4>(), k.view<4>(), out.view<3>(),
                                              {}, no_weights());
            }),
      error(hdr, "MultiheadAttention::project_kv", Dims, "k_out of the wrong shape",
            "project_kv: k_out, v_out",
            [] {
              Tensor<float> key({3, 1, 4}), ko({1, 2, 2, 2});
              MultiheadAttention(4, 2).project_kv(key.view<3>(), key.view<3>(), ko.view<4>(),
                                                  ko.view<4>());
            }),
      error("nn/transformer_layers.hpp", "TransformerEncoderLayer::forward", Dims,
            "src of d_model 3 for 4", "src",
            [] {
              Tensor<float> x({2, 1, 3});
              TransformerEncoderLayer(4, 2, small_layer()).forward(x.view<3>(), x.view<3>());
            }),
      covered(
          "nn/transformer_layers.hpp", "TransformerEncoderLayer::forward(saved)", Absent,
          "out == src in the training forward",
          "BackwardTransformerLayers.TrainingForwardInPlaceIsAnErrorAndGradientsNeedNotBeWanted"),
      error("nn/transformer_layers.hpp", "TransformerDecoderLayer::forward", Dims,
            "memory of another batch", "memory",
            [] {
              Tensor<float> t({2, 1, 4}), m({3, 2, 4});
              TransformerDecoderLayer(4, 2, small_layer())
                  .forward(t.view<3>(), m.view<3>(), t.view<3>());
            }),
      error("nn/transformer.hpp", "TransformerEncoder", Negative, "num_layers -1", "num_layers",
            [] { TransformerEncoder(TransformerEncoderLayer(4, 2, small_layer()), -1); }),
      error("nn/transformer.hpp", "Transformer::forward", Dims, "tgt of another batch", "tgt",
            [] {
              TransformerOptions o;
              o.d_model = 4, o.nhead = 2, o.num_encoder_layers = 1, o.num_decoder_layers = 1;
              o.layer = small_layer();
              Tensor<float> src({3, 2, 4}), tgt({2, 1, 4}), out({2, 1, 4});
              Transformer(o).forward(src.view<3>(), tgt.view<3>(), out.view<3>());
            }),
      error("nn/transformer.hpp", "Transformer::generate_square_subsequent_mask", Negative,
            "size -1", "size", [] { Transformer::generate_square_subsequent_mask(-1); }),
      error("nn/transformer.hpp", "Transformer::generate_square_subsequent_mask", Huge, "size 2^32",
            "size", [] { Transformer::generate_square_subsequent_mask(kHugeSide); }),
      covered("nn/kv_cache.hpp", "KvCache / decode_step", Dims, "batch, capacity, advance, memory",
              "KvCache.Errors"),
      error("nn/kv_cache.hpp", "KvCache", Negative, "capacity -1", "KvCache: capacity",
            [] {
              const TransformerDecoder dec(TransformerDecoderLayer(4, 2, small_layer()), 1);
              KvCache(dec, 1, -1);
            }),
      error("nn/kv_cache.hpp", "KvCache", Huge, "batch * capacity * D overflows",
            "KvCache: batch * heads * capacity * head_dim",
            [] {
              const TransformerDecoder dec(TransformerDecoderLayer(4, 2, small_layer()), 1);
              KvCache(dec, kHugeSide, kHugeSide);
            }),
  };
}

std::vector<Case> training_rows() {
  return {
      error("nn/gradients.hpp", "Gradients::operator[]", Absent, "a tensor that is no parameter",
            "Gradients",
            [] {
              Linear l(2, 2);
              Gradients g(l);
              Tensor<float> other({2, 2});
              g[other];
            }),
      error("nn/gradients.hpp", "Gradients::clip_norm", NonFinite, "a NaN gradient",
            "gradient of \"weight\"",
            [] {
              Linear l(2, 2);
              Gradients g(l);
              g[l.weight()].data()[0] = kNaNf;
              g.clip_norm(1.0);
            }),
      error("nn/gradients.hpp", "Gradients::clip_norm", Option, "max_norm 0", "clip_norm: max_norm",
            [] {
              Linear l(2, 2);
              Gradients(l).clip_norm(0.0);
            }),
      covered("nn/adam.hpp", "Adam", Option, "lr, betas, eps, weight_decay, names",
              "Adam.ErrorsNameTheArgument"),
      error("nn/adam.hpp", "Adam", NonFinite, "lr NaN", "Adam: lr",
            [] {
              Linear l(2, 2);
              AdamOptions o;
              o.lr = kNaN;
              Adam(l, o);
            }),
      error("nn/adam.hpp", "Adam::step", NonFinite, "lr inf", "Adam::step: lr",
            [] {
              Linear l(2, 2);
              Adam a(l, {});
              a.step(Gradients(l), kInf);
            }),
      error("nn/adam.hpp", "Adam::step", Dims, "gradients of another module", "Adam::step: grads",
            [] {
              Linear l(2, 2), other(2, 2);
              Adam a(l, {});
              a.step(Gradients(other));
            }),
      error("nn/adam.hpp", "Adam::load_state_dict", EmptyBatch, "an empty state", "optimizer state",
            [] {
              Linear l(2, 2);
              Adam(l, {}).load_state_dict({});
            }),
      covered("nn/lr_schedule.hpp", "noam_rate / inverse_sqrt_rate / warmup_constant_rate", Option,
              "d_model, warmup, step, factor", "LrSchedule.ErrorsNameTheArgument"),
      error("nn/lr_schedule.hpp", "noam_rate", Negative, "step -1", "noam_rate: step",
            [] { noam_rate(-1, 64, 1.0, 100); }),
      error("nn/lr_schedule.hpp", "inverse_sqrt_rate", NonFinite, "peak NaN",
            "inverse_sqrt_rate: peak", [] { inverse_sqrt_rate(1, kNaN, 10); }),
      defined("nn/lr_schedule.hpp", "LrSchedule", Huge, "step INT64_MAX: finite, positive",
              [] {
                const double r = LrSchedule::noam(64, 1.0, 400)(kMax64);
                EXPECT_TRUE(std::isfinite(r) && r > 0.0);
              }),
      covered("nn/cross_entropy.hpp", "cross_entropy", Dims, "C < 1, shapes, smoothing, targets",
              "CrossEntropy.ErrorsNameTheArgument"),
      error("nn/cross_entropy.hpp", "cross_entropy", TokenId, "target 3 of C = 3",
            "cross_entropy: targets[1]",
            [] {
              Tensor<float> z({2, 3});
              const int64_t t[2] = {0, 3};
              cross_entropy(z.view<2>(), View<const int64_t, 1>(t, {2}));
            }),
      defined("nn/cross_entropy.hpp", "cross_entropy", EmptyBatch, "N = 0: loss 0, count 0",
              [] {
                Tensor<float> z({0, 3});
                const CrossEntropyResult r =
                    cross_entropy(z.view<2>(), View<const int64_t, 1>(nullptr, {0}));
                EXPECT_EQ(r.loss, 0.0);
                EXPECT_EQ(r.count, 0);
              }),
      defined("nn/cross_entropy.hpp", "cross_entropy", NonFinite, "NaN logit: loss NaN (torch)",
              [] {
                Tensor<float> z({1, 3});
                z.data()[2] = kNaNf;
                const int64_t t[1] = {0};
                EXPECT_TRUE(
                    std::isnan(cross_entropy(z.view<2>(), View<const int64_t, 1>(t, {1})).loss));
              }),
      defined("nn/cross_entropy.hpp", "cross_entropy", Huge, "logits +-1e30: finite loss",
              [] {
                Tensor<float> z({1, 2});
                z.data()[0] = 1e30f, z.data()[1] = -1e30f;
                const int64_t t[1] = {1};
                const double loss = cross_entropy(z.view<2>(), View<const int64_t, 1>(t, {1})).loss;
                EXPECT_TRUE(std::isfinite(loss));
                EXPECT_NEAR(loss, 2e30, 1e24);
              }),
      covered("nn/checkpoint.hpp", "load_checkpoint", Bytes, "files that do not fit the run",
              "Checkpoint.FilesThatDoNotFitAreErrorsAndChangeNothing"),
      error("nn/checkpoint.hpp", "save_checkpoint", Negative, "step -1", "save_checkpoint: step",
            [] {
              Linear l(2, 2);
              Adam a(l, {});
              CheckpointExtra e;
              e.step = -1;
              save_checkpoint(::testing::TempDir() + "/bad_input_ckpt.safetensors", l, a, e);
            }),
      error("nn/checkpoint.hpp", "load_checkpoint", Bytes, "a file that does not exist",
            "safetensors file \"/nonexistent/ckpt.safetensors\"",
            [] {
              Linear l(2, 2);
              Adam a(l, {});
              load_checkpoint("/nonexistent/ckpt.safetensors", l, a);
            }),
      covered("nn/bert.hpp", "BertModel::forward", TokenId, "ids, positions, types, shapes",
              "Bert.BadInputsAreErrorsNamingTheArgument"),
      covered("nn/bert.hpp", "BertConfig::from_json", Bytes, "fields missing, mistyped, unknown",
              "BertConfig.ReadsHuggingFaceFieldsAndRejectsWhatIsNotImplemented"),
      covered("nn/bert.hpp", "BertModel::from_pretrained", Bytes, "missing files and weights",
              "BertFolder.MissingFilesAndWeightsAreErrorsNamingTheFile"),
      error("nn/bert.hpp", "BertConfig::from_json", Bytes, "not JSON", "config.json",
            [] { BertConfig::from_json("{\"vocab_size\": "); }),
      error("nn/bert.hpp", "BertConfig::from_json", Huge, "hidden_size 1e30",
            "config.json: hidden_size",
            [] { BertConfig::from_json(R"({"vocab_size": 10, "hidden_size": 1e30})"); }),
  };
}

MASKATTN_BAD_INPUT_ROWS(nn) {
  std::vector<Case> r;
  for (auto* f : {module_rows, attention_module_rows, training_rows})
    for (Case& c : f()) r.push_back(std::move(c));
  return r;
}

}  // namespace
}  // namespace maskattn::testing_bad_input
