// `maskattn viz`: a thin layer over viz/pictures.hpp and viz/html.hpp.
#include "viz.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "embed.hpp"
#include "mask_flags.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/io/npy.hpp"
#include "maskattn/io/png.hpp"
#include "maskattn/models/sentence_encoder.hpp"
#include "maskattn/positional.hpp"
#include "maskattn/viz/html.hpp"

namespace maskattn::cli {
namespace {

namespace fs = std::filesystem;

// -o FILE and --format, shared by the three commands.
struct Output {
  std::string path;
  std::string format;  // "", "png" or "html"
};

void add_output_flags(CLI::App* cmd, Output& o, const std::string& default_name) {
  cmd->add_option(
      "-o,--output", o.path,
      fmt::format("Picture file: .png, or .html for the interactive page [{}.png]", default_name));
  cmd->add_option("--format", o.format, "png or html [from the extension of --output]");
}

// Where a picture goes and as what: "png" or "html".
struct OutputFile {
  std::string path, format;
};

// The format --format or the extension of -o says, and the file (default_name
// and the format's extension when -o is not given).
OutputFile resolve_output(const Output& o, const std::string& default_name) {
  std::string format = o.format;
  const std::string ext = fs::path(o.path).extension().string();
  if (format.empty()) {
    if (o.path.empty() || ext == ".png")
      format = "png";
    else if (ext == ".html" || ext == ".htm")
      format = "html";
    else
      throw Error("--output", "a .png or .html file (or --format png|html)", o.path);
  }
  if (format != "png" && format != "html") throw Error("--format", "png or html", format);
  return {o.path.empty() ? default_name + "." + format : o.path, format};
}

// Writes the picture where resolve_output() says.
// `choose` says how to draw fewer panels when a PNG would have too many.
void write_output(const Output& o, const std::string& default_name,
                  const std::function<viz::Image()>& png, const std::function<std::string()>& html,
                  std::string_view choose = "") {
  const auto [path, format] = resolve_output(o, default_name);
  if (format == "html") return write_html_file(path, html());
  try {
    write_png_file(path, png());
  } catch (const Error& e) {
    if (e.argument() != "panels") throw;
    throw Error("panels",
                fmt::format("at most {} panels in one PNG ({}write .html, which shows one at "
                            "a time)",
                            viz::kMaxPanels, choose),
                e.actual());
  }
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// --tokens (both axes), --query-tokens, --key-tokens.
struct TokenFlags {
  std::string both, query, key;
  void add(CLI::App* cmd) {
    cmd->add_option("--tokens", both,
                    "Labels of the positions, separated by spaces: \"the cat sat\" (queries and "
                    "keys alike)");
    cmd->add_option("--query-tokens", query, "Labels of the queries (when Lq != Lk)");
    cmd->add_option("--key-tokens", key, "Labels of the keys");
  }
  std::vector<std::string> queries() const { return words(query.empty() ? both : query); }
  std::vector<std::string> keys() const { return words(key.empty() ? both : key); }
  // Lq and Lk from the labels' counts, where the flags leave them open.
  void imply_lengths(MaskFlags& m) const {
    if (!m.q_len && !queries().empty()) m.q_len = static_cast<int64_t>(queries().size());
    if (!m.k_len && !keys().empty()) m.k_len = static_cast<int64_t>(keys().size());
  }
  // f() with the library's names for labels turned into these flags' names.
  template <class F>
  decltype(auto) named(F&& f) const {
    try {
      return f();
    } catch (const Error& e) {
      const bool q = e.argument() == "query_labels", k = e.argument() == "key_labels";
      if (!q && !k) throw;
      const bool own = q ? !query.empty() : !key.empty();
      throw Error(own ? (q ? "--query-tokens" : "--key-tokens") : "--tokens", e.expected(),
                  e.actual());
    }
  }
};

// ---- viz mask -------------------------------------------------------------------

struct MaskCommand {
  MaskFlags mask;
  TokenFlags tokens;
  std::string title;
  Output out;
};

// The mask of the flags (Lq and Lk from the labels where the flags say none).
BuiltMask mask_of(const MaskCommand& c) {
  MaskFlags flags = c.mask;
  c.tokens.imply_lengths(flags);
  return build_mask(flags);
}

void check_mask(const MaskCommand& c) {
  (void)mask_of(c).mask.describe();
  (void)resolve_output(c.out, "mask");
}

void run_mask(const MaskCommand& c) {
  const BuiltMask m = mask_of(c);
  viz::MaskPictureOptions o;
  o.title = c.title;
  o.diagonal = m.diagonal;
  o.query_labels = c.tokens.queries();
  o.key_labels = c.tokens.keys();
  fmt::print("mask = {} over (B={}, H={}, Lq={}, Lk={})\n", m.mask.describe(), m.shape.batch,
             m.shape.heads, m.shape.q_len, m.shape.k_len);
  c.tokens.named([&] {
    write_output(
        c.out, "mask", [&] { return viz::mask_picture(m.mask, m.shape, o); },
        [&] { return viz::mask_html(m.mask, m.shape, o); }, "a smaller --batch, or ");
  });
}

// ---- viz pe ---------------------------------------------------------------------

struct PeCommand {
  int64_t length = 100, dim = 64;
  double base = 10000.0;
  std::string layout = "interleaved";
  std::vector<int64_t> dims;
  std::string title;
  Output out;
};

// --layout, after checking --length.
PeLayout check_pe(const PeCommand& c) {
  PeLayout layout = PeLayout::Interleaved;
  if (c.layout == "concatenated")
    layout = PeLayout::Concatenated;
  else if (c.layout != "interleaved")
    throw Error("--layout", "interleaved or concatenated", c.layout);
  if (c.length < 1) throw Error("--length", "a length >= 1", std::to_string(c.length));
  return layout;
}

void run_pe(const PeCommand& c) {
  const PeLayout layout = check_pe(c);
  const Tensor<float> pe = sinusoidal_encoding(c.length, c.dim, c.base, layout);
  viz::EncodingPictureOptions o;
  o.title = c.title;
  o.dims = c.dims;
  write_output(
      c.out, "pe", [&] { return viz::encoding_picture(pe.view<2>(), o); },
      [&] { return viz::encoding_html(pe.view<2>(), o); });
}

// ---- viz attention ---------------------------------------------------------------

constexpr std::string_view kChoosePanels = "choose some with --layer, --batch-index, --head; or ";

struct AttentionCommand {
  // A model's attention: sentences through a BERT model folder.
  std::vector<std::string> text;
  std::string model;
  bool pack = false;
  // One attention call: q and k from files, any mask.
  std::string q, k;
  std::optional<float> scale;
  MaskFlags mask;
  // What is drawn.
  std::vector<int64_t> layers, batch, heads;
  bool no_mean = false;
  std::optional<float> vmax;
  TokenFlags tokens;
  std::string title;
  Output out;
};

// q or k from a file as float32 (B, H, L, D).
Tensor<float> read_qk(const std::string& path, std::string_view flag) {
  const NpyArray a = [&] {
    try {
      return load_npy(path);
    } catch (const Error& e) {
      throw Error(flag, e.expected(), fmt::format("{} ({})", e.actual(), e.argument()));
    }
  }();
  const AnyView v = a.view();
  if (v.rank() != 4 || !v.is_float())
    throw Error(flag, "a float32 or float64 .npy array (B, H, L, D)", v.describe());
  return to_float32(v);
}

// Weights of attention(q, k, v = 0, mask) over every layer: one here.
void run_attention_call(const AttentionCommand& c) {
  if (c.q.empty() || c.k.empty())
    throw Error(c.q.empty() ? "--q" : "--k", "both --q and --k (.npy, (B, H, L, D))",
                "one of them");
  const Tensor<float> q = read_qk(c.q, "--q"), k = read_qk(c.k, "--k");
  const MaskShape shape{q.size(0), q.size(1), q.size(2), k.size(2)};
  const BuiltMask m = build_mask(c.mask, shape);
  Tensor<float> v({k.size(0), k.size(1), k.size(2), 1}), out({q.size(0), q.size(1), q.size(2), 1});
  Tensor<float> w({q.size(0), q.size(1), q.size(2), k.size(2)});
  AttentionOptions opts;
  opts.scale = c.scale;
  try {
    attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), m.mask, opts, w.view<4>());
  } catch (const Error& e) {
    if (e.argument() == "k") throw Error("--k", e.expected(), e.actual());
    if (e.argument() == "q") throw Error("--q", e.expected(), e.actual());
    throw;
  }
  viz::AttentionPictureOptions o;
  o.title = c.title;
  o.query_labels = c.tokens.queries();
  o.key_labels = c.tokens.keys();
  o.batch = c.batch;
  o.heads = c.heads;
  o.mean = !c.no_mean;
  o.vmax = c.vmax;
  fmt::print("attention weights of q {} and k {} under {}\n", shape_string(q.shape()),
             shape_string(k.shape()), m.mask.describe());
  c.tokens.named([&] {
    write_output(
        c.out, "attention", [&] { return viz::attention_picture(w.view<4>(), m.mask, o); },
        [&] { return viz::attention_html(w.view<4>(), m.mask, o); }, kChoosePanels);
  });
}

// Every layer's weights of a BERT model folder on the sentences, padded
// (key_lengths) or packed (documents, position ids restarting per sentence).
void run_attention_model(const AttentionCommand& c) {
  const fs::path folder = c.model.empty() ? default_model_folder() : fs::path(c.model);
  const models::SentenceEncoder enc = models::SentenceEncoder::from_folder(folder);
  const models::SentenceAttention a = enc.attention(c.text, c.pack);
  viz::AttentionPictureOptions o;
  o.layers = c.layers;
  o.batch = c.batch;
  o.heads = c.heads;
  o.mean = !c.no_mean;
  o.vmax = c.vmax;
  // Token labels when one row is drawn (each padded row has its own tokens).
  const std::size_t rows = a.row_tokens.size();
  if (rows == 1) o.query_labels = o.key_labels = a.row_tokens[0];
  if (c.batch.size() == 1 && c.batch[0] >= 0 && static_cast<std::size_t>(c.batch[0]) < rows)
    o.query_labels = o.key_labels = a.row_tokens[static_cast<std::size_t>(c.batch[0])];
  const std::string name = folder.filename() == "model" ? folder.parent_path().filename().string()
                                                        : folder.filename().string();
  o.title = c.title.empty() ? fmt::format("{}: attention weights, {} ({})", name,
                                          c.pack ? "packed" : "padded", a.mask.describe())
                            : c.title;
  const nn::BertConfig& cfg = enc.model().config();
  fmt::print("{} layers x {} heads of {} on {} sentence{} ({}):\n", cfg.num_hidden_layers,
             cfg.num_attention_heads, folder.string(), a.tokens.size(),
             a.tokens.size() == 1 ? "" : "s",
             c.pack ? "packed in one row" : fmt::format("padded to {}", a.weights.size(3)));
  for (std::size_t s = 0; s < a.tokens.size(); ++s)
    fmt::print("  {}  {}\n", s, fmt::join(a.tokens[s], " "));
  const std::vector<View<const float, 4>> layers = a.layers();
  write_output(
      c.out, "attention", [&] { return viz::attention_picture(layers, a.mask, o); },
      [&] { return viz::attention_html(layers, a.mask, o); }, kChoosePanels);
}

// Which of the two the flags ask for (true: a model on --text), after checking
// that the flags fit it.
bool check_attention(const AttentionCommand& c) {
  const bool model = !c.text.empty(), call = !c.q.empty() || !c.k.empty();
  if (model == call)
    throw Error("viz attention",
                "either --text (a model's attention; --model) or --q and --k (one call)",
                model ? "both" : "neither");
  if (model) {
    if (!c.tokens.both.empty() || !c.tokens.query.empty() || !c.tokens.key.empty())
      throw Error("--tokens", "no labels with --text (the model's tokens label the axes)",
                  "labels");
  } else {
    if (!c.layers.empty()) throw Error("--layer", "a model (--text)", "one attention call (--q)");
    if (c.pack || !c.model.empty())
      throw Error(c.pack ? "--pack" : "--model", "sentences (--text)", "one attention call (--q)");
  }
  return model;
}

void run_attention(const AttentionCommand& c) {
  if (check_attention(c))
    run_attention_model(c);
  else
    run_attention_call(c);
}

// The flags of one call without reading q and k: the mask over the shape the
// flags imply.
void check_attention_flags(const AttentionCommand& c) {
  if (!check_attention(c)) (void)build_mask(c.mask).mask.describe();
  (void)resolve_output(c.out, "attention");
}

}  // namespace

