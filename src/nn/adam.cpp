#include "maskattn/nn/adam.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "core/parallel_for.hpp"

namespace maskattn::nn {
namespace {

void check_options(const AdamOptions& o) {
  const auto number = [](double x) { return fmt::format("{}", x); };
  if (!(std::isfinite(o.lr) && o.lr >= 0.0))
    throw Error("Adam: lr", "a finite rate >= 0", number(o.lr));
  if (!(o.beta1 >= 0.0 && o.beta1 < 1.0))
    throw Error("Adam: beta1", "a number in [0, 1)", number(o.beta1));
  if (!(o.beta2 >= 0.0 && o.beta2 < 1.0))
    throw Error("Adam: beta2", "a number in [0, 1)", number(o.beta2));
  if (!(std::isfinite(o.eps) && o.eps > 0.0))
    throw Error("Adam: eps", "a finite number > 0", number(o.eps));
  if (!(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0))
    throw Error("Adam: weight_decay", "a finite number >= 0", number(o.weight_decay));
}

// The per-step scalars, computed once in double as torch does in Python.
struct StepScalars {
  float step_size;        // lr / (1 - beta1^t)
  float bias2_sqrt;       // sqrt(1 - beta2^t)
  float one_minus_beta1;  // lerp weight of m
  float beta2;
  float one_minus_beta2;
  float eps;
  float l2;     // Adam: g += l2 p
  float decay;  // AdamW: p *= decay
};

// One parameter's update over elements [begin, end).
void update(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end,
            const StepScalars& s) {
  // Elementwise IEEE operations: the same bits in SIMD lanes as one at a time.
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const float grad = g[i] + s.l2 * p[i];
    const float param = p[i] * s.decay;
    // torch's lerp(m, grad, w) for w < 1/2: m + w (grad - m)
    const float mi = m[i] + s.one_minus_beta1 * (grad - m[i]);
    // torch's v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    const float vi = v[i] * s.beta2 + s.one_minus_beta2 * grad * grad;
    // torch's p.addcdiv_(m, sqrt(v) / sqrt(1 - beta2^t) + eps, value=-step_size)
    const float denom = std::sqrt(vi) / s.bias2_sqrt + s.eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = param + -s.step_size * mi / denom;
  }
}

}  // namespace

std::vector<std::string> rank1_parameter_names(const Module& module) {
  std::vector<std::string> out;
  for (const auto& [name, p] : module.named_parameters())
    if (p->rank() == 1) out.push_back(name);
  return out;
}

Adam::Adam(Module& module, AdamOptions options)
    : options_(std::move(options)), step_(std::vector<int64_t>{}) {
  check_options(options_);
  const std::set<std::string> exempt(options_.no_weight_decay.begin(),
                                     options_.no_weight_decay.end());
  std::set<std::string> found;
  for (auto& [name, param] : module.named_parameters()) {
    Tensor<float> m(param->shape()), v(param->shape());
    const bool decay = !exempt.count(name);
    if (!decay) found.insert(name);
    slots_.push_back({name, param, std::move(m), std::move(v), decay});
  }
  for (const std::string& name : exempt)
    if (!found.count(name))
      throw Error("Adam: no_weight_decay", "names of the module's parameters",
                  fmt::format("\"{}\", which is not one", name));
}

const char* Adam::name() const noexcept {
  return options_.decoupled_weight_decay ? "AdamW" : "Adam";
}

void Adam::set_lr(double lr) {
  if (!(std::isfinite(lr) && lr >= 0.0))
    throw Error("Adam: lr", "a finite rate >= 0", fmt::format("{}", lr));
  options_.lr = lr;
}

void Adam::step(const Gradients& grads) { step(grads, options_.lr); }

