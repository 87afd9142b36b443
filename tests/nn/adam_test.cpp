// nn::Adam and nn::AdamW against the textbook algorithm written here in
// double (Kingma & Ba 2015, Algorithm 1; the weight decay of torch's Adam and
// AdamW), over trajectories of pseudo-random gradients and a changing rate;
// state_dict round trips that continue bit for bit; errors.
#include "maskattn/nn/adam.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "maskattn/nn/linear.hpp"
#include "maskattn/nn/lr_schedule.hpp"
#include "throws_error.hpp"

namespace maskattn {
namespace {

using testing_errors::throws_error_naming;

// The textbook algorithm in double over flat parameters.
struct DoubleAdam {
  nn::AdamOptions o;
  std::map<std::string, std::vector<double>> p, m, v;
  int64_t t = 0;

  void step(const std::map<std::string, std::vector<double>>& grads, double lr) {
    ++t;
    for (auto& [name, param] : p) {
      const bool decay = std::find(o.no_weight_decay.begin(), o.no_weight_decay.end(), name) ==
                         o.no_weight_decay.end();
      const double wd = decay ? o.weight_decay : 0.0;
      for (std::size_t i = 0; i < param.size(); ++i) {
        double g = grads.at(name)[i];
        if (o.decoupled_weight_decay)
          param[i] -= lr * wd * param[i];
        else
          g += wd * param[i];
        double& mi = m[name][i];
        double& vi = v[name][i];
        mi = o.beta1 * mi + (1 - o.beta1) * g;
        vi = o.beta2 * vi + (1 - o.beta2) * g * g;
        const double m_hat = mi / (1 - std::pow(o.beta1, static_cast<double>(t)));
        const double v_hat = vi / (1 - std::pow(o.beta2, static_cast<double>(t)));
        param[i] -= lr * m_hat / (std::sqrt(v_hat) + o.eps);
      }
    }
  }
};

std::map<std::string, std::vector<double>> as_double(const nn::StateDict& state,
                                                     const std::string& prefix = "") {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, view] : state) {
    if (view.dtype != DType::Float32) continue;
    const auto* f = static_cast<const float*>(view.data);
    out[name.substr(prefix.size())] = std::vector<double>(f, f + view.numel());
  }
  return out;
}

// Step k's gradients: normal, different per step, the same for every run.
void fill_gradients(nn::Gradients& grads, int64_t k) {
  std::mt19937 rng(static_cast<uint32_t>(1000 + k));
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (auto& e : grads.entries())
    for (float& x : e.grad) x = g(rng);
}

double max_diff(const std::map<std::string, std::vector<double>>& a,
                const std::map<std::string, std::vector<double>>& b) {
  double worst = 0.0;
  for (const auto& [name, xs] : a)
    for (std::size_t i = 0; i < xs.size(); ++i)
      worst = std::max(worst, std::abs(xs[i] - b.at(name)[i]));
  return worst;
}

struct Variant {
  const char* label;
  bool adamw;
  double weight_decay;
  bool exempt_bias;
};

TEST(Adam, TrajectoriesMatchTheTextbookAlgorithmInDouble) {
  const Variant variants[] = {{"Adam", false, 0.0, false},
                              {"Adam + L2", false, 0.1, false},
                              {"AdamW", true, 0.1, false},
                              {"AdamW, bias exempt", true, 0.3, true}};
  const auto schedule = nn::LrSchedule::noam(16, 2.0, 10);  // peaks at 0.125
  for (const Variant& var : variants) {
    SCOPED_TRACE(var.label);
    nn::Linear linear(6, 4);
    nn::Gradients grads(linear);
    nn::AdamOptions o;
    o.beta2 = 0.98;
    o.eps = 1e-9;
    o.weight_decay = var.weight_decay;
    if (var.exempt_bias) o.no_weight_decay = nn::rank1_parameter_names(linear);
    nn::Adam plain(linear, o);
    nn::AdamW decoupled(linear, o);
    nn::Adam& opt = var.adamw ? static_cast<nn::Adam&>(decoupled) : plain;
    EXPECT_STREQ(opt.name(), var.adamw ? "AdamW" : "Adam");

    DoubleAdam ref;
    ref.o = opt.options();
    ref.p = as_double(linear.state_dict());
    for (const auto& [name, xs] : ref.p) ref.m[name] = ref.v[name] = std::vector<double>(xs.size());
    for (int64_t k = 0; k < 40; ++k) {
      fill_gradients(grads, k);
      const double lr = schedule(opt.steps());
      ref.step(as_double(grads.state_dict()), lr);
      opt.step(grads, lr);
    }
    EXPECT_EQ(opt.steps(), 40);
    // 40 steps of about lr each; every float update rounds at 6e-8 |p|.
    const double dp = max_diff(as_double(linear.state_dict()), ref.p);
    EXPECT_LE(dp, 1e-6);  // measured at most 2.4e-7
    const nn::StateDict state = opt.state_dict();
    nn::StateDict m, v;
    for (const auto& [name, view] : state) {
      if (name.starts_with("exp_avg.")) m.emplace(name, view);
      if (name.starts_with("exp_avg_sq.")) v.emplace(name, view);
    }
    EXPECT_LE(max_diff(as_double(m, "exp_avg."), ref.m), 1e-6);
    EXPECT_LE(max_diff(as_double(v, "exp_avg_sq."), ref.v), 1e-6);
    RecordProperty(fmt::format("max_param_diff {}", var.label), fmt::format("{:.3g}", dp));
  }
}

