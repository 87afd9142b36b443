// `maskattn demo`: the write-ups' worked examples, printed step by step on
// built-in data, using only the public API.
#pragma once

#include <CLI/CLI.hpp>

namespace maskattn::cli {

// Registers the `demo` subcommand on app.
void add_demo_command(CLI::App& app);

}  // namespace maskattn::cli
