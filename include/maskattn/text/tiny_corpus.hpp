// A tiny English corpus written for masked-LM training (`maskattn train-mlm`):
// a few hundred short sentences from templates with structure a small model
// can learn in a minute on a laptop CPU, compiled into the library (no
// downloads). Lowercase words separated by single spaces, no punctuation.
//
// What there is to learn, besides the function words:
//   - facts tied to one word: "the cow says moo", "ducks like to eat bread",
//     "the owl lives in the tree", "the snow is white", "monday comes before
//     tuesday";
//   - agreement: "the brown dog runs by the river" / "the brown dogs run by
//     the river", "anna sees one cat and three frogs";
//   - a pronoun that follows the name: "ben feeds the pig and he is happy";
//   - opposites: "the lion is fast and not slow".
// Colours, adjectives and places are free choices: nothing predicts them, so
// no model gets every masked word right.
//
// The sentences are drawn once, deterministically (the same list on every
// machine), and split into training and held-out sentences; a held-out
// sentence is a combination the training sentences do not contain.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace maskattn::text {

struct TinyCorpus {
  std::vector<std::string> train;
  std::vector<std::string> held_out;  // about one sentence in eight
  // For each held-out sentence, the index of the word its template ties to
  // the others (the animal's sound or food, the verb's number, the pronoun,
  // the fact, the opposite, the day; for free choices of agreement, the word
  // that agrees): the word to mask to see what a model learnt.
  std::vector<int64_t> held_out_probe;
};

// The built-in corpus (built on the first call; the same object after).
const TinyCorpus& tiny_corpus();

}  // namespace maskattn::text
