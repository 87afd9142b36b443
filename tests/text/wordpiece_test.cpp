// WordPieceTokenizer on a small vocabulary built here: greedy longest match,
// ## pieces, [UNK] words, truncation, special tokens in the raw text, every
// normalisation step (with hand-checked pieces), the Unicode-version rules,
// invalid UTF-8, the constructor's checks and from_folder's files. Hermetic:
// the comparison with Hugging Face over a whole corpus is
// python/tests/test_tokenizer.py's job.
#include "maskattn/text/wordpiece.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "throws_error.hpp"

namespace maskattn::text {
namespace {

namespace fs = std::filesystem;
using testing_errors::throws_error_naming;

// id = index. The special tokens first, as in BERT's vocabulary.
const std::vector<std::string>& test_vocab() {
  static const std::vector<std::string> vocab = {
      "[PAD]",
      "[UNK]",
      "[CLS]",
      "[SEP]",
      "[MASK]",  // 0-4
      "un",
      "##aff",
      "##able",
      "unaff",
      "##ab",  // 5-9: the paper's "unaffable"
      "a",
      "##a",
      "b",
      "##b",
      "x",
      "##x",
      "y",
      "##y",
      "e",
      "##e",
      "f",
      "##f",
      "q",
      "r",
      "hello",
      "world",
      "cafe",
      "naive",
      "st",
      "##raße",
      "ß",
      "mask",
      "mas",
      "##k",
      "σ",
      "##α",
      "##σ",
      "i",
      "##\u0307",
      "istanbul",
      "İstanbul",
      "i\u0307stanbul",
      "\u1112",
      "##\u1161",
      "##\u11ab",  // the jamo of 한
      "日",
      "本",
      "##本",
      "[",
      "]",
      ",",
      "!",
      ".",
      "$",
      "~",
      "\u2e2e",        // ⸮ (Po since 3.0)
      "##\u2e43",      // ⹃ (Po since 10.0)
      "##\u1ac0",      // ᫀ (Mn since 13.0)
      "##\u08e2",      // Cf since 9.0
      "\u166d",        // Po in 8.0, So now
      "\U000111c9",    // Po in 8.0, Mn now
      "##\ua9bd",      // Mc in 8.0, Mn now
      "##\u1885",      // Lo in 8.0, Mn now
      "##\U00011938",  // decomposes since 13.0
      "##\U0001d165",
      "##\U0001d16d",
      "##\U00016ff0",  // Mc, classes 216, 226, 6 (13.0)
      "##\u200b",
      "\u00e9",
      "##\u00e9",
      "##\u0301",
      "\u00a0",
  };
  return vocab;
}

const WordPieceTokenizer& bert() {
  static const WordPieceTokenizer t(test_vocab());
  return t;
}

WordPieceTokenizer with(const std::function<void(WordPieceOptions&)>& change) {
  WordPieceOptions o;
  change(o);
  return WordPieceTokenizer(test_vocab(), o);
}

// The pieces joined by spaces: "un ##aff ##able".
std::string pieces(const WordPieceTokenizer& t, std::string_view text) {
  std::string out;
  for (const std::string& p : t.tokenize(text)) out += (out.empty() ? "" : " ") + p;
  return out;
}

int64_t id(std::string_view token) { return bert().token_to_id(token).value(); }

// ---- WordPiece: greedy longest match ------------------------------------------

TEST(WordPiece, GreedyLongestMatchFromTheStart) {
  // Devlin et al.'s example; "unaff" is longer than "un", so it wins, and the
  // rest is the longest ## entry at each position.
  EXPECT_EQ(pieces(bert(), "unaffable"), "unaff ##able");
  EXPECT_EQ(pieces(bert(), "unable"), "un ##able");
  EXPECT_EQ(pieces(bert(), "unab"), "un ##ab");
  EXPECT_EQ(pieces(bert(), "aaab"), "a ##a ##ab");  // ##ab, longer than ##a
  EXPECT_EQ(pieces(bert(), "straße"), "st ##raße");
}

TEST(WordPiece, AWordWithAnUnmatchedPositionIsOneUnk) {
  // "unaff" matches, but nothing at "z": the whole word, not only its tail.
  EXPECT_EQ(pieces(bert(), "unaffz"), "[UNK]");
  EXPECT_EQ(pieces(bert(), "zab a"), "[UNK] a");
  EXPECT_EQ(bert().encode("hello zzz world"),
            (std::vector<int64_t>{2, id("hello"), 1, id("world"), 3}));
}

TEST(WordPiece, WordsLongerThanTheLimitAreUnk) {
  EXPECT_EQ(bert().tokenize(std::string(100, 'a')).size(), 100u);
  EXPECT_EQ(pieces(bert(), std::string(101, 'a')), "[UNK]");
  // Code points after normalisation count, not bytes: 100 é (200 bytes, 200
  // code points after NFD) are 100 "e" once the accents are stripped.
  std::string e_acute;
  for (int k = 0; k < 100; ++k) e_acute += "\u00e9";
  EXPECT_EQ(bert().tokenize(e_acute).size(), 100u);
  EXPECT_EQ(pieces(bert(), e_acute + "\u00e9"), "[UNK]");
  const WordPieceTokenizer short_words = with([](auto& o) { o.max_input_chars_per_word = 3; });
  EXPECT_EQ(pieces(short_words, "aaa aaaa"), "a ##a ##a [UNK]");
}

TEST(WordPiece, EncodeAddsClsAndSepAndTruncates) {
  const WordPieceTokenizer& t = bert();
  const int64_t a = id("a"), aa = id("##a");
  EXPECT_EQ(t.encode("aaa a"), (std::vector<int64_t>{2, a, aa, aa, a, 3}));
  EXPECT_EQ(t.encode("aaa a", 0), t.encode("aaa a"));
  EXPECT_EQ(t.encode("aaa a", 4), (std::vector<int64_t>{2, a, aa, 3}));
  EXPECT_EQ(t.encode("aaa a", 3), (std::vector<int64_t>{2, a, 3}));
  EXPECT_EQ(t.encode("aaa a", 2), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.encode("aaa a", 6), t.encode("aaa a"));
  EXPECT_EQ(t.encode("aaa a", 100), t.encode("aaa a"));
  EXPECT_EQ(t.encode(""), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.encode(" \t "), (std::vector<int64_t>{2, 3}));
  // A special token in the text counts like any piece.
  EXPECT_EQ(t.encode("a [MASK] a", 4), (std::vector<int64_t>{2, a, 4, 3}));
  EXPECT_TRUE(throws_error_naming([&] { t.encode("a", 1); }, "max_length"));
  EXPECT_TRUE(throws_error_naming([&] { t.encode("a", -1); }, "max_length"));
}

// ---- step 1: added tokens in the raw text --------------------------------------

TEST(WordPiece, SpecialTokensAreFoundInTheRawTextWithoutWordBoundaries) {
  EXPECT_EQ(pieces(bert(), "x[MASK]y"), "x [MASK] y");
  EXPECT_EQ(bert().encode("[CLS][SEP]"), (std::vector<int64_t>{2, 2, 3, 3}));
  EXPECT_EQ(pieces(bert(), "[PAD] [UNK]"), "[PAD] [UNK]");
  // Exact and case-sensitive: "[mask]" is text (lowercased only later).
  EXPECT_EQ(pieces(bert(), "[mask]"), "[ mask ]");
  EXPECT_EQ(pieces(bert(), "[MASK ]"), "[ mask ]");
  // Leftmost first: "[MAS" does not start a token, the "[MASK]" after it does.
  EXPECT_EQ(pieces(bert(), "[MAS[MASK]]"), "[ mas [MASK] ]");
  // The text on each side is normalised on its own: no word joins across.
  EXPECT_EQ(pieces(bert(), "a\u0301[MASK]\u0301a"), "a [MASK] a");
}

TEST(WordPiece, AddedTokensAreLeftmostLongestAndOnlyThoseListed) {
  const WordPieceTokenizer t = with([](auto& o) { o.added_tokens = {"un", "unaff", "[MASK]"}; });
  // At the leftmost position, the longest added token.
  EXPECT_EQ(pieces(t, "xunaffable"), "x unaff [UNK]");
  EXPECT_EQ(pieces(t, "bunb"), "b un b");
  // [CLS] is no longer an added token: plain text.
  EXPECT_EQ(pieces(t, "[CLS]"), "[ [UNK] ]");
  const WordPieceTokenizer none = with([](auto& o) { o.added_tokens.clear(); });
  EXPECT_EQ(pieces(none, "[MASK]"), "[ mask ]");
}

// ---- step 2: clean_text --------------------------------------------------------

TEST(WordPiece, CleanTextRemovesControlAndFormatCharacters) {
  // Cc (U+000B, U+0085, U+007F, U+001F), Cf (U+200B, U+00AD, U+FEFF), Co
  // (U+E000), U+0000 and U+FFFD go; \t \n \r are whitespace.
  EXPECT_EQ(pieces(bert(), "a\u200bb"), "a ##b");
  EXPECT_EQ(pieces(bert(), "x\x0by e\u0085f"), "x ##y e ##f");
  EXPECT_EQ(pieces(bert(), "a\u00adb\ufeffa\ue000b"), "a ##b ##ab");
  EXPECT_EQ(pieces(bert(), std::string("a\0b", 3)), "a ##b");
  EXPECT_EQ(pieces(bert(), "\ufffd q \x1f\x7f"), "q");
  EXPECT_EQ(pieces(bert(), "a\tb\nx\ry"), "a b x y");
  // Unassigned (Cn) characters stay: U+0378 makes the word unknown.
  EXPECT_EQ(pieces(bert(), "a\u0378b"), "[UNK]");
  // Without clean_text they stay too (U+200B is not whitespace).
  const WordPieceTokenizer raw = with([](auto& o) { o.clean_text = false; });
  EXPECT_EQ(pieces(raw, "a\u200bb"), "a ##\u200b ##b");
  EXPECT_EQ(pieces(raw, "a\x0b\x0b b"), "a b");  // U+000B is White_Space
}

TEST(WordPiece, EveryKindOfWhitespaceSplitsWords) {
  for (const char* space : {" ", "\t", "\n", "\r", "\u00a0", "\u1680", "\u2000", "\u2009", "\u200a",
                            "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"})
    EXPECT_EQ(pieces(bert(), fmt::format("x{}y", space)), "x y") << space;
  // Not White_Space: U+200B (removed, joins), U+180E (Cf: removed).
  EXPECT_EQ(pieces(bert(), "x\u180ey"), "x ##y");
}

// ---- step 3: handle_chinese_chars ---------------------------------------------

TEST(WordPiece, CjkIdeographsAreWordsOfTheirOwn) {
  EXPECT_EQ(pieces(bert(), "日本"), "日 本");
  EXPECT_EQ(pieces(bert(), "a日b"), "a 日 b");
  const WordPieceTokenizer joined = with([](auto& o) { o.handle_chinese_chars = false; });
  EXPECT_EQ(pieces(joined, "日本"), "日 ##本");
}

// ---- step 4: strip_accents, lowercase -----------------------------------------

TEST(WordPiece, AccentsAreStrippedAfterNfd) {
  EXPECT_EQ(pieces(bert(), "Café NAÏVE"), "cafe naive");
  EXPECT_EQ(pieces(bert(), "cafe\u0301"), "cafe");  // already decomposed
  EXPECT_EQ(pieces(bert(), "a\u0345b"), "a ##b");   // U+0345 is Mn
  // Hangul syllables decompose into jamo (NFD), which are not marks.
  EXPECT_EQ(pieces(bert(), "한"), "\u1112 ##\u1161 ##\u11ab");
  // ß has no decomposition; the capital ẞ lowercases to it.
  EXPECT_EQ(pieces(bert(), "ẞ ß"), "ß ß");
  const WordPieceTokenizer kept = with([](auto& o) { o.strip_accents = false; });
  EXPECT_EQ(pieces(kept, "\u00e9\u00e9"), "\u00e9 ##\u00e9");
  EXPECT_EQ(pieces(kept, "cafe\u0301"), "cafe ##\u0301");
}

TEST(WordPiece, LowercaseIsPerCodePointWithoutContext) {
  EXPECT_EQ(pieces(bert(), "HeLLo WORLD"), "hello world");
  // No final-sigma rule: the last Σ is σ, not ς.
  EXPECT_EQ(pieces(bert(), "ΣΑΣ"), "σ ##α ##σ");
  // İ: NFD gives I + U+0307, the dot is stripped, I lowercases to i ...
  EXPECT_EQ(pieces(bert(), "İstanbul"), "istanbul");
  // ... and without stripping, İ lowercases to i + U+0307 (SpecialCasing).
  const WordPieceTokenizer kept = with([](auto& o) { o.strip_accents = false; });
  EXPECT_EQ(pieces(kept, "İstanbul"), "i\u0307stanbul");
  EXPECT_EQ(pieces(kept, "İ"), "i ##\u0307");
  const WordPieceTokenizer cased = with([](auto& o) {
    o.lowercase = false;
    o.strip_accents = false;
  });
  EXPECT_EQ(pieces(cased, "İstanbul Hello"), "İstanbul [UNK]");
}

// ---- step 5: punctuation --------------------------------------------------------

TEST(WordPiece, PunctuationCharactersAreWordsOfTheirOwn) {
  EXPECT_EQ(pieces(bert(), "hello, world!"), "hello , world !");
  EXPECT_EQ(pieces(bert(), "a.b$a~b"), "a . b $ a ~ b");  // ASCII symbols count
  EXPECT_EQ(pieces(bert(), "a\u2e2eb"), "a \u2e2e b");    // Po
}

// ---- the Unicode versions of the tokenizers crate ---------------------------------

TEST(WordPiece, CategoriesAreThoseOfUnicode8) {
  // Assigned after 8.0: not punctuation (U+2E43, Po), not Mn (U+1AC0), not
  // control (U+08E2, Cf): each stays inside its word.
  EXPECT_EQ(pieces(bert(), "a\u2e43b"), "a ##\u2e43 ##b");
  EXPECT_EQ(pieces(bert(), "e\u1ac0"), "e ##\u1ac0");
  EXPECT_EQ(pieces(bert(), "x\u08e2y"), "x ##\u08e2 ##y");
  // Categories that changed since 8.0 keep their 8.0 value.
  EXPECT_EQ(pieces(bert(), "a\u166db"), "a \u166d b");          // Po then, So now
  EXPECT_EQ(pieces(bert(), "a\U000111c9b"), "a \U000111c9 b");  // Po then, Mn now
  EXPECT_EQ(pieces(bert(), "x\u1734"), "x");                    // Mn then, Mc now
  EXPECT_EQ(pieces(bert(), "x\ua9bd"), "x ##\ua9bd");           // Mc then, Mn now
  EXPECT_EQ(pieces(bert(), "x\u1885"), "x ##\u1885");           // Lo then, Mn now
}

TEST(WordPiece, NfdIsThatOfUnicode9) {
  // U+11938 decomposes since Unicode 13.0: not here.
  EXPECT_EQ(pieces(bert(), "x\U00011938"), "x ##\U00011938");
  // Canonical order: U+1D16D (class 226) moves after U+1D165 (216) ...
  EXPECT_EQ(pieces(bert(), "x\U0001d16d\U0001d165"), "x ##\U0001d165 ##\U0001d16d");
  // ... but U+16FF0 (class 6, Unicode 13.0) counts as class 0 and stays.
  EXPECT_EQ(pieces(bert(), "x\U0001d165\U00016ff0"), "x ##\U0001d165 ##\U00016ff0");
  // Without strip_accents there is no NFD, so no reordering either.
  const WordPieceTokenizer kept = with([](auto& o) { o.strip_accents = false; });
  EXPECT_EQ(pieces(kept, "x\U0001d16d\U0001d165"), "x ##\U0001d16d ##\U0001d165");
}

// ---- UTF-8 ----------------------------------------------------------------------

TEST(WordPiece, InvalidUtf8IsAnErrorNamingTheOffset) {
  const WordPieceTokenizer& t = bert();
  const auto fails = [&](std::string_view text, std::string_view needle) {
    return throws_error_naming([&] { t.encode(text); }, needle) &&
           throws_error_naming([&] { t.tokenize(text); }, needle);
  };
  EXPECT_TRUE(fails("hello\xff", "text: expected valid UTF-8, got invalid byte 0xff at offset 5"));
  EXPECT_TRUE(fails("\x80", "invalid byte 0x80 at offset 0"));
  EXPECT_TRUE(fails("a\xc0\x80", "invalid byte 0xc0 at offset 1"));         // overlong NUL
  EXPECT_TRUE(fails("\xe0\x80\x80", "invalid byte 0x80 at offset 1"));      // overlong
  EXPECT_TRUE(fails("\xed\xa0\x80", "invalid byte 0xa0 at offset 1"));      // surrogate
  EXPECT_TRUE(fails("\xf4\x90\x80\x80", "invalid byte 0x90 at offset 1"));  // > U+10FFFF
  EXPECT_TRUE(fails("ab\xe2\x82x", "invalid byte 0x78 at offset 4"));       // cut short
  EXPECT_TRUE(fails("ab\xe2\x82", "cut off by the end: byte 0xe2 at offset 2"));
  // The largest code point and the last before the surrogates are valid.
  EXPECT_EQ(pieces(t, "\U0010ffff \ud7ff"), "[UNK] [UNK]");
}

// ---- construction ----------------------------------------------------------------

TEST(WordPiece, Accessors) {
  const WordPieceTokenizer& t = bert();
  EXPECT_EQ(t.vocab_size(), static_cast<int64_t>(test_vocab().size()));
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 1);
  EXPECT_EQ(t.cls_id(), 2);
  EXPECT_EQ(t.sep_id(), 3);
  EXPECT_EQ(t.mask_id(), 4);
  EXPECT_EQ(t.token_to_id("##able"), 7);
  EXPECT_EQ(t.token_to_id("able"), std::nullopt);
  EXPECT_EQ(t.id_to_token(5), "un");
  EXPECT_TRUE(throws_error_naming([&] { t.id_to_token(t.vocab_size()); }, "id"));
  EXPECT_TRUE(throws_error_naming([&] { t.id_to_token(-1); }, "id"));
  // Copies share the vocabulary.
  const WordPieceTokenizer copy = t;
  EXPECT_EQ(copy.encode("unaffable"), t.encode("unaffable"));
}

TEST(WordPiece, ConstructorChecksTheVocabularyAndOptions) {
  using V = std::vector<std::string>;
  const V specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  const auto make = [](V vocab, WordPieceOptions o = {}) {
    return [=] { WordPieceTokenizer(vocab, o); };
  };
  EXPECT_NO_THROW(make(specials)());
  EXPECT_TRUE(throws_error_naming(make({}), "vocab: expected at least one token"));
  V dup = specials;
  dup.push_back("[CLS]");
  EXPECT_TRUE(throws_error_naming(make(dup), "vocab[5]: expected distinct tokens"));
  V empty = specials;
  empty.push_back("");
  EXPECT_TRUE(throws_error_naming(make(empty), "vocab[5]: expected a non-empty token"));
  V bad = specials;
  bad.push_back("a\xff");
  EXPECT_TRUE(throws_error_naming(make(bad), "vocab[5]: expected a token in UTF-8"));
  EXPECT_TRUE(
      throws_error_naming(make({"[PAD]", "[CLS]", "[SEP]", "[MASK]"}), "options.unk_token"));
  WordPieceOptions o;
  o.added_tokens.push_back("<s>");
  EXPECT_TRUE(throws_error_naming(make(specials, o), "options.added_tokens[5]"));
  o = {};
  o.continuing_subword_prefix = "";
  EXPECT_TRUE(throws_error_naming(make(specials, o), "options.continuing_subword_prefix"));
  o = {};
  o.max_input_chars_per_word = 0;
  EXPECT_TRUE(throws_error_naming(make(specials, o), "options.max_input_chars_per_word"));
}

TEST(WordPiece, AnotherSubwordPrefix) {
  WordPieceOptions o;
  o.continuing_subword_prefix = "@@";
  const WordPieceTokenizer t(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "@@able", "##able"}, o);
  EXPECT_EQ(pieces(t, "unable"), "un @@able");
}

