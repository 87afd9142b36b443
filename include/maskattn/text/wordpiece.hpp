// The BERT WordPiece tokenizer: text -> token ids, the same ids as Hugging
// Face's BertTokenizer (transformers 5.23, the Rust `tokenizers` 0.23.3 it
// runs on) for a BertNormalizer + BertPreTokenizer + WordPiece pipeline.
//
// encode("Hello, world!") with all-MiniLM-L6-v2's vocabulary gives
//   [CLS] hello , world ! [SEP]  = {101, 7592, 1010, 2088, 999, 102}
//
// The pipeline, in order (Devlin et al. 2019, BERT's "basic tokenization" and
// WordPiece, as the tokenizers crate implements them):
//  1. Added tokens: the strings of options.added_tokens (by default the five
//     special tokens) are found in the RAW text first, leftmost-longest, with
//     no word boundary ("x[MASK]y" -> x [MASK] y; "[mask]" is not one) and map
//     straight to their ids. Each stretch of text between them goes through
//     2-6 on its own.
//  2. clean_text: drops U+0000, U+FFFD and control characters (general
//     category Cc, Cf, Co, Cs other than \t \n \r: U+000B, U+0085, U+200B
//     ZERO WIDTH SPACE and U+00AD SOFT HYPHEN go; unassigned ones stay), then
//     turns White_Space characters into ' '.
//  3. handle_chinese_chars: ' ' before and after every CJK ideograph (the
//     blocks BERT lists: U+4E00-9FFF, U+3400-4DBF, U+F900-FAFF, U+20000-2A6DF,
//     U+2A700-2B81F, U+2B920-2CEAF, U+2F800-2FA1F).
//  4. strip_accents: NFD (Hangul syllables become jamo), then every
//     nonspacing mark (Mn) is dropped: "café" -> "cafe".
//     lowercase: per code point, full mapping without context ("ΣΑΣ" -> "σασ",
//     "İ" -> "i" + U+0307 when accents are kept).
//  5. Words: split at White_Space (dropped) and at punctuation, each
//     punctuation character a word of its own. Punctuation is ASCII
//     punctuation (symbols like $ + < = > ^ ` | ~ included) or general
//     category Pc Pd Ps Pe Pi Pf Po.
//  6. WordPiece per word: longer than max_input_chars_per_word code points ->
//     unk_token; else the longest vocabulary entry at the start, then the
//     longest continuing_subword_prefix + rest entry, and so on ("straße" ->
//     st ##raße); a word with a position no entry matches is ONE unk_token.
//  7. encode: [CLS] pieces [SEP]; max_length > 0 keeps the first
//     max_length - 2 pieces (Hugging Face's truncation=True).
//
// Unicode versions. The tokenizers crate takes its tables from several
// Unicode versions, and this class does the same, so that ids agree for every
// code point of Unicode 15 (ICU 72's tables):
//  - general categories (control in 2, Mn in 4, punctuation in 5): Unicode
//    8.0. A character assigned later is none of these (U+2E43, Po since 10.0,
//    is not punctuation: "a⹃b" is one word), and the six characters whose
//    category changed after 8.0 keep their 8.0 one (U+166D and U+111C9 are
//    punctuation, U+1734 is Mn, U+1885, U+1886 and U+A9BD are not);
//  - NFD (decompositions and the combining classes that order marks): 9.0;
//  - White_Space, lowercase: current (ICU's). The only code points where
//    this differs from the tokenizers crate (whose lowercase is Rust's,
//    Unicode 16) are the 55 letters assigned in Unicode 16 that have a
//    lowercase (U+1C89, U+A7CB, ...): ICU 72 does not know them.
//
// Input is UTF-8; invalid UTF-8 is an Error naming the byte offset. All const
// members may be called from any number of threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace maskattn::text {

struct WordPieceOptions {
  bool clean_text = true;            // step 2
  bool handle_chinese_chars = true;  // step 3
  // Step 4. Hugging Face's strip_accents = None means "as lowercase";
  // from_folder resolves it, here it is explicit.
  bool strip_accents = true;
  bool lowercase = true;
  // The special tokens; each must be in the vocabulary.
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
  std::string continuing_subword_prefix = "##";  // not empty
  int64_t max_input_chars_per_word = 100;        // >= 1
  // Step 1: strings matched verbatim in the raw text (Hugging Face's added
  // tokens with normalized = false); each must be a non-empty vocabulary
  // entry. A special token missing here is tokenized like any text.
  std::vector<std::string> added_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
};

class WordPieceTokenizer {
 public:
  // A Hugging Face model folder.
  // With tokenizer.json, that file decides: normalizer (BertNormalizer),
  // pre_tokenizer (BertPreTokenizer), model (WordPiece: vocab with ids
  // 0 .. n-1, unk_token, continuing_subword_prefix, max_input_chars_per_word),
  // post_processor ([CLS] $A [SEP], as TemplateProcessing or BertProcessing:
  // cls_token, sep_token) and added_tokens (each normalized = false, without
  // lstrip / rstrip / single_word, in the vocabulary under its id). Any other
  // type or setting there is an Error. Its "truncation" and "padding"
  // sections are ignored: encode() truncates only when asked and never pads.
  // pad_token and mask_token come from tokenizer_config.json when there is one.
  // Without tokenizer.json: vocab.txt (one token per line, id = line number
  // from 0) and, if present, tokenizer_config.json (do_lower_case,
  // strip_accents, tokenize_chinese_chars, the *_token names, more special
  // tokens in additional_special_tokens or added_tokens_decoder; BertTokenizer's
  // defaults for what is absent); the special tokens are the added tokens.
  // Error naming the folder, or the file (and field or line) that is missing,
  // unreadable or malformed.
  static WordPieceTokenizer from_folder(const std::filesystem::path& folder);

  // vocab[id] is the token of id; tokens must be distinct and non-empty.
  // Error naming "vocab" or "options.<field>" otherwise.
  explicit WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});

  // [CLS] pieces [SEP]. max_length 0: every piece; max_length >= 2: at most
  // max_length ids (the first max_length - 2 pieces). Error for other
  // max_length and for invalid UTF-8 ("text").
  std::vector<int64_t> encode(std::string_view utf8, int64_t max_length = 0) const;
  // The pieces, without [CLS] and [SEP] (a word no piece matches is unk_token).
  std::vector<std::string> tokenize(std::string_view utf8) const;

  // The id of a vocabulary entry; nullopt when it is not one.
  std::optional<int64_t> token_to_id(std::string_view token) const;
  // The entry of an id in [0, vocab_size()); Error ("id") otherwise.
  const std::string& id_to_token(int64_t id) const;
  int64_t vocab_size() const;

  int64_t cls_id() const;
  int64_t sep_id() const;
  int64_t pad_id() const;
  int64_t unk_id() const;
  int64_t mask_id() const;
  const WordPieceOptions& options() const;

 private:
  struct State;
  std::shared_ptr<const State> state_;  // immutable: copies share it
};

}  // namespace maskattn::text
