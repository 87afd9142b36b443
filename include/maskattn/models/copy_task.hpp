// The copy task: random symbol sequences that a sequence-to-sequence model
// must output unchanged (the Annotated Transformer's first example), with
// lengths that vary so that padding masks matter as much as the look-ahead
// mask. Batches are a pure function of (seed, batch index): any batch can be
// drawn again, and a resumed run needs no sampler state beyond the step.
//
// Held-out sequences never occur in training: a sequence is held out when a
// hash of its symbols is 0 modulo 16, and each split draws (by rejection)
// only its own sequences, so a test of held-out accuracy is a test of copying,
// not of memory.
//
// Token ids: 0 padding, 1 start (BOS), 2 end (EOS), symbols 3 .. vocab - 1.
//   src     (N, max_len)      x_1 .. x_n, then padding          (src_lengths = n)
//   tgt_in  (N, max_len + 1)  BOS x_1 .. x_n, then padding      (teacher forcing)
//   tgt_out (N, max_len + 1)  x_1 .. x_n EOS, then -100         (cross-entropy's ignore_index)
#pragma once

#include <cstdint>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn::models {

struct CopyTaskOptions {
  int64_t vocab = 13;   // 3 special ids + 10 symbols; >= 4
  int64_t min_len = 4;  // in [1, max_len]
  int64_t max_len = 12;
};

// One batch of a sequence-to-sequence task.
struct Seq2SeqBatch {
  Tensor<int64_t> src;               // (N, S)
  std::vector<int64_t> src_lengths;  // (N), each in [1, S]
  Tensor<int64_t> tgt_in;            // (N, T): what the decoder reads
  Tensor<int64_t> tgt_out;           // (N, T): what it must predict at each position, or -100
  int64_t batch() const noexcept { return src.numel() == 0 ? 0 : src.size(0); }
  // Target positions that count (tgt_out != -100).
  int64_t target_tokens() const noexcept;
};

enum class Split { Train, HeldOut };

class CopyTask {
 public:
  static constexpr int64_t kPad = 0, kStart = 1, kEnd = 2, kFirstSymbol = 3;
  static constexpr int64_t kIgnore = -100;

  // Error naming the option when vocab < 4 or the lengths are not
  // 1 <= min_len <= max_len.
  explicit CopyTask(const CopyTaskOptions& options = {});

  // Batch `index` (>= 0) of `n` (>= 1) sequences of the stream `seed`, all
  // from `split`.
  Seq2SeqBatch batch(uint64_t seed, int64_t index, int64_t n, Split split = Split::Train) const;

  // Which split the symbols x_1 .. x_n belong to.
  static Split split_of(const int64_t* symbols, int64_t n) noexcept;

  // Sequences of `batch` that `decoded` reproduces exactly: decoded (N, T')
  // as greedy_decode returns it (BOS first), correct when it continues with
  // x_1 .. x_n and then EOS.
  int64_t count_exact(const Seq2SeqBatch& batch, View<const int64_t, 2> decoded) const;

  // decoded row b as the symbols it emitted before EOS (or before its end).
  static std::vector<int64_t> symbols(View<const int64_t, 2> decoded, int64_t b);

  const CopyTaskOptions& options() const noexcept { return options_; }
  int64_t target_len() const noexcept { return options_.max_len + 1; }

 private:
  CopyTaskOptions options_;
};

}  // namespace maskattn::models
