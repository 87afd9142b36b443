// SentenceEncoder against sentence-transformers' numbers: tests/data/tiny_bert
// is a tiny sentence-transformers folder (BERT with random weights, mean
// pooling, Normalize, max_seq_length 12), and
// tests/data/tiny_bert_golden.safetensors holds what
// SentenceTransformer.encode computes with it for the sentences in its
// __metadata__ (both made by tools/make_tiny_bert.py). The folder reader is
// checked on broken copies of the folder.
#include "maskattn/models/sentence_encoder.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "maskattn/io/safetensors.hpp"
#include "throws_error.hpp"

namespace maskattn::models {
namespace {

using testing_errors::throws_error_naming;
namespace fs = std::filesystem;

// Against sentence-transformers: float32 on both sides, sums of at most 12
// tokens x 16 features in different orders, then a normalisation: a few ulps
// of values of order 0.1..1. A wrong mask, position or pooling moves
// embeddings by 1e-2 or more.
constexpr double kReferenceTolerance = 1e-5;
// Our own batchings (one by one, padded, packed) against each other: the same
// arithmetic on the same tokens, only the rows around them differ.
constexpr double kSameTolerance = 1e-6;

constexpr int64_t kDimension = 16;
constexpr int64_t kCls = 2, kSep = 3;  // tools/make_tiny_bert.py's VOCAB

const fs::path kModelDir = fs::path(MASKATTN_TEST_DATA_DIR) / "tiny_bert";
const std::string kGolden = std::string(MASKATTN_TEST_DATA_DIR) + "/tiny_bert_golden.safetensors";

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  lines.push_back(text.substr(start));
  return lines;
}

// Largest |a - b| over two (N, D) float32 arrays.
double max_diff(View<const float, 2> a, View<const float, 2> b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0.0;
  for (int64_t i = 0; i < std::min(a.size(0), b.size(0)); ++i)
    for (int64_t k = 0; k < std::min(a.size(1), b.size(1)); ++k)
      worst = std::max(worst, std::abs(static_cast<double>(a(i, k)) - b(i, k)));
  return worst;
}

double max_diff(const Tensor<float>& a, const Tensor<float>& b) {
  return max_diff(a.view<2>(), b.view<2>());
}

// Columns [begin, begin + width) of each row, each row scaled to unit length.
Tensor<float> normalized_columns(const Tensor<float>& e, int64_t begin, int64_t width) {
  Tensor<float> out({e.size(0), width});
  for (int64_t i = 0; i < e.size(0); ++i) {
    double sq = 0.0;
    for (int64_t k = 0; k < width; ++k) {
      const double v = e.view<2>()(i, begin + k);
      sq += v * v;
    }
    for (int64_t k = 0; k < width; ++k)
      out.view<2>()(i, k) = static_cast<float>(e.view<2>()(i, begin + k) / std::sqrt(sq));
  }
  return out;
}

// Euclidean norm of columns [begin, begin + width) of row i (the whole row by
// default).
double row_norm(const Tensor<float>& e, int64_t i, int64_t begin = 0, int64_t width = -1) {
  if (width < 0) width = e.size(1) - begin;
  double sq = 0.0;
  for (int64_t k = begin; k < begin + width; ++k)
    sq += std::pow(static_cast<double>(e.view<2>()(i, k)), 2);
  return std::sqrt(sq);
}

EncodeOptions options(int64_t batch_size, bool pack = true) {
  EncodeOptions o;
  o.batch_size = batch_size;
  o.pack = pack;
  return o;
}

class SentenceEncoderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    encoder_ = new SentenceEncoder(SentenceEncoder::from_folder(kModelDir));
  }
  static void TearDownTestSuite() { delete encoder_; }

  void SetUp() override {
    const auto it = golden_.metadata().find("sentences");
    ASSERT_NE(it, golden_.metadata().end()) << kGolden << " has no \"sentences\" metadata";
    sentences_ = split_lines(it->second);
    ASSERT_EQ(sentences_.size(), 5u);
    const AnyView v = golden_.view("sentences.embeddings");
    ASSERT_EQ(v.dtype, DType::Float32);
    ASSERT_EQ(v.shape, (std::vector<int64_t>{5, kDimension}));
    reference_ = Tensor<float>({5, kDimension});
    std::copy_n(static_cast<const float*>(v.data), 5 * kDimension, reference_.data());
  }

  static SentenceEncoder* encoder_;
  SafetensorsFile golden_ = SafetensorsFile::open(kGolden);
  std::vector<std::string> sentences_;
  Tensor<float> reference_;
};
SentenceEncoder* SentenceEncoderTest::encoder_ = nullptr;

