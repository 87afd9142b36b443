// Many std::threads calling attention() and attention_backward() at once on
// shared read-only inputs and masks, each with its own outputs: every backend
// (reference, flash, auto), float32 and bfloat16, self and cross attention,
// grouped- and multi-query heads, one query against many keys (flash's key
// split), masks of every kind, dropout seeds, softcap, head masks, weights and
// log-sum-exp asked or not. Every result must equal the single-threaded call's
// bit for bit (tests/concurrent_calls.hpp). Under ThreadSanitizer (the tsan
// preset) this is also the race detector's workload.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "concurrent_calls.hpp"
#include "mask/random_masks.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::Bf16Copy;
using testing_attention::Buffer4;
using testing_attention::Layout;
using testing_attention::Shape;
using testing_attention::shape_text;
using testing_threads::append;
using testing_threads::Call;
using testing_threads::same_bits_when_concurrent;

// One attention problem: inputs (float32 and their bfloat16 copies) and the
// gradient of the output, shared by every thread.
struct Problem {
  std::string name;
  Shape s;
  Mask mask;
  AttentionOptions opts;
  bool outputs_weights;  // ask for weights and lse as well as out
  Buffer4 q, k, v, dout;
  Bf16Copy q16, k16, v16;
  Tensor<float> head_mask;

  Problem(std::string name_, const Shape& s_, Layout layout, Mask mask_, AttentionOptions opts_,
          bool outputs_weights_, unsigned seed)
      : name(std::move(name_)),
        s(s_),
        mask(std::move(mask_)),
        opts(opts_),
        outputs_weights(outputs_weights_),
        q({s.batch, s.hq, s.lq, s.d}, layout),
        k({s.batch, s.hkv, s.lk, s.d}, layout),
        v({s.batch, s.hkv, s.lk, s.dv}, layout),
        dout({s.batch, s.hq, s.lq, s.dv}, layout),
        q16(fill(q, seed)),
        k16(fill(k, seed + 1)),
        v16(fill(v, seed + 2)),
        head_mask({s.hq}) {
    std::mt19937 rng(seed + 3);
    dout.fill_normal(rng);
    for (int64_t h = 0; h < s.hq; ++h) head_mask.data()[h] = 0.5f + 0.25f * static_cast<float>(h);
  }

  static const Buffer4& fill(Buffer4& b, unsigned seed) {
    std::mt19937 rng(seed);
    b.fill_normal(rng);
    return b;
  }

  std::string label(Backend b, const char* what) const {
    return name + " " + shape_text(s) + " " + std::string(backend_name(b)) + " " + what;
  }
};

std::vector<std::unique_ptr<Problem>> problems() {
  std::vector<std::unique_ptr<Problem>> p;
  AttentionOptions plain;
  AttentionOptions dropout;
  dropout.dropout_p = 0.2f;
  dropout.seed = 77;
  AttentionOptions capped;
  capped.softcap = 5.0f;
  capped.scale = 0.3f;
  oracle::RandomMasks random(2024);
  Tensor<int64_t> document_ids({70});  // three documents of 24, 23 and 23 tokens
  for (int64_t i = 0; i < 70; ++i) document_ids.data()[i] = i * 3 / 70;
  // Self-attention, look-ahead mask, two heads per key/value head.
  p.push_back(std::make_unique<Problem>("causal", Shape{2, 4, 2, 64, 64, 32, 32}, Layout::BHLD,
                                        causal(), plain, true, 1));
  // Cross attention over more keys in BLHD memory, padding by lengths and a
  // sliding window, dropout.
  p.push_back(std::make_unique<Problem>(
      "window+lengths+dropout", Shape{2, 3, 3, 40, 96, 16, 24}, Layout::BLHD,
      sliding_window(8, 8, Align::BottomRight) & key_lengths(std::vector<int64_t>{96, 50}), dropout,
      false, 11));
  // One query against many keys, one key/value head for all (decoding: flash
  // splits the keys over the threads and merges the partial results).
  p.push_back(std::make_unique<Problem>("decode", Shape{2, 4, 1, 1, 600, 64, 64}, Layout::Padded,
                                        key_lengths(std::vector<int64_t>{600, 333}), plain, true,
                                        21));
  // Packed documents, odd head dimensions, softcap and a given scale.
  p.push_back(std::make_unique<Problem>("documents+softcap", Shape{1, 2, 2, 70, 70, 7, 5},
                                        Layout::BHLD, documents(document_ids), capped, true, 31));
  // A random combination of parts (dense masks, predicates, ALiBi ...), with
  // a head mask and dropout.
  const Shape rs{2, 2, 1, 33, 65, 16, 16};
  AttentionOptions masked_heads = dropout;
  masked_heads.seed = 5;
  auto& r = p.emplace_back(std::make_unique<Problem>("random mask", rs, Layout::Padded,
                                                     random.mask({rs.batch, rs.hq, rs.lq, rs.lk}),
                                                     masked_heads, true, 41));
  r->opts.head_mask = r->head_mask;
  return p;
}

