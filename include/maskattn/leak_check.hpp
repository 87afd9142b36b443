// Leak checking: proof by perturbation that a mask hides what it must.
//
// A mask leaks when a query reads a key that it must not see: a look-ahead
// mask that is inverted or misaligned, padding that was never masked, a
// window one key too wide. The checker does not compare matrices; it runs
// the attention under test on random q, k and v, then perturbs the keys and
// values at positions that an *expectation* (itself a Mask: causal(),
// key_lengths(...), ...) hides from a query and checks that the query's
// output does not change at all (or by at most `tolerance`). A masked key
// adds exactly 0 to a softmax, so a correct mask gives bit-identical rows.
// Every (b, h, i, j) pair the expectation hides is checked; one whose output
// row changes is a leak.
//
// The search: each (batch, head) is independent, so one attention call
// perturbs a range of keys in every (b, h) at once. A range is first the
// whole key axis; it is split in two (ranges of at most
// kSplitToSingleKeys keys straight into single keys) while some query row
// sees part of it and must not see the rest (that row learns nothing from
// the range as a whole), or a row that must see none of it changed (to find
// which key leaks). A row that must see none of a range and did not change
// is cleared for the whole range at once. Padding is checked in O(log Lk)
// calls; a diagonal (causal, windows) needs about 1.25 Lk.
//
// The perturbation replaces k_j by a new random vector four times as large
// and shifts v_j by 4 plus noise, so a leaked weight of p moves the output
// by about 4p: any weight above float32 resolution shows. Random
// perturbations of several keys cancel exactly with probability zero.
//
// check_model_leaks() does the same for a whole sequence model: token ids in,
// outputs out, perturbing tokens instead of keys — a decoder's look-ahead
// leak, or padding that reaches real positions.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn {

// Ranges of at most this many keys are split straight into single keys: under
// a diagonal every small range is seen in part by some query, and halving it
// again would test each key up to three more times.
inline constexpr int64_t kSplitToSingleKeys = 8;

// Query i of batch b, head h read key j although the expectation hides it.
struct Leak {
  int64_t b = 0, h = 0, i = 0, j = 0;
  // The largest |difference| in output row i when key j (alone) is perturbed.
  float change = 0.0f;
};

struct LeakReport {
  MaskShape shape;           // (B, H, Lq, Lk); a model's (B, 1, L_out, L_in)
  int64_t hidden_pairs = 0;  // (b, h, i, j) the expectation hides: every one is checked
  int64_t runs = 0;          // attention (or model) calls, the unperturbed one included
  int64_t leak_count = 0;    // hidden pairs whose output row changed
  float max_change = 0.0f;   // the largest change among them
  std::vector<Leak> leaks;   // the first max_listed leaks in (b, h, i, j) order
  // Pairs the expectation allows but the mask hides: not a leak, but a query
  // that cannot see what it may (a misaligned look-ahead mask, a window one
  // key too narrow). Attention checks only; 0 for models.
  int64_t over_masked = 0;
  std::optional<std::array<int64_t, 4>> first_over_masked;  // (b, h, i, j)
  float tolerance = 0.0f;  // the options' tolerance, for the verdict
  bool model = false;      // from check_model_leaks: i is an output, j a token position

  bool leaks_found() const noexcept { return leak_count > 0; }
};

// One line: "no leak: all 28 hidden pairs of (B=1, H=1, Lq=8, Lk=8) checked,
// outputs unchanged (12 runs)" or "LEAK: 28 of 28 hidden pairs ...".
std::string leak_verdict(const LeakReport& report);

// The verdict, the over-masking note (when there is one) and the listed leaks
// as a table (b, h, i, j, change), with a line for those not listed.
std::string describe(const LeakReport& report);

struct LeakCheckOptions {
  int64_t head_dim = 16;    // D of the random q, k, v; >= 1
  uint64_t seed = 0;        // of q, k, v and the perturbations
  float tolerance = 0.0f;   // a change <= tolerance is not a leak; >= 0, 0 = any change
  int64_t max_listed = 20;  // leaks kept in the report's list; >= 0
  // The call under test: backend, scale, softcap, head_mask, dropout (replayed
  // from its seed, so it does not count as a change), empty_rows.
  AttentionOptions attention;
};

// Checks that `mask` hides from every query each key that `expect` hides,
// for the problem shape (B, H, Lq, Lk): attention(q, k, v, mask) with random
// float32 q, k, v (Hkv = H). Pairs `mask` hides but `expect` allows are
// counted as over-masked. Errors name "shape", "mask", "expect" or "opts.*".
LeakReport check_leaks(const Mask& mask, const Mask& expect, const MaskShape& shape,
                       const LeakCheckOptions& opts = {});

// A sequence model under test: token ids (B, L_in) -> outputs (B, L_out, ...)
// (any trailing dimensions, at least one), the same shape on every call.
using SequenceModel = std::function<Tensor<float>(View<const int64_t, 2> tokens)>;

struct ModelLeakOptions {
  int64_t vocab_size = 0;   // perturbed tokens are drawn from [0, vocab_size); >= 2
  uint64_t seed = 0;        // of the perturbations
  float tolerance = 0.0f;   // a change <= tolerance is not a leak; >= 0
  int64_t max_listed = 20;  // leaks kept in the report's list; >= 0
};

// Checks that output position i of row b does not depend on token j wherever
// `expect`, bound to (B, 1, L_out, L_in), hides (b, 0, i, j): model(tokens)
// once as it is, then with the tokens at hidden positions replaced by other
// ids. Output rows that `expect` leaves empty are not checked (query_lengths:
// a padded position's output is garbage by design, and an output that may
// depend on no token at all is no claim a model can meet). So a decoder is
// checked with causal(), padding with key_lengths(n) & query_lengths(n),
// packed sequences with documents(ids). The model must take its padding from
// what it captured (lengths, an attention mask), not from the token values:
// padded positions receive random ids too. A token can only become another
// id, so a dependence through a saturated softmax (a weight that moves the
// output by less than float32 resolution) goes unseen: a reported leak is
// certain, "no leak" means no output moved. tokens: (B, L_in) in
// [0, vocab_size). Errors name "tokens", "expect", "model output" or
// "opts.*"; what the model throws passes through.
LeakReport check_model_leaks(const SequenceModel& model, View<const int64_t, 2> tokens,
                             const Mask& expect, const ModelLeakOptions& opts);

}  // namespace maskattn