void Adam::step(const Gradients& grads, double lr) {
  if (!(std::isfinite(lr) && lr >= 0.0))
    throw Error("Adam::step: lr", "a finite rate >= 0", fmt::format("{}", lr));
  const auto& entries = grads.entries();
  bool same = entries.size() == slots_.size();
  for (std::size_t i = 0; same && i < slots_.size(); ++i)
    same =
        entries[i].param == slots_[i].param && entries[i].grad.shape() == slots_[i].param->shape();
  if (!same)
    throw Error("Adam::step: grads", "the Gradients of the module the optimizer was made for",
                fmt::format("Gradients of {} other tensors", entries.size()));

  const int64_t t = ++*step_.data();
  const AdamOptions& o = options_;
  const double bias1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
  const double bias2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
  StepScalars s{};
  s.step_size = static_cast<float>(lr / bias1);
  s.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  s.one_minus_beta1 = static_cast<float>(1.0 - o.beta1);
  s.beta2 = static_cast<float>(o.beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
  s.eps = static_cast<float>(o.eps);
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    StepScalars si = s;
    const double wd = slot.decay ? o.weight_decay : 0.0;
    si.l2 = o.decoupled_weight_decay ? 0.0f : static_cast<float>(wd);
    si.decay = o.decoupled_weight_decay ? static_cast<float>(1.0 - lr * wd) : 1.0f;
    float* p = slot.param->data();
    const float* g = entries[i].grad.data();
    float* m = slot.exp_avg.data();
    float* v = slot.exp_avg_sq.data();
    // Each element is updated on its own: the result does not depend on threads.
    detail::parallel_for_ranges(slot.param->numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      update(p, g, m, v, begin, end, si);
    });
  }
}

StateDict Adam::state_dict() const {
  StateDict out;
  out.emplace("step", AnyView(step_));
  for (const Slot& slot : slots_) {
    out.emplace("exp_avg." + slot.name, AnyView(slot.exp_avg));
    out.emplace("exp_avg_sq." + slot.name, AnyView(slot.exp_avg_sq));
  }
  return out;
}

void Adam::load_state_dict(const StateDict& state) {
  const auto find = [&](const std::string& name, DType dtype,
                        const std::vector<int64_t>& shape) -> const AnyView& {
    const auto it = state.find(name);
    const std::string want = fmt::format("{} {}", dtype_name(dtype), shape_string(shape));
    if (it == state.end())
      throw Error("optimizer state", fmt::format("a tensor \"{}\" ({})", name, want),
                  "no such name");
    if (it->second.empty() || it->second.dtype != dtype || it->second.shape != shape)
      throw Error(fmt::format("optimizer state[\"{}\"]", name), want, it->second.describe());
    return it->second;
  };
  std::size_t expected = 1;
  const AnyView& step = find("step", DType::Int64, {});
  const int64_t t = *static_cast<const int64_t*>(step.data);
  if (t < 0) throw Error("optimizer state[\"step\"]", "a step >= 0", fmt::format("{}", t));
  std::vector<std::pair<const AnyView*, Tensor<float>*>> copies;
  for (Slot& slot : slots_) {
    copies.emplace_back(&find("exp_avg." + slot.name, DType::Float32, slot.param->shape()),
                        &slot.exp_avg);
    copies.emplace_back(&find("exp_avg_sq." + slot.name, DType::Float32, slot.param->shape()),
                        &slot.exp_avg_sq);
    expected += 2;
  }
  if (state.size() != expected) {
    // The lambdas capture structured bindings by init-capture (`name = name`):
    // clang 14 (the fuzz preset) cannot capture them directly.
    for (const auto& [name, view] : state)
      if (name != "step" &&
          !std::any_of(slots_.begin(), slots_.end(), [&name = name](const Slot& s) {
            return name == "exp_avg." + s.name || name == "exp_avg_sq." + s.name;
          }))
        throw Error("optimizer state", "only step, exp_avg.<parameter>, exp_avg_sq.<parameter>",
                    fmt::format("unexpected tensor \"{}\" {}", name, view.describe()));
  }
  // Everything checked: copy (any strides) into the existing storage.
  for (auto& [src, dst] : copies) {
    float* out = dst->data();
    for_each_index(dst->shape(), [&out, src = src](std::span<const int64_t> index) {
      int64_t off = 0;
      for (std::size_t d = 0; d < index.size(); ++d) off += index[d] * src->strides[d];
      *out++ = static_cast<const float*>(src->data)[off];
    });
  }
  *step_.data() = t;
}

AdamOptions AdamW::default_options() {
  AdamOptions o;
  o.weight_decay = 0.01;
  o.decoupled_weight_decay = true;
  return o;
}

AdamW::AdamW(Module& module, AdamOptions options)
    : Adam(module, [&] {
        options.decoupled_weight_decay = true;
        return std::move(options);
      }()) {}

}  // namespace maskattn::nn
