// `maskattn check`: the mask of the flags against the expectation of the
// --expect- flags, by check_leaks(); prints the verdict and the first leaks.
#include "check.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "mask_flags.hpp"
#include "maskattn/leak_check.hpp"

namespace maskattn::cli {
namespace {

struct CheckCommand {
  MaskFlags mask, expect;
  int64_t head_dim = 16;
  uint64_t seed = 0;
  std::string backend = "auto";
  std::optional<float> scale;
  float tolerance = 0.0f;
  int64_t show = 10;
};

Backend read_backend(const std::string& name) {
  if (name == "auto") return Backend::Auto;
  if (name == "flash") return Backend::Flash;
  if (name == "reference") return Backend::Reference;
  throw Error("--backend", "auto, flash or reference", name);
}

// The library's option names as the flags that set them.
LeakReport run_named(const Mask& mask, const Mask& expect, const MaskShape& shape,
                     const LeakCheckOptions& opts) {
  try {
    return check_leaks(mask, expect, shape, opts);
  } catch (const Error& e) {
    const std::string& arg = e.argument();
    for (const auto& [option, flag] :
         {std::pair{"opts.head_dim", "--head-dim"}, std::pair{"opts.tolerance", "--tolerance"},
          std::pair{"opts.max_listed", "--show"}, std::pair{"opts.attention.scale", "--scale"}})
      if (arg == option) throw Error(flag, e.expected(), e.actual());
    throw;
  }
}

// The flags checked and turned into what check_leaks() takes.
struct PreparedCheck {
  BuiltMask tested, expect;
  MaskShape shape;
  LeakCheckOptions opts;
};

PreparedCheck prepare_check(const CheckCommand& c) {
  MaskFlags expect_flags = c.expect;
  expect_flags.heads = c.mask.heads;  // a 3-D --expect-from-torch-mha is (B * heads, L, S)
  PreparedCheck p{build_mask(c.mask), build_mask(expect_flags), {}, {}};
  if (p.expect.mask.allows_all())
    throw Error("--expect-*",
                "an expectation: what the mask must hide (--expect-causal, --expect-lengths, "
                "--expect-window, --expect-documents, ...)",
                "none");
  p.shape = resolve_shape(c.mask, {p.tested.implied, p.expect.implied});
  p.opts.head_dim = c.head_dim;
  p.opts.seed = c.seed;
  p.opts.tolerance = c.tolerance;
  p.opts.max_listed = c.show;
  p.opts.attention.backend = read_backend(c.backend);
  p.opts.attention.scale = c.scale;
  return p;
}

void run_check(const CheckCommand& c) {
  const auto& [tested, expect, shape, opts] = prepare_check(c);
  fmt::print("mask under test: {}\n", tested.mask.describe());
  fmt::print("must be hidden:  what {} hides\n", expect.mask.describe());
  fmt::print("over (B={}, H={}, Lq={}, Lk={}), random q, k, v with D = {}, {} backend\n",
             shape.batch, shape.heads, shape.q_len, shape.k_len, c.head_dim,
             backend_name(opts.attention.backend));
  const LeakReport report = run_named(tested.mask, expect.mask, shape, opts);
  fmt::print("{}", describe(report));
  std::fflush(stdout);
  if (report.leaks_found()) throw CLI::RuntimeError(kLeakExitCode);
}

}  // namespace

void add_check_command(CLI::App& app, Mode mode) {
  auto c = std::make_shared<CheckCommand>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Leak check: perturb the keys a mask must hide and prove the other queries' outputs do "
      "not change; exit status 2 on a leak");
  add_mask_flags(*cmd, c->mask, /*shape_flags=*/true, "", "The mask under test");
  add_mask_flags(*cmd, c->expect, /*shape_flags=*/false, "expect-",
                 "What must be hidden (the same flags, --expect-...)");
  cmd->add_option("--head-dim", c->head_dim, "D of the random q, k, v [16]");
  cmd->add_option("--seed", c->seed, "Seed of q, k, v and the perturbations [0]");
  cmd->add_option("--backend", c->backend, "auto, flash or reference [auto]");
  cmd->add_option("--scale", c->scale, "Score scale [1/sqrt(D)]");
  cmd->add_option("--tolerance", c->tolerance,
                  "A change of at most this much is no leak [0: outputs must be identical]");
  cmd->add_option("--show", c->show, "Leaks listed [10]");
  cmd->footer(
      "Examples:\n"
      "  maskattn check --from-torch-mha mask.npy --expect-causal\n"
      "  maskattn check --causal bottom-right --q-len 4 --k-len 12 --expect-causal\n"
      "  maskattn check --causal --expect-causal --expect-lengths 5,3,8\n"
      "  maskattn check --from-hf attention_mask.npy --expect-lengths 7,4");
  cmd->callback([c, mode] {
    if (mode == Mode::Run)
      run_check(*c);
    else
      (void)prepare_check(*c);
  });
}

}  // namespace maskattn::cli