void write_png_file(const std::string& path, const viz::Image& image) {
  save_png(path, image);
  fmt::print("wrote {} ({} x {} pixels)\n", path, image.width(), image.height());
}

void save_html(const std::string& path, const std::string& html) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path, "a file that can be written", "one that cannot be opened");
  out << html;
  out.close();
  if (!out) throw Error(path, "a file that can be written", "a write error");
}

void write_html_file(const std::string& path, const std::string& html) {
  save_html(path, html);
  fmt::print("wrote {} ({:.0f} KiB; open it in a browser)\n", path,
             static_cast<double>(html.size()) / 1024.0);
}

void add_viz_command(CLI::App& app, Mode mode) {
  CLI::App* viz = app.add_subcommand(
      "viz", "Pictures of masks, positional encodings and attention weights (PNG or HTML)");
  viz->require_subcommand(1);
  viz->footer(
      "Examples:\n"
      "  maskattn viz mask --causal --lengths 5,3,8\n"
      "  maskattn viz pe --length 100 --dim 64 -o pe.png\n"
      "  maskattn viz attention --text \"The cat sat on the mat.\" -o attention.html");

  auto mc = std::make_shared<MaskCommand>();
  CLI::App* mask = viz->add_subcommand(
      "mask",
      "A mask: one panel per batch element (and head where heads differ), may attend "
      "vs masked, the diagonal outlined");
  add_mask_flags(*mask, mc->mask, /*shape_flags=*/true);
  mc->tokens.add(mask);
  mask->add_option("--title", mc->title, "Title [the mask's description]");
  add_output_flags(mask, mc->out, "mask");
  mask->callback([mc, mode] { mode == Mode::Run ? run_mask(*mc) : check_mask(*mc); });

  auto pc = std::make_shared<PeCommand>();
  CLI::App* pe = viz->add_subcommand(
      "pe", "Sinusoidal positional encoding: a heatmap (position x dimension) and curves");
  pe->add_option("--length", pc->length, "Positions [100]");
  pe->add_option("--dim", pc->dim, "Dimensions, even [64]");
  pe->add_option("--base", pc->base, "Base of the wavelengths [10000]");
  pe->add_option("--layout", pc->layout, "interleaved (the paper) or concatenated [interleaved]");
  pe->add_option("--dims", pc->dims, "Dimensions drawn as curves: 0,8,16 [four sine columns]")
      ->delimiter(',');
  pe->add_option("--title", pc->title, "Title");
  add_output_flags(pe, pc->out, "pe");
  pe->callback([pc, mode] {
    if (mode == Mode::Run) {
      run_pe(*pc);
    } else {
      (void)check_pe(*pc);
      (void)resolve_output(pc->out, "pe");
    }
  });

  auto ac = std::make_shared<AttentionCommand>();
  CLI::App* at = viz->add_subcommand(
      "attention",
      "Attention weights per head (and their mean) of a model's layers on sentences (--text), "
      "or of one attention call (--q, --k); masked cells hatched");
  at->add_option("--text", ac->text, "A sentence (repeat for a padded batch)");
  at->add_option("-m,--model", ac->model,
                 "BERT / sentence-transformers model folder [the packaged all-MiniLM-L6-v2]");
  at->add_flag("--pack", ac->pack,
               "Pack the sentences in one row (documents mask) instead of padding them");
  at->add_option("--q", ac->q, "Queries (B, H, Lq, D), float .npy");
  at->add_option("--k", ac->k, "Keys (B, H, Lk, D) (or fewer heads: GQA), float .npy");
  at->add_option("--scale", ac->scale, "Score scale [1/sqrt(D)]");
  add_mask_flags(*at, ac->mask, /*shape_flags=*/false);
  at->add_option("--layer", ac->layers, "Layers drawn: 0,5 [all]")->delimiter(',');
  at->add_option("--batch-index", ac->batch, "Batch elements drawn [all]")->delimiter(',');
  at->add_option("--head", ac->heads, "Heads drawn [all]")->delimiter(',');
  at->add_flag("--no-mean", ac->no_mean, "No panel of the mean over heads");
  at->add_option("--vmax", ac->vmax, "Top of the colour scale [the largest weight drawn]");
  ac->tokens.add(at);
  at->add_option("--title", ac->title, "Title");
  add_output_flags(at, ac->out, "attention");
  at->callback([ac, mode] { mode == Mode::Run ? run_attention(*ac) : check_attention_flags(*ac); });
}

}  // namespace maskattn::cli