// Forward calls of every backend and dtype, and backward calls of both real
// backends (from that backend's own forward, computed once and shared).
std::vector<Call> attention_calls(const std::vector<std::unique_ptr<Problem>>& problems,
                                  std::vector<std::unique_ptr<Tensor<float>>>& saved) {
  std::vector<Call> calls;
  for (const auto& pp : problems) {
    const Problem& p = *pp;
    const Shape& s = p.s;
    for (Backend b : {Backend::Reference, Backend::Flash, Backend::Auto}) {
      AttentionOptions o = p.opts;
      o.backend = b;
      for (bool bf16 : {false, true})
        calls.push_back(
            {p.label(b, bf16 ? "bf16 forward" : "forward"), [&p, o, s, bf16] {
               Tensor<float> out({s.batch, s.hq, s.lq, s.dv});
               Tensor<float> w, lse;
               if (p.outputs_weights) {
                 w = Tensor<float>({s.batch, s.hq, s.lq, s.lk});
                 lse = Tensor<float>({s.batch, s.hq, s.lq});
               }
               const View<float, 4> wv = p.outputs_weights ? w.view<4>() : View<float, 4>{};
               const View<float, 3> lv = p.outputs_weights ? lse.view<3>() : View<float, 3>{};
               if (bf16)
                 attention(p.q16.view(), p.k16.view(), p.v16.view(), out.view<4>(), p.mask, o, wv,
                           lv);
               else
                 attention(p.q.cview(), p.k.cview(), p.v.cview(), out.view<4>(), p.mask, o, wv, lv);
               std::vector<float> result;
               append(result, out);
               append(result, w);
               append(result, lse);
               return result;
             }});
      if (b == Backend::Auto) continue;
      // The forward the backward starts from: out and lse of this backend.
      auto& out = *saved.emplace_back(
          std::make_unique<Tensor<float>>(std::vector<int64_t>{s.batch, s.hq, s.lq, s.dv}));
      auto& lse = *saved.emplace_back(
          std::make_unique<Tensor<float>>(std::vector<int64_t>{s.batch, s.hq, s.lq}));
      attention(p.q.cview(), p.k.cview(), p.v.cview(), out.view<4>(), p.mask, o, {}, lse.view<3>());
      calls.push_back({p.label(b, "backward"), [&p, &out, &lse, o, s] {
                         Tensor<float> dq({s.batch, s.hq, s.lq, s.d}),
                             dk({s.batch, s.hkv, s.lk, s.d}), dv({s.batch, s.hkv, s.lk, s.dv});
                         attention_backward(p.q.cview(), p.k.cview(), p.v.cview(), out.view<4>(),
                                            lse.view<3>(), p.dout.cview(), dq.view<4>(),
                                            dk.view<4>(), dv.view<4>(), p.mask, o);
                         std::vector<float> result;
                         append(result, dq);
                         append(result, dk);
                         append(result, dv);
                         return result;
                       }});
    }
  }
  return calls;
}

// 8 threads x 4 rounds x 40 calls (5 problems x (3 backends x 2 dtypes
// forward + 2 backends backward)) = 1280 concurrent calls.
TEST(ConcurrentAttention, EveryBackendDtypeAndMaskGivesTheSingleThreadedBits) {
  const std::vector<std::unique_ptr<Problem>> p = problems();
  std::vector<std::unique_ptr<Tensor<float>>> saved;
  const std::vector<Call> calls = attention_calls(p, saved);
  ASSERT_EQ(calls.size(), 40U);
  EXPECT_TRUE(same_bits_when_concurrent(calls, {8, 4}));
}

}  // namespace
}  // namespace maskattn
