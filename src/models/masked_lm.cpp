#include "maskattn/models/masked_lm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include "core/arena.hpp"
#include "core/counter_rng.hpp"
#include "maskattn/mask.hpp"
#include "nn/init.hpp"
#include "nn/rows.hpp"

namespace maskattn::models {
namespace {

using maskattn::detail::Arena;
using maskattn::detail::thread_arena;

MaskedLmOptions checked(const MaskedLmOptions& o) {
  if (o.vocab_size < 1) throw Error("MaskedLm: vocab_size", ">= 1", std::to_string(o.vocab_size));
  if (o.pad_id < 0 || o.pad_id >= o.vocab_size)
    throw Error("MaskedLm: pad_id", fmt::format("an id in [0, {})", o.vocab_size),
                std::to_string(o.pad_id));
  const std::pair<const char*, int64_t> sizes[] = {{"d_model", o.d_model},
                                                   {"nhead", o.nhead},
                                                   {"num_layers", o.num_layers},
                                                   {"dim_feedforward", o.dim_feedforward},
                                                   {"max_len", o.max_len}};
  for (const auto& [name, value] : sizes)
    if (value < 1) throw Error(fmt::format("MaskedLm: {}", name), ">= 1", std::to_string(value));
  if (o.d_model % o.nhead != 0)
    throw Error("MaskedLm: d_model", fmt::format("a multiple of nhead = {}", o.nhead),
                std::to_string(o.d_model));
  return o;
}

nn::TransformerEncoderLayer encoder_layer(const MaskedLmOptions& o) {
  nn::TransformerLayerOptions layer;
  layer.dim_feedforward = o.dim_feedforward;
  layer.dropout = o.dropout;
  layer.activation = o.activation;
  layer.batch_first = true;
  layer.norm_first = true;  // pre-norm: steadier without a long warm-up
  return nn::TransformerEncoderLayer(o.d_model, o.nhead, layer);
}

void check_batch(View<const int64_t, 2> ids, std::span<const int64_t> lengths, int64_t max_len) {
  const int64_t n = ids.size(0), l = ids.size(1);
  if (n < 1 || l < 1 || l > max_len)
    throw Error("ids", fmt::format("(N, L) with N >= 1 and 1 <= L <= max_len = {}", max_len),
                shape_string(ids.shape()));
  if (static_cast<int64_t>(lengths.size()) != n)
    throw Error("lengths", fmt::format("{} lengths (one per sequence)", n),
                std::to_string(lengths.size()));
  for (std::size_t b = 0; b < lengths.size(); ++b)
    if (lengths[b] < 1 || lengths[b] > l)
      throw Error(fmt::format("lengths[{}]", b), fmt::format("a length in [1, {}]", l),
                  std::to_string(lengths[b]));
}

}  // namespace

MaskedLm::MaskedLm(const MaskedLmOptions& o)
    : options_(checked(o)),
      embed_(o.vocab_size, o.d_model, o.pad_id, /*scale_by_sqrt_dim=*/true),
      positional_(o.d_model, o.dropout, o.max_len),
      encoder_(encoder_layer(o), o.num_layers, nn::LayerNorm(o.d_model)) {
  // Every parameter from options.seed, whatever was constructed before.
  uint64_t k = 0;
  for (auto& [name, p] : named_parameters()) {
    const uint64_t s = maskattn::detail::counter_hash(o.seed, k++);
    if (p == &embed_.weight()) {
      // Unit-size token vectors after the sqrt(d) scale, and logits of unit
      // size from the tied output layer over normed h.
      nn::detail::init_normal(*p, 0.0, 1.0 / std::sqrt(static_cast<double>(o.d_model)), s);
      std::fill_n(p->data() + o.pad_id * o.d_model, o.d_model, 0.0f);
    } else if (p->rank() == 2) {
      nn::detail::init_xavier_uniform(*p, s);
    } else {
      // Rank 1: LayerNorm weights 1, biases (Linear, LayerNorm, in_proj) 0.
      const bool norm_weight = name.ends_with(".weight");
      nn::detail::init_constant(*p, norm_weight ? 1.0f : 0.0f);
    }
  }
  seed(o.seed);
}

void MaskedLm::for_each_child(const ChildFn& fn) {
  fn("embed", embed_);
  fn("positional", positional_);
  fn("encoder", encoder_);
}

void MaskedLm::forward(View<const int64_t, 2> ids, std::span<const int64_t> lengths,
                       View<float, 3> logits) const {
  forward_impl(ids, lengths, logits, nullptr);
}

void MaskedLm::forward(View<const int64_t, 2> ids, std::span<const int64_t> lengths,
                       View<float, 3> logits, Saved& saved) const {
  forward_impl(ids, lengths, logits, &saved);
}

namespace {
// Runs the embedding's lookup; its "Embedding: ids[b, l]" Errors are the
// caller's ids[b, l].
template <class F>
void named_ids(F&& lookup) {
  try {
    lookup();
  } catch (const Error& e) {
    constexpr std::string_view kPrefix = "Embedding: ";
    if (!e.argument().starts_with(kPrefix)) throw;
    throw Error(e.argument().substr(kPrefix.size()), e.expected(), e.actual());
  }
}
}  // namespace

void MaskedLm::forward_impl(View<const int64_t, 2> ids, std::span<const int64_t> lengths,
                            View<float, 3> logits, Saved* saved) const {
  check_batch(ids, lengths, options_.max_len);
  const int64_t n = ids.size(0), l = ids.size(1), d = options_.d_model, v = options_.vocab_size;
  if (logits.shape() != std::array<int64_t, 3>{n, l, v})
    throw Error("logits", fmt::format("({}, {}, {})", n, l, v), shape_string(logits.shape()));
  Arena::Frame frame(thread_arena());
  if (saved) {
    nn::ensure_shape(saved->x, {n, l, d});
    nn::ensure_shape(saved->h, {n, l, d});
  }
  // x, h: (N, L, d), the Saved's in training, scratch otherwise.
  const View<float, 3> x =
      saved ? saved->x.view<3>() : View<float, 3>(frame.alloc<float>(n * l * d), {n, l, d});
  const View<float, 3> h =
      saved ? saved->h.view<3>() : View<float, 3>(frame.alloc<float>(n * l * d), {n, l, d});
  nn::AttentionMasks masks;
  masks.mask = key_lengths(lengths);  // every layer: no position sees the padding
  if (saved) {
    named_ids([&] { embed_.forward(ids, x, saved->embed); });
    positional_.forward(x, x, /*batch_first=*/true, 0, saved->positional);
    encoder_.forward(x, h, masks, saved->encoder);
  } else {
    named_ids([&] { embed_.forward(ids, x); });
    positional_.forward(x, x, /*batch_first=*/true, 0);
    encoder_.forward(x, h, masks);
  }
  const View<const float, 2> h_rows(h.data(), {n * l, d});
  nn::detail::write_rows(logits, frame, [&](View<float, 2> rows) { embed_.unembed(h_rows, rows); });
}

void MaskedLm::backward(View<const int64_t, 2> ids, const Saved& saved,
                        View<const float, 3> dlogits, nn::Gradients& grads,
                        View<float, 3> dembedded) const {
  const int64_t n = ids.size(0), l = ids.size(1), d = options_.d_model, v = options_.vocab_size;
  const std::vector<int64_t> act{n, l, d};
  if (saved.x.shape() != act || saved.h.shape() != act)
    throw Error("saved", fmt::format("a training forward's of ids {}", shape_string(ids.shape())),
                fmt::format("activations {}", shape_string(saved.x.shape())));
  if (dlogits.shape() != std::array<int64_t, 3>{n, l, v})
    throw Error("dlogits", fmt::format("({}, {}, {})", n, l, v), shape_string(dlogits.shape()));
  if (!dembedded.empty() && dembedded.shape() != std::array<int64_t, 3>{n, l, d})
    throw Error("dembedded", fmt::format("({}, {}, {})", n, l, d), shape_string(dembedded.shape()));
  Arena::Frame frame(thread_arena());
  // The tied output layer: dh = dlogits E, and dE += dlogits^T h.
  const View<float, 3> dh(frame.alloc<float>(n * l * d), {n, l, d});
  embed_.unembed_backward(View<const float, 2>(saved.h.data(), {n * l, d}),
                          nn::detail::as_rows(dlogits, frame),
                          View<float, 2>(dh.data(), {n * l, d}), grads);
  const View<float, 3> dx(frame.alloc<float>(n * l * d), {n, l, d});
  encoder_.backward(saved.x.view<3>(), saved.encoder, dh, dx, grads);
  positional_.backward(saved.positional, dx, dx);  // the dropout's mask
  // The input lookup: dE[ids] += sqrt(d) dx.
  embed_.backward(ids, saved.embed, dx, grads);
  if (!dembedded.empty())
    nn::detail::copy_rows(View<const float, 2>(dx.data(), {n * l, d}), dembedded);
}

std::vector<std::pair<int64_t, double>> top_predictions(std::span<const float> logits, int64_t k,
                                                        std::span<const int64_t> exclude) {
  if (logits.empty()) throw Error("logits", "at least one class", "none");
  if (k < 1) throw Error("k", ">= 1", std::to_string(k));
  // softmax in double, the maximum subtracted.
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (const float z : logits) sum += std::exp(static_cast<double>(z) - max);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < static_cast<int64_t>(logits.size()); ++i)
    if (std::find(exclude.begin(), exclude.end(), i) == exclude.end()) ids.push_back(i);
  const auto take = std::min<std::size_t>(static_cast<std::size_t>(k), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(take), ids.end(),
                    [&](int64_t a, int64_t b) {
                      const auto za = logits[static_cast<std::size_t>(a)];
                      const auto zb = logits[static_cast<std::size_t>(b)];
                      return za > zb || (za == zb && a < b);
                    });
  std::vector<std::pair<int64_t, double>> top;
  for (std::size_t i = 0; i < take; ++i)
    top.emplace_back(
        ids[i],
        std::exp(static_cast<double>(logits[static_cast<std::size_t>(ids[i])]) - max) / sum);
  return top;
}

}  // namespace maskattn::models
