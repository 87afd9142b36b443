#include "maskattn/nn/checkpoint.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace maskattn::nn {
namespace {

constexpr std::string_view kFormat = "maskattn-checkpoint-1";
constexpr std::string_view kModel = "model.";
constexpr std::string_view kOptimizer = "optimizer.";
constexpr std::string_view kExtra = "extra.";

std::string file_arg(const std::string& path) { return fmt::format("checkpoint \"{}\"", path); }

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

std::string random_state_text(const Module& model) {
  std::string out;
  for (const auto& s : model.random_state())
    out += fmt::format("{} {} {}\n", s.module, s.seed, s.draws);
  return out;
}

template <class T>
bool parse_number(std::string_view text, T& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

// The tensors of `file` under `prefix`, without it.
StateDict under(const std::map<std::string, AnyView>& views, std::string_view prefix) {
  StateDict out;
  for (const auto& [name, view] : views)
    if (std::string_view(name).starts_with(prefix)) out.emplace(name.substr(prefix.size()), view);
  return out;
}

// Every difference between what `want` (name -> dtype, shape) needs and what
// `have` holds, as "missing x; unexpected y; z: F32 (3, 4) where ... has F32 (4, 3)".
std::string differences(const StateDict& want, const StateDict& have, std::string_view prefix,
                        std::string_view owner) {
  std::vector<std::string> out;
  for (const auto& [name, w] : want) {
    const auto it = have.find(name);
    if (it == have.end())
      out.push_back(fmt::format("missing {}{} {}", prefix, name, w.describe()));
    else if (it->second.dtype != w.dtype || it->second.shape != w.shape)
      out.push_back(fmt::format("{}{} is {} where the {} has {}", prefix, name,
                                it->second.describe(), owner, w.describe()));
  }
  for (const auto& [name, h] : have)
    if (!want.count(name))
      out.push_back(fmt::format("unexpected {}{} {}", prefix, name, h.describe()));
  std::string text;
  const std::size_t shown = std::min<std::size_t>(out.size(), 6);
  for (std::size_t i = 0; i < shown; ++i) text += (i ? "; " : "") + out[i];
  if (out.size() > shown) text += fmt::format("; and {} more", out.size() - shown);
  return text;
}

const std::string& metadata_value(const std::map<std::string, std::string>& md,
                                  const std::string& key, const std::string& path) {
  const auto it = md.find(key);
  if (it == md.end())
    throw Error(file_arg(path), fmt::format("metadata \"{}\" (a maskattn checkpoint's)", key),
                "no such key");
  return it->second;
}

std::vector<Module::RandomStream> parse_random_state(const std::string& text,
                                                     const std::string& path) {
  std::vector<Module::RandomStream> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    // "name seed draws"; the root's name is empty (the line starts with a space).
    const auto last = line.rfind(' ');
    const auto mid =
        last == std::string::npos || last == 0 ? std::string::npos : line.rfind(' ', last - 1);
    Module::RandomStream s;
    if (mid == std::string::npos ||
        !parse_number(std::string_view(line).substr(mid + 1, last - mid - 1), s.seed) ||
        !parse_number(std::string_view(line).substr(last + 1), s.draws))
      throw Error(file_arg(path), "random_state lines \"module seed draws\"",
                  fmt::format("\"{}\"", line));
    s.module = line.substr(0, mid);
    out.push_back(std::move(s));
  }
  return out;
}

void check_optimizer(const std::map<std::string, std::string>& md, const Adam& optimizer,
                     const std::string& path) {
  const std::string& kind = metadata_value(md, "optimizer", path);
  if (kind != optimizer.name())
    throw Error(file_arg(path), fmt::format("a checkpoint of an {} optimizer", optimizer.name()),
                fmt::format("one of {}", kind));
  const AdamOptions& o = optimizer.options();
  const std::pair<const char*, double> numbers[] = {
      {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"weight_decay", o.weight_decay}};
  for (const auto& [name, value] : numbers) {
    const std::string& text = metadata_value(md, fmt::format("optimizer.{}", name), path);
    double saved = 0.0;
    if (!parse_number(text, saved) || saved != value)
      throw Error(
          fmt::format("{}: optimizer {}", file_arg(path), name),
          fmt::format("{} (the optimizer's: a resumed run keeps its hyperparameters)", value),
          text);
  }
  const std::string& exempt = metadata_value(md, "optimizer.no_weight_decay", path);
  if (exempt != join_lines(o.no_weight_decay))
    throw Error(fmt::format("{}: optimizer no_weight_decay", file_arg(path)),
                fmt::format("the optimizer's {} names", o.no_weight_decay.size()),
                fmt::format("other names: \"{}\"", exempt));
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Adam& optimizer,
                     const CheckpointExtra& extra) {
  if (extra.step < 0)
    throw Error("save_checkpoint: step", "a step >= 0", fmt::format("{}", extra.step));
  std::map<std::string, AnyView> tensors;
  for (const auto& [name, view] : model.state_dict())
    tensors.emplace(std::string(kModel) + name, view);
  for (const auto& [name, view] : optimizer.state_dict())
    tensors.emplace(std::string(kOptimizer) + name, view);
  for (const auto& [name, view] : extra.tensors) {
    if (view.empty())
      throw Error(fmt::format("save_checkpoint: extra tensor \"{}\"", name), "a tensor", "nothing");
    tensors.emplace(std::string(kExtra) + name, view);
  }
  const AdamOptions& o = optimizer.options();
  std::map<std::string, std::string> md = {
      {"format", std::string(kFormat)},
      {"step", fmt::format("{}", extra.step)},
      {"optimizer", optimizer.name()},
      {"optimizer.lr", fmt::format("{}", o.lr)},
      {"optimizer.beta1", fmt::format("{}", o.beta1)},
      {"optimizer.beta2", fmt::format("{}", o.beta2)},
      {"optimizer.eps", fmt::format("{}", o.eps)},
      {"optimizer.weight_decay", fmt::format("{}", o.weight_decay)},
      {"optimizer.no_weight_decay", join_lines(o.no_weight_decay)},
      {"random_state", random_state_text(model)},
  };
  for (const auto& [key, value] : extra.metadata) md.emplace(std::string(kExtra) + key, value);
  save_safetensors(path, tensors, md);
}

LoadedCheckpoint load_checkpoint(const std::string& path, Module& model, Adam& optimizer) {
  SafetensorsFile file = SafetensorsFile::open(path);
  const auto& md = file.metadata();
  const auto format = md.find("format");
  if (format == md.end() || format->second != kFormat)
    throw Error(file_arg(path),
                fmt::format("a maskattn checkpoint (metadata format \"{}\")", kFormat),
                format == md.end() ? "a safetensors file without it"
                                   : fmt::format("format \"{}\"", format->second));
  const std::map<std::string, AnyView> views = file.views();

  // Check everything before changing anything.
  const StateDict params = under(views, kModel);
  const std::string model_diff = differences(model.state_dict(), params, kModel, "model");
  if (!model_diff.empty())
    throw Error(file_arg(path),
                fmt::format("the {} parameters of this model", model.state_dict().size()),
                "a checkpoint of a different model: " + model_diff);
  check_optimizer(md, optimizer, path);
  const StateDict state = under(views, kOptimizer);
  const std::string optimizer_diff =
      differences(optimizer.state_dict(), state, kOptimizer, "optimizer");
  if (!optimizer_diff.empty())
    throw Error(file_arg(path), "the state of this optimizer", optimizer_diff);
  double lr = 0.0;
  const std::string& lr_text = metadata_value(md, "optimizer.lr", path);
  if (!parse_number(lr_text, lr))
    throw Error(fmt::format("{}: optimizer lr", file_arg(path)), "a number", lr_text);
  const auto streams = parse_random_state(metadata_value(md, "random_state", path), path);
  const auto current = model.random_state();
  bool same_tree = streams.size() == current.size();
  for (std::size_t i = 0; same_tree && i < streams.size(); ++i)
    same_tree = streams[i].module == current[i].module;
  if (!same_tree)
    throw Error(file_arg(path),
                fmt::format("the random streams of this model's {} modules", current.size()),
                fmt::format("those of another tree of {} modules", streams.size()));
  LoadedCheckpoint out{{}, file};
  const std::string& step_text = metadata_value(md, "step", path);
  if (!parse_number(step_text, out.extra.step) || out.extra.step < 0)
    throw Error(fmt::format("{}: step", file_arg(path)), "a step >= 0", step_text);
  for (const auto& [key, value] : md)
    if (std::string_view(key).starts_with(kExtra))
      out.extra.metadata.emplace(key.substr(kExtra.size()), value);
  out.extra.tensors = under(views, kExtra);

  model.load_state_dict(params);
  optimizer.load_state_dict(state);
  optimizer.set_lr(lr);
  model.set_random_state(streams);
  return out;
}

}  // namespace maskattn::nn
