// Bad-input matrix rows (bad_input_matrix.hpp) of models/, io/, text/ and viz/.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "api/bad_input_matrix.hpp"
#include "maskattn/io/npy.hpp"
#include "maskattn/io/png.hpp"
#include "maskattn/io/safetensors.hpp"
#include "maskattn/models/copy_task.hpp"
#include "maskattn/models/masked_lm.hpp"
#include "maskattn/models/masked_lm_trainer.hpp"
#include "maskattn/models/sentence_encoder.hpp"
#include "maskattn/models/seq2seq.hpp"
#include "maskattn/models/seq2seq_trainer.hpp"
#include "maskattn/text/tiny_corpus.hpp"
#include "maskattn/text/word_vocab.hpp"
#include "maskattn/text/wordpiece.hpp"
#include "maskattn/viz/html.hpp"
#include "maskattn/viz/image.hpp"
#include "maskattn/viz/pictures.hpp"

namespace maskattn::testing_bad_input {
namespace {

using models::CopyTask;
using models::MaskedLm;
using models::MaskedLmOptions;
using models::Seq2SeqOptions;
using models::Seq2SeqTransformer;

Seq2SeqTransformer small_seq2seq() {
  Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = 8;
  o.transformer.d_model = 8, o.transformer.nhead = 2;
  o.transformer.num_encoder_layers = o.transformer.num_decoder_layers = 1;
  o.transformer.layer.dim_feedforward = 16;
  o.max_len = 16;
  return Seq2SeqTransformer(o);
}

// small_seq2seq().forward of one source sequence (its length src_length)
// and one target sequence.
void seq2seq_forward(std::vector<int64_t> src, int64_t src_length, std::vector<int64_t> tgt) {
  const int64_t s = static_cast<int64_t>(src.size()), t = static_cast<int64_t>(tgt.size());
  Tensor<float> logits({1, t, 8});
  small_seq2seq().forward(View<const int64_t, 2>(src.data(), {1, s}), {&src_length, 1},
                          View<const int64_t, 2>(tgt.data(), {1, t}), logits.view<3>());
}

MaskedLm small_mlm() {
  MaskedLmOptions o;
  o.vocab_size = 10, o.d_model = 8, o.nhead = 2, o.num_layers = 1, o.dim_feedforward = 16;
  o.max_len = 8;
  return MaskedLm(o);
}

std::vector<Case> models_rows() {
  return {
      covered("models/copy_task.hpp", "CopyTask", Option, "vocab, lengths, n, index",
              "CopyTask.Errors"),
      error("models/copy_task.hpp", "CopyTask::batch", EmptyBatch, "n = 0", "CopyTask::batch: n",
            [] { CopyTask().batch(1, 0, 0); }),
      error("models/copy_task.hpp", "CopyTask::count_exact", Dims, "decoded of another batch",
            "count_exact: decoded",
            [] {
              const CopyTask t;
              const models::Seq2SeqBatch b = t.batch(1, 0, 2);
              Tensor<int64_t> d({3, 4});
              t.count_exact(b, d.view<2>());
            }),
      defined("models/copy_task.hpp", "CopyTask::symbols", EmptyBatch, "a (1, 0) decoding: none",
              [] {
                Tensor<int64_t> d({1, 0});
                EXPECT_TRUE(CopyTask::symbols(d.view<2>(), 0).empty());
              }),
      covered("models/seq2seq.hpp", "Seq2SeqTransformer", Dims, "ids, lengths, logits, symbols",
              "Seq2Seq.BadArguments"),
      error("models/seq2seq.hpp", "Seq2SeqTransformer::forward", TokenId, "src id 8 of 8",
            "src[0, 1]",
            [] {
              seq2seq_forward({3, 8}, 2, {1, 3});
            }),
      error("models/seq2seq.hpp", "Seq2SeqTransformer::forward", Dims, "src longer than max_len",
            "src",
            [] {
              seq2seq_forward(std::vector<int64_t>(17, 3), 17, {1, 3});
            }),
      error("models/seq2seq.hpp", "Seq2SeqTransformer::forward", Dims, "tgt longer than max_len",
            "tgt",
            [] {
              seq2seq_forward({3, 4}, 2, std::vector<int64_t>(17, 1));
            }),
      error("models/seq2seq.hpp", "Seq2SeqTransformer::forward", ZeroSize, "src_lengths[0] = 0",
            "src_lengths[0]",
            [] {
              seq2seq_forward({3, 4}, 0, {1, 3});
            }),
      error("models/seq2seq.hpp", "Seq2SeqTransformer::greedy_decode", TokenId, "start_symbol 9",
            "start_symbol",
            [] {
              const int64_t src[2] = {3, 4};
              const int64_t len[1] = {2};
              small_seq2seq().greedy_decode(View<const int64_t, 2>(src, {1, 2}), len, 9, 4);
            }),
      error("models/seq2seq.hpp", "Seq2SeqTransformer", ZeroSize, "src_vocab 0",
            "Seq2SeqTransformer: src_vocab, tgt_vocab",
            [] { Seq2SeqTransformer(Seq2SeqOptions{}); }),
      error("models/seq2seq_trainer.hpp", "Seq2SeqTrainer", Negative, "cooldown_steps -1",
            "Seq2SeqTrainer: cooldown_steps",
            [] {
              Seq2SeqTransformer m = small_seq2seq();
              models::Seq2SeqTrainerOptions o;
              o.cooldown_steps = -1;
              models::Seq2SeqTrainer(m, o);
            }),
      error("models/seq2seq_trainer.hpp", "Seq2SeqTrainer::step", EmptyBatch, "an empty batch",
            "batch",
            [] {
              Seq2SeqTransformer m = small_seq2seq();
              models::Seq2SeqTrainer(m).step(models::Seq2SeqBatch{});
            }),
      covered("models/masked_lm.hpp", "MaskedLm", Option, "options, ids, lengths",
              "MaskedLm.Errors"),
      error("models/masked_lm.hpp", "MaskedLm::forward", TokenId, "id 10 of 10", "ids[0, 1]",
            [] {
              const int64_t ids[2] = {3, 10};
              const int64_t len[1] = {2};
              Tensor<float> logits({1, 2, 10});
              small_mlm().forward(View<const int64_t, 2>(ids, {1, 2}), len, logits.view<3>());
            }),
      error(
          "models/masked_lm.hpp", "MaskedLm::forward", Huge, "L = 9 > max_len 8", "ids",
          [] {
            const std::vector<int64_t> ids(9, 3), len{9};
            Tensor<float> logits({1, 9, 10});
            small_mlm().forward(View<const int64_t, 2>(ids.data(), {1, 9}), len, logits.view<3>());
          }),
      error("models/masked_lm.hpp", "top_predictions", ZeroSize, "k = 0", "k",
            [] {
              models::top_predictions(std::vector<float>{1.0f, 2.0f}, 0);
            }),
      defined("models/masked_lm.hpp", "top_predictions", NonFinite, "a NaN logit: not ranked first",
              [] {
                const std::vector<float> z{1.0f, kNaNf, 2.0f};
                const auto top = models::top_predictions(z, 1);
                ASSERT_EQ(top.size(), 1u);
                EXPECT_EQ(top[0].first, 2);
              }),
      error("models/masked_lm_trainer.hpp", "SentenceSampler", EmptyBatch, "no sentences",
            "SentenceSampler: sentences", [] { models::SentenceSampler({}, 1); }),
      error("models/masked_lm_trainer.hpp", "SentenceSampler::next", ZeroSize, "n = 0",
            "SentenceSampler::next: n", [] { models::SentenceSampler({"a b"}, 1).next(0); }),
      error("models/masked_lm_trainer.hpp", "make_masked_batch", EmptyBatch, "no sentences",
            "sentences",
            [] {
              const std::vector<std::string> s{"a b c"};
              const text::WordVocab v(s);
              models::make_masked_batch(v, {}, MlmOptions{});
            }),
      error("models/masked_lm_trainer.hpp", "MaskedLmTrainer", NonFinite, "max_grad_norm NaN",
            "MaskedLmTrainer: max_grad_norm",
            [] {
              MaskedLm m = small_mlm();
              models::MaskedLmTrainerOptions o;
              o.max_grad_norm = kNaN;
              models::MaskedLmTrainer(m, o);
            }),
      covered("models/sentence_encoder.hpp", "SentenceEncoder::encode / encode_ids", TokenId,
              "bad ids, batch_size, invalid UTF-8",
              "SentenceEncoderTest.BadIdsBatchSizeAndUtf8AreErrorsNamingTheArgument"),
      covered("models/sentence_encoder.hpp", "SentenceEncoder::from_folder", Bytes,
              "a missing folder", "SentenceEncoderFolder.MissingFolderIsAnErrorNamingIt"),
      error("models/sentence_encoder.hpp", "SentenceEncoder::attention", EmptyBatch, "no sentences",
            "sentences",
            [] {
              models::SentenceEncoder::from_folder(std::string(MASKATTN_TEST_DATA_DIR) +
                                                   "/tiny_bert")
                  .attention({});
            }),
      defined("models/sentence_encoder.hpp", "SentenceEncoder::encode", EmptyBatch,
              "no sentences: (0, dimension)",
              [] {
                const auto enc = models::SentenceEncoder::from_folder(
                    std::string(MASKATTN_TEST_DATA_DIR) + "/tiny_bert");
                const Tensor<float> e = enc.encode({});
                EXPECT_EQ(e.shape(), (std::vector<int64_t>{0, enc.dimension()}));
              }),
  };
}

std::vector<Case> io_rows() {
  const std::string dir = ::testing::TempDir();
  return {
      covered("io/npy.hpp", "read_npy", Bytes, "bad magic, header, dtype, bool bytes, length",
              "NpyRead.MalformedFilesAreErrorsNamingThem"),
      covered("io/npy.hpp", "save_npy", Bytes, "an unwritable path",
              "Npy.UnwritablePathIsAnErrorNamingIt"),
      error("io/npy.hpp", "read_npy", Huge, "shape (2^62, 4) in the header", "npy input",
            [] {
              std::string header =
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }";
              header.resize(118, ' ');
              header += '\n';
              std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xff) +
                                  char(header.size() >> 8) + header;
              std::istringstream in(bytes);
              read_npy(in);
            }),
      error("io/npy.hpp", "read_npy", Negative, "shape (-1,) in the header", "npy input",
            [] {
              std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }";
              header.resize(118, ' ');
              header += '\n';
              std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xff) +
                                  char(header.size() >> 8) + header;
              std::istringstream in(bytes);
              read_npy(in);
            }),
      error("io/npy.hpp", "read_npy", EmptyBatch, "no bytes", "npy input",
            [] {
              std::istringstream in("");
              read_npy(in);
            }),
      error("io/npy.hpp", "write_npy", Absent, "an absent array", "array",
            [] {
              std::ostringstream out;
              write_npy(out, AnyView{});
            }),
      covered("io/safetensors.hpp", "SafetensorsFile::open", Bytes, "every malformed header",
              "Safetensors.EveryMalformedFileIsAnErrorNamingItAtOpen"),
      covered("io/safetensors.hpp", "SafetensorsFile::view", MaskDtype, "F16 / BF16 tensors",
              "Safetensors.UnsupportedDtypeIsAnErrorOnAccess"),
      covered("io/safetensors.hpp", "save_safetensors", Absent, "absent views, bad names",
              "Safetensors.SaveErrorsLeaveNoFileBehind"),
      error("io/safetensors.hpp", "SafetensorsFile::open", Huge,
            "header length 2^63 - 1 in an 8-byte file", "safetensors file \"" + dir + "/huge.st\"",
            [dir] {
              const std::string p = dir + "/huge.st";
              FILE* f = std::fopen(p.c_str(), "wb");
              const unsigned char len[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
              std::fwrite(len, 1, 8, f);
              std::fclose(f);
              SafetensorsFile::open(p);
            }),
      error("io/safetensors.hpp", "SafetensorsFile::open", Huge, "a shape whose product overflows",
            "safetensors file \"" + dir + "/shape.st\", tensor \"w\" shape",
            [dir] {
              const std::string p = dir + "/shape.st";
              const std::string h =
                  R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})";
              FILE* f = std::fopen(p.c_str(), "wb");
              const uint64_t n = h.size();
              std::fwrite(&n, 8, 1, f);
              std::fwrite(h.data(), 1, h.size(), f);
              std::fclose(f);
              SafetensorsFile::open(p);
            }),
      covered("io/png.hpp", "decode_png / save_png", Bytes, "bytes that are not a PNG, bad paths",
              "Png.BadInputIsAnErrorNamingIt"),
      error("io/png.hpp", "decode_png", EmptyBatch, "no bytes", "png",
            [] { decode_png(std::span<const uint8_t>{}); }),
      error("io/png.hpp", "encode_png", ZeroSize, "an empty image", "image",
            [] { encode_png(viz::Image{}); }),
  };
}

