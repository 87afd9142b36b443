// `maskattn check`: does a mask hide what it must? A thin layer over
// leak_check.hpp: the mask under test from the mask flags of `viz mask`, the
// expectation from the same flags prefixed --expect-; exit status 2 when a
// leak is found.
#pragma once

#include <CLI/CLI.hpp>

#include "app.hpp"

namespace maskattn::cli {

// The exit status of `maskattn check` when the mask leaks (1 is bad input).
inline constexpr int kLeakExitCode = 2;

// Registers the `check` subcommand on app (Mode: app.hpp).
void add_check_command(CLI::App& app, Mode mode);

}  // namespace maskattn::cli
