// WordPieceTokenizer: the vocabulary, the pipeline of wordpiece.hpp (steps
// 1-7) and its checks. from_folder (the files) is in wordpiece_files.cpp, the
// Unicode properties in unicode.cpp.
#include "maskattn/text/wordpiece.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>

#include "maskattn/error.hpp"
#include "text/unicode.hpp"

namespace maskattn::text {
namespace {

// Lets the maps be searched with a string_view, without building a string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using TokenMap = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;

bool is_utf8_continuation(char b) { return (static_cast<unsigned char>(b) & 0xC0) == 0x80; }

std::string quote_token(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

}  // namespace

struct WordPieceTokenizer::State {
  WordPieceOptions options;
  std::vector<std::string> vocab;  // id -> token
  TokenMap ids;                    // token -> id, every entry
  // Entries that start with continuing_subword_prefix, by what follows it:
  // the pieces after the first of a word are looked up here.
  TokenMap continuations;
  // Longest key of each map, in bytes: no longer piece can match.
  std::size_t max_entry_bytes = 0;
  std::size_t max_continuation_bytes = 0;
  std::vector<std::pair<std::string, int64_t>> added;  // step 1, longest first
  std::array<bool, 256> added_first_byte{};            // a byte some added token starts with
  int64_t cls = 0, sep = 0, pad = 0, unk = 0, mask = 0;

  // Per call: the normalized code points of a stretch of text and the word
  // being built (UTF-8). Kept across the words of one call, so the hot loop
  // does not allocate.
  struct Scratch {
    std::vector<char32_t> normalized;
    std::string word;
    int64_t word_chars = 0;
  };