TEST_F(SentenceEncoderTest, ReadsTheSentenceTransformersFolder) {
  EXPECT_EQ(encoder_->dimension(), kDimension);
  EXPECT_EQ(encoder_->max_seq_length(), 12);
  EXPECT_TRUE(encoder_->normalize());
  EXPECT_EQ(encoder_->pooling(), std::vector<Pooling>{Pooling::Mean});
  EXPECT_EQ(encoder_->model().config().hidden_size, kDimension);
  EXPECT_EQ(pooling_name(Pooling::MeanSqrtLen), "mean_sqrt_len_tokens");
}

TEST_F(SentenceEncoderTest, EmbeddingsEqualSentenceTransformersPackedOrPaddedInAnyBatchSize) {
  double worst = 0.0;
  for (const bool pack : {true, false}) {
    for (const int64_t batch_size : {1, 2, 5}) {
      const Tensor<float> e = encoder_->encode(sentences_, options(batch_size, pack));
      ASSERT_EQ(e.shape(), (std::vector<int64_t>{5, kDimension}));
      const double d = max_diff(e, reference_);
      EXPECT_LE(d, kReferenceTolerance) << "pack " << pack << ", batch_size " << batch_size;
      worst = std::max(worst, d);
    }
  }
  std::printf("largest difference from sentence-transformers: %.3g\n", worst);
}

TEST_F(SentenceEncoderTest, PackedEqualsPaddedEqualsOneByOne) {
  Tensor<float> alone({5, kDimension});
  for (std::size_t i = 0; i < sentences_.size(); ++i) {
    const Tensor<float> one = encoder_->encode({sentences_[i]}, options(1));
    std::copy_n(one.data(), kDimension, alone.data() + static_cast<int64_t>(i) * kDimension);
  }
  const Tensor<float> packed = encoder_->encode(sentences_, options(5, true));
  const Tensor<float> padded = encoder_->encode(sentences_, options(5, false));
  const double d_packed = max_diff(packed, alone), d_padded = max_diff(padded, alone);
  EXPECT_LE(d_packed, kSameTolerance);
  EXPECT_LE(d_padded, kSameTolerance);
  std::printf("from one by one: packed %.3g, padded %.3g\n", d_packed, d_padded);
  for (int64_t i = 0; i < 5; ++i) EXPECT_NEAR(row_norm(packed, i), 1.0, kSameTolerance) << i;
}

TEST_F(SentenceEncoderTest, EncodeIdsOfTokenizeIsEncode) {
  std::vector<std::vector<int64_t>> ids;
  for (const std::string& s : sentences_) ids.push_back(encoder_->tokenize(s));
  EXPECT_EQ(max_diff(encoder_->encode_ids(ids), encoder_->encode(sentences_)), 0.0);
  EXPECT_EQ(encoder_->encode({}).shape(), (std::vector<int64_t>{0, kDimension}));
}

TEST_F(SentenceEncoderTest, TokenizeTruncatesToMaxSeqLengthKeepingClsAndSep) {
  const std::vector<int64_t> cat = encoder_->tokenize("the cat sat");
  EXPECT_EQ(cat, (std::vector<int64_t>{kCls, 10, 12, 14, kSep}));  // VOCAB indices
  std::string longer;
  for (int i = 0; i < 5; ++i) longer += "the cat sat on the mat. ";
  for (const std::string& s : {longer, sentences_[3]}) {
    const std::vector<int64_t> ids = encoder_->tokenize(s);
    ASSERT_EQ(ids.size(), 12u) << s;
    EXPECT_EQ(ids.front(), kCls);
    EXPECT_EQ(ids.back(), kSep);
  }
}

