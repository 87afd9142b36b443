#include "maskattn/models/seq2seq.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/arena.hpp"
#include "maskattn/nn/gradients.hpp"
#include "maskattn/nn/kv_cache.hpp"
#include "nn/rows.hpp"

namespace maskattn::models {
namespace {

using maskattn::detail::Arena;
using maskattn::detail::thread_arena;

Seq2SeqOptions batch_first(Seq2SeqOptions o) {
  o.transformer.layer.batch_first = true;
  return o;
}

void check_lengths(std::span<const int64_t> lengths, int64_t batch, int64_t len) {
  if (static_cast<int64_t>(lengths.size()) != batch)
    throw Error("src_lengths", fmt::format("{} lengths (one per sequence)", batch),
                std::to_string(lengths.size()));
  for (std::size_t b = 0; b < lengths.size(); ++b)
    if (lengths[b] < 1 || lengths[b] > len)
      throw Error(fmt::format("src_lengths[{}]", b), fmt::format("a length in [1, {}]", len),
                  std::to_string(lengths[b]));
}

}  // namespace

Seq2SeqTransformer::Seq2SeqTransformer(const Seq2SeqOptions& o)
    : options_(batch_first(o)),
      src_embed_(std::max<int64_t>(o.src_vocab, 1), o.transformer.d_model, std::nullopt, true),
      tgt_embed_(std::max<int64_t>(o.tgt_vocab, 1), o.transformer.d_model, std::nullopt, true),
      positional_(o.transformer.d_model, o.transformer.layer.dropout, o.max_len),
      transformer_(options_.transformer),
      generator_(o.transformer.d_model, std::max<int64_t>(o.tgt_vocab, 1)) {
  if (o.src_vocab < 1 || o.tgt_vocab < 1)
    throw Error("Seq2SeqTransformer: src_vocab, tgt_vocab", ">= 1",
                fmt::format("{}, {}", o.src_vocab, o.tgt_vocab));
}

void Seq2SeqTransformer::for_each_child(const ChildFn& fn) {
  fn("src_embed", src_embed_);
  fn("tgt_embed", tgt_embed_);
  fn("positional", positional_);
  fn("transformer", transformer_);
  fn("generator", generator_);
}

void Seq2SeqTransformer::embed(const nn::Embedding& table, View<const int64_t, 2> ids,
                               View<float, 3> x, int64_t offset,
                               nn::PositionalEncoding::Saved* saved) const {
  try {
    table.forward(ids, x);  // scaled by sqrt(d_model)
  } catch (const Error& e) {
    // "Embedding: ids[b, l]" is the caller's src[b, l] or tgt[b, l].
    constexpr std::string_view kIds = "Embedding: ids";
    if (!e.argument().starts_with(kIds)) throw;
    throw Error((&table == &src_embed_ ? "src" : "tgt") + e.argument().substr(kIds.size()),
                e.expected(), e.actual());
  }
  if (saved)
    positional_.forward(x, x, /*batch_first=*/true, offset, *saved);
  else
    positional_.forward(x, x, /*batch_first=*/true, offset);
}

Seq2SeqTransformer::Masks Seq2SeqTransformer::check_forward(View<const int64_t, 2> src,
                                                            std::span<const int64_t> src_lengths,
                                                            View<const int64_t, 2> tgt,
                                                            View<const float, 3> logits) const {
  const int64_t n = src.size(0), t = tgt.size(1);
  if (tgt.size(0) != n)
    throw Error("tgt", fmt::format("({}, T): the batch of src", n), shape_string(tgt.shape()));
  if (logits.shape() != std::array<int64_t, 3>{n, t, options_.tgt_vocab})
    throw Error("logits", fmt::format("({}, {}, {})", n, t, options_.tgt_vocab),
                shape_string(logits.shape()));
  // Longer than the positional encoding covers: named here, not as its offset.
  if (src.size(1) > options_.max_len)
    throw Error("src", fmt::format("(N, S) with S <= max_len = {}", options_.max_len),
                shape_string(src.shape()));
  if (t > options_.max_len)
    throw Error("tgt", fmt::format("(N, T) with T <= max_len = {}", options_.max_len),
                shape_string(tgt.shape()));
  check_lengths(src_lengths, n, src.size(1));
  Masks m;
  m.src.mask = key_lengths(src_lengths);
  m.memory.mask = key_lengths(src_lengths);
  if (options_.look_ahead) m.tgt.mask = causal();
  return m;
}

void Seq2SeqTransformer::forward(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
                                 View<const int64_t, 2> tgt, View<float, 3> logits) const {
  forward_impl(src, src_lengths, tgt, logits, nullptr);
}

void Seq2SeqTransformer::forward(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
                                 View<const int64_t, 2> tgt, View<float, 3> logits,
                                 Saved& saved) const {
  forward_impl(src, src_lengths, tgt, logits, &saved);
}

void Seq2SeqTransformer::forward_impl(View<const int64_t, 2> src,
                                      std::span<const int64_t> src_lengths,
                                      View<const int64_t, 2> tgt, View<float, 3> logits,
                                      Saved* saved) const {
  const Masks m = check_forward(src, src_lengths, tgt, logits);
  const int64_t n = src.size(0), s = src.size(1), t = tgt.size(1), d = options_.transformer.d_model;
  Arena::Frame frame(thread_arena());
  // (N, len, d) activations: the Saved's tensors in training, else scratch.
  const auto activations = [&](Tensor<float> Saved::*keep, int64_t len) {
    if (!saved) return View<float, 3>(frame.alloc<float>(n * len * d), {n, len, d});
    nn::ensure_shape(saved->*keep, {n, len, d});
    return (saved->*keep).view<3>();
  };
  const View<float, 3> src_x = activations(&Saved::src_x, s);
  const View<float, 3> tgt_x = activations(&Saved::tgt_x, t);
  const View<float, 3> out = activations(&Saved::out, t);
  embed(src_embed_, src, src_x, 0, saved ? &saved->src_positional : nullptr);
  embed(tgt_embed_, tgt, tgt_x, 0, saved ? &saved->tgt_positional : nullptr);
  if (saved)
    transformer_.forward(src_x, tgt_x, out, m.src, m.tgt, m.memory, saved->transformer);
  else
    transformer_.forward(src_x, tgt_x, out, m.src, m.tgt, m.memory);
  // logits may have any strides: rows of one stride, or a copy.
  const View<const float, 2> out_rows(out.data(), {n * t, d});
  nn::detail::write_rows(logits, frame,
                         [&](View<float, 2> rows) { generator_.forward(out_rows, rows); });
}

void Seq2SeqTransformer::backward(View<const int64_t, 2> src, std::span<const int64_t> src_lengths,
                                  View<const int64_t, 2> tgt, const Saved& saved,
                                  View<const float, 3> dlogits, nn::Gradients& grads) const {
  check_forward(src, src_lengths, tgt, dlogits);
  const int64_t n = src.size(0), s = src.size(1), t = tgt.size(1), d = options_.transformer.d_model;
  const int64_t vocab = options_.tgt_vocab;
  if (saved.out.shape() != std::vector<int64_t>{n, t, d} ||
      saved.src_x.shape() != std::vector<int64_t>{n, s, d})
    throw Error("Seq2SeqTransformer::backward: saved",
                fmt::format("the forward of this batch: out ({}, {}, {})", n, t, d),
                shape_string(saved.out.shape()));
  if (n * t > 1 && dlogits.stride(0) != t * dlogits.stride(1))
    throw Error("dlogits", "rows of one stride (stride(0) == T * stride(1))",
                fmt::format("strides {}", shape_string(dlogits.strides())));
  Arena::Frame frame(thread_arena());
  const View<const float, 2> dlogit_rows(dlogits.data(), {n * t, vocab}, {dlogits.stride(1), 1});
  const View<float, 3> dout(frame.alloc<float>(n * t * d), {n, t, d});
  const View<float, 3> dsrc(frame.alloc<float>(n * s * d), {n, s, d});
  const View<float, 3> dtgt(frame.alloc<float>(n * t * d), {n, t, d});
  generator_.backward(View<const float, 2>(saved.out.data(), {n * t, d}), {}, dlogit_rows,
                      View<float, 2>(dout.data(), {n * t, d}), grads);
  transformer_.backward(saved.src_x.view<3>(), saved.tgt_x.view<3>(), saved.transformer, dout, dsrc,
                        dtgt, grads);
  positional_.backward(saved.tgt_positional, dtgt, dtgt);
  tgt_embed_.backward(tgt, {}, dtgt, grads);
  positional_.backward(saved.src_positional, dsrc, dsrc);
  src_embed_.backward(src, {}, dsrc, grads);
}

Tensor<int64_t> Seq2SeqTransformer::greedy_decode(View<const int64_t, 2> src,
                                                  std::span<const int64_t> src_lengths,
                                                  int64_t start_symbol, int64_t max_len,
                                                  std::optional<int64_t> stop_symbol) const {
  const int64_t n = src.size(0), s = src.size(1), d = options_.transformer.d_model;
  const int64_t vocab = options_.tgt_vocab;
  check_lengths(src_lengths, n, s);
  if (max_len < 1 || max_len > options_.max_len)
    throw Error("max_len",
                fmt::format("a length in [1, {}] (the positional encoding's)", options_.max_len),
                std::to_string(max_len));
  if (start_symbol < 0 || start_symbol >= vocab)
    throw Error("start_symbol", fmt::format("an id in [0, {})", vocab),
                std::to_string(start_symbol));
  if (stop_symbol && (*stop_symbol < 0 || *stop_symbol >= vocab))
    throw Error("stop_symbol", fmt::format("an id in [0, {})", vocab),
                std::to_string(*stop_symbol));

  Arena::Frame frame(thread_arena());
  const View<float, 3> memory(frame.alloc<float>(n * s * d), {n, s, d});
  {
    const View<float, 3> src_x(frame.alloc<float>(n * s * d), {n, s, d});
    embed(src_embed_, src, src_x, 0);
    nn::AttentionMasks src_masks;
    src_masks.mask = key_lengths(src_lengths);
    transformer_.encode(src_x, memory, src_masks);
  }
  nn::AttentionMasks memory_masks;
  memory_masks.mask = key_lengths(src_lengths);
  nn::KvCache cache(transformer_.decoder(), n, max_len);

  Tensor<int64_t> ys({n, max_len});  // (N, max_len)
  for (int64_t b = 0; b < n; ++b) ys.data()[b * max_len] = start_symbol;
  std::vector<char> finished(static_cast<std::size_t>(n), 0);
  const View<float, 3> x(frame.alloc<float>(n * d), {n, 1, d});
  const View<float, 3> out(frame.alloc<float>(n * d), {n, 1, d});
  float* logits = frame.alloc<float>(n * vocab);  // (N, vocab)
  int64_t len = 1;
  for (; len < max_len; ++len) {
    // The last token of every sequence, at position len - 1.
    const View<const int64_t, 2> last(ys.data() + len - 1, {n, 1}, {max_len, 1});
    embed(tgt_embed_, last, x, len - 1);
    transformer_.decoder().decode_step(x, memory, out, cache, memory_masks);
    generator_.forward(View<const float, 2>(out.data(), {n, d}),
                       View<float, 2>(logits, {n, vocab}));
    bool all_done = true;
    for (int64_t b = 0; b < n; ++b) {
      const float* row = logits + b * vocab;
      int64_t next = std::max_element(row, row + vocab) - row;
      if (finished[static_cast<std::size_t>(b)]) next = *stop_symbol;
      ys.data()[b * max_len + len] = next;
      if (stop_symbol && next == *stop_symbol) finished[static_cast<std::size_t>(b)] = 1;
      all_done = all_done && finished[static_cast<std::size_t>(b)];
    }
    if (all_done) {
      ++len;
      break;
    }
  }
  // The first len tokens of each sequence.
  Tensor<int64_t> result({n, len});
  for (int64_t b = 0; b < n; ++b)
    std::copy_n(ys.data() + b * max_len, len, result.data() + b * len);
  return result;
}

}  // namespace maskattn::models
