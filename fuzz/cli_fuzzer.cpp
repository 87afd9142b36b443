// libFuzzer target: the maskattn command line, parsed by the real app
// (cli/app.hpp) in Mode::CheckFlags: CLI11 parses the arguments, and the
// subcommand checks its flags as it would before running, down to building
// the mask of the mask flags (--lengths 5,3,8, --causal, --from-sdpa FILE,
// ...), without training, loading a model or writing a file.
//
// The input is the argument list, one argument per line ('\n'). Arrays named
// by mask flags are read from a scratch directory holding a few small .npy
// and .safetensors files (the current directory while fuzzing); an input with
// a '/' is skipped, so no other file is ever read.
//
// Expected outcomes: a parse, a CLI::ParseError (help, version, a bad flag;
// formatted as main formats it) or maskattn::Error. A finding: any other
// exception, a sanitizer report, a crash.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "app.hpp"
#include "maskattn/io/npy.hpp"
#include "maskattn/io/safetensors.hpp"
#include "maskattn/tensor.hpp"

namespace {

namespace fs = std::filesystem;
using maskattn::Tensor;

// At most this many arguments: CLI11's cost grows with them, not its coverage.
constexpr std::size_t kMaxArgs = 64;

// The arrays the seeds name: masks in the formats the mask flags read.
void write_arrays() {
  Tensor<bool> keep({4, 4});  // (L, S) lower triangle: causal
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j <= i; ++j) keep.data()[i * 4 + j] = true;
  maskattn::save_npy("keep.npy", keep);
  Tensor<int64_t> hf({2, 5});  // (B, S) 1 = token
  for (int64_t j = 0; j < 5; ++j) hf.data()[j] = 1, hf.data()[5 + j] = j < 3;
  maskattn::save_npy("hf.npy", hf);
  Tensor<float> bias({2, 4, 4});  // (B * H, L, S), -inf above the diagonal
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = i + 1; j < 4; ++j) bias.data()[(b * 4 + i) * 4 + j] = -INFINITY;
  maskattn::save_npy("bias.npy", bias);
  Tensor<bool> padding({2, 4});  // (B, S) True = padding
  padding.data()[7] = true;
  maskattn::save_safetensors("masks.safetensors", {{"keep", keep}, {"padding", padding}});
  maskattn::save_safetensors("one.safetensors", {{"bias", bias}});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // A scratch directory as the current one, removed at exit.
  static const fs::path dir = [] {
    std::string t = (fs::temp_directory_path() / "maskattn_cli_fuzzer.XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    return fs::path(t);
  }();
  fs::current_path(dir);
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(dir, ec);
  });
  write_arrays();
  // Nothing reads the terminal: `embed` without sentences would wait on it.
  const int null = ::open("/dev/null", O_RDONLY);
  if (null < 0 || ::dup2(null, STDIN_FILENO) < 0) std::abort();
  ::close(null);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.find('/') != std::string_view::npos) return 0;
  // Lines: "a\nb\n" is {a, b}, "a\n\nb" is {a, "", b}, "" is no argument.
  std::vector<std::string> args{"maskattn"};
  for (std::size_t start = 0; start < input.size() && args.size() <= kMaxArgs;) {
    const std::size_t end = std::min(input.find('\n', start), input.size());
    args.emplace_back(input.substr(start, end - start));
    start = end + 1;
  }
  if (args.size() > kMaxArgs) return 0;
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());

  const std::unique_ptr<CLI::App> app = maskattn::cli::make_app(maskattn::cli::Mode::CheckFlags);
  try {
    app->parse(static_cast<int>(argv.size()), argv.data());
    if (app->get_subcommands().empty()) (void)app->help();
  } catch (const CLI::ParseError& e) {
    // What main prints for it (the help for --help, the message otherwise).
    std::ostringstream out, err;
    (void)app->exit(e, out, err);
  } catch (const maskattn::Error&) {
    // Bad input, reported as it should be.
  }
  return 0;
}