TEST_F(SentenceEncoderTest, ProgressIsCalledAfterEachBatch) {
  std::vector<std::pair<int64_t, int64_t>> calls;
  EncodeOptions o = options(2);
  o.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  (void)encoder_->encode(sentences_, o);
  EXPECT_EQ(calls, (std::vector<std::pair<int64_t, int64_t>>{{2, 5}, {4, 5}, {5, 5}}));
}

TEST_F(SentenceEncoderTest, BadIdsBatchSizeAndUtf8AreErrorsNamingTheArgument) {
  const std::vector<int64_t> ok = {kCls, 10, kSep};
  EXPECT_TRUE(throws_error_naming(
      [&] {
        (void)encoder_->encode_ids({ok, {}});
      },
      "ids[1]: expected 1 to 12"));
  const std::vector<int64_t> thirteen(13, 10);
  EXPECT_TRUE(throws_error_naming([&] { (void)encoder_->encode_ids({thirteen, ok}); }, "ids[0]"));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)encoder_->encode_ids({ok}, options(0)); }, "batch_size"));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)encoder_->encode({"a"}, options(-3)); }, "batch_size"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        (void)encoder_->encode({"the cat", "bad \xff byte", "the dog"});
      },
      "sentences[1]"));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)encoder_->encode({"cut \xe6\x97"}); }, "sentences[0]"));
}

TEST_F(SentenceEncoderTest, ThreadsSharingOneConstEncoderGetTheSingleThreadedResults) {
  const SentenceEncoder& shared = *encoder_;
  const Tensor<float> packed = shared.encode(sentences_, options(2, true));
  const Tensor<float> padded = shared.encode(sentences_, options(2, false));
  constexpr int kThreads = 4, kRounds = 6;
  std::vector<double> worst(kThreads, -1.0);
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        double w = 0.0;
        for (int r = 0; r < kRounds; ++r) {
          const bool pack = (t + r) % 2 == 0;
          const Tensor<float> e = shared.encode(sentences_, options(2, pack));
          const Tensor<float>& want = pack ? packed : padded;
          for (int64_t i = 0; i < e.numel(); ++i)
            w = std::max(w, std::abs(static_cast<double>(e.data()[i]) - want.data()[i]));
        }
        worst[static_cast<std::size_t>(t)] = w;
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(t)] = e.what();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[static_cast<std::size_t>(t)], "") << "thread " << t;
    EXPECT_EQ(worst[static_cast<std::size_t>(t)], 0.0) << "thread " << t;
  }
}

// A copy of the tiny model's folder to change in each test.
class SentenceEncoderFolder : public SentenceEncoderTest {
 protected:
  void SetUp() override {
    SentenceEncoderTest::SetUp();
    dir_ = fs::temp_directory_path() /
           fmt::format("maskattn_sentence_encoder_{}_{}",
                       ::testing::UnitTest::GetInstance()->random_seed(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(kModelDir, dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const fs::path& relative, const std::string& text) {
    std::ofstream out(dir_ / relative, std::ios::binary | std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.flush()) << relative;
  }
  // modules.json with the Transformer and the Pooling, Normalize if asked.
  void write_modules(bool normalize) {
    std::string modules = R"([
      {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
      {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})";
    if (normalize)
      modules += R"(,
      {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})";
    write("modules.json", modules + "]\n");
  }
  void write_pooling_mode(const std::string& mode_json) {
    write("1_Pooling/config.json",
          fmt::format(R"({{"word_embedding_dimension": 16, "pooling_mode": {}}})", mode_json));
  }

  fs::path dir_;
};

TEST_F(SentenceEncoderFolder, MissingFolderIsAnErrorNamingIt) {
  const fs::path missing = dir_ / "no_such_model";
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(missing); },
                                  missing.string() + " (no such directory)"));
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_ / "config.json"); },
                                  "model folder"));
}

