// BertModel against transformers' numbers: tests/data/tiny_bert is a tiny
// BERT with random weights in a Hugging Face folder, and
// tests/data/tiny_bert_golden.safetensors holds what transformers' BertModel
// computes with it on a padded batch and on the same sequences packed into one
// row (both made by tools/make_tiny_bert.py).
#include "maskattn/nn/bert.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "maskattn/io/safetensors.hpp"
#include "maskattn/mask.hpp"
#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;
namespace fs = std::filesystem;

// float32 sums of at most 32 terms of order 1 on both sides, in different
// orders: a few ulps. A wrong mask, position or weight moves outputs by 1e-2.
constexpr double kTolerance = 1e-5;

const fs::path kModelDir = fs::path(MASKATTN_TEST_DATA_DIR) / "tiny_bert";
const std::string kGolden = std::string(MASKATTN_TEST_DATA_DIR) + "/tiny_bert_golden.safetensors";

template <class T, int N>
View<const T, N> view_of(const SafetensorsFile& f, const std::string& name) {
  const AnyView v = f.view(name);
  std::array<int64_t, N> shape{};
  for (int d = 0; d < N; ++d) shape[d] = v.shape.at(static_cast<std::size_t>(d));
  EXPECT_EQ(v.dtype, dtype_of<T>()) << name;
  return View<const T, N>(static_cast<const T*>(v.data), shape);
}

// Largest |a - b| of two contiguous views of one shape.
template <int N>
double max_diff(View<const float, N> a, View<const float, N> b) {
  EXPECT_EQ(a.shape(), b.shape());
  EXPECT_TRUE(a.is_contiguous() && b.is_contiguous());
  double worst = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(a.data()[i]) - b.data()[i]));
  return worst;
}

class Bert : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new nn::BertModel(nn::BertModel::from_pretrained(kModelDir));
  }
  static void TearDownTestSuite() { delete model_; }
  static nn::BertModel* model_;
  SafetensorsFile golden_ = SafetensorsFile::open(kGolden);
};
nn::BertModel* Bert::model_ = nullptr;

TEST_F(Bert, ReadsTheConfigAndEveryWeightUnderHuggingFaceNames) {
  const nn::BertConfig& c = model_->config();
  EXPECT_EQ(c.vocab_size, 48);
  EXPECT_EQ(c.hidden_size, 16);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.intermediate_size, 32);
  EXPECT_EQ(c.max_position_embeddings, 16);
  EXPECT_TRUE(c.add_pooling_layer);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-12);
  // Every float tensor of the file is a parameter of the model, and back.
  const SafetensorsFile weights = SafetensorsFile::open((kModelDir / "model.safetensors").string());
  std::vector<std::string> file_names;
  for (const std::string& name : weights.names())
    if (weights.view(name).dtype == DType::Float32) file_names.push_back(name);
  std::vector<std::string> model_names;
  for (const auto& [name, p] : model_->named_parameters()) model_names.push_back(name);
  std::sort(model_names.begin(), model_names.end());
  EXPECT_EQ(model_names, file_names);
  EXPECT_FALSE(model_->training());
}

TEST_F(Bert, PaddedBatchMatchesTransformersAtEveryPositionWithThePooler) {
  const auto ids = view_of<int64_t, 2>(golden_, "padded.input_ids");
  const auto types = view_of<int64_t, 2>(golden_, "padded.token_type_ids");
  Tensor<float> hidden({ids.size(0), ids.size(1), 16});
  nn::BertInputs in;
  in.mask = from_hf_attention_mask(golden_.view("padded.attention_mask"));
  in.token_type_ids = types;
  model_->forward(ids, hidden.view<3>(), in);
  const double d =
      max_diff<3>(hidden.view<3>(), view_of<float, 3>(golden_, "padded.last_hidden_state"));
  EXPECT_LE(d, kTolerance);
  Tensor<float> pooled({ids.size(0), 16});
  model_->pool(hidden.view<3>(), pooled.view<2>());
  EXPECT_LE(max_diff<2>(pooled.view<2>(), view_of<float, 2>(golden_, "padded.pooler_output")),
            kTolerance);
  std::printf("padded: largest difference from transformers %.3g\n", d);
}

