#include "maskattn/nn/gradients.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace maskattn::nn {

Gradients::Gradients(Module& module) {
  for (auto& [name, param] : module.named_parameters()) {
    index_.emplace(param, entries_.size());
    Tensor<float> grad(param->shape());
    std::fill(grad.begin(), grad.end(), 0.0f);
    entries_.push_back({name, param, std::move(grad)});
  }
}

Tensor<float>& Gradients::operator[](const Tensor<float>& param) {
  const auto it = index_.find(&param);
  if (it == index_.end())
    throw Error("Gradients", "a parameter of the module the gradients were made for",
                fmt::format("a tensor of shape {} that is not one", shape_string(param.shape())));
  return entries_[it->second].grad;
}

const Tensor<float>& Gradients::operator[](const Tensor<float>& param) const {
  return const_cast<Gradients&>(*this)[param];
}

StateDict Gradients::state_dict() const {
  StateDict out;
  for (const Entry& e : entries_) out.emplace(e.name, AnyView(e.grad));
  return out;
}

void Gradients::zero() {
  for (Entry& e : entries_) std::fill(e.grad.begin(), e.grad.end(), 0.0f);
}

double Gradients::norm() const {
  double sum = 0.0;
  for (const Entry& e : entries_)
    for (float g : e.grad) sum += static_cast<double>(g) * g;
  return std::sqrt(sum);
}

double Gradients::clip_norm(double max_norm) {
  if (!std::isfinite(max_norm) || max_norm <= 0.0)
    throw Error("clip_norm: max_norm", "finite and > 0", fmt::format("{}", max_norm));
  const double total = norm();
  if (!std::isfinite(total)) {
    for (const Entry& e : entries_)
      for (float g : e.grad)
        if (!std::isfinite(g))
          throw Error(fmt::format("gradient of \"{}\"", e.name),
                      "finite values (training diverged)", fmt::format("{}", g));
  }
  if (total > max_norm) {
    const auto f = static_cast<float>(max_norm / (total + 1e-6));
    for (Entry& e : entries_)
      for (float& g : e.grad) g *= f;
  }
  return total;
}

}  // namespace maskattn::nn
