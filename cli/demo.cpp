// `maskattn demo`: six short steps, each a heading, a line or two of
// explanation and the matrices the library computes for it.
#include "demo.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/positional.hpp"
#include "print.hpp"

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

void step_look_ahead(Glyphs g) {
  heading(1, "Look-ahead mask: subsequent_mask(8)");
  say({"A decoder predicts token i from tokens 0..i only: query i may attend key j",
       "when j <= i, so the mask is true on and below the diagonal."});
  fmt::print("\n");
  const Tensor<bool> m = subsequent_mask(8);  // (1, 8, 8)
  print_grid(View<const bool, 2>(m.data(), {8, 8}), g);
  say({"", "In maskattn this pattern is causal(): computed from i and j, never stored."});
}

void step_padding(Glyphs g, const std::vector<int64_t>& lengths) {
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
}

void step_combined(Glyphs g, const std::vector<int64_t>& lengths) {
  heading(3, "Padding + look-ahead: causal() & key_lengths({5, 3, 8}), sentence b=0");
  say({"`&` allows a pair only if both masks allow it: keys j <= i and j < 5.",
       "Rows 5..7 are padding queries; add query_lengths(...) to make them empty rows."});
  fmt::print("\n");
  const Mask m = causal() & key_lengths(lengths);
  const Tensor<float> t = m.materialize(static_cast<int64_t>(lengths.size()), 1, 8, 8);
  print_allowed(slice(t, 0, 0), g);
}

void step_positional() {
  heading(4, "Sinusoidal positional encoding: sinusoidal_encoding(8, 4)");
  say({"PE(pos, 2i) = sin(pos / 10000^(2i/d)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).",
       "With d = 4, columns 0 and 1 turn at 1 radian per position, columns 2 and 3 at 0.01."});
  fmt::print("\n");
  const Tensor<float> pe = sinusoidal_encoding(8, 4);  // (8, 4)
  print_matrix(pe.view<2>(), 4, {"pos", "col"});
}

// x: (B=2, H=1, L=4, D=2). Sentence 1 has 3 tokens and one padding position (zeros).
Tensor<float> tiny_batch() {
  constexpr float kX[2][4][2] = {{{1, 0}, {0, 1}, {1, 1}, {-1, 0}},
                                 {{0, 1}, {1, 0}, {2, 1}, {0, 0}}};
  Tensor<float> x({2, 1, 4, 2});
  std::copy_n(&kX[0][0][0], x.numel(), x.data());
  return x;
}

void step_attention(const Tensor<float>& x) {
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
}

void step_pitfall(Glyphs g, const Tensor<float>& x) {
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

void run_demo(bool ascii) {
  const Glyphs g = ascii ? kDigitGlyphs : kBlockGlyphs;
  fmt::print("maskattn demo: masks in attention, step by step\n");
  fmt::print("In mask pictures {} = may attend, {} = masked; rows are queries i, columns keys j.\n",
             g.yes, g.no);
  const std::vector<int64_t> lengths{5, 3, 8};
  const Tensor<float> x = tiny_batch();
  step_look_ahead(g);
  step_padding(g, lengths);
  step_combined(g, lengths);
  step_positional();
  step_attention(x);
  step_pitfall(g, x);
}

}  // namespace

void add_demo_command(CLI::App& app) {
  CLI::App* demo = app.add_subcommand(
      "demo",
      "Masks, positional encoding and masked attention, step by step, on built-in examples");
  auto ascii = std::make_shared<bool>(false);
  demo->add_flag("--ascii", *ascii, "Draw masks with 1 and 0 instead of █ and ·");
  demo->callback([ascii] { run_demo(*ascii); });
}

}  // namespace maskattn::cli
