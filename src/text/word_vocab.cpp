#include "maskattn/text/word_vocab.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "maskattn/error.hpp"

namespace maskattn::text {
namespace {

// Calls fn(word) for each run of non-space characters of s.
template <class F>
void for_each_word(std::string_view s, F&& fn) {
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) fn(s.substr(i, j - i));
    i = j;
  }
}

}  // namespace

WordVocab::WordVocab(std::span<const std::string> sentences)
    : words_{"[PAD]", "[UNK]", "[MASK]"}, counts_(kNumSpecial, 0) {
  // Words in order of first appearance with their counts, then sorted by
  // count (stable: ties keep that order).
  std::vector<std::string> seen;
  std::unordered_map<std::string, int64_t> count;
  for (const auto& s : sentences)
    for_each_word(s, [&](std::string_view w) {
      auto [it, fresh] = count.try_emplace(std::string(w), 0);
      if (fresh) seen.emplace_back(w);
      ++it->second;
    });
  std::stable_sort(seen.begin(), seen.end(),
                   [&](const std::string& a, const std::string& b) { return count[a] > count[b]; });
  for (int64_t i = 0; i < kNumSpecial; ++i) ids_.emplace(words_[static_cast<std::size_t>(i)], i);
  for (auto& w : seen) {
    // A corpus word spelt like a special token keeps the special id.
    if (ids_.contains(w)) continue;
    ids_.emplace(w, size());
    counts_.push_back(count[w]);
    words_.push_back(std::move(w));
  }
}

const std::string& WordVocab::word(int64_t id) const {
  if (id < 0 || id >= size())
    throw Error("id", fmt::format("an id in [0, {})", size()), std::to_string(id));
  return words_[static_cast<std::size_t>(id)];
}

int64_t WordVocab::id(std::string_view word) const {
  const auto it = ids_.find(std::string(word));
  return it == ids_.end() ? kUnk : it->second;
}

std::vector<int64_t> WordVocab::encode(std::string_view sentence) const {
  std::vector<int64_t> ids;
  for_each_word(sentence, [&](std::string_view w) { ids.push_back(id(w)); });
  return ids;
}

std::string WordVocab::decode(std::span<const int64_t> ids) const {
  std::string s;
  for (const int64_t i : ids) {
    if (!s.empty()) s += ' ';
    s += word(i);
  }
  return s;
}

PaddedBatch WordVocab::encode_batch(std::span<const std::string> sentences) const {
  if (sentences.empty()) throw Error("sentences", "at least one", "none");
  std::vector<std::vector<int64_t>> encoded;
  encoded.reserve(sentences.size());
  int64_t longest = 0;
  for (std::size_t b = 0; b < sentences.size(); ++b) {
    encoded.push_back(encode(sentences[b]));
    if (encoded.back().empty())
      throw Error(fmt::format("sentences[{}]", b), "at least one word",
                  fmt::format("\"{}\"", sentences[b]));
    longest = std::max(longest, static_cast<int64_t>(encoded.back().size()));
  }
  PaddedBatch batch{Tensor<int64_t>({static_cast<int64_t>(sentences.size()), longest}), {}};
  std::fill(batch.ids.begin(), batch.ids.end(), kPad);
  for (std::size_t b = 0; b < encoded.size(); ++b) {
    std::copy(encoded[b].begin(), encoded[b].end(),
              batch.ids.data() + static_cast<int64_t>(b) * longest);
    batch.lengths.push_back(static_cast<int64_t>(encoded[b].size()));
  }
  return batch;
}

}  // namespace maskattn::text
