// Modules: parameters under PyTorch's state_dict names, training mode, seeds.
//
// Every module of maskattn::nn derives from Module. It lists its own
// parameters and its children by name (for_each_param / for_each_child), and
// Module builds the rest on that: named_parameters() with dotted names
// ("self_attn.in_proj_weight", "layers.0.linear1.bias", as torch names them),
// state_dict() / load_state_dict(), train() / eval(), seed().
//
// Forward passes read the parameters and write caller-provided outputs; their
// scratch memory comes from a per-thread arena kept between calls, so a module
// may run forward passes on several threads at once (its parameters are only
// read). Changing parameters (load_state_dict) while a forward pass runs is a
// data race, as with any shared object.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn::nn {

// Tensors by name; what state_dict() returns and load_state_dict() reads
// (SafetensorsFile::views() has the same type).
using StateDict = std::map<std::string, AnyView>;

class Module {
 public:
  virtual ~Module() = default;

  // Every parameter with its full dotted name, own parameters first, then each
  // child's in order: PyTorch's state_dict order.
  std::vector<std::pair<std::string, Tensor<float>*>> named_parameters();
  std::vector<std::pair<std::string, const Tensor<float>*>> named_parameters() const;
  int64_t num_parameters() const;

  // Views of the parameters (valid while the module lives and keeps its shape).
  StateDict state_dict() const;

  // Names a non-strict load passed over.
  struct LoadResult {
    std::vector<std::string> missing_keys;     // parameters `state` lacks (left as they were)
    std::vector<std::string> unexpected_keys;  // names the module does not have (ignored)
  };

  // Copies every parameter from `state` (float32 or float64, exactly the
  // parameter's shape, any strides). Throws Error naming the tensor for a
  // wrong shape or dtype or a non-finite value, and — when `strict`, as in
  // torch — for a missing name or a name the module does not have. Nothing is
  // changed unless everything checks.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // Training mode (dropout active) for this module and its children.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const noexcept { return training_; }

  // Sets the random streams (dropout) of this module and every child: each
  // gets its own, derived from `seed` and its name, so two runs with the same
  // seed draw the same numbers. Modules are seeded distinctly at construction.
  void seed(uint64_t seed);
  uint64_t seed_value() const noexcept { return seed_; }

  // Where the random streams of this module and of every module below it
  // stand: each one's dotted name ("" for this one), seed and draws taken, in
  // for_each_child order. A checkpoint saves it, so a resumed run draws the
  // dropout masks a run without the break would have drawn.
  struct RandomStream {
    std::string module;
    uint64_t seed = 0;
    uint64_t draws = 0;
  };
  std::vector<RandomStream> random_state() const;
  // Restores random_state() (of a module of the same structure); Error naming
  // the first module whose name differs, or the count. Nothing is changed
  // unless all match.
  void set_random_state(const std::vector<RandomStream>& state);

 protected:
  Module();
  Module(const Module&) = default;
  Module& operator=(const Module&) = default;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;

  using ParamFn = std::function<void(const std::string& name, Tensor<float>& param)>;
  using ChildFn = std::function<void(const std::string& name, Module& child)>;
  // A module's own parameters, by their names relative to it.
  virtual void for_each_param(const ParamFn& fn);
  // A module's direct children, by their names relative to it.
  virtual void for_each_child(const ChildFn& fn);

  // The seed of this call's random draws: a forward pass in training mode
  // takes one per call, so successive calls draw fresh numbers and a run
  // replays exactly from the same seed (and the same order of calls).
  uint64_t next_draw_seed() const noexcept;

 private:
  // fn(full dotted name, parameter) for this module's parameters, then its
  // children's, recursively.
  void visit_params(const std::string& prefix, const ParamFn& fn);
  // fn(full dotted name, module) for this module, then its children, recursively.
  void visit_modules(const std::string& name,
                     const std::function<void(const std::string&, Module&)>& fn);

  // Copyable atomic counter (copies start from the same count).
  struct DrawCounter {
    mutable std::atomic<uint64_t> n{0};
    DrawCounter() = default;
    DrawCounter(const DrawCounter& o) : n(o.n.load()) {}
    DrawCounter& operator=(const DrawCounter& o) {
      n.store(o.n.load());
      return *this;
    }
  };

  bool training_ = true;
  uint64_t seed_ = 0;
  DrawCounter draws_;
};

}  // namespace maskattn::nn
