// Sentence embeddings as sentence-transformers computes them: WordPiece
// tokens -> BertModel -> pooling over each sentence's own tokens -> (optional)
// L2 normalisation, from a sentence-transformers model folder such as
// all-MiniLM-L6-v2's.
//
// A folder holds config.json, model.safetensors and the tokenizer files
// (tokenizer.json, or vocab.txt + tokenizer_config.json); modules.json lists
// the pipeline (Transformer, Pooling in 1_Pooling/config.json, Normalize) and
// sentence_bert_config.json its max_seq_length. Without modules.json the
// folder is read as a plain BERT model with mean pooling and no
// normalisation, as sentence-transformers does.
//
// Two ways to run a batch of sentences of different lengths, with the same
// result:
//   padded: (batch, longest) token ids, key_lengths() hides the padding;
//   packed: the batch's sentences one after another in a single row,
//           documents() keeps each sentence to itself and position ids
//           restart at 0 for each: no padding at all.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/nn/bert.hpp"
#include "maskattn/tensor.hpp"
#include "maskattn/text/wordpiece.hpp"

namespace maskattn::models {

// sentence-transformers' pooling modes; several are concatenated in order.
enum class Pooling {
  Cls,         // the [CLS] token's vector
  Max,         // element-wise max over the sentence's tokens
  Mean,        // mean over the sentence's tokens
  MeanSqrtLen  // sum over the tokens / sqrt(token count)
};

struct EncodeOptions {
  int64_t batch_size = 32;  // sentences per forward pass, >= 1
  bool pack = true;         // packed (one row per batch) or padded
  // Called after each batch with (sentences done, total); may be empty.
  std::function<void(int64_t done, int64_t total)> progress;
};

// The attention weights of every layer of a SentenceEncoder's model on a
// batch of sentences (see SentenceEncoder::attention).
struct SentenceAttention {
  // (layers, rows, heads, L, L): rows = the sentences (padded to the longest),
  // or 1 (packed: every sentence in one row, L = their total length).
  Tensor<float> weights;
  Mask mask;  // what the model ran with: key_lengths(...) or documents(...)
  // Each sentence's WordPiece tokens ([CLS] ... [SEP]).
  std::vector<std::vector<std::string>> tokens;
  // Each row's token at each position (padding: the tokenizer's pad token).
  std::vector<std::vector<std::string>> row_tokens;

  // One (rows, heads, L, L) view per layer, for viz::attention_picture.
  std::vector<View<const float, 4>> layers() const;
};

class SentenceEncoder {
 public:
  // Reads a model folder (see above). Error naming the file for anything
  // missing, malformed or not implemented (pooling modes other than the four
  // above, modules other than Transformer/Pooling/Normalize).
  static SentenceEncoder from_folder(const std::filesystem::path& folder);

  SentenceEncoder(text::WordPieceTokenizer tokenizer, nn::BertModel model,
                  std::vector<Pooling> pooling, bool normalize, int64_t max_seq_length);

  // (N, dimension()) float32: row i is sentence i's embedding, whatever the
  // batching. Sentences are UTF-8 (Error naming the sentence otherwise).
  // Padded batches are formed from sentences of similar length (sorted by
  // length, as sentence-transformers does); packed batches keep input order.
  Tensor<float> encode(const std::vector<std::string>& sentences,
                       const EncodeOptions& options = {}) const;
  // The same from token ids ([CLS] ... [SEP], at most max_seq_length each).
  Tensor<float> encode_ids(const std::vector<std::vector<int64_t>>& ids,
                           const EncodeOptions& options = {}) const;

  // The attention weights of every layer and head on `sentences` run as one
  // batch, padded or packed (pack), as encode() runs them; what `maskattn viz
  // attention --text ...` draws. Error naming the sentence that is not UTF-8,
  // or "sentences" when there is none.
  SentenceAttention attention(const std::vector<std::string>& sentences, bool pack = false) const;

  // A sentence's token ids as encode() feeds them to the model.
  std::vector<int64_t> tokenize(std::string_view sentence) const;

  int64_t dimension() const noexcept;
  int64_t max_seq_length() const noexcept { return max_seq_length_; }
  bool normalize() const noexcept { return normalize_; }
  const std::vector<Pooling>& pooling() const noexcept { return pooling_; }
  const nn::BertModel& model() const noexcept { return model_; }
  const text::WordPieceTokenizer& tokenizer() const noexcept { return tokenizer_; }

 private:
  // Pools rows [begin, begin + len) of `hidden` (row-major, hidden_size wide)
  // into out (dimension()).
  void pool(const float* hidden, int64_t len, float* out) const;
  // tokenize() of each sentence; Error naming sentences[i] for one that is not UTF-8.
  std::vector<std::vector<int64_t>> tokenize_all(const std::vector<std::string>& sentences) const;
  // One forward pass over `batch` (padded or packed), pooled into outs.
  void run_batch(const std::vector<const std::vector<int64_t>*>& batch, std::vector<float*>& outs,
                 bool pack) const;

  text::WordPieceTokenizer tokenizer_;
  nn::BertModel model_;
  std::vector<Pooling> pooling_;
  bool normalize_;
  int64_t max_seq_length_;
};

// "cls", "max", "mean", "mean_sqrt_len_tokens": sentence-transformers' names.
std::string_view pooling_name(Pooling p);

}  // namespace maskattn::models
