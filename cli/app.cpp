#include "app.hpp"

#include <fmt/format.h>

#include "check.hpp"
#include "demo.hpp"
#include "embed.hpp"
#include "maskattn/version.hpp"
#include "train_mlm.hpp"
#include "viz.hpp"

namespace maskattn::cli {

std::unique_ptr<CLI::App> make_app(Mode mode) {
  auto app = std::make_unique<CLI::App>(
      "maskattn: Transformer attention with masks (look-ahead, padding, and the\n"
      "formats of PyTorch, Hugging Face and Keras), positional encoding, MLM masking.",
      "maskattn");
  app->set_version_flag("--version", fmt::format("maskattn {}", maskattn::kVersion),
                        "Print the version and exit");
  app->require_subcommand(0, 1);
  app->footer(
      "Start with `maskattn demo`: masks and attention step by step, a Transformer trained to\n"
      "copy (why the look-ahead mask exists), then a real model.\n"
      "`maskattn embed \"a sentence\" \"another\" --similarity`: sentence embeddings.\n"
      "`maskattn viz mask --causal --lengths 5,3,8`: pictures (also `viz pe`, `viz attention`).\n"
      "`maskattn check --from-sdpa mask.npy --expect-causal`: does a mask leak?\n"
      "`maskattn train-mlm`: masked-LM training of a small encoder, in about a minute.");
  add_demo_command(*app, mode);
  add_embed_command(*app, mode);
  add_viz_command(*app, mode);
  add_check_command(*app, mode);
  add_train_mlm_command(*app, mode);
  return app;
}

}  // namespace maskattn::cli
