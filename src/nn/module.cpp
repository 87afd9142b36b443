#include "maskattn/nn/module.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <set>

#include "core/counter_rng.hpp"

namespace maskattn::nn {
namespace {

// Distinct default seeds, in construction order.
uint64_t next_default_seed() {
  static std::atomic<uint64_t> n{0};
  return detail::counter_hash(0x6D61736B61747474ull, n++);
}

uint64_t name_hash(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

// `src` can be copied into `dst`: float32 or float64 of dst's shape.
void check_source(const std::string& name, const AnyView& src, const Tensor<float>& dst) {
  if (src.empty() && dst.numel() > 0)
    throw Error(fmt::format("state_dict[\"{}\"]", name), "a tensor", "nothing");
  if (src.dtype != DType::Float32 && src.dtype != DType::Float64)
    throw Error(fmt::format("state_dict[\"{}\"]", name),
                fmt::format("float32 or float64 of shape {}", shape_string(dst.shape())),
                src.describe());
  if (src.shape != dst.shape())
    throw Error(fmt::format("state_dict[\"{}\"]", name),
                fmt::format("shape {} (the module's)", shape_string(dst.shape())),
                shape_string(src.shape));
}

void copy_into(const AnyView& src, Tensor<float>& dst, const std::string& name) {
  int64_t e = 0;
  for_each_index(dst.shape(), [&](std::span<const int64_t> index) {
    const double x = src.at(index);
    if (!std::isfinite(x) || std::abs(x) > std::numeric_limits<float>::max())
      throw Error(fmt::format("state_dict[\"{}\"]", name), "finite float32 values",
                  fmt::format("{} at flat index {}", x, e));
    dst.data()[e++] = static_cast<float>(x);
  });
}

}  // namespace

Module::Module() : seed_(next_default_seed()) {}

void Module::for_each_param(const ParamFn&) {}
void Module::for_each_child(const ChildFn&) {}

void Module::visit_params(const std::string& prefix, const ParamFn& fn) {
  for_each_param([&](const std::string& name, Tensor<float>& p) { fn(prefix + name, p); });
  for_each_child(
      [&](const std::string& name, Module& child) { child.visit_params(prefix + name + ".", fn); });
}

std::vector<std::pair<std::string, Tensor<float>*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor<float>*>> out;
  visit_params("", [&](const std::string& name, Tensor<float>& p) { out.emplace_back(name, &p); });
  return out;
}

std::vector<std::pair<std::string, const Tensor<float>*>> Module::named_parameters() const {
  std::vector<std::pair<std::string, const Tensor<float>*>> out;
  for (auto& [name, p] : const_cast<Module*>(this)->named_parameters()) out.emplace_back(name, p);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, p] : named_parameters()) n += p->numel();
  return n;
}

StateDict Module::state_dict() const {
  StateDict out;
  for (const auto& [name, p] : named_parameters()) out.emplace(name, AnyView(*p));
  return out;
}

Module::LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  LoadResult result;
  std::vector<std::pair<std::string, Tensor<float>*>> present;  // (name, parameter) to load
  std::set<std::string> known;
  for (const auto& [name, p] : named_parameters()) {
    known.insert(name);
    const auto it = state.find(name);
    if (it == state.end()) {
      if (strict)
        throw Error("state_dict",
                    fmt::format("a tensor named \"{}\" (shape {})", name, shape_string(p->shape())),
                    "no such name");
      result.missing_keys.push_back(name);
      continue;
    }
    check_source(name, it->second, *p);
    present.emplace_back(name, p);
  }
  for (const auto& [name, view] : state)
    if (!known.count(name)) {
      if (strict)
        throw Error("state_dict", "only names the module has (strict)",
                    fmt::format("unexpected tensor \"{}\" {}", name, view.describe()));
      result.unexpected_keys.push_back(name);
    }
  // Values are checked while copying, so stage them: a non-finite value must
  // not leave half the parameters loaded.
  std::vector<Tensor<float>> staged;
  staged.reserve(present.size());
  for (const auto& [name, p] : present) {
    staged.emplace_back(p->shape());
    copy_into(state.at(name), staged.back(), name);
  }
  // Into the existing storage: views handed out earlier stay valid.
  for (std::size_t i = 0; i < present.size(); ++i)
    std::copy(staged[i].begin(), staged[i].end(), present[i].second->data());
  return result;
}

void Module::train(bool on) {
  training_ = on;
  for_each_child([&](const std::string&, Module& child) { child.train(on); });
}

void Module::seed(uint64_t seed) {
  seed_ = seed;
  draws_.n.store(0);
  for_each_child([&](const std::string& name, Module& child) {
    child.seed(detail::counter_hash(seed, name_hash(name)));
  });
}

void Module::visit_modules(const std::string& name,
                           const std::function<void(const std::string&, Module&)>& fn) {
  fn(name, *this);
  for_each_child([&](const std::string& child_name, Module& child) {
    child.visit_modules(name.empty() ? child_name : name + "." + child_name, fn);
  });
}

std::vector<Module::RandomStream> Module::random_state() const {
  std::vector<RandomStream> out;
  const_cast<Module*>(this)->visit_modules("", [&](const std::string& name, Module& m) {
    out.push_back({name, m.seed_, m.draws_.n.load()});
  });
  return out;
}

void Module::set_random_state(const std::vector<RandomStream>& state) {
  std::vector<Module*> modules;
  std::size_t i = 0;
  visit_modules("", [&](const std::string& name, Module& m) {
    if (i < state.size() && state[i].module != name)
      throw Error(fmt::format("random state[{}]", i), fmt::format("module \"{}\"", name),
                  fmt::format("module \"{}\"", state[i].module));
    modules.push_back(&m);
    ++i;
  });
  if (state.size() != modules.size())
    throw Error("random state", fmt::format("{} modules (this module's tree)", modules.size()),
                fmt::format("{}", state.size()));
  for (i = 0; i < modules.size(); ++i) {
    modules[i]->seed_ = state[i].seed;
    modules[i]->draws_.n.store(state[i].draws);
  }
}

uint64_t Module::next_draw_seed() const noexcept {
  return detail::counter_hash(seed_, draws_.n.fetch_add(1));
}

}  // namespace maskattn::nn
