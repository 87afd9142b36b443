#include "maskattn/models/copy_task.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "core/counter_rng.hpp"

namespace maskattn::models {

int64_t Seq2SeqBatch::target_tokens() const noexcept {
  return std::count_if(tgt_out.begin(), tgt_out.end(),
                       [](int64_t t) { return t != CopyTask::kIgnore; });
}

CopyTask::CopyTask(const CopyTaskOptions& options) : options_(options) {
  if (options.vocab < kFirstSymbol + 1)
    throw Error("CopyTask: vocab",
                fmt::format(">= {} (3 special ids and a symbol)", kFirstSymbol + 1),
                std::to_string(options.vocab));
  if (options.min_len < 1 || options.min_len > options.max_len)
    throw Error("CopyTask: min_len, max_len", "1 <= min_len <= max_len",
                fmt::format("{}, {}", options.min_len, options.max_len));
}

Split CopyTask::split_of(const int64_t* symbols, int64_t n) noexcept {
  uint64_t h = 0x636F70797461736Bull;
  for (int64_t i = 0; i < n; ++i) h = detail::counter_hash(h, static_cast<uint64_t>(symbols[i]));
  return h % 16 == 0 ? Split::HeldOut : Split::Train;
}

Seq2SeqBatch CopyTask::batch(uint64_t seed, int64_t index, int64_t n, Split split) const {
  if (index < 0) throw Error("CopyTask::batch: index", ">= 0", std::to_string(index));
  if (n < 1) throw Error("CopyTask::batch: n", ">= 1", std::to_string(n));
  const int64_t s = options_.max_len, t = target_len();
  // n * (max_len + 1) int64 ids in tgt_in and tgt_out.
  checked_mul(checked_mul(n, t, "CopyTask::batch: n"), sizeof(int64_t), "CopyTask::batch: n");
  const int64_t symbols = options_.vocab - kFirstSymbol;
  const int64_t spread = options_.max_len - options_.min_len + 1;
  Seq2SeqBatch out{Tensor<int64_t>({n, s}), std::vector<int64_t>(static_cast<std::size_t>(n)),
                   Tensor<int64_t>({n, t}), Tensor<int64_t>({n, t})};
  std::fill(out.src.begin(), out.src.end(), kPad);
  std::fill(out.tgt_in.begin(), out.tgt_in.end(), kPad);
  std::fill(out.tgt_out.begin(), out.tgt_out.end(), kIgnore);
  // Sequence b of this batch, attempt a: counters from ((b << 20) + a) * (s + 1).
  const uint64_t stream = detail::counter_hash(seed ^ (split == Split::HeldOut ? 0x686F6C64ull : 0),
                                               static_cast<uint64_t>(index));
  for (int64_t b = 0; b < n; ++b) {
    int64_t* src = out.src.data() + b * s;
    int64_t len = 0;
    for (uint64_t attempt = 0;; ++attempt) {
      const uint64_t base =
          ((static_cast<uint64_t>(b) << 20) + attempt) * static_cast<uint64_t>(s + 1);
      len = options_.min_len + static_cast<int64_t>(detail::counter_uniform(stream, base) * spread);
      for (int64_t i = 0; i < len; ++i)
        src[i] =
            kFirstSymbol +
            static_cast<int64_t>(
                detail::counter_uniform(stream, base + 1 + static_cast<uint64_t>(i)) * symbols);
      if (split_of(src, len) == split) break;
      if (attempt == 4096)  // a split with (almost) no sequences: a task too small
        throw Error("CopyTask: vocab, min_len, max_len",
                    "enough sequences for both splits (one in 16 is held out)",
                    fmt::format("no {} sequence in 4096 draws",
                                split == Split::HeldOut ? "held-out" : "training"));
    }
    std::fill(src + len, src + s, kPad);
    out.src_lengths[static_cast<std::size_t>(b)] = len;
    int64_t* in = out.tgt_in.data() + b * t;
    int64_t* want = out.tgt_out.data() + b * t;
    in[0] = kStart;
    std::copy_n(src, len, in + 1);
    std::copy_n(src, len, want);
    want[len] = kEnd;
  }
  return out;
}

std::vector<int64_t> CopyTask::symbols(View<const int64_t, 2> decoded, int64_t b) {
  std::vector<int64_t> out;
  for (int64_t i = 1; i < decoded.size(1) && decoded(b, i) != kEnd; ++i)
    out.push_back(decoded(b, i));
  return out;
}

int64_t CopyTask::count_exact(const Seq2SeqBatch& batch, View<const int64_t, 2> decoded) const {
  const int64_t n = batch.batch();
  if (decoded.size(0) != n)
    throw Error("count_exact: decoded", fmt::format("({}, T): one row per sequence", n),
                shape_string(decoded.shape()));
  // The lengths index src: one per sequence, each within src's rows.
  if (static_cast<int64_t>(batch.src_lengths.size()) != n)
    throw Error("count_exact: src_lengths", fmt::format("{} lengths (one per sequence)", n),
                std::to_string(batch.src_lengths.size()));
  for (int64_t b = 0; b < n; ++b) {
    const int64_t len = batch.src_lengths[static_cast<std::size_t>(b)];
    if (len < 0 || len > batch.src.size(1))
      throw Error(fmt::format("count_exact: src_lengths[{}]", b),
                  fmt::format("a length in [0, {}] (src's width)", batch.src.size(1)),
                  std::to_string(len));
  }
  int64_t exact = 0;
  for (int64_t b = 0; b < n; ++b) {
    const int64_t len = batch.src_lengths[static_cast<std::size_t>(b)];
    if (decoded.size(1) < len + 2) continue;  // no room for x_1 .. x_n EOS
    bool same = decoded(b, len + 1) == kEnd;
    for (int64_t i = 0; same && i < len; ++i)
      same = decoded(b, i + 1) == batch.src.data()[b * batch.src.size(1) + i];
    exact += same;
  }
  return exact;
}

}  // namespace maskattn::models