TEST_F(Bert, PackedRowWithDocumentsMaskAndPositionIdsMatchesTransformersAndThePaddedBatch) {
  const auto ids = view_of<int64_t, 2>(golden_, "packed.input_ids");
  Tensor<float> hidden({1, ids.size(1), 16});
  nn::BertInputs in;
  in.mask = documents(golden_.view("packed.document_ids"));
  in.position_ids = view_of<int64_t, 2>(golden_, "packed.position_ids");
  in.token_type_ids = view_of<int64_t, 2>(golden_, "packed.token_type_ids");
  model_->forward(ids, hidden.view<3>(), in);
  EXPECT_LE(max_diff<3>(hidden.view<3>(), view_of<float, 3>(golden_, "packed.last_hidden_state")),
            kTolerance);
  // Row r of the padded batch, its first n positions, is the packed segment.
  const auto padded = view_of<float, 3>(golden_, "padded.last_hidden_state");
  const int64_t lengths[] = {7, 5, 2};
  int64_t t = 0;
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t l = 0; l < lengths[r]; ++l, ++t)
      for (int64_t k = 0; k < 16; ++k)
        ASSERT_NEAR(hidden.view<3>()(0, t, k), padded(r, l, k), kTolerance) << r << ", " << l;
}

TEST_F(Bert, WithoutPositionAndTokenTypeIdsUsesZeroToLMinusOneAndTypeZero) {
  const auto ids = view_of<int64_t, 2>(golden_, "padded.input_ids");
  Tensor<int64_t> positions({3, 7}), types({3, 7});
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t l = 0; l < 7; ++l) positions.view<2>()(r, l) = l;
  Tensor<float> implicit({3, 7, 16}), explicit_ids({3, 7, 16});
  model_->forward(ids, implicit.view<3>());
  nn::BertInputs in;
  in.position_ids = positions.view<2>();
  in.token_type_ids = types.view<2>();
  model_->forward(ids, explicit_ids.view<3>(), in);
  EXPECT_EQ(max_diff<3>(implicit.view<3>(), explicit_ids.view<3>()), 0.0);
}

TEST_F(Bert, BadInputsAreErrorsNamingTheArgument) {
  Tensor<int64_t> ids({1, 3});
  Tensor<float> out({1, 3, 16});
  ids.view<2>()(0, 1) = 48;
  EXPECT_TRUE(throws_error_naming([&] { model_->forward(ids.view<2>(), out.view<3>()); },
                                  "input_ids[0, 1]"));
  ids.view<2>()(0, 1) = 5;
  Tensor<int64_t> positions({1, 3});
  positions.view<2>()(0, 2) = 16;
  nn::BertInputs in;
  in.position_ids = positions.view<2>();
  EXPECT_TRUE(throws_error_naming([&] { model_->forward(ids.view<2>(), out.view<3>(), in); },
                                  "position_ids[0, 2]"));
  Tensor<int64_t> types({1, 3});
  types.view<2>()(0, 0) = 2;
  in = {};
  in.token_type_ids = types.view<2>();
  EXPECT_TRUE(throws_error_naming([&] { model_->forward(ids.view<2>(), out.view<3>(), in); },
                                  "token_type_ids[0, 0]"));
  Tensor<int64_t> short_types({1, 2});
  in.token_type_ids = short_types.view<2>();
  EXPECT_TRUE(throws_error_naming([&] { model_->forward(ids.view<2>(), out.view<3>(), in); },
                                  "token_type_ids"));
  Tensor<int64_t> long_ids({1, 17});
  Tensor<float> long_out({1, 17, 16});
  EXPECT_TRUE(throws_error_naming([&] { model_->forward(long_ids.view<2>(), long_out.view<3>()); },
                                  "max_position_embeddings = 16"));
  Tensor<float> wrong_out({1, 3, 15});
  EXPECT_TRUE(throws_error_naming([&] { model_->forward(ids.view<2>(), wrong_out.view<3>()); },
                                  "last_hidden_state"));
  in = {};
  in.mask = key_lengths(std::vector<int64_t>{3, 3});  // two batch elements for one
  EXPECT_TRUE(
      throws_error_naming([&] { model_->forward(ids.view<2>(), out.view<3>(), in); }, "mask"));
  Tensor<float> pooled({1, 15});
  EXPECT_TRUE(
      throws_error_naming([&] { model_->pool(out.view<3>(), pooled.view<2>()); }, "pooler_output"));
}