TEST_F(SentenceEncoderFolder, UnknownModuleTypeIsAnErrorNamingModulesJson) {
  write("modules.json", R"([
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
  ])");
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "\"sentence_transformers.models.Dense\" at position 2"));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); }, "modules.json"));
}

TEST_F(SentenceEncoderFolder, ModulesOutOfOrderOrTwiceAreErrorsNamingModulesJson) {
  const std::string transformer =
      R"({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"})";
  const std::string pooling =
      R"({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})";
  const std::string normalize =
      R"({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})";
  const auto list = [](std::initializer_list<std::string> modules) {
    return fmt::format("[{}]", fmt::join(modules, ", "));
  };
  write("modules.json", list({pooling, transformer}));
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "\"sentence_transformers.models.Pooling\" at position 0"));
  write("modules.json", list({transformer, normalize, pooling}));
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "\"sentence_transformers.models.Normalize\" at position 1"));
  write("modules.json", list({transformer, pooling, pooling}));
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "\"sentence_transformers.models.Pooling\" at position 2"));
  write("modules.json", list({transformer, pooling, normalize, normalize}));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); }, "at position 3"));
  write("modules.json", "[]");
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "modules.json: expected a Transformer module"));
  // The folder's own order reads, Normalize optional.
  write("modules.json", list({transformer, pooling, normalize}));
  EXPECT_TRUE(SentenceEncoder::from_folder(dir_).normalize());
  write("modules.json", list({transformer, pooling}));
  EXPECT_FALSE(SentenceEncoder::from_folder(dir_).normalize());
}

TEST_F(SentenceEncoderFolder, UnimplementedPoolingModeIsAnErrorNamingTheConfig) {
  write_pooling_mode(R"("weightedmean")");
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "1_Pooling/config.json: pooling_mode"));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); }, "\"weightedmean\""));
  write_pooling_mode(R"(["mean", "lasttoken"])");
  EXPECT_TRUE(
      throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); }, "\"lasttoken\""));
  write_pooling_mode("[]");
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "at least one pooling mode"));
  // The legacy flags all false: mean pooling, as sentence-transformers 6.2 falls back to.
  std::ofstream(dir_ / "1_Pooling" / "config.json")
      << R"({"word_embedding_dimension": 16, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": false})";
  EXPECT_EQ(SentenceEncoder::from_folder(dir_).pooling(), std::vector<Pooling>{Pooling::Mean});
}