std::vector<Case> text_rows() {
  const std::vector<std::string> vocab{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b"};
  return {
      covered("text/wordpiece.hpp", "WordPieceTokenizer", Option, "vocab and options",
              "WordPiece.ConstructorChecksTheVocabularyAndOptions"),
      covered("text/wordpiece.hpp", "WordPieceTokenizer::encode", Bytes, "invalid UTF-8",
              "WordPiece.InvalidUtf8IsAnErrorNamingTheOffset"),
      covered("text/wordpiece.hpp", "WordPieceTokenizer::from_folder", Bytes,
              "malformed tokenizer.json",
              "WordPieceFolder.MalformedTokenizerJsonIsAnErrorNamingTheField"),
      error("text/wordpiece.hpp", "WordPieceTokenizer::encode", Option, "max_length 1",
            "max_length", [vocab] { text::WordPieceTokenizer(vocab).encode("a", 1); }),
      error("text/wordpiece.hpp", "WordPieceTokenizer::encode", Bytes, "a lone continuation byte",
            "text", [vocab] { text::WordPieceTokenizer(vocab).encode("a\x80"); }),
      error("text/wordpiece.hpp", "WordPieceTokenizer::id_to_token", TokenId, "id 7 of 7", "id",
            [vocab] { text::WordPieceTokenizer(vocab).id_to_token(7); }),
      defined("text/wordpiece.hpp", "WordPieceTokenizer::encode", EmptyBatch, "\"\": [CLS] [SEP]",
              [vocab] {
                EXPECT_EQ(text::WordPieceTokenizer(vocab).encode(""), (std::vector<int64_t>{2, 3}));
              }),
      error("text/word_vocab.hpp", "WordVocab::word", TokenId, "id -1", "id",
            [] {
              const std::vector<std::string> s{"a b"};
              text::WordVocab(s).word(-1);
            }),
      error("text/word_vocab.hpp", "WordVocab::encode_batch", EmptyBatch, "no sentences",
            "sentences",
            [] {
              const std::vector<std::string> s{"a b"};
              text::WordVocab(s).encode_batch({});
            }),
      error("text/word_vocab.hpp", "WordVocab::encode_batch", ZeroSize, "a sentence of spaces",
            "sentences[1]",
            [] {
              const std::vector<std::string> s{"a b", "   "};
              text::WordVocab(s).encode_batch(s);
            }),
      error("text/word_vocab.hpp", "WordVocab::decode", TokenId, "id 99", "id",
            [] {
              const std::vector<std::string> s{"a b"};
              text::WordVocab(s).decode(std::vector<int64_t>{3, 99});
            }),
      defined("text/tiny_corpus.hpp", "tiny_corpus", EmptyBatch,
              "no arguments: the same non-empty corpus on every call",
              [] {
                EXPECT_FALSE(text::tiny_corpus().train.empty());
                EXPECT_EQ(&text::tiny_corpus(), &text::tiny_corpus());
                EXPECT_EQ(text::tiny_corpus().held_out.size(),
                          text::tiny_corpus().held_out_probe.size());
              }),
  };
}

std::vector<Case> viz_rows() {
  static const float values[6] = {0.1f, kNaNf, 0.3f, kInff, 0.5f, 0.6f};
  return {
      covered("viz/pictures.hpp", "mask_picture", MaskDims, "masks that do not fit, panels",
              "MaskPicture.Errors"),
      covered("viz/pictures.hpp", "attention_picture", Dims, "layers, selections, shapes",
              "AttentionPicture.Errors"),
      covered("viz/pictures.hpp", "encoding_picture", Dims, "dims out of range",
              "EncodingPicture.DefaultDimsAndErrors"),
      covered("viz/html.hpp", "*_html", Dims, "the pictures' checks",
              "ViewerHtml.ArgumentsAreCheckedAsForThePictures"),
      defined("viz/pictures.hpp", "heatmap_picture", NonFinite, "NaN and inf cells: drawn",
              [] {
                const viz::Image im = viz::heatmap_picture(View<const float, 2>(values, {2, 3}));
                EXPECT_FALSE(im.empty());
              }),
      error("viz/pictures.hpp", "heatmap_picture", ZeroSize, "(0, 3) values", "values",
            [] {
              viz::heatmap_picture(View<const float, 2>(values, {0, 3}));
            }),
      error("viz/pictures.hpp", "heatmap_picture", Option, "vmin >= vmax", "vmin",
            [] {
              viz::HeatmapOptions o;
              o.vmin = 1.0f, o.vmax = 0.0f;
              viz::heatmap_picture(View<const float, 2>(values, {2, 3}), o);
            }),
      error("viz/pictures.hpp", "mask_picture", Huge, "B*H*Lq*Lk overflows", "shape",
            [] {
              viz::mask_picture(causal(), {kHugeSide, kHugeSide, kHugeSide, 2});
            }),
      error("viz/pictures.hpp", "attention_picture", EmptyBatch, "no layers", "layers",
            [] { viz::attention_picture(std::span<const View<const float, 4>>{}); }),
      error("viz/html.hpp", "heatmap_html", Absent, "a null (2, 3) view", "values",
            [] {
              viz::heatmap_html(View<const float, 2>(nullptr, {2, 3}));
            }),
      error("viz/image.hpp", "Image", ZeroSize, "width 0", "image size", [] { viz::Image(0, 4); }),
      error("viz/image.hpp", "Image", Huge, "width past kMaxImageSide", "image size",
            [] { viz::Image(viz::kMaxImageSide + 1, 1); }),
      error("viz/image.hpp", "Image::at", Negative, "pixel (-1, 0)", "pixel",
            [] { viz::Image(2, 2).at(-1, 0); }),
      defined("viz/image.hpp", "color_at", NonFinite, "NaN: kNanColor; +-inf clamped",
              [] {
                EXPECT_EQ(viz::color_at(viz::Colormap::Viridis, kNaN), viz::kNanColor);
                EXPECT_EQ(viz::color_at(viz::Colormap::Viridis, kInf),
                          viz::color_at(viz::Colormap::Viridis, 1.0));
              }),
  };
}

MASKATTN_BAD_INPUT_ROWS(models) {
  std::vector<Case> r;
  for (auto* f : {models_rows, io_rows, text_rows, viz_rows})
    for (Case& c : f()) r.push_back(std::move(c));
  return r;
}

}  // namespace
}  // namespace maskattn::testing_bad_input
