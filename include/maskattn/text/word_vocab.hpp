// A word-level vocabulary for small training runs (tiny_corpus.hpp): words
// split at spaces, the special tokens first, then the words of the corpus it
// is built from, most frequent first. Sentences of different lengths become
// one right-padded (B, L) batch and their lengths, which key_lengths()
// (mask.hpp) turns into the padding mask.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn::text {

// Sentences as a right-padded batch.
struct PaddedBatch {
  Tensor<int64_t> ids;           // (B, L): L the longest sentence, pad_id after each one
  std::vector<int64_t> lengths;  // (B): words of each sentence
};

class WordVocab {
 public:
  // The special tokens' ids.
  static constexpr int64_t kPad = 0;
  static constexpr int64_t kUnk = 1;
  static constexpr int64_t kMask = 2;
  static constexpr int64_t kNumSpecial = 3;

  // "[PAD]", "[UNK]", "[MASK]", then every word of `sentences` by descending
  // count (ties by first appearance). counts() holds how often each occurs.
  explicit WordVocab(std::span<const std::string> sentences);

  int64_t size() const noexcept { return static_cast<int64_t>(words_.size()); }
  // The word of an id in [0, size()); Error otherwise.
  const std::string& word(int64_t id) const;
  // The id of a word; kUnk for a word the vocabulary lacks.
  int64_t id(std::string_view word) const;
  // Occurrences of each id in the sentences it was built from (0 for the
  // special tokens).
  const std::vector<int64_t>& counts() const noexcept { return counts_; }
  // The special ids, for MlmOptions::special_token_ids.
  std::vector<int64_t> special_ids() const { return {kPad, kUnk, kMask}; }

  // Words split at runs of spaces -> ids.
  std::vector<int64_t> encode(std::string_view sentence) const;
  // ids -> words joined by single spaces ("[PAD]" etc. for special ids).
  std::string decode(std::span<const int64_t> ids) const;
  // Every sentence encoded, right-padded with kPad to the longest. Error for
  // an empty list or a sentence without words.
  PaddedBatch encode_batch(std::span<const std::string> sentences) const;

 private:
  std::vector<std::string> words_;
  std::vector<int64_t> counts_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace maskattn::text
