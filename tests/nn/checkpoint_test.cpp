// Checkpoints: a small run (dropout, then a Linear, on a least-squares loss
// whose gradient this test writes itself; AdamW on the Noam schedule with
// gradient clipping; a data RNG) trained N steps straight equals, bit for
// bit, N/2 steps, a checkpoint, fresh objects loaded from it and N/2 more.
// Then what a checkpoint holds, and the Error for each file that does not fit.
#include "maskattn/nn/checkpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "maskattn/io/safetensors.hpp"
#include "maskattn/nn/dropout.hpp"
#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/lr_schedule.hpp"
#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

constexpr int64_t kIn = 5, kBatch = 8;

// y = linear(dropout(x)): one module with a dropout stream and parameters.
class TinyModel : public nn::Module {
 public:
  explicit TinyModel(int64_t out = 3, bool second_dropout = false)
      : linear(kIn, out), dropout(0.25), dropout2(0.1), second_dropout_(second_dropout) {}
  nn::Linear linear;
  nn::Dropout dropout;
  nn::Dropout dropout2;  // a child without parameters, only in some trees

 protected:
  void for_each_child(const ChildFn& fn) override {
    fn("linear", linear);
    fn("dropout", dropout);
    if (second_dropout_) fn("dropout2", dropout2);
  }

 private:
  bool second_dropout_;
};

// One training run's moving parts.
struct TrainingRun {
  TinyModel model;
  nn::Gradients grads{model};
  nn::AdamW optimizer{model, options()};
  std::mt19937_64 data{42};  // draws the batches
  std::vector<double> losses;

  // The same start for every TrainingRun: dropout seed 11, weights from a fixed draw.
  TrainingRun() {
    model.seed(11);
    std::mt19937 init(5);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    for (auto& [name, p] : model.named_parameters())
      for (float& v : *p) v = u(init);
  }

  static nn::AdamOptions options() {
    nn::AdamOptions o = nn::AdamW::default_options();
    o.beta2 = 0.98;
    o.eps = 1e-9;
    o.no_weight_decay = {"linear.bias"};
    return o;
  }

