// Training parts: maskattn.cross_entropy and maskattn.Gradients, and the
// submodule maskattn.optim (Adam, AdamW, the rate schedules, checkpoints);
// include/maskattn/nn/{cross_entropy,gradients,adam,lr_schedule,checkpoint}.hpp.
#include <fmt/format.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/nn/adam.hpp"
#include "maskattn/nn/checkpoint.hpp"
#include "maskattn/nn/cross_entropy.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/lr_schedule.hpp"

namespace maskattn::python {
namespace {

// ---- cross_entropy ---------------------------------------------------------------

nb::tuple cross_entropy_py(nb::handle logits_obj, nb::handle targets_obj, int64_t ignore_index,
                           double label_smoothing, const std::string& reduction, bool grad) {
  const std::string want = "a float32 array (*, C)";
  const ArrayArg logits = read_array(logits_obj, "logits", want);
  const AnyView& v = logits.view;
  if (v.empty() || v.dtype != DType::Float32 || v.rank() < 1)
    throw Error("logits", want, v.empty() ? "None" : v.describe());
  const int64_t classes = v.shape.back();
  const std::vector<int64_t> lead(v.shape.begin(), v.shape.end() - 1);
  const Tensor<int64_t> targets = read_int64_tensor(
      targets_obj, "targets", fmt::format("shape {} (the logits' without C)", shape_string(lead)));
  if (targets.shape() != lead)
    throw Error("targets", fmt::format("shape {} (the logits' without C)", shape_string(lead)),
                shape_string(targets.shape()));
  // (*, C) as rows: the array itself when rank 2 or contiguous, else a copy.
  const int64_t rows = targets.numel();
  Tensor<float> copy;
  View<const float, 2> z;
  if (v.rank() == 2)
    z = View<const float, 2>(static_cast<const float*>(v.data), {rows, classes}, {v.strides[0], 1});
  else if (v.is_contiguous())
    z = View<const float, 2>(static_cast<const float*>(v.data), {rows, classes});
  else {
    copy = to_float32(v);
    z = View<const float, 2>(copy.data(), {rows, classes});
  }
  nn::CrossEntropyOptions o;
  o.ignore_index = ignore_index;
  o.label_smoothing = label_smoothing;
  o.reduction = read_choice<nn::Reduction>(
      "reduction", reduction, {{"mean", nn::Reduction::Mean}, {"sum", nn::Reduction::Sum}});
  Tensor<float> d;
  if (grad) d = Tensor<float>(v.shape);
  nn::CrossEntropyResult r;
  {
    nb::gil_scoped_release release;
    r = nn::cross_entropy(z, View<const int64_t, 1>(targets.data(), {rows}), o,
                          grad ? View<float, 2>(d.data(), {rows, classes}) : View<float, 2>());
  }
  nb::object dlogits = grad ? to_numpy(std::move(d)) : nb::none();
  return nb::make_tuple(r.loss, dlogits);
}

// ---- Gradients ---------------------------------------------------------------------

// name -> writable float32 arrays of `storage` that keep `owner` alive.
nb::dict tensors_py(nb::handle owner,
                    const std::vector<std::pair<std::string, Tensor<float>*>>& ts) {
  nb::dict out;
  for (const auto& [name, t] : ts) {
    std::vector<std::size_t> shape(t->shape().begin(), t->shape().end());
    out[name.c_str()] =
        nb::ndarray<nb::numpy, float>(t->data(), shape.size(), shape.data(), owner).cast();
  }
  return out;
}

void bind_gradients(nb::module_& m) {
  nb::class_<nn::Gradients>(
      m, "Gradients",
      "One gradient array per parameter of a module (zeros at first): what a backward\n"
      "pass adds into and what an optimizer's step() reads.")
      .def(nb::init<nn::Module&>(), "module"_a, nb::keep_alive<1, 2>())
      .def(
          "state_dict",
          [](nb::handle self) {
            auto& g = nb::cast<nn::Gradients&>(self);
            std::vector<std::pair<std::string, Tensor<float>*>> ts;
            for (auto& e : g.entries()) ts.emplace_back(e.name, &e.grad);
            return tensors_py(self, ts);
          },
          "The gradients by parameter name, as float32 numpy arrays that share the\n"
          "gradients' memory (write into them to set a gradient).")
      .def("zero", &nn::Gradients::zero, "Sets every gradient to 0.")
      .def("norm", &nn::Gradients::norm, "The global L2 norm over every gradient.")
      .def("clip_norm", &nn::Gradients::clip_norm, "max_norm"_a,
           "torch.nn.utils.clip_grad_norm_: when the global norm exceeds max_norm, scales\n"
           "every gradient by max_norm / (norm + 1e-6). Returns the norm before clipping;\n"
           "ValueError naming the gradient when a value is NaN or infinite.");
}

// ---- optim.Adam, optim.AdamW -----------------------------------------------------------

nn::AdamOptions adam_options(double lr, std::pair<double, double> betas, double eps,
                             double weight_decay, std::vector<std::string> no_weight_decay,
                             bool decoupled) {
  nn::AdamOptions o;
  o.lr = lr;
  o.beta1 = betas.first;
  o.beta2 = betas.second;
  o.eps = eps;
  o.weight_decay = weight_decay;
  o.no_weight_decay = std::move(no_weight_decay);
  o.decoupled_weight_decay = decoupled;
  return o;
}

nb::dict optimizer_state_py(const nn::Adam& opt) {
  // Copies: the state changes at every step.
  nb::dict out;
  for (const auto& [name, view] : opt.state_dict()) {
    if (view.dtype == DType::Int64) {
      Tensor<int64_t> t(view.shape);
      *t.data() = *static_cast<const int64_t*>(view.data);
      out[name.c_str()] = to_numpy(std::move(t));
    } else {
      out[name.c_str()] = to_numpy(to_float32(view));
    }
  }
  return out;
}

void load_optimizer_state_py(nn::Adam& opt, nb::handle state) {
  const ArrayDict arrays = read_array_dict(state, "state");
  const nn::StateDict& views = arrays.views;
  opt.load_state_dict(views);
}

const char* kStepDoc =
    "One step with the gradients (a Gradients of the same module) at rate lr, or at\n"
    "the optimizer's lr when None.";

void bind_optimizers(nb::module_& optim) {
  nb::class_<nn::Adam>(
      optim, "Adam",
      "torch.optim.Adam (amsgrad=False) over a module's parameters: same update, in\n"
      "float32 in torch's order of operations. weight_decay is the L2 penalty added to\n"
      "the gradient; parameters named in no_weight_decay have none (torch's second\n"
      "parameter group).")
      .def(
          "__init__",
          [](nn::Adam* self, nn::Module& module, double lr, std::pair<double, double> betas,
             double eps, double weight_decay, std::vector<std::string> no_weight_decay) {
            new (self) nn::Adam(module, adam_options(lr, betas, eps, weight_decay,
                                                     std::move(no_weight_decay), false));
          },
          "module"_a, "lr"_a = 1e-3, "betas"_a = std::make_pair(0.9, 0.999), "eps"_a = 1e-8,
          "weight_decay"_a = 0.0, nb::kw_only(), "no_weight_decay"_a = std::vector<std::string>(),
          nb::keep_alive<1, 2>())
      .def(
          "step",
          [](nn::Adam& opt, const nn::Gradients& grads, std::optional<double> lr) {
            nb::gil_scoped_release release;
            if (lr)
              opt.step(grads, *lr);
            else
              opt.step(grads);
          },
          "grads"_a, "lr"_a.none() = nb::none(), kStepDoc)
      .def("state_dict", &optimizer_state_py,
           "The state as a dict of numpy copies: \"step\" (int64, shape ()), and\n"
           "\"exp_avg.<name>\", \"exp_avg_sq.<name>\" per parameter (float32).")
      .def("load_state_dict", &load_optimizer_state_py, "state"_a,
           "Restores a state_dict(): exactly its names, dtypes and shapes (ValueError\n"
           "naming the tensor otherwise; nothing changes unless all check).")
      .def_prop_rw(
          "lr", [](const nn::Adam& opt) { return opt.options().lr; }, &nn::Adam::set_lr,
          "The rate step() uses when given none.")
      .def_prop_ro("steps", &nn::Adam::steps, "Steps taken (torch's state['step']).")
      .def_prop_ro(
          "betas",
          [](const nn::Adam& opt) {
            return std::make_pair(opt.options().beta1, opt.options().beta2);
          },
          "(beta1, beta2).")
      .def_prop_ro(
          "eps", [](const nn::Adam& opt) { return opt.options().eps; }, "eps.")
      .def_prop_ro(
          "weight_decay", [](const nn::Adam& opt) { return opt.options().weight_decay; },
          "weight_decay.");

  nb::class_<nn::AdamW, nn::Adam>(
      optim, "AdamW",
      "torch.optim.AdamW: Adam with decoupled weight decay, p <- p (1 - lr\n"
      "weight_decay) before the update; parameters named in no_weight_decay have none.")
      .def(
          "__init__",
          [](nn::AdamW* self, nn::Module& module, double lr, std::pair<double, double> betas,
             double eps, double weight_decay, std::vector<std::string> no_weight_decay) {
            new (self) nn::AdamW(module, adam_options(lr, betas, eps, weight_decay,
                                                      std::move(no_weight_decay), true));
          },
          "module"_a, "lr"_a = 1e-3, "betas"_a = std::make_pair(0.9, 0.999), "eps"_a = 1e-8,
          "weight_decay"_a = 1e-2, nb::kw_only(), "no_weight_decay"_a = std::vector<std::string>(),
          nb::keep_alive<1, 2>());

  optim.def(
      "rank1_parameter_names",
      [](const nn::Module& module) { return nn::rank1_parameter_names(module); }, "module"_a,
      "Names of the module's rank-1 parameters (biases, LayerNorm weights): the usual\n"
      "no_weight_decay.");
}

// ---- optim: schedules ----------------------------------------------------------------

void bind_schedules(nb::module_& optim) {
  optim.def("noam", &nn::noam_rate, "step"_a, "d_model"_a, "factor"_a = 1.0, "warmup"_a = 4000,
            "The Transformer's rate (the Annotated Transformer's rate()):\n"
            "factor * d_model**-0.5 * min(s**-0.5, s * warmup**-1.5), s = max(step, 1).\n"
            "step: the optimizer's steps before this one (LambdaLR's counter).");
  optim.def("inverse_sqrt", &nn::inverse_sqrt_rate, "step"_a, "peak"_a, "warmup"_a,
            "Linear warm-up to peak over warmup steps, then peak * sqrt(warmup / s),\n"
            "s = max(step, 1).");
  optim.def("warmup_constant", &nn::warmup_constant_rate, "step"_a, "peak"_a, "warmup"_a,
            "Linear warm-up to peak over warmup steps, then peak; s = max(step, 1).");
}

// ---- optim: checkpoints ----------------------------------------------------------------

template <class T>
nb::object copy_out(const AnyView& v) {
  Tensor<T> t(v.shape);
  T* out = t.data();
  for_each_index(v.shape, [&](std::span<const int64_t> index) {
    int64_t off = 0;
    for (std::size_t d = 0; d < index.size(); ++d) off += index[d] * v.strides[d];
    *out++ = static_cast<const T*>(v.data)[off];
  });
  return to_numpy(std::move(t));
}

nb::object copy_out_any(const AnyView& v) {
  switch (v.dtype) {
    case DType::Bool: return copy_out<bool>(v);
    case DType::UInt8: return copy_out<uint8_t>(v);
    case DType::Int32: return copy_out<int32_t>(v);
    case DType::Int64: return copy_out<int64_t>(v);
    case DType::Float32: return copy_out<float>(v);
    case DType::Float64: return copy_out<double>(v);
  }
  return nb::none();
}

void save_checkpoint_py(nb::handle path, const nn::Module& model, const nn::Adam& optimizer,
                        int64_t step, nb::handle tensors, nb::handle metadata) {
  const std::string p = read_path(path);
  nn::CheckpointExtra extra;
  extra.step = step;
  ArrayDict arrays;  // keeps the tensors' memory alive until the file is written
  if (!tensors.is_none()) {
    arrays = read_array_dict(tensors, "tensors");
    extra.tensors = arrays.views;
  }
  if (!metadata.is_none()) extra.metadata = read_str_dict(metadata, "metadata");
  nb::gil_scoped_release release;
  nn::save_checkpoint(p, model, optimizer, extra);
}

nb::tuple load_checkpoint_py(nb::handle path, nn::Module& model, nn::Adam& optimizer) {
  const std::string p = read_path(path);
  const nn::LoadedCheckpoint loaded = [&] {
    nb::gil_scoped_release release;
    return nn::load_checkpoint(p, model, optimizer);
  }();
  nb::dict tensors;
  for (const auto& [name, view] : loaded.extra.tensors) tensors[name.c_str()] = copy_out_any(view);
  return nb::make_tuple(loaded.extra.step, tensors, loaded.extra.metadata);
}

void bind_checkpoints(nb::module_& optim) {
  optim.def("save_checkpoint", &save_checkpoint_py, "path"_a, "model"_a, "optimizer"_a,
            "step"_a = 0, "tensors"_a.none() = nb::none(), "metadata"_a.none() = nb::none(),
            "Saves a training run as one safetensors file: the model's parameters, the\n"
            "optimizer's state and hyperparameters, every module's dropout stream, and the\n"
            "caller's step, tensors (dict of arrays) and metadata (dict of str -> str).\n"
            "Written under a temporary name and renamed over path.");
  optim.def("load_checkpoint", &load_checkpoint_py, "path"_a, "model"_a, "optimizer"_a,
            "Restores model and optimizer from a file save_checkpoint wrote and returns\n"
            "(step, tensors, metadata), the caller's part (tensors as numpy copies).\n"
            "ValueError naming the file when it is no checkpoint, one of a different model\n"
            "(the message lists the parameters that differ) or of another optimizer\n"
            "(Adam vs AdamW, betas, eps, weight_decay, no_weight_decay); then nothing\n"
            "changes.");
}

}  // namespace

void bind_train(nb::module_& m) {
  m.def("cross_entropy", &cross_entropy_py, "logits"_a, "targets"_a, nb::kw_only(),
        "ignore_index"_a = -100, "label_smoothing"_a = 0.0, "reduction"_a = "mean", "grad"_a = true,
        R"(torch.nn.functional.cross_entropy with class indices, and its gradient.

logits: float32 (*, C), classes last (a (B, L, V) language-model output with
(B, L) labels works directly); targets: integers of shape (*), each in [0, C)
or ignore_index. label_smoothing in [0, 1] as torch defines it; reduction
"mean" (over the targets not ignored) or "sum". Returns (loss, dlogits): the
loss as a float and the gradient of that loss with respect to the logits
(None with grad=False). With every target ignored the loss is 0 and dlogits
zeros (torch's mean: NaN).)");
  bind_gradients(m);
  nb::module_ optim = m.def_submodule(
      "optim", "Adam, AdamW, learning-rate schedules and checkpoints (maskattn/optim.py).");
  bind_optimizers(optim);
  bind_schedules(optim);
  bind_checkpoints(optim);
}

}  // namespace maskattn::python