// Every layer's attention weights on the padded batch (lengths 7, 5, 2): each
// row a distribution over its sequence's real keys, padded query rows
// included (a key-padding mask blocks keys only, as transformers' 4-D mask
// does), exactly 0 at padded keys. The buffer starts as NaN, so an element no
// layer writes fails. transformers' own numbers: python/tests/test_bert_attentions.py.
TEST_F(Bert, AttentionsOfAPaddedBatchAreDistributionsOverTheRealKeys) {
  const auto ids = view_of<int64_t, 2>(golden_, "padded.input_ids");
  const int64_t b = ids.size(0), l = ids.size(1), layers = 2, heads = 4;
  const int64_t lengths[] = {7, 5, 2};
  nn::BertInputs hf, by_lengths;
  hf.mask = from_hf_attention_mask(golden_.view("padded.attention_mask"));
  hf.token_type_ids = view_of<int64_t, 2>(golden_, "padded.token_type_ids");
  by_lengths.mask = key_lengths(std::vector<int64_t>(std::begin(lengths), std::end(lengths)));
  by_lengths.token_type_ids = hf.token_type_ids;

  for (const nn::BertInputs* in : {&hf, &by_lengths}) {
    SCOPED_TRACE(in == &hf ? "from_hf_attention_mask" : "key_lengths");
    Tensor<float> attentions({layers, b, heads, l, l});
    std::fill(attentions.data(), attentions.data() + attentions.numel(), NAN);
    Tensor<float> hidden({b, l, 16});
    model_->forward(ids, hidden.view<3>(), *in, attentions.view<5>());
    const View<float, 5> w = attentions.view<5>();
    double worst_sum = 0.0;
    for (int64_t n = 0; n < layers; ++n)
      for (int64_t r = 0; r < b; ++r)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t i = 0; i < l; ++i) {
            double sum = 0.0;
            for (int64_t j = 0; j < l; ++j) {
              const float p = w(n, r, h, i, j);
              if (j < lengths[r]) {
                ASSERT_TRUE(p > 0.0f && p <= 1.0f)
                    << fmt::format("attentions[{}, {}, {}, {}, {}] = {}", n, r, h, i, j, p);
                sum += p;
              } else {
                ASSERT_EQ(p, 0.0f) << "padded key " << j << " of row " << r;
              }
            }
            worst_sum = std::max(worst_sum, std::abs(sum - 1.0));
          }
    EXPECT_LE(worst_sum, 1e-6);
    // The two layers' weights differ (each writes its own slice).
    double layer_diff = 0.0;
    for (int64_t k = 0; k < b * heads * l * l; ++k)
      layer_diff = std::max(layer_diff, std::abs(double{attentions.data()[k]} -
                                                 attentions.data()[b * heads * l * l + k]));
    EXPECT_GT(layer_diff, 1e-3);
    std::printf("%s: largest |row sum - 1| %.3g\n",
                in == &hf ? "from_hf_attention_mask" : "key_lengths", worst_sum);
  }
}

// Asking for the weights changes nothing else, bit for bit; any strides work.
TEST_F(Bert, AttentionsLeaveTheHiddenStateBitIdenticalAndTakeAnyStrides) {
  const auto ids = view_of<int64_t, 2>(golden_, "padded.input_ids");
  const int64_t b = ids.size(0), l = ids.size(1), layers = 2, heads = 4;
  nn::BertInputs in;
  in.mask = from_hf_attention_mask(golden_.view("padded.attention_mask"));
  in.token_type_ids = view_of<int64_t, 2>(golden_, "padded.token_type_ids");
  Tensor<float> plain({b, l, 16}), with({b, l, 16}), attentions({layers, b, heads, l, l});
  model_->forward(ids, plain.view<3>(), in);
  model_->forward(ids, with.view<3>(), in, attentions.view<5>());
  EXPECT_TRUE(std::equal(plain.begin(), plain.end(), with.begin()));

  // (B, layers, heads, L, L) memory viewed as (layers, B, heads, L, L).
  Tensor<float> other_order({b, layers, heads, l, l});
  Tensor<float> again({b, l, 16});
  model_->forward(ids, again.view<3>(), in, other_order.view<5>().transposed(0, 1));
  EXPECT_TRUE(std::equal(plain.begin(), plain.end(), again.begin()));
  const View<float, 5> strided = other_order.view<5>().transposed(0, 1);
  const View<float, 5> contiguous = attentions.view<5>();
  for (int64_t n = 0; n < layers; ++n)
    for (int64_t r = 0; r < b; ++r)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < l; ++i)
          for (int64_t j = 0; j < l; ++j)
            ASSERT_EQ(strided(n, r, h, i, j), contiguous(n, r, h, i, j))
                << fmt::format("attentions[{}, {}, {}, {}, {}]", n, r, h, i, j);
}

TEST_F(Bert, AttentionsOfTheWrongShapeAreAnErrorNamingThem) {
  Tensor<int64_t> ids({2, 3});
  Tensor<float> out({2, 3, 16});
  for (const std::array<int64_t, 5>& shape :
       {std::array<int64_t, 5>{1, 2, 4, 3, 3}, std::array<int64_t, 5>{2, 2, 4, 3, 4},
        std::array<int64_t, 5>{2, 1, 4, 3, 3}}) {
    Tensor<float> attentions(std::vector<int64_t>(shape.begin(), shape.end()));
    EXPECT_TRUE(throws_error_naming(
        [&] { model_->forward(ids.view<2>(), out.view<3>(), {}, attentions.view<5>()); },
        "attentions: expected (2, 2, 4, 3, 3), got " + shape_string(shape)));
  }
  // BertLayer checks its weights too.
  const nn::BertLayer layer(model_->config());
  Tensor<float> x({2, 3, 16}), y({2, 3, 16}), weights({2, 4, 3, 2});
  EXPECT_TRUE(throws_error_naming(
      [&] { layer.forward(x.view<3>(), y.view<3>(), {}, weights.view<4>()); }, "weights"));
}