  // One step: a batch from `data`, loss 0.5 mean_b |W dropout(x_b) + b - y_b|^2
  // with y = x A^T (A fixed), its gradient by hand, clipping, AdamW at Noam's rate.
  void step() {
    const int64_t out = model.linear.out_features();
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(kBatch * kIn), xd(kBatch * kIn), y(kBatch * out), pred(kBatch * out);
    for (float& v : x) v = normal(data);
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t o = 0; o < out; ++o) {
        float s = 0.0f;
        for (int64_t i = 0; i < kIn; ++i)
          s += x[b * kIn + i] * static_cast<float>((o + 1) * (i - 2));
        y[b * out + o] = s;
      }
    model.dropout.forward(View<const float, 2>(x.data(), {kBatch, kIn}),
                          View<float, 2>(xd.data(), {kBatch, kIn}));
    model.linear.forward(View<const float, 2>(xd.data(), {kBatch, kIn}),
                         View<float, 2>(pred.data(), {kBatch, out}));
    grads.zero();
    float* dw = grads[model.linear.weight()].data();  // (out, in)
    float* db = grads[model.linear.bias()].data();    // (out)
    double loss = 0.0;
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t o = 0; o < out; ++o) {
        const float r = pred[b * out + o] - y[b * out + o];
        loss += 0.5 * r * r / kBatch;
        db[o] += r / kBatch;
        for (int64_t i = 0; i < kIn; ++i) dw[o * kIn + i] += r * xd[b * kIn + i] / kBatch;
      }
    losses.push_back(loss);
    grads.clip_norm(5.0);
    optimizer.step(grads, nn::noam_rate(optimizer.steps(), 16, 4.0, 5));
  }
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("maskattn_checkpoint_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

bool same_bits(const AnyView& a, const AnyView& b) {
  return a.dtype == b.dtype && a.shape == b.shape &&
         std::memcmp(a.data, b.data,
                     static_cast<std::size_t>(a.numel()) * (a.dtype == DType::Int64 ? 8 : 4)) == 0;
}

std::string rng_text(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

void save_run(const std::string& path, const TrainingRun& run) {
  nn::CheckpointExtra extra;
  extra.step = static_cast<int64_t>(run.losses.size());
  extra.metadata["data_rng"] = rng_text(run.data);
  extra.tensors.emplace("losses", AnyView(run.losses.data(), DType::Float64,
                                          {static_cast<int64_t>(run.losses.size())}, {1}));
  nn::save_checkpoint(path, run.model, run.optimizer, extra);
}

TEST(Checkpoint, AResumedRunContinuesBitForBit) {
  const int64_t n = 24;
  TrainingRun straight;
  for (int64_t k = 0; k < n; ++k) straight.step();
  // The run learns: the loss falls (a least-squares fit with noise from dropout).
  EXPECT_LT(straight.losses.back(), 0.5 * straight.losses.front());

  TrainingRun first;
  for (int64_t k = 0; k < n / 2; ++k) first.step();
  const std::string path = temp_path("resume.safetensors");
  save_run(path, first);

  // Fresh objects: other weights, other dropout seeds, another RNG state.
  TrainingRun resumed;
  resumed.model.seed(7);
  resumed.data.seed(1);
  for (float& v : resumed.model.linear.weight()) v += 1.0f;
  ASSERT_NE(
      std::memcmp(resumed.model.linear.weight().data(), first.model.linear.weight().data(), 4), 0);
  const nn::LoadedCheckpoint loaded = nn::load_checkpoint(path, resumed.model, resumed.optimizer);
  EXPECT_EQ(loaded.extra.step, n / 2);
  std::istringstream(loaded.extra.metadata.at("data_rng")) >> resumed.data;
  const AnyView losses = loaded.extra.tensors.at("losses");
  ASSERT_EQ(losses.dtype, DType::Float64);
  const auto* l = static_cast<const double*>(losses.data);
  resumed.losses.assign(l, l + losses.numel());
  for (int64_t k = n / 2; k < n; ++k) resumed.step();

  EXPECT_EQ(resumed.losses, straight.losses);
  EXPECT_EQ(resumed.optimizer.steps(), n);
  const nn::StateDict a = straight.model.state_dict(), b = resumed.model.state_dict();
  for (const auto& [name, view] : a) EXPECT_TRUE(same_bits(view, b.at(name))) << name;
  const nn::StateDict sa = straight.optimizer.state_dict(), sb = resumed.optimizer.state_dict();
  for (const auto& [name, view] : sa) EXPECT_TRUE(same_bits(view, sb.at(name))) << name;
  const auto ra = straight.model.random_state(), rb = resumed.model.random_state();
  ASSERT_EQ(ra.size(), rb.size());
  for (std::size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i].module, rb[i].module);
    EXPECT_EQ(ra[i].seed, rb[i].seed);
    EXPECT_EQ(ra[i].draws, rb[i].draws);
  }
  std::filesystem::remove(path);
}

TEST(Checkpoint, TheFileIsPlainSafetensorsWithNamedParts) {
  TrainingRun run;
  for (int64_t k = 0; k < 3; ++k) run.step();
  run.optimizer.set_lr(0.0123);
  const std::string path = temp_path("layout.safetensors");
  save_run(path, run);
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{
                              "extra.losses", "model.linear.bias", "model.linear.weight",
                              "optimizer.exp_avg.linear.bias", "optimizer.exp_avg.linear.weight",
                              "optimizer.exp_avg_sq.linear.bias",
                              "optimizer.exp_avg_sq.linear.weight", "optimizer.step"}));
  const auto& md = file.metadata();
  EXPECT_EQ(md.at("format"), "maskattn-checkpoint-1");
  EXPECT_EQ(md.at("step"), "3");
  EXPECT_EQ(md.at("optimizer"), "AdamW");
  EXPECT_EQ(md.at("optimizer.lr"), "0.0123");
  EXPECT_EQ(md.at("optimizer.beta2"), "0.98");
  EXPECT_EQ(md.at("optimizer.no_weight_decay"), "linear.bias\n");
  EXPECT_EQ(md.at("extra.data_rng"), rng_text(run.data));
  // Every module's stream; the dropout has drawn once per step.
  std::ostringstream streams;
  for (const auto& s : run.model.random_state())
    streams << s.module << ' ' << s.seed << ' ' << s.draws << '\n';
  EXPECT_EQ(md.at("random_state"), streams.str());
  EXPECT_EQ(run.model.random_state()[2].module, "dropout");
  EXPECT_EQ(run.model.random_state()[2].draws, 3u);
  const AnyView step = file.view("optimizer.step");
  EXPECT_EQ(step.rank(), 0);
  EXPECT_EQ(*static_cast<const int64_t*>(step.data), 3);

  // The learning rate comes back with the state.
  TrainingRun other;
  nn::load_checkpoint(path, other.model, other.optimizer);
  EXPECT_EQ(other.optimizer.options().lr, 0.0123);
  std::filesystem::remove(path);
}

