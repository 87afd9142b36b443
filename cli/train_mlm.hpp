// `maskattn train-mlm`: BERT-style masked-LM training of a small encoder on
// the built-in corpus (text/tiny_corpus.hpp), with the held-out masked-token
// accuracy rising against the unigram baseline, and the trained model's
// guesses for masked words of held-out sentences.
#pragma once

#include <CLI/CLI.hpp>

#include "app.hpp"

namespace maskattn::cli {

// Registers the `train-mlm` subcommand on app (Mode: app.hpp).
void add_train_mlm_command(CLI::App& app, Mode mode);

}  // namespace maskattn::cli