TEST(Adam, WeightDecayOnlyTouchesTheParametersNotExempt) {
  // Zero gradients: Adam's m and v stay 0, so only AdamW's decay moves p.
  nn::Linear linear(3, 2);
  nn::Gradients grads(linear);
  nn::AdamOptions o;
  o.weight_decay = 0.5;
  o.no_weight_decay = {"bias"};
  nn::AdamW opt(linear, o);
  const Tensor<float> w0 = linear.weight(), b0 = linear.bias();
  opt.step(grads, 0.1);
  for (int64_t i = 0; i < w0.numel(); ++i)
    EXPECT_EQ(linear.weight().data()[i], w0.data()[i] * static_cast<float>(1.0 - 0.1 * 0.5));
  for (int64_t i = 0; i < b0.numel(); ++i) EXPECT_EQ(linear.bias().data()[i], b0.data()[i]);
}

TEST(Adam, StepUsesTheOptionsRateUnlessGivenOne) {
  nn::Linear a(4, 3), b = a;
  nn::Gradients ga(a), gb(b);
  nn::AdamOptions o;
  o.lr = 0.05;
  nn::Adam oa(a, o), ob(b, {});
  ob.set_lr(0.05);
  for (int64_t k = 0; k < 3; ++k) {
    fill_gradients(ga, k);
    fill_gradients(gb, k);
    oa.step(ga);
    ob.step(gb, ob.options().lr);
  }
  EXPECT_TRUE(std::equal(a.weight().begin(), a.weight().end(), b.weight().begin()));
}

TEST(Adam, StateDictRoundTripContinuesBitForBit) {
  nn::Linear straight(5, 3);
  nn::Linear resumed = straight;
  nn::Gradients gs(straight), gr(resumed);
  nn::AdamOptions o = nn::AdamW::default_options();
  nn::AdamW opt_s(straight, o);
  {
    nn::AdamW first(resumed, o);
    for (int64_t k = 0; k < 7; ++k) {
      fill_gradients(gs, k);
      fill_gradients(gr, k);
      opt_s.step(gs, 0.01);
      first.step(gr, 0.01);
    }
    // A fresh optimizer takes over the state (copied: `first` goes away).
    nn::AdamW second(resumed, o);
    second.load_state_dict(first.state_dict());
    EXPECT_EQ(second.steps(), 7);
    for (int64_t k = 7; k < 15; ++k) {
      fill_gradients(gs, k);
      fill_gradients(gr, k);
      opt_s.step(gs, 0.01);
      second.step(gr, 0.01);
    }
  }
  EXPECT_TRUE(
      std::equal(straight.weight().begin(), straight.weight().end(), resumed.weight().begin()));
  EXPECT_TRUE(std::equal(straight.bias().begin(), straight.bias().end(), resumed.bias().begin()));
}

TEST(Adam, RankOneParametersAreTheNoDecayDefault) {
  nn::Linear with_bias(3, 2), without(3, 2, false);
  EXPECT_EQ(nn::rank1_parameter_names(with_bias), std::vector<std::string>{"bias"});
  EXPECT_TRUE(nn::rank1_parameter_names(without).empty());
}

TEST(Adam, ErrorsNameTheArgument) {
  nn::Linear linear(3, 2), other(3, 2);
  nn::Gradients grads(other);
  const auto with = [&](auto change) {
    nn::AdamOptions o;
    change(o);
    return [&linear, o] { nn::Adam(linear, o); };
  };
  EXPECT_TRUE(throws_error_naming(with([](auto& o) { o.lr = -1; }), "lr"));
  EXPECT_TRUE(throws_error_naming(with([](auto& o) { o.beta1 = 1.0; }), "beta1"));
  EXPECT_TRUE(throws_error_naming(with([](auto& o) { o.beta2 = -0.1; }), "beta2"));
  EXPECT_TRUE(throws_error_naming(with([](auto& o) { o.eps = 0.0; }), "eps"));
  EXPECT_TRUE(throws_error_naming(with([](auto& o) { o.weight_decay = -1e-3; }), "weight_decay"));
  EXPECT_TRUE(throws_error_naming(with([](auto& o) {
                                    o.no_weight_decay = {"weight", "bais"};
                                  }),
                                  "bais"));

  nn::Adam opt(linear, {});
  EXPECT_TRUE(throws_error_naming([&] { opt.step(grads); }, "grads"));
  nn::Gradients mine(linear);
  EXPECT_TRUE(throws_error_naming([&] { opt.step(mine, std::nan("")); }, "lr"));
  EXPECT_TRUE(throws_error_naming([&] { opt.set_lr(-2.0); }, "lr"));
  EXPECT_EQ(opt.steps(), 0);

  // load_state_dict: a missing, misshaped or unexpected tensor; nothing changes.
  opt.step(mine, 0.1);
  nn::Linear bigger(4, 2);
  nn::Adam big(bigger, {});
  EXPECT_TRUE(
      throws_error_naming([&] { opt.load_state_dict(big.state_dict()); }, "exp_avg.weight"));
  nn::StateDict state = opt.state_dict();
  Tensor<float> extra({2});
  state.emplace("exp_avg.unknown", AnyView(extra));
  EXPECT_TRUE(throws_error_naming([&] { opt.load_state_dict(state); }, "exp_avg.unknown"));
  state.erase("exp_avg.unknown");
  state.erase("step");
  EXPECT_TRUE(throws_error_naming([&] { opt.load_state_dict(state); }, "step"));
  EXPECT_EQ(opt.steps(), 1);
}

}  // namespace
}  // namespace maskattn
