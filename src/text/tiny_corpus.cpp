// The sentences of tiny_corpus(): each template expands to every combination
// of its word lists, then keeps a fixed-size sample of them (its "cap"), so
// that no template drowns the others. The sample and the held-out split come
// from counter_hash with fixed seeds: the same corpus everywhere.
#include "maskattn/text/tiny_corpus.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/counter_rng.hpp"

namespace maskattn::text {
namespace {

using maskattn::detail::counter_hash;

struct Animal {
  const char* one;
  const char* many;
  const char* sound;
  const char* food;
  const char* home;
};

constexpr Animal kAnimals[] = {
    {"dog", "dogs", "woof", "bones", "kennel"},  {"cat", "cats", "meow", "fish", "basket"},
    {"cow", "cows", "moo", "grass", "barn"},     {"duck", "ducks", "quack", "bread", "pond"},
    {"pig", "pigs", "oink", "apples", "sty"},    {"horse", "horses", "neigh", "hay", "stable"},
    {"owl", "owls", "hoot", "mice", "tree"},     {"lion", "lions", "roar", "meat", "den"},
    {"frog", "frogs", "croak", "flies", "pond"}, {"bee", "bees", "buzz", "nectar", "hive"},
};

constexpr const char* kColours[] = {"red", "brown", "black", "white", "grey", "golden"};
constexpr const char* kAdjectives[] = {"lazy", "sleepy", "little", "big", "old", "young", "happy"};
constexpr std::pair<const char*, const char*> kVerbs[] = {
    {"runs", "run"}, {"sleeps", "sleep"}, {"plays", "play"},
    {"sits", "sit"}, {"walks", "walk"},   {"hides", "hide"},
};
constexpr const char* kPlaces[] = {"in the park", "by the river", "under the tree", "on the hill",
                                   "near the farm"};
constexpr std::pair<const char*, const char*> kPeople[] = {
    {"anna", "she"}, {"emma", "she"}, {"lucy", "she"}, {"maria", "she"},
    {"ben", "he"},   {"tom", "he"},   {"david", "he"}, {"peter", "he"},
};
constexpr const char* kNumbers[] = {"two", "three", "four", "five"};
constexpr std::pair<const char*, const char*> kFacts[] = {
    {"sky", "blue"},   {"grass", "green"}, {"snow", "white"},
    {"sun", "yellow"}, {"coal", "black"},  {"cherry", "red"},
};
constexpr std::pair<const char*, const char*> kOpposites[] = {
    {"big", "small"}, {"fast", "slow"},  {"hot", "cold"},   {"old", "young"},
    {"happy", "sad"}, {"loud", "quiet"}, {"tall", "short"},
};
constexpr const char* kDays[] = {"monday", "tuesday",  "wednesday", "thursday",
                                 "friday", "saturday", "sunday"};

std::string join(std::initializer_list<std::string> words) {
  std::string s;
  for (const auto& w : words) {
    if (w.empty()) continue;
    if (!s.empty()) s += ' ';
    s += w;
  }
  return s;
}

int64_t count_words(const std::string& s) {
  return s.empty() ? 0 : 1 + static_cast<int64_t>(std::count(s.begin(), s.end(), ' '));
}

// A sentence and the index of its probe: the word the others determine.
struct Sentence {
  std::string text;
  int64_t probe = 0;
};

// before + probe + after, each a run of words.
Sentence make(std::initializer_list<std::string> before, const std::string& probe,
              std::initializer_list<std::string> after = {}) {
  const std::string head = join(before);
  return {join({head, probe, join(after)}), count_words(head)};
}

// Fisher-Yates with counter_hash draws: the same order on every platform
// (std::shuffle's algorithm is the library's choice).
template <class T>
void shuffle(std::vector<T>& v, uint64_t seed) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(counter_hash(seed, i) % i);
    std::swap(v[i - 1], v[j]);
  }
}

// Keeps `cap` of the template's sentences (all of them when there are fewer).
void take(std::vector<Sentence>& corpus, std::vector<Sentence> all, std::size_t cap,
          uint64_t seed) {
  shuffle(all, seed);
  if (all.size() > cap) all.resize(cap);
  corpus.insert(corpus.end(), all.begin(), all.end());
}

