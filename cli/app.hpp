// The maskattn app: every subcommand registered on one CLI::App. main() runs
// it; the CLI fuzzer (fuzz/cli_fuzzer.cpp) parses fuzzed arguments with it and
// checks the flags without running the commands.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace maskattn::cli {

// What a subcommand does once its flags are parsed.
enum class Mode {
  // Runs the command (main).
  Run,
  // Checks the flags as the command does and builds what they describe (the
  // mask of the mask flags, the output format, ...), then stops: no training,
  // model, attention or picture, no file written, no sentence read. Only the
  // arrays the mask flags name are read.
  CheckFlags,
};

// The app: its description, --version, the subcommands and the footer.
std::unique_ptr<CLI::App> make_app(Mode mode);

}  // namespace maskattn::cli