TEST(Checkpoint, FilesThatDoNotFitAreErrorsAndChangeNothing) {
  TrainingRun run;
  run.step();
  const std::string path = temp_path("errors.safetensors");
  save_run(path, run);

  TrainingRun target;
  const Tensor<float> before = target.model.linear.weight();
  const auto unchanged = [&] {
    return std::memcmp(before.data(), target.model.linear.weight().data(),
                       static_cast<std::size_t>(before.numel()) * 4) == 0 &&
           target.optimizer.steps() == 0;
  };

  // Another model: a Linear of 2 outputs instead of 3.
  TinyModel narrow(2);
  nn::AdamW narrow_opt(narrow, TrainingRun::options());
  EXPECT_TRUE(throws_error_naming([&] { nn::load_checkpoint(path, narrow, narrow_opt); },
                                  "a checkpoint of a different model: model.linear.bias"));
  EXPECT_TRUE(throws_error_naming([&] { nn::load_checkpoint(path, narrow, narrow_opt); },
                                  "model.linear.weight is float32 (3, 5)"));

  // Adam where the run had AdamW; AdamW with another beta2 or exemption list.
  nn::AdamOptions coupled = TrainingRun::options();
  coupled.decoupled_weight_decay = false;
  nn::Adam adam(target.model, coupled);
  EXPECT_TRUE(throws_error_naming([&] { nn::load_checkpoint(path, target.model, adam); }, "AdamW"));
  nn::AdamOptions o = TrainingRun::options();
  o.beta2 = 0.999;
  nn::AdamW other_beta(target.model, o);
  EXPECT_TRUE(throws_error_naming([&] { nn::load_checkpoint(path, target.model, other_beta); },
                                  "optimizer beta2"));
  o = TrainingRun::options();
  o.no_weight_decay.clear();
  nn::AdamW all_decay(target.model, o);
  EXPECT_TRUE(throws_error_naming([&] { nn::load_checkpoint(path, target.model, all_decay); },
                                  "no_weight_decay"));

  // The same parameters in another module tree (an extra dropout).
  TinyModel deeper(3, true);
  nn::AdamW deeper_opt(deeper, TrainingRun::options());
  EXPECT_TRUE(throws_error_naming([&] { nn::load_checkpoint(path, deeper, deeper_opt); },
                                  "random streams"));

  // A safetensors file that is no checkpoint.
  const std::string plain = temp_path("plain.safetensors");
  save_safetensors(plain, target.model.state_dict());
  EXPECT_TRUE(throws_error_naming(
      [&] { nn::load_checkpoint(plain, target.model, target.optimizer); }, "maskattn checkpoint"));
  EXPECT_TRUE(unchanged());
  EXPECT_TRUE(throws_error_naming(
      [&] { nn::load_checkpoint(temp_path("missing"), target.model, target.optimizer); },
      "missing"));

  // Saving: a negative step, an absent extra tensor.
  nn::CheckpointExtra extra;
  extra.step = -1;
  EXPECT_TRUE(throws_error_naming(
      [&] { nn::save_checkpoint(plain, run.model, run.optimizer, extra); }, "step"));
  extra.step = 0;
  extra.tensors.emplace("nothing", AnyView());
  EXPECT_TRUE(throws_error_naming(
      [&] { nn::save_checkpoint(plain, run.model, run.optimizer, extra); }, "nothing"));
  std::filesystem::remove(path);
  std::filesystem::remove(plain);
}

TEST(Checkpoint, RandomStateRoundTripsThroughTheModuleTree) {
  TinyModel a, b;
  a.seed(3);
  std::vector<float> x(kBatch * kIn, 1.0f);
  const View<float, 2> v(x.data(), {kBatch, kIn});
  a.dropout.forward(v, v);
  b.set_random_state(a.random_state());
  std::vector<float> xa(kBatch * kIn, 1.0f), xb(kBatch * kIn, 1.0f);
  a.dropout.forward(View<float, 2>(xa.data(), {kBatch, kIn}),
                    View<float, 2>(xa.data(), {kBatch, kIn}));
  b.dropout.forward(View<float, 2>(xb.data(), {kBatch, kIn}),
                    View<float, 2>(xb.data(), {kBatch, kIn}));
  EXPECT_EQ(xa, xb);
  TinyModel deeper(3, true);
  EXPECT_TRUE(
      throws_error_naming([&] { deeper.set_random_state(a.random_state()); }, "random state"));
}

}  // namespace
}  // namespace maskattn