  // Appends the ids of text's pieces (steps 1-6) to ids, stopping once ids
  // holds `limit` or more. text is valid UTF-8.
  void pieces(std::string_view text, std::size_t limit, std::vector<int64_t>& out) const;
  // Steps 2-6 for a stretch of text without added tokens.
  void stretch(std::string_view text, std::size_t limit, Scratch& s,
               std::vector<int64_t>& out) const;
  // Step 6 for one word (UTF-8, `chars` code points).
  void word(std::string_view w, int64_t chars, std::vector<int64_t>& out) const;
};

void WordPieceTokenizer::State::pieces(std::string_view text, std::size_t limit,
                                       std::vector<int64_t>& out) const {
  Scratch s;
  std::size_t begin = 0;  // start of the current stretch
  std::size_t i = 0;
  while (i < text.size() && out.size() < limit) {
    const auto b = static_cast<unsigned char>(text[i]);
    const std::pair<std::string, int64_t>* match = nullptr;
    if (added_first_byte[b]) {
      // Leftmost-longest: at the first position any added token starts, the
      // longest one there (added is sorted longest first).
      for (const auto& a : added) {
        if (text.substr(i).starts_with(a.first)) {
          match = &a;
          break;
        }
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    stretch(text.substr(begin, i - begin), limit, s, out);
    if (out.size() < limit) out.push_back(match->second);
    i += match->first.size();
    begin = i;
  }
  if (begin < text.size()) stretch(text.substr(begin), limit, s, out);
}

void WordPieceTokenizer::State::stretch(std::string_view text, std::size_t limit, Scratch& s,
                                        std::vector<int64_t>& out) const {
  const WordPieceOptions& o = options;
  // Steps 2-4 up to NFD, into s.normalized.
  std::vector<char32_t>& n = s.normalized;
  n.clear();
  const auto add = [&](char32_t c) {
    if (o.strip_accents)
      append_nfd(c, n);
    else
      n.push_back(c);
  };
  for (std::size_t i = 0; i < text.size();) {
    char32_t c = next_code_point(text, i);
    if (o.clean_text) {
      if (c == 0 || c == 0xFFFD || is_control(c)) continue;
      if (is_whitespace(c)) c = U' ';
    }
    if (o.handle_chinese_chars && is_chinese_char(c)) {
      add(U' ');
      add(c);
      add(U' ');
    } else {
      add(c);
    }
  }

  // The rest of step 4 (drop Mn, lowercase) and step 5 as one pass; each word
  // goes to step 6 as soon as it ends.
  s.word.clear();
  s.word_chars = 0;
  const auto end_word = [&] {
    if (s.word_chars == 0) return;
    word(s.word, s.word_chars, out);
    s.word.clear();
    s.word_chars = 0;
  };
  const auto split = [&](char32_t c) {
    if (is_whitespace(c)) {
      end_word();
    } else if (is_punctuation(c)) {
      end_word();
      append_utf8(c, s.word);
      s.word_chars = 1;
      end_word();
    } else {
      append_utf8(c, s.word);
      ++s.word_chars;
    }
  };
  for (const char32_t c : n) {
    if (out.size() >= limit) return;
    if (o.strip_accents && is_nonspacing_mark(c)) continue;
    if (!o.lowercase) {
      split(c);
      continue;
    }
    char32_t lower[2];
    const int count = lowercase(c, lower);
    for (int k = 0; k < count; ++k) split(lower[k]);
  }
  if (out.size() < limit) end_word();
}

void WordPieceTokenizer::State::word(std::string_view w, int64_t chars,
                                     std::vector<int64_t>& out) const {
  if (chars > options.max_input_chars_per_word) {
    out.push_back(unk);
    return;
  }
  const std::size_t first = out.size();
  std::size_t start = 0;
  while (start < w.size()) {
    const TokenMap& map = start == 0 ? ids : continuations;
    // Greedy: the longest piece from `start` that is an entry, shortened one
    // code point at a time; no entry is longer than the longest key.
    std::size_t end =
        std::min(w.size(), start + (start == 0 ? max_entry_bytes : max_continuation_bytes));
    while (end > start && end < w.size() && is_utf8_continuation(w[end])) --end;
    int64_t id = -1;
    while (end > start) {
      const auto it = map.find(w.substr(start, end - start));
      if (it != map.end()) {
        id = it->second;
        break;
      }
      do {
        --end;
      } while (end > start && is_utf8_continuation(w[end]));
    }
    if (id < 0) {
      // No entry at this position: the whole word is one unknown token.
      out.resize(first);
      out.push_back(unk);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options) {
  auto state = std::make_shared<State>();
  State& s = *state;
  const WordPieceOptions& o = options;
  check(!vocab.empty(), "vocab", "at least one token", "an empty list");
  check(vocab.size() <= static_cast<std::size_t>(std::numeric_limits<int64_t>::max()), "vocab",
        "fewer tokens", fmt::format("{}", vocab.size()));
  check(!o.continuing_subword_prefix.empty(), "options.continuing_subword_prefix",
        "a non-empty string", "\"\"");
  check(o.max_input_chars_per_word >= 1, "options.max_input_chars_per_word", ">= 1",
        fmt::format("{}", o.max_input_chars_per_word));

  s.ids.reserve(vocab.size());
  for (std::size_t i = 0; i < vocab.size(); ++i) {
    const std::string& token = vocab[i];
    const auto arg = [&] { return fmt::format("vocab[{}]", i); };
    if (token.empty()) throw Error(arg(), "a non-empty token", "\"\"");
    try {
      check_utf8(token);
    } catch (const Error& e) {
      throw Error(arg(), "a token in UTF-8", e.actual());
    }
    const auto [it, inserted] = s.ids.emplace(token, static_cast<int64_t>(i));
    if (!inserted)
      throw Error(arg(), "distinct tokens",
                  fmt::format("{} again (first at {})", quote_token(token), it->second));
    s.max_entry_bytes = std::max(s.max_entry_bytes, token.size());
    const std::string_view prefix = o.continuing_subword_prefix;
    if (token.size() > prefix.size() && token.starts_with(prefix)) {
      s.continuations.emplace(token.substr(prefix.size()), static_cast<int64_t>(i));
      s.max_continuation_bytes = std::max(s.max_continuation_bytes, token.size() - prefix.size());
    }
  }

  const auto special = [&](std::string_view field, const std::string& token) {
    const auto it = s.ids.find(token);
    if (it == s.ids.end())
      throw Error(fmt::format("options.{}", field), "a token of the vocabulary",
                  quote_token(token));
    return it->second;
  };
  s.unk = special("unk_token", o.unk_token);
  s.cls = special("cls_token", o.cls_token);
  s.sep = special("sep_token", o.sep_token);
  s.pad = special("pad_token", o.pad_token);
  s.mask = special("mask_token", o.mask_token);

  for (std::size_t i = 0; i < o.added_tokens.size(); ++i) {
    const std::string& token = o.added_tokens[i];
    const int64_t id = special(fmt::format("added_tokens[{}]", i), token);
    if (std::none_of(s.added.begin(), s.added.end(),
                     [&](const auto& a) { return a.first == token; }))
      s.added.emplace_back(token, id);
    s.added_first_byte[static_cast<unsigned char>(token[0])] = true;
  }
  std::stable_sort(s.added.begin(), s.added.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });

  s.vocab = std::move(vocab);
  s.options = std::move(options);
  state_ = std::move(state);
}

std::vector<int64_t> WordPieceTokenizer::encode(std::string_view utf8, int64_t max_length) const {
  check(max_length == 0 || max_length >= 2, "max_length",
        "0 (no limit) or >= 2 (room for [CLS] and [SEP])", fmt::format("{}", max_length));
  check_utf8(utf8);
  const State& s = *state_;
  // [CLS] and the pieces fill at most max_length - 1 places; [SEP] the last.
  const std::size_t limit = max_length == 0 ? std::numeric_limits<std::size_t>::max()
                                            : static_cast<std::size_t>(max_length - 1);
  std::vector<int64_t> ids;
  ids.reserve(utf8.size() / 4 + 2);
  ids.push_back(s.cls);
  s.pieces(utf8, limit, ids);
  if (ids.size() > limit) ids.resize(limit);
  ids.push_back(s.sep);
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view utf8) const {
  check_utf8(utf8);
  const State& s = *state_;
  std::vector<int64_t> ids;
  s.pieces(utf8, std::numeric_limits<std::size_t>::max(), ids);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const int64_t id : ids) out.push_back(s.vocab[static_cast<std::size_t>(id)]);
  return out;
}

std::optional<int64_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  const auto it = state_->ids.find(token);
  if (it == state_->ids.end()) return std::nullopt;
  return it->second;
}

const std::string& WordPieceTokenizer::id_to_token(int64_t id) const {
  check(id >= 0 && id < vocab_size(), "id", fmt::format("in [0, {})", vocab_size()),
        fmt::format("{}", id));
  return state_->vocab[static_cast<std::size_t>(id)];
}

int64_t WordPieceTokenizer::vocab_size() const {
  return static_cast<int64_t>(state_->vocab.size());
}
int64_t WordPieceTokenizer::cls_id() const { return state_->cls; }
int64_t WordPieceTokenizer::sep_id() const { return state_->sep; }
int64_t WordPieceTokenizer::pad_id() const { return state_->pad; }
int64_t WordPieceTokenizer::unk_id() const { return state_->unk; }
int64_t WordPieceTokenizer::mask_id() const { return state_->mask; }
const WordPieceOptions& WordPieceTokenizer::options() const { return state_->options; }

}  // namespace maskattn::text
