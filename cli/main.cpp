// maskattn: command-line entry point. Registers the subcommands; each lives in
// its own file and is a thin layer over the library.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "check.hpp"
#include "demo.hpp"
#include "embed.hpp"
#include "maskattn/version.hpp"
#include "train_mlm.hpp"
#include "viz.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "maskattn: Transformer attention with masks (look-ahead, padding, and the\n"
      "formats of PyTorch, Hugging Face and Keras), positional encoding, MLM masking.",
      "maskattn"};
  app.set_version_flag("--version", fmt::format("maskattn {}", maskattn::kVersion),
                       "Print the version and exit");
  app.require_subcommand(0, 1);
  app.footer(
      "Start with `maskattn demo`: masks and attention step by step, a Transformer trained to\n"
      "copy (why the look-ahead mask exists), then a real model.\n"
      "`maskattn embed \"a sentence\" \"another\" --similarity`: sentence embeddings.\n"
      "`maskattn viz mask --causal --lengths 5,3,8`: pictures (also `viz pe`, `viz attention`).\n"
      "`maskattn check --from-sdpa mask.npy --expect-causal`: does a mask leak?\n"
      "`maskattn train-mlm`: masked-LM training of a small encoder, in about a minute.");
  maskattn::cli::add_demo_command(app);
  maskattn::cli::add_embed_command(app);
  maskattn::cli::add_viz_command(app);
  maskattn::cli::add_check_command(app);
  maskattn::cli::add_train_mlm_command(app);
  try {
    CLI11_PARSE(app, argc, argv);
    // Nothing to do without a subcommand: say what there is.
    if (app.get_subcommands().empty()) fmt::print("{}", app.help());
  } catch (const std::exception& e) {
    // maskattn::Error messages already start with "maskattn: ".
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  return 0;
}