TEST(WordPiece, ConstCallsFromManyThreadsAgree) {
  const std::string text = "Café unaffable, ΣΑΣ 한 x[MASK]y İstanbul a\u2e43b ";
  std::string long_text;
  for (int k = 0; k < 200; ++k) long_text += text;
  const std::vector<int64_t> expected = bert().encode(long_text);
  std::vector<std::vector<int64_t>> got(4);
  std::vector<std::thread> threads;
  for (std::size_t k = 0; k < got.size(); ++k)
    threads.emplace_back([&, k] {
      for (int r = 0; r < 20; ++r) got[k] = bert().encode(long_text);
    });
  for (std::thread& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

// ---- from_folder -------------------------------------------------------------------

// A fresh directory per test, removed afterwards.
class WordPieceFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::path(::testing::TempDir()) /
           fmt::format("maskattn_wordpiece_{}_{}", ::getpid(), counter++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, std::string_view bytes) const {
    std::ofstream(dir_ / name, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  void write_vocab_txt() const {
    std::string text;
    for (const std::string& t : test_vocab()) text += t + "\n";
    write("vocab.txt", text);
  }
  // A tokenizer.json of the test vocabulary, as Hugging Face writes one
  // (with `normalizer` replaced by the given JSON, `extra` appended).
  std::string tokenizer_json(std::string_view normalizer =
                                 R"({"type": "BertNormalizer", "clean_text": true,
                                     "handle_chinese_chars": true, "strip_accents": null,
                                     "lowercase": true})",
                             std::string_view model_type = "WordPiece",
                             std::string_view mask_normalized = "false") const {
    std::string vocab;
    for (std::size_t i = 0; i < test_vocab().size(); ++i) {
      std::string escaped;
      for (const char c : test_vocab()[i]) {
        if (c == '"' || c == '\\') escaped += '\\';
        escaped += c;
      }
      vocab += fmt::format("{}\"{}\": {}", i == 0 ? "" : ", ", escaped, i);
    }
    return fmt::format(
        R"({{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {{"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
    {{"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
    {{"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
    {{"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
    {{"id": 4, "content": "[MASK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": {}, "special": true}}],
  "normalizer": {},
  "pre_tokenizer": {{"type": "BertPreTokenizer"}},
  "post_processor": {{"type": "TemplateProcessing",
    "single": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}},
               {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}],
    "pair": [],
    "special_tokens": {{"[CLS]": {{"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}},
                       "[SEP]": {{"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}}}},
  "decoder": {{"type": "WordPiece", "prefix": "##", "cleanup": true}},
  "model": {{"type": "{}", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": {{{}}}}}}})",
        mask_normalized, normalizer, model_type, vocab);
  }

  fs::path dir_;
};

TEST_F(WordPieceFolder, TokenizerJsonGivesTheSameTokenizer) {
  write("tokenizer.json", tokenizer_json());
  const WordPieceTokenizer t = WordPieceTokenizer::from_folder(dir_);
  EXPECT_EQ(t.vocab_size(), bert().vocab_size());
  for (const char* text : {"unaffable Café x[MASK]y 한 ΣΑΣ", "İstanbul a\u2e43b [mask]"})
    EXPECT_EQ(t.encode(text), bert().encode(text)) << text;
  EXPECT_TRUE(t.options().strip_accents);  // null: as lowercase
}

TEST_F(WordPieceFolder, TokenizerJsonNormalizerOptions) {
  write("tokenizer.json", tokenizer_json(R"({"type": "BertNormalizer", "clean_text": false,
      "handle_chinese_chars": false, "strip_accents": false, "lowercase": true})"));
  const WordPieceTokenizer t = WordPieceTokenizer::from_folder(dir_);
  EXPECT_FALSE(t.options().clean_text);
  EXPECT_FALSE(t.options().handle_chinese_chars);
  EXPECT_FALSE(t.options().strip_accents);
  EXPECT_TRUE(t.options().lowercase);
  EXPECT_EQ(pieces(t, "日本 İ"), "日 ##本 i ##\u0307");
}

TEST_F(WordPieceFolder, VocabTxtWithAndWithoutConfig) {
  write_vocab_txt();
  EXPECT_EQ(WordPieceTokenizer::from_folder(dir_).encode("Café [MASK]"),
            bert().encode("Café [MASK]"));
  write("tokenizer_config.json", R"({"do_lower_case": false, "tokenize_chinese_chars": false,
      "strip_accents": null, "mask_token": {"content": "[MASK]", "normalized": false}})");
  const WordPieceTokenizer t = WordPieceTokenizer::from_folder(dir_);
  EXPECT_FALSE(t.options().lowercase);
  EXPECT_FALSE(t.options().strip_accents);
  EXPECT_FALSE(t.options().handle_chinese_chars);
  EXPECT_EQ(pieces(t, "Hello 日本 [MASK]"), "[UNK] 日 ##本 [MASK]");
}

TEST_F(WordPieceFolder, MoreSpecialTokensFromTokenizerConfig) {
  write_vocab_txt();
  write("tokenizer_config.json", R"({"additional_special_tokens": ["un"],
      "added_tokens_decoder": {"8": {"content": "unaff", "normalized": false}}})");
  const WordPieceTokenizer t = WordPieceTokenizer::from_folder(dir_);
  EXPECT_EQ(pieces(t, "bunb xunaffable"), "b un b x unaff [UNK]");
  write("tokenizer_config.json", R"({"added_tokens_decoder": {"9": {"content": "unaff"}}})");
  EXPECT_TRUE(throws_error_naming([&] { WordPieceTokenizer::from_folder(dir_); },
                                  "added_tokens_decoder.9.content: expected a token of the "
                                  "vocabulary under its id, got \"unaff\" with id 9"));
  write("tokenizer_config.json",
        R"({"added_tokens_decoder": {"8": {"content": "unaff", "normalized": true}}})");
  EXPECT_TRUE(throws_error_naming([&] { WordPieceTokenizer::from_folder(dir_); },
                                  "added_tokens_decoder.8.normalized: expected false"));
}

TEST_F(WordPieceFolder, MissingAndUnreadableFilesAreErrorsNamingThem) {
  const auto from = [&](const fs::path& p) { return [p] { WordPieceTokenizer::from_folder(p); }; };
  EXPECT_TRUE(throws_error_naming(from(dir_ / "absent"), "no such directory"));
  EXPECT_TRUE(throws_error_naming(from(dir_), "expected a tokenizer.json or a vocab.txt in it"));
  write("vocab.txt", "a\n");
  EXPECT_TRUE(throws_error_naming(from(dir_ / "vocab.txt"), "not a directory"));
  fs::create_directory(dir_ / "tokenizer.json");
  EXPECT_TRUE(throws_error_naming(from(dir_), "tokenizer.json\": expected a readable file"));
}

TEST_F(WordPieceFolder, MalformedTokenizerJsonIsAnErrorNamingTheField) {
  const auto fails = [&](std::string_view json, std::string_view needle) {
    write("tokenizer.json", json);
    return throws_error_naming([&] { WordPieceTokenizer::from_folder(dir_); }, needle);
  };
  EXPECT_TRUE(fails("{\"model\": ", "tokenizer.json\": expected a JSON file"));
  EXPECT_TRUE(fails("[]", "tokenizer.json\": expected a JSON object"));
  EXPECT_TRUE(fails("{}", "tokenizer.json\" normalizer: expected an object, got nothing"));
  EXPECT_TRUE(
      fails(tokenizer_json(R"({"type": "NFKC"})"), "normalizer.type: expected \"BertNormalizer\""));
  EXPECT_TRUE(fails(tokenizer_json(R"({"type": "BertNormalizer", "lowercase": 1})"),
                    "normalizer.lowercase: expected true or false, got 1"));
  EXPECT_TRUE(fails(tokenizer_json(R"({"type": "BertNormalizer"})", "BPE"),
                    "model.type: expected \"WordPiece\""));
  EXPECT_TRUE(fails(tokenizer_json(R"({"type": "BertNormalizer"})", "WordPiece", "true"),
                    "added_tokens[4].normalized: expected false"));
}

TEST_F(WordPieceFolder, MalformedVocabTxtIsAnErrorNamingTheLine) {
  const auto fails = [&](std::string_view text, std::string_view needle) {
    write("vocab.txt", text);
    return throws_error_naming([&] { WordPieceTokenizer::from_folder(dir_); }, needle);
  };
  EXPECT_TRUE(fails("", "vocab.txt\": expected at least one token, got an empty file"));
  EXPECT_TRUE(fails("[PAD]\n[UNK]\n\n[CLS]\n", "vocab.txt\" line 3: expected a token"));
  EXPECT_TRUE(fails("[PAD]\n[UNK]\n[PAD]\n", "vocab.txt\" line 3: expected a token no other"));
  EXPECT_TRUE(fails("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", "vocab.txt\" options.mask_token"));
  write_vocab_txt();
  write("tokenizer_config.json", R"({"do_basic_tokenize": false})");
  EXPECT_TRUE(throws_error_naming([&] { WordPieceTokenizer::from_folder(dir_); },
                                  "tokenizer_config.json\" do_basic_tokenize"));
}

}  // namespace
}  // namespace maskattn::text
