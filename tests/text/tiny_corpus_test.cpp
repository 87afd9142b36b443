// The built-in corpus and the word vocabulary: a few hundred distinct
// sentences of several lengths, held-out sentences unseen in training but
// made of training words, probes inside their sentences; WordVocab's order,
// encoding, padded batches and errors.
#include "maskattn/text/tiny_corpus.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "maskattn/text/word_vocab.hpp"
#include "throws_error.hpp"

namespace maskattn::text {
namespace {

using testing_errors::throws_error_naming;

TEST(TinyCorpus, DistinctSentencesOfSeveralLengthsHeldOutOnesUnseen) {
  const TinyCorpus& c = tiny_corpus();
  EXPECT_EQ(&c, &tiny_corpus());  // built once
  EXPECT_GE(c.train.size(), 400u);
  EXPECT_LE(c.train.size(), 1000u);
  EXPECT_GE(c.held_out.size(), c.train.size() / 10);
  std::set<std::string> all(c.train.begin(), c.train.end());
  EXPECT_EQ(all.size(), c.train.size());
  for (const auto& s : c.held_out) EXPECT_TRUE(all.insert(s).second) << s;

  const WordVocab vocab(c.train);
  std::set<std::size_t> lengths;
  for (const auto& s : c.train) {
    lengths.insert(vocab.encode(s).size());
    EXPECT_EQ(s.find("  "), std::string::npos) << s;
  }
  EXPECT_GE(lengths.size(), 4u);  // batches need padding
  ASSERT_EQ(c.held_out_probe.size(), c.held_out.size());
  for (std::size_t i = 0; i < c.held_out.size(); ++i) {
    const std::vector<int64_t> ids = vocab.encode(c.held_out[i]);
    for (const int64_t id : ids) EXPECT_NE(id, WordVocab::kUnk) << c.held_out[i];
    EXPECT_GE(c.held_out_probe[i], 0);
    EXPECT_LT(c.held_out_probe[i], static_cast<int64_t>(ids.size()));
  }
  // A probe is the word the sentence ties to the others: the sound of "the
  // (sleepy) cow says moo".
  int64_t sounds = 0;
  for (std::size_t i = 0; i < c.held_out.size(); ++i) {
    const std::string& s = c.held_out[i];
    if (!s.starts_with("the ") || s.find(" says ") == std::string::npos) continue;
    ++sounds;
    EXPECT_EQ(c.held_out_probe[i], static_cast<int64_t>(vocab.encode(s).size()) - 1) << s;
  }
  EXPECT_GT(sounds, 0);
}

TEST(WordVocab, SpecialTokensFirstThenWordsByCount) {
  const std::vector<std::string> sentences{"b a", "a  c a", " b d "};
  const WordVocab v(sentences);
  ASSERT_EQ(v.size(), 7);
  EXPECT_EQ(v.word(WordVocab::kPad), "[PAD]");
  EXPECT_EQ(v.word(WordVocab::kUnk), "[UNK]");
  EXPECT_EQ(v.word(WordVocab::kMask), "[MASK]");
  EXPECT_EQ(v.word(3), "a");  // 3 times
  EXPECT_EQ(v.word(4), "b");  // 2
  EXPECT_EQ(v.word(5), "c");  // 1, before d: first seen
  EXPECT_EQ(v.word(6), "d");
  EXPECT_EQ(v.counts(), (std::vector<int64_t>{0, 0, 0, 3, 2, 1, 1}));
  EXPECT_EQ(v.encode("a e  d"), (std::vector<int64_t>{3, WordVocab::kUnk, 6}));
  const std::vector<int64_t> ids{3, 2, 6};
  EXPECT_EQ(v.decode(ids), "a [MASK] d");
  EXPECT_EQ(v.special_ids(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_TRUE(throws_error_naming([&] { v.word(7); }, "id"));
}

TEST(WordVocab, BatchRightPaddedToTheLongest) {
  const std::vector<std::string> sentences{"b a", "a c a d", "d"};
  const WordVocab v(sentences);
  const PaddedBatch batch = v.encode_batch(sentences);
  ASSERT_EQ(batch.ids.shape(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(batch.lengths, (std::vector<int64_t>{2, 4, 1}));
  // a (3 times) = 3, d (2) = 4, b = 5, c = 6.
  const std::vector<int64_t> expected{5, 3, 0, 0, 3, 6, 3, 4, 4, 0, 0, 0};
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), batch.ids.begin()));
  EXPECT_TRUE(throws_error_naming([&] { v.encode_batch({}); }, "sentences"));
  const std::vector<std::string> with_empty{"a", "  "};
  EXPECT_TRUE(throws_error_naming([&] { v.encode_batch(with_empty); }, "sentences[1]"));
}

}  // namespace
}  // namespace maskattn::text