TEST(BertConfig, ReadsHuggingFaceFieldsAndRejectsWhatIsNotImplemented) {
  const std::string base = R"({"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 32)";
  const nn::BertConfig c = nn::BertConfig::from_json(base + "}");
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_EQ(c.hidden_act, nn::Activation::GELU);
  EXPECT_EQ(c.head_dim(), 4);
  EXPECT_EQ(nn::BertConfig::from_json(base + R"(, "hidden_act": "relu"})").hidden_act,
            nn::Activation::ReLU);
  EXPECT_TRUE(throws_error_naming(
      [&] { (void)nn::BertConfig::from_json(base + R"(, "hidden_act": "gelu_new"})"); },
      "config.json: hidden_act"));
  EXPECT_TRUE(throws_error_naming(
      [&] {
        (void)nn::BertConfig::from_json(base + R"(, "position_embedding_type": "relative_key"})");
      },
      "position_embedding_type"));
  EXPECT_TRUE(throws_error_naming(
      [&] { (void)nn::BertConfig::from_json(R"({"vocab_size": 10})", "my/config.json"); },
      "my/config.json: hidden_size"));
  EXPECT_TRUE(throws_error_naming(
      [&] { (void)nn::BertConfig::from_json(base + R"(, "num_attention_heads": 3})"); },
      "hidden_size"));
  EXPECT_TRUE(throws_error_naming(
      [&] { (void)nn::BertConfig::from_json(base + R"(, "vocab_size": 0})"); }, "vocab_size"));
  EXPECT_TRUE(
      throws_error_naming([&] { (void)nn::BertConfig::from_json("[1, 2"); }, "config.json"));
}

// A copy of the tiny model's folder to break in each test.
class BertFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("maskattn_bert_{}_{}", ::testing::UnitTest::GetInstance()->random_seed(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(kModelDir, dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(BertFolder, MissingFilesAndWeightsAreErrorsNamingTheFile) {
  EXPECT_TRUE(throws_error_naming([&] { (void)nn::BertModel::from_pretrained(dir_ / "nope"); },
                                  "config.json"));
  // A weight missing, then one of the wrong shape.
  const SafetensorsFile file = SafetensorsFile::open((dir_ / "model.safetensors").string());
  std::map<std::string, AnyView> views = file.views();
  std::map<std::string, AnyView> fewer = views;
  fewer.erase("encoder.layer.1.output.dense.bias");
  save_safetensors((dir_ / "fewer.safetensors").string(), fewer);
  Tensor<float> wrong({3});
  std::map<std::string, AnyView> misshapen = views;
  misshapen["embeddings.LayerNorm.bias"] = wrong;
  save_safetensors((dir_ / "misshapen.safetensors").string(), misshapen);

  fs::rename(dir_ / "fewer.safetensors", dir_ / "model.safetensors");
  EXPECT_TRUE(throws_error_naming([&] { (void)nn::BertModel::from_pretrained(dir_); },
                                  "encoder.layer.1.output.dense.bias"));
  fs::rename(dir_ / "misshapen.safetensors", dir_ / "model.safetensors");
  EXPECT_TRUE(throws_error_naming([&] { (void)nn::BertModel::from_pretrained(dir_); },
                                  "embeddings.LayerNorm.bias"));
  fs::remove(dir_ / "model.safetensors");
  EXPECT_TRUE(throws_error_naming([&] { (void)nn::BertModel::from_pretrained(dir_); },
                                  "model.safetensors"));
}

TEST_F(BertFolder, BertForPreTrainingNamesWithoutThePoolerLoadToo) {
  const SafetensorsFile file = SafetensorsFile::open((dir_ / "model.safetensors").string());
  std::map<std::string, AnyView> prefixed;
  for (const auto& [name, view] : file.views())
    if (!name.starts_with("pooler.")) prefixed.emplace("bert." + name, view);
  Tensor<float> head({48});
  prefixed.emplace("cls.predictions.bias", head);  // a head the encoder does not use
  save_safetensors((dir_ / "prefixed.safetensors").string(), prefixed);
  fs::rename(dir_ / "prefixed.safetensors", dir_ / "model.safetensors");
  const nn::BertModel model = nn::BertModel::from_pretrained(dir_);
  EXPECT_FALSE(model.config().add_pooling_layer);
  Tensor<float> out({1, 16, 16}), pooled({1, 16});
  EXPECT_TRUE(throws_error_naming([&] { model.pool(out.view<3>(), pooled.view<2>()); }, "pooler"));
}

}  // namespace
}  // namespace maskattn