std::vector<Sentence> sentences() {
  std::vector<Sentence> corpus;
  std::vector<Sentence> t;
  uint64_t seed = 1;

  // Sounds, food and homes: one word each animal's.
  for (const auto& a : kAnimals) {
    t.push_back(make({"the", a.one, "says"}, a.sound));
    for (const char* adj : kAdjectives) t.push_back(make({"the", adj, a.one, "says"}, a.sound));
  }
  take(corpus, std::move(t), 60, seed++);
  t.clear();
  for (const auto& a : kAnimals) {
    t.push_back(make({a.many, "like to eat"}, a.food));
    for (const char* c : kColours) t.push_back(make({"the", c, a.one, "eats"}, a.food));
  }
  take(corpus, std::move(t), 50, seed++);
  t.clear();
  for (const auto& a : kAnimals) {
    t.push_back(make({"the", a.one, "lives in the"}, a.home));
    for (const char* adj : kAdjectives)
      t.push_back(make({"the", adj, a.one, "sleeps in the"}, a.home));
  }
  take(corpus, std::move(t), 50, seed++);
  t.clear();

  // Subject-verb agreement, singular and plural.
  for (const char* c : kColours)
    for (const auto& a : kAnimals)
      for (const auto& [one, many] : kVerbs)
        for (const char* place : kPlaces) {
          t.push_back(make({"the", c, a.one}, one, {place}));
          t.push_back(make({"the", c, a.many}, many, {place}));
        }
  take(corpus, std::move(t), 160, seed++);
  t.clear();
  for (const char* c : kColours)
    for (const auto& a : kAnimals)
      for (const char* adj : kAdjectives)
        for (const auto& b : kAnimals) {
          if (&a == &b) continue;
          t.push_back(make({"the", c, a.one}, "jumps", {"over the", adj, b.one}));
          t.push_back(make({"the", c, a.many}, "jump", {"over the", adj, b.one}));
        }
  take(corpus, std::move(t), 60, seed++);
  t.clear();

  // Number agreement.
  for (const auto& [name, pronoun] : kPeople)
    for (const auto& a : kAnimals)
      for (const char* n : kNumbers)
        for (const auto& b : kAnimals)
          if (&a != &b) t.push_back(make({name, "sees one", a.one, "and", n}, b.many));
  take(corpus, std::move(t), 80, seed++);
  t.clear();

  // Pronouns that follow the name.
  for (const auto& [name, pronoun] : kPeople)
    for (const auto& a : kAnimals) {
      t.push_back(make({name, "feeds the", a.one, "and"}, pronoun, {"is happy"}));
      for (const char* c : kColours)
        t.push_back(make({name, "says"}, pronoun, {"has a", c, a.one}));
    }
  take(corpus, std::move(t), 90, seed++);
  t.clear();

  // Facts, opposites, the days of the week.
  for (const auto& [thing, colour] : kFacts) {
    t.push_back(make({"the", thing, "is"}, colour));
    for (const auto& [name, pronoun] : kPeople)
      t.push_back(make({name, "knows the", thing, "is"}, colour));
  }
  take(corpus, std::move(t), 54, seed++);
  t.clear();
  for (const auto& a : kAnimals)
    for (const auto& [x, y] : kOpposites) {
      t.push_back(make({"the", a.one, "is", x, "and not"}, y));
      t.push_back(make({"the", a.one, "is", y, "and not"}, x));
    }
  take(corpus, std::move(t), 60, seed++);
  t.clear();
  constexpr std::size_t kWeek = std::size(kDays);
  for (std::size_t d = 0; d < kWeek; ++d) {
    const std::string day = kDays[d], next = kDays[(d + 1) % kWeek];
    t.push_back(make({}, next, {"comes after", day}));
    t.push_back(make({day, "comes before"}, next));
    t.push_back(make({"after", day, "comes"}, next));
  }
  take(corpus, std::move(t), 21, seed++);
  return corpus;
}

TinyCorpus build() {
  std::vector<Sentence> all = sentences();
  shuffle(all, 0x7e57);
  TinyCorpus c;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i % 8 != 7) {
      c.train.push_back(std::move(all[i].text));
      continue;
    }
    c.held_out.push_back(std::move(all[i].text));
    c.held_out_probe.push_back(all[i].probe);
  }
  return c;
}

}  // namespace

const TinyCorpus& tiny_corpus() {
  static const TinyCorpus corpus = build();
  return corpus;
}

}  // namespace maskattn::text
