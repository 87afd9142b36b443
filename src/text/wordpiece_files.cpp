// WordPieceTokenizer::from_folder: a Hugging Face model folder's
// tokenizer.json, or vocab.txt + tokenizer_config.json, read into a
// vocabulary and WordPieceOptions. Every setting the tokenizer does not
// implement is an Error naming the file and the field.
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/files.hpp"
#include "maskattn/error.hpp"
#include "maskattn/text/wordpiece.hpp"

namespace maskattn::text {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string json_quoted(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

// A JSON value for a message: ASCII and short (a vocabulary is 30,000 entries).
std::string brief(const Json& j) {
  constexpr std::size_t kMax = 60;
  std::string s = j.dump(-1, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
  if (s.size() > kMax) s = s.substr(0, kMax - 3) + "...";
  return s;
}

std::string file_arg(const fs::path& file) {
  return fmt::format("file {}", json_quoted(file.string()));
}

// `field` of a file: "file \"/m/tokenizer.json\" normalizer.lowercase".
std::string field_arg(const fs::path& file, std::string_view field) {
  return fmt::format("{} {}", file_arg(file), field);
}

std::string read_file(const fs::path& file) {
  return maskattn::detail::read_file(file, file_arg(file));
}

Json read_json(const fs::path& file) {
  const std::string text = read_file(file);
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw Error(file_arg(file), "a JSON file", e.what());
  }
  if (!j.is_object()) throw Error(file_arg(file), "a JSON object", brief(j));
  return j;
}

// Typed reads of optional fields of a JSON object: `fallback` when absent.
class Fields {
 public:
  Fields(const Json& object, fs::path file, std::string prefix)
      : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

  std::string arg(std::string_view key) const {
    return field_arg(file_, prefix_ + std::string(key));
  }

  const Json* find(std::string_view key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  bool boolean(std::string_view key, bool fallback) const {
    const Json* j = find(key);
    if (j == nullptr) return fallback;
    if (!j->is_boolean()) throw Error(arg(key), "true or false", brief(*j));
    return j->get<bool>();
  }
  // A bool that may be null (Hugging Face's "None = follow another setting").
  std::optional<bool> optional_boolean(std::string_view key) const {
    const Json* j = find(key);
    if (j == nullptr || j->is_null()) return std::nullopt;
    return boolean(key, false);
  }
  std::string string(std::string_view key, std::string fallback) const {
    const Json* j = find(key);
    if (j == nullptr) return fallback;
    if (!j->is_string()) throw Error(arg(key), "a string", brief(*j));
    return j->get<std::string>();
  }
  // A token name: a string, or an AddedToken object {"content": ...} as
  // tokenizer_config.json writes them.
  std::string token(std::string_view key, std::string fallback) const {
    const Json* j = find(key);
    if (j == nullptr) return fallback;
    if (j->is_object() && j->contains("content") && (*j)["content"].is_string())
      return (*j)["content"].get<std::string>();
    if (!j->is_string()) throw Error(arg(key), "a string or {\"content\": string}", brief(*j));
    return j->get<std::string>();
  }
  // Element i of an array: a token name as token() reads them.
  std::string token_at(std::size_t i, std::string_view name) const {
    const Json& j = object_[i];
    if (j.is_object() && j.contains("content") && j["content"].is_string())
      return j["content"].get<std::string>();
    if (!j.is_string()) throw Error(arg(name), "a string or {\"content\": string}", brief(j));
    return j.get<std::string>();
  }
  int64_t positive(std::string_view key, int64_t fallback) const {
    const Json* j = find(key);
    if (j == nullptr) return fallback;
    if (!j->is_number_integer() || j->get<int64_t>() < 1)
      throw Error(arg(key), "an integer >= 1", brief(*j));
    return j->get<int64_t>();
  }
  // The object's "type" must be `type`.
  void expect_type(std::string_view type) const {
    const Json* j = find("type");
    if (j == nullptr || !j->is_string() || j->get<std::string>() != type)
      throw Error(arg("type"), fmt::format("\"{}\" (the one this tokenizer implements)", type),
                  j == nullptr ? "no type" : brief(*j));
  }

 private:
  const Json& object_;
  fs::path file_;
  std::string prefix_;
};

// A section of tokenizer.json that must be an object.
Fields section(const Json& root, const fs::path& file, std::string_view key) {
  const auto it = root.find(key);
  if (it == root.end() || !it->is_object())
    throw Error(field_arg(file, key), "an object", it == root.end() ? "nothing" : brief(*it));
  return Fields(*it, file, std::string(key) + ".");
}

// The options of an added token that this tokenizer implements: matched
// verbatim in the raw text (normalized false), without stripping or word
// boundaries.
void check_added_token(const Fields& token) {
  for (const char* key : {"lstrip", "rstrip", "single_word", "normalized"})
    if (token.boolean(key, false))
      throw Error(token.arg(key), "false (the only setting this tokenizer implements)", "true");
}

int64_t vocab_id(const std::vector<std::string>& vocab, const std::string& token, int64_t id,
                 const std::string& arg) {
  if (id < 0 || id >= static_cast<int64_t>(vocab.size()) ||
      vocab[static_cast<std::size_t>(id)] != token)
    throw Error(arg, "a token of the vocabulary under its id",
                fmt::format("{} with id {}", json_quoted(token), id));
  return id;
}

// tokenizer.json's post_processor must add [CLS] before and [SEP] after the
// text; sets the two token names.
void read_post_processor(const Json& root, const fs::path& file,
                         const std::vector<std::string>& vocab, WordPieceOptions& o) {
  const Fields p = section(root, file, "post_processor");
  const std::string type = p.string("type", "");
  const std::string expected = "[CLS] $A [SEP] (TemplateProcessing or BertProcessing)";
  if (type == "BertProcessing") {
    // "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]
    for (const char* key : {"cls", "sep"}) {
      const Json* j = p.find(key);
      if (j == nullptr || !j->is_array() || j->size() != 2 || !(*j)[0].is_string() ||
          !(*j)[1].is_number_integer())
        throw Error(p.arg(key), "[token, id]", j == nullptr ? "nothing" : brief(*j));
      const std::string token = (*j)[0].get<std::string>();
      vocab_id(vocab, token, (*j)[1].get<int64_t>(), p.arg(key));
      (key == std::string_view("cls") ? o.cls_token : o.sep_token) = token;
    }
    return;
  }
  if (type != "TemplateProcessing") throw Error(p.arg("type"), expected, json_quoted(type));
  // "single": [{"SpecialToken": {"id": "[CLS]"}}, {"Sequence": {"id": "A"}},
  //            {"SpecialToken": {"id": "[SEP]"}}]
  const Json* single = p.find("single");
  const auto special_at = [&](std::size_t k) -> std::optional<std::string> {
    const Json& piece = (*single)[k];
    if (!piece.is_object() || !piece.contains("SpecialToken")) return std::nullopt;
    const Json& t = piece["SpecialToken"];
    if (!t.is_object() || !t.contains("id") || !t["id"].is_string()) return std::nullopt;
    return t["id"].get<std::string>();
  };
  const bool shaped = single != nullptr && single->is_array() && single->size() == 3 &&
                      (*single)[1].is_object() && (*single)[1].contains("Sequence") &&
                      (*single)[1]["Sequence"].value("id", "") == "A" && special_at(0) &&
                      special_at(2);
  if (!shaped)
    throw Error(p.arg("single"), expected, single == nullptr ? "nothing" : brief(*single));
  o.cls_token = *special_at(0);
  o.sep_token = *special_at(2);
  // Each special token's ids must be the vocabulary's.
  const Json* specials = p.find("special_tokens");
  for (const std::string& token : {o.cls_token, o.sep_token}) {
    const std::string arg = p.arg("special_tokens." + token);
    const Json* entry = specials != nullptr && specials->is_object() && specials->contains(token)
                            ? &(*specials)[token]
                            : nullptr;
    if (entry == nullptr || !entry->is_object() || !entry->contains("ids") ||
        !(*entry)["ids"].is_array() || (*entry)["ids"].size() != 1 ||
        !(*entry)["ids"][0].is_number_integer())
      throw Error(arg, "{\"ids\": [one id], ...}", entry == nullptr ? "nothing" : brief(*entry));
    vocab_id(vocab, token, (*entry)["ids"][0].get<int64_t>(), arg);
  }
}

// pad_token and mask_token from tokenizer_config.json, when there is one
// (tokenizer.json does not name them).
void read_config_tokens(const fs::path& folder, WordPieceOptions& o) {
  const fs::path file = folder / "tokenizer_config.json";
  std::error_code ec;
  if (!fs::exists(file, ec)) return;
  const Json config = read_json(file);
  const Fields f(config, file, "");
  o.pad_token = f.token("pad_token", o.pad_token);
  o.mask_token = f.token("mask_token", o.mask_token);
}

// The tokenizer of a file's vocabulary and options; the constructor's Error
// (a special token not in the vocabulary, ...) names the file too.
WordPieceTokenizer make(std::vector<std::string> vocab, WordPieceOptions options,
                        const fs::path& file) {
  try {
    return WordPieceTokenizer(std::move(vocab), std::move(options));
  } catch (const Error& e) {
    throw Error(field_arg(file, e.argument()), e.expected(), e.actual());
  }
}

WordPieceTokenizer from_tokenizer_json(const fs::path& folder, const fs::path& file) {
  const Json root = read_json(file);
  WordPieceOptions o;

  const Fields norm = section(root, file, "normalizer");
  norm.expect_type("BertNormalizer");
  o.clean_text = norm.boolean("clean_text", true);
  o.handle_chinese_chars = norm.boolean("handle_chinese_chars", true);
  o.lowercase = norm.boolean("lowercase", true);
  o.strip_accents = norm.optional_boolean("strip_accents").value_or(o.lowercase);

  section(root, file, "pre_tokenizer").expect_type("BertPreTokenizer");

  const Fields model = section(root, file, "model");
  model.expect_type("WordPiece");
  o.unk_token = model.string("unk_token", "[UNK]");
  o.continuing_subword_prefix = model.string("continuing_subword_prefix", "##");
  o.max_input_chars_per_word = model.positive("max_input_chars_per_word", 100);
  // "vocab": {"[PAD]": 0, ...}: every id of 0 .. n-1 once.
  const Json* vocab_json = model.find("vocab");
  if (vocab_json == nullptr || !vocab_json->is_object() || vocab_json->empty())
    throw Error(model.arg("vocab"), "an object token -> id",
                vocab_json == nullptr ? "nothing" : brief(*vocab_json));
  std::vector<std::string> vocab(vocab_json->size());
  std::vector<bool> seen(vocab.size(), false);
  for (const auto& [token, id] : vocab_json->items()) {
    const std::string arg = model.arg("vocab." + token);
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= static_cast<int64_t>(vocab.size()))
      throw Error(arg, fmt::format("an id in [0, {}) (ids 0 .. n-1, each once)", vocab.size()),
                  brief(id));
    const auto k = static_cast<std::size_t>(id.get<int64_t>());
    if (seen[k])
      throw Error(arg, "an id no other token has",
                  fmt::format("{}, also the id of {}", k, json_quoted(vocab[k])));
    seen[k] = true;
    vocab[k] = token;
  }

  read_post_processor(root, file, vocab, o);

  // "added_tokens": [{"id": 103, "content": "[MASK]", "normalized": false, ...}]
  o.added_tokens.clear();
  const auto added = root.find("added_tokens");
  if (added != root.end() && !added->is_null()) {
    if (!added->is_array()) throw Error(field_arg(file, "added_tokens"), "a list", brief(*added));
    for (std::size_t i = 0; i < added->size(); ++i) {
      const Json& entry = (*added)[i];
      const std::string prefix = fmt::format("added_tokens[{}].", i);
      if (!entry.is_object())
        throw Error(field_arg(file, prefix.substr(0, prefix.size() - 1)), "an object",
                    brief(entry));
      const Fields t(entry, file, prefix);
      check_added_token(t);
      const Json* id = t.find("id");
      if (id == nullptr || !id->is_number_integer())
        throw Error(t.arg("id"), "an integer", id == nullptr ? "nothing" : brief(*id));
      const std::string content = t.string("content", "");
      vocab_id(vocab, content, id->get<int64_t>(), t.arg("content"));
      o.added_tokens.push_back(content);
    }
  }

  read_config_tokens(folder, o);
  return make(std::move(vocab), std::move(o), file);
}

// vocab.txt: one token per line, id = line number (from 0); only the "\n"
// ends a line, as in Hugging Face's load_vocab.
std::vector<std::string> read_vocab_txt(const fs::path& file) {
  const std::string text = read_file(file);
  std::vector<std::string> vocab;
  std::map<std::string_view, std::size_t> first_line;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string_view token = std::string_view(text).substr(begin, end - begin);
    const std::size_t line = vocab.size() + 1;
    const std::string arg = fmt::format("{} line {}", file_arg(file), line);
    if (token.empty()) throw Error(arg, "a token", "an empty line");
    const auto [it, inserted] = first_line.emplace(token, line);
    if (!inserted)
      throw Error(arg, "a token no other line has",
                  fmt::format("{}, also on line {}", json_quoted(token), it->second));
    vocab.emplace_back(token);
    begin = end + 1;
  }
  if (vocab.empty()) throw Error(file_arg(file), "at least one token", "an empty file");
  return vocab;
}

WordPieceTokenizer from_vocab_txt(const fs::path& folder, const fs::path& file) {
  std::vector<std::string> vocab = read_vocab_txt(file);
  WordPieceOptions o;
  const fs::path config_file = folder / "tokenizer_config.json";
  std::error_code ec;
  if (fs::exists(config_file, ec)) {
    const Json config = read_json(config_file);
    const Fields f(config, config_file, "");
    // BertTokenizer's settings and defaults.
    if (!f.boolean("do_basic_tokenize", true))
      throw Error(f.arg("do_basic_tokenize"), "true (the only setting implemented)", "false");
    if (const Json* never = f.find("never_split");
        never != nullptr && !never->is_null() && !(never->is_array() && never->empty()))
      throw Error(f.arg("never_split"), "null or [] (the only setting implemented)", brief(*never));
    o.lowercase = f.boolean("do_lower_case", true);
    o.strip_accents = f.optional_boolean("strip_accents").value_or(o.lowercase);
    o.handle_chinese_chars = f.boolean("tokenize_chinese_chars", true);
    o.unk_token = f.token("unk_token", o.unk_token);
    o.cls_token = f.token("cls_token", o.cls_token);
    o.sep_token = f.token("sep_token", o.sep_token);
    o.pad_token = f.token("pad_token", o.pad_token);
    o.mask_token = f.token("mask_token", o.mask_token);
    o.added_tokens = {o.pad_token, o.unk_token, o.cls_token, o.sep_token, o.mask_token};
    // More special tokens: listed by name, or as added_tokens_decoder's
    // {"<id>": {"content": ..., "normalized": false, ...}}.
    for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
      const Json* list = f.find(key);
      if (list == nullptr || list->is_null()) continue;
      if (!list->is_array()) throw Error(f.arg(key), "a list of tokens", brief(*list));
      for (std::size_t i = 0; i < list->size(); ++i) {
        const Json& t = (*list)[i];
        const std::string name = fmt::format("{}[{}]", key, i);
        if (t.is_object()) check_added_token(Fields(t, config_file, name + "."));
        o.added_tokens.push_back(Fields(*list, config_file, "").token_at(i, name));
      }
    }
    if (const Json* decoder = f.find("added_tokens_decoder"); decoder != nullptr) {
      if (!decoder->is_object())
        throw Error(f.arg("added_tokens_decoder"), "an object id -> token", brief(*decoder));
      for (const auto& [id_text, entry] : decoder->items()) {
        const std::string prefix = fmt::format("added_tokens_decoder.{}.", id_text);
        if (!entry.is_object())
          throw Error(f.arg(prefix.substr(0, prefix.size() - 1)), "an object", brief(entry));
        const Fields t(entry, config_file, prefix);
        check_added_token(t);
        const std::string content = t.string("content", "");
        int64_t id = -1;
        try {
          std::size_t used = 0;
          id = std::stoll(id_text, &used);
          if (used != id_text.size()) id = -1;
        } catch (const std::exception&) {
          id = -1;
        }
        vocab_id(vocab, content, id, t.arg("content"));
        o.added_tokens.push_back(content);
      }
    }
  } else {
    o.added_tokens = {o.pad_token, o.unk_token, o.cls_token, o.sep_token, o.mask_token};
  }
  return make(std::move(vocab), std::move(o), file);
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_folder(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw Error(fmt::format("folder {}", json_quoted(folder.string())),
                "a model folder (a directory)",
                fs::exists(folder, ec) ? "not a directory" : "no such directory");
  const fs::path json = folder / "tokenizer.json";
  if (fs::exists(json, ec)) return from_tokenizer_json(folder, json);
  const fs::path vocab = folder / "vocab.txt";
  if (fs::exists(vocab, ec)) return from_vocab_txt(folder, vocab);
  throw Error(fmt::format("folder {}", json_quoted(folder.string())),
              "a tokenizer.json or a vocab.txt in it", "neither");
}

}  // namespace maskattn::text
