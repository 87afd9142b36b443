// maskattn: command-line entry point. The app and its subcommands are in
// app.cpp; each subcommand lives in its own file and is a thin layer over the
// library.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <memory>

#include "app.hpp"

int main(int argc, char** argv) {
  const std::unique_ptr<CLI::App> app = maskattn::cli::make_app(maskattn::cli::Mode::Run);
  try {
    CLI11_PARSE(*app, argc, argv);
    // Nothing to do without a subcommand: say what there is.
    if (app->get_subcommands().empty()) fmt::print("{}", app->help());
  } catch (const std::exception& e) {
    // maskattn::Error messages already start with "maskattn: ".
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  return 0;
}
