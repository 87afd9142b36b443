// BERT masked-LM token masking (Devlin et al., 2019, section 3.1).
//
// Each token that is not special is chosen with probability mlm_probability.
// Of the chosen: mask_replace_prob become mask_token_id, random_replace_prob a
// random non-special token drawn uniformly from [0, vocab_size), the rest stay.
// labels hold the original id at chosen positions and -100 (kIgnoreIndex)
// elsewhere, so they feed a cross-entropy with ignore_index = -100 directly.
//
// Seeded and counter-based: the result depends only on (seed, token position,
// token ids), never on threads or call order. mask_token_id counts as special.
// With word_ids, whole words are chosen together (every token of a chosen word
// is chosen; each still gets its own 80/10/10 draw, as in Hugging Face's
// DataCollatorForWholeWordMask).
#pragma once

#include <cstdint>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn {

inline constexpr int64_t kIgnoreIndex = -100;

struct MlmOptions {
  int64_t vocab_size = 0;                  // > 0
  int64_t mask_token_id = -1;              // in [0, vocab_size)
  std::vector<int64_t> special_token_ids;  // never chosen, never drawn
  double mlm_probability = 0.15;           // in [0, 1]
  double mask_replace_prob = 0.8;          // in [0, 1]
  double random_replace_prob = 0.1;        // in [0, 1 - mask_replace_prob]
  uint64_t seed = 0;
  // Optional (B, L) word index per token, same shape as token_ids; tokens of a
  // row with equal word id >= 0 are chosen together; -1 = not part of a word
  // (chosen on its own). Absent = every token on its own.
  View<const int64_t, 2> word_ids;
};

struct MlmResult {
  Tensor<int64_t> input_ids;  // (B, L)
  Tensor<int64_t> labels;     // (B, L): original id where chosen, else kIgnoreIndex
};

// token_ids: (B, L), every id in [0, vocab_size).
MlmResult mlm_mask(View<const int64_t, 2> token_ids, const MlmOptions& options);

}  // namespace maskattn
