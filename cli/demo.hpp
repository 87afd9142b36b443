// `maskattn demo`: the write-ups' worked examples, printed step by step on
// built-in data, using only the public API.
#pragma once

#include <CLI/CLI.hpp>

#include "app.hpp"

namespace maskattn::cli {

// Registers the `demo` subcommand on app (Mode: app.hpp; its flags are checked
// by CLI11 alone).
void add_demo_command(CLI::App& app, Mode mode);

}  // namespace maskattn::cli
