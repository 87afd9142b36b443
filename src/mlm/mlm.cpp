// BERT masked-LM token masking (Devlin et al., 2019, section 3.1).
//
// Random numbers are counter-based (src/core/counter_rng.hpp): every draw is
// counter_uniform(seed, counter) or counter_hash(seed, counter) with
//   t = b * L + l                  flat position of token (b, l) in (B, L)
//   counter 3t + 0  choose   token t with probability mlm_probability; with
//                            word_ids, a word uses the choose draw of its first
//                            token in the row, so it is one draw per (row, word)
//   counter 3t + 1  action   u < mask_replace_prob -> mask token;
//                            u < mask_replace_prob + random_replace_prob -> random;
//                            otherwise keep the original id
//   counter 3t + 2  random   the replacement id (when the action says random)
// so the result depends only on the seed, the positions and the ids, never on
// call order or threads.
#include "maskattn/mlm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

#include "core/counter_rng.hpp"

namespace maskattn {
namespace {

constexpr uint64_t kDrawsPerToken = 3;
constexpr uint64_t kChooseDraw = 0, kActionDraw = 1, kRandomDraw = 2;

void check_probability(double p, std::string_view argument) {
  if (!(p >= 0.0 && p <= 1.0))  // also rejects NaN
    throw Error(argument, "a probability in [0, 1]", fmt::format("{}", p));
}

void check_id(int64_t id, int64_t vocab_size, std::string_view argument) {
  if (id < 0 || id >= vocab_size)
    throw Error(argument, fmt::format("an id in [0, vocab_size = {})", vocab_size),
                std::to_string(id));
}

void check_options(const MlmOptions& o) {
  if (o.vocab_size <= 0)
    throw Error("options.vocab_size", "vocab_size > 0", std::to_string(o.vocab_size));
  check_id(o.mask_token_id, o.vocab_size, "options.mask_token_id");
  for (std::size_t k = 0; k < o.special_token_ids.size(); ++k)
    check_id(o.special_token_ids[k], o.vocab_size, fmt::format("options.special_token_ids[{}]", k));
  check_probability(o.mlm_probability, "options.mlm_probability");
  check_probability(o.mask_replace_prob, "options.mask_replace_prob");
  check_probability(o.random_replace_prob, "options.random_replace_prob");
  // The slack admits sums that are 1 up to rounding (0.7 + 0.3).
  if (o.mask_replace_prob + o.random_replace_prob > 1.0 + 1e-12)
    throw Error("options.random_replace_prob",
                fmt::format("mask_replace_prob + random_replace_prob <= 1 (mask_replace_prob = {})",
                            o.mask_replace_prob),
                fmt::format("{}", o.random_replace_prob));
}

void check_tokens(View<const int64_t, 2> token_ids, const MlmOptions& o) {
  const int64_t rows = token_ids.size(0), cols = token_ids.size(1);
  if (token_ids.empty() && rows * cols > 0)
    throw Error("token_ids", fmt::format("a view with data for shape ({}, {})", rows, cols),
                "a null view");
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t l = 0; l < cols; ++l)
      check_id(token_ids(b, l), o.vocab_size, fmt::format("token_ids[{}, {}]", b, l));
  const View<const int64_t, 2>& words = o.word_ids;
  if (words.empty()) return;
  if (words.shape() != token_ids.shape())
    throw Error("options.word_ids",
                fmt::format("the shape of token_ids {}", shape_string(token_ids.shape())),
                shape_string(words.shape()));
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t l = 0; l < cols; ++l)
      if (words(b, l) < -1)
        throw Error(fmt::format("options.word_ids[{}, {}]", b, l),
                    "a word index >= 0, or -1 for a token outside any word",
                    std::to_string(words(b, l)));
}

// The ids a random replacement may take: [0, vocab_size) without the special
// ids and the mask token. Stored as the sorted excluded ids, so a vocabulary
// of any size costs nothing.
class AllowedIds {
 public:
  explicit AllowedIds(const MlmOptions& o) : excluded_(o.special_token_ids) {
    excluded_.push_back(o.mask_token_id);
    std::sort(excluded_.begin(), excluded_.end());
    excluded_.erase(std::unique(excluded_.begin(), excluded_.end()), excluded_.end());
    count_ = o.vocab_size - static_cast<int64_t>(excluded_.size());
  }

  bool contains(int64_t id) const {
    return !std::binary_search(excluded_.begin(), excluded_.end(), id);
  }

  // The k-th allowed id in increasing order, k in [0, count()): step over
  // every excluded id at or below the candidate.
  int64_t nth(int64_t k) const {
    int64_t id = k;
    for (int64_t e : excluded_) {
      if (e > id) break;
      ++id;
    }
    return id;
  }

  // Uniform over the allowed ids from u in [0, 1) (bias below count / 2^53).
  int64_t draw(double u) const {
    const auto k = static_cast<int64_t>(u * static_cast<double>(count_));
    return nth(std::min(k, count_ - 1));
  }

  int64_t count() const { return count_; }

 private:
  std::vector<int64_t> excluded_;  // sorted, unique
  int64_t count_ = 0;
};

}  // namespace

MlmResult mlm_mask(View<const int64_t, 2> token_ids, const MlmOptions& options) {
  check_options(options);
  check_tokens(token_ids, options);

  const int64_t rows = token_ids.size(0), cols = token_ids.size(1);
  const AllowedIds allowed(options);
  const View<const int64_t, 2>& words = options.word_ids;
  const uint64_t seed = options.seed;
  auto uniform = [seed](int64_t t, uint64_t draw) {
    return detail::counter_uniform(seed, static_cast<uint64_t>(t) * kDrawsPerToken + draw);
  };

  MlmResult result{Tensor<int64_t>({rows, cols}), Tensor<int64_t>({rows, cols})};
  View<int64_t, 2> input_ids = result.input_ids.view<2>();   // (B, L)
  View<int64_t, 2> labels = result.labels.view<2>();         // (B, L)
  std::unordered_map<int64_t, int64_t> first_token_of_word;  // word id -> l, per row
  for (int64_t b = 0; b < rows; ++b) {
    first_token_of_word.clear();
    for (int64_t l = 0; l < cols; ++l) {
      const int64_t id = token_ids(b, l);
      input_ids(b, l) = id;
      labels(b, l) = kIgnoreIndex;

      int64_t choose_at = l;  // the token whose choose draw decides this one
      if (!words.empty() && words(b, l) >= 0)
        choose_at = first_token_of_word.try_emplace(words(b, l), l).first->second;
      // A chosen token is never special, so its id is allowed: allowed.count()
      // is >= 1 whenever a random replacement is drawn below.
      if (!allowed.contains(id)) continue;
      if (!(uniform(b * cols + choose_at, kChooseDraw) < options.mlm_probability)) continue;

      labels(b, l) = id;
      const int64_t t = b * cols + l;
      const double action = uniform(t, kActionDraw);
      if (action < options.mask_replace_prob)
        input_ids(b, l) = options.mask_token_id;
      else if (action < options.mask_replace_prob + options.random_replace_prob)
        input_ids(b, l) = allowed.draw(uniform(t, kRandomDraw));
    }
  }
  return result;
}

}  // namespace maskattn