TEST_F(SentenceEncoderFolder, ClsAndMeanPoolingConcatenateAndNormalizeTheConcatenation) {
  // Without Normalize: the raw [CLS] vector, then the raw mean.
  write_modules(/*normalize=*/false);
  const SentenceEncoder mean_only = SentenceEncoder::from_folder(dir_);
  EXPECT_FALSE(mean_only.normalize());
  EXPECT_EQ(mean_only.pooling(), std::vector<Pooling>{Pooling::Mean});
  write_pooling_mode(R"(["cls", "mean"])");
  const SentenceEncoder raw = SentenceEncoder::from_folder(dir_);
  EXPECT_EQ(raw.dimension(), 2 * kDimension);
  EXPECT_EQ(raw.pooling(), (std::vector<Pooling>{Pooling::Cls, Pooling::Mean}));
  const Tensor<float> mean = mean_only.encode(sentences_);
  const Tensor<float> cls_mean = raw.encode(sentences_);
  ASSERT_EQ(cls_mean.shape(), (std::vector<int64_t>{5, 2 * kDimension}));
  Tensor<float> second_half({5, kDimension});
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t k = 0; k < kDimension; ++k)
      second_half.view<2>()(i, k) = cls_mean.view<2>()(i, kDimension + k);
  EXPECT_LE(max_diff(second_half, mean), kSameTolerance);
  // The mean half's direction is sentence-transformers' (normalised) embedding.
  EXPECT_LE(max_diff(normalized_columns(cls_mean, kDimension, kDimension), reference_),
            kReferenceTolerance);
  // The first half is last_hidden_state[0] of the sentence alone.
  for (std::size_t i = 0; i < sentences_.size(); ++i) {
    const std::vector<int64_t> ids = raw.tokenize(sentences_[i]);
    const auto len = static_cast<int64_t>(ids.size());
    Tensor<float> hidden({1, len, kDimension});
    raw.model().forward(View<const int64_t, 2>(ids.data(), {1, len}), hidden.view<3>());
    for (int64_t k = 0; k < kDimension; ++k)
      EXPECT_NEAR(cls_mean.view<2>()(static_cast<int64_t>(i), k), hidden.view<3>()(0, 0, k),
                  kSameTolerance)
          << i << ", " << k;
  }

  // With Normalize: the whole 32-vector has unit length (not each half), so
  // it is the raw concatenation divided by the concatenation's norm.
  write_modules(/*normalize=*/true);
  const SentenceEncoder normalized = SentenceEncoder::from_folder(dir_);
  EXPECT_TRUE(normalized.normalize());
  EXPECT_EQ(normalized.dimension(), 2 * kDimension);
  const Tensor<float> unit = normalized.encode(sentences_, options(2, false));
  EXPECT_LE(max_diff(unit, normalized_columns(cls_mean, 0, 2 * kDimension)), kSameTolerance);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_NEAR(row_norm(unit, i), 1.0, kSameTolerance) << i;
    // Neither half alone has unit length.
    EXPECT_LT(row_norm(unit, i, 0, kDimension), 1.0 - 1e-3) << i;
    EXPECT_LT(row_norm(unit, i, kDimension, kDimension), 1.0 - 1e-3) << i;
  }
  EXPECT_LE(max_diff(normalized_columns(unit, kDimension, kDimension), reference_),
            kReferenceTolerance);
}

TEST_F(SentenceEncoderFolder, DoLowerCaseInSentenceBertConfigIsAnError) {
  write("sentence_bert_config.json", R"({"max_seq_length": 12, "do_lower_case": true})");
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "sentence_bert_config.json: do_lower_case"));
  write("sentence_bert_config.json", R"({"max_seq_length": 17})");
  EXPECT_TRUE(throws_error_naming([&] { (void)SentenceEncoder::from_folder(dir_); },
                                  "sentence_bert_config.json: max_seq_length"));
  write("sentence_bert_config.json", R"({"max_seq_length": 8})");
  EXPECT_EQ(SentenceEncoder::from_folder(dir_).max_seq_length(), 8);
}

TEST_F(SentenceEncoderFolder, WithoutModulesJsonItIsAPlainBertWithMeanPoolingUnnormalized) {
  fs::remove(dir_ / "modules.json");
  fs::remove_all(dir_ / "1_Pooling");
  const SentenceEncoder plain = SentenceEncoder::from_folder(dir_);
  EXPECT_FALSE(plain.normalize());
  EXPECT_EQ(plain.pooling(), std::vector<Pooling>{Pooling::Mean});
  EXPECT_EQ(plain.dimension(), kDimension);
  EXPECT_EQ(plain.max_seq_length(), 12);  // sentence_bert_config.json is still read
  const Tensor<float> e = plain.encode(sentences_);
  for (int64_t i = 0; i < 5; ++i)
    EXPECT_GT(std::abs(row_norm(e, i) - 1.0), 1e-3) << "row " << i << " looks normalised";
  EXPECT_LE(max_diff(normalized_columns(e, 0, kDimension), reference_), kReferenceTolerance);
  // Without sentence_bert_config.json either: the model's 16 positions.
  fs::remove(dir_ / "sentence_bert_config.json");
  EXPECT_EQ(SentenceEncoder::from_folder(dir_).max_seq_length(), 16);
}

}  // namespace
}  // namespace maskattn::models
