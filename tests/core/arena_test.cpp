// The modules' scratch memory (src/core/arena.hpp): allocations 64-byte
// aligned and disjoint, frames that nest and pop back to their mark, memory
// in use that stays in place when the arena grows, and a steady workload —
// raw frames, a module's forward pass or flash attention — that stops
// allocating after its first call (one block, the same capacity, the same
// addresses).
#include "core/arena.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "maskattn/attention.hpp"
#include "maskattn/nn/transformer_layers.hpp"

namespace maskattn {
namespace {

using detail::Arena;
using detail::thread_arena;

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

TEST(Arena, AllocationsAreAlignedTo64AndDisjoint) {
  Arena arena;
  Arena::Frame frame(arena);
  const std::vector<int64_t> sizes = {1, 3, 63, 64, 65, 100, 4097, 7, 0};
  std::vector<std::pair<unsigned char*, int64_t>> blocks;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    unsigned char* p = frame.alloc<unsigned char>(sizes[i]);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned64(p)) << "size " << sizes[i];
    std::memset(p, static_cast<int>(i + 1), static_cast<std::size_t>(sizes[i]));
    blocks.emplace_back(p, sizes[i]);
  }
  // Written one after another: any overlap would have overwritten an earlier one.
  for (std::size_t i = 0; i < blocks.size(); ++i)
    for (int64_t b = 0; b < blocks[i].second; ++b)
      ASSERT_EQ(blocks[i].first[b], i + 1) << "allocation " << i << " byte " << b;
  EXPECT_TRUE(aligned64(frame.alloc<double>(3)));
  EXPECT_TRUE(aligned64(frame.alloc<float>(1)));
}

TEST(Arena, FramesNestAndPopBackToTheirMark) {
  Arena arena;
  Arena::Frame outer(arena);
  float* a = outer.alloc<float>(100);
  float* inner_first = nullptr;
  {
    Arena::Frame inner(arena);
    inner_first = inner.alloc<float>(50);
    EXPECT_GE(inner_first, a + 100);  // after what the outer frame holds
    Arena::Frame innermost(arena);
    EXPECT_GE(innermost.alloc<float>(10), inner_first + 50);
  }
  {
    Arena::Frame inner(arena);
    EXPECT_EQ(inner.alloc<float>(50), inner_first);  // the closed frames' memory again
  }
  EXPECT_EQ(outer.alloc<float>(10), inner_first);
}

TEST(Arena, GrowingLeavesTheMemoryInUseInPlace) {
  Arena arena;
  Arena::Frame outer(arena);
  int64_t* kept = outer.alloc<int64_t>(1000);
  for (int64_t i = 0; i < 1000; ++i) kept[i] = i * 7;
  {
    Arena::Frame inner(arena);
    auto* big = inner.alloc<std::byte>(int64_t{3} << 20);  // more than the first block
    std::memset(big, 0xAB, std::size_t{3} << 20);
    EXPECT_GE(arena.block_count(), 2u);
    EXPECT_TRUE(aligned64(big));
  }
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(kept[i], i * 7) << i;
}

TEST(Arena, ASteadyWorkloadStopsGrowingAfterItsFirstCall) {
  Arena arena;
  // Nested frames that need several blocks the first time: 1.2 MB, then 2 MB
  // and 5 MB inside it, then 1 MB beside them.
  const auto workload = [&arena] {
    Arena::Frame f(arena);
    float* first = f.alloc<float>(300'000);
    {
      Arena::Frame g(arena);
      g.alloc<float>(500'000);
      Arena::Frame h(arena);
      std::memset(h.alloc<char>(5 << 20), 1, 5 << 20);
    }
    Arena::Frame k(arena);
    k.alloc<char>(1 << 20);
    return first;
  };
  const float* p = workload();
  const int64_t capacity = arena.capacity();
  EXPECT_EQ(arena.block_count(), 1u);  // merged once idle
  EXPECT_GE(capacity, 1'200'000 + 2'000'000 + (5 << 20));
  const float* p2 = workload();
  for (int call = 0; call < 5; ++call) {
    EXPECT_EQ(workload(), p2);  // the same memory every call
    EXPECT_EQ(arena.capacity(), capacity);
    EXPECT_EQ(arena.block_count(), 1u);
  }
  EXPECT_NE(p, nullptr);
}

TEST(Arena, AModulesForwardPassReusesItsThreadsArena) {
  nn::TransformerLayerOptions o;
  o.dim_feedforward = 256;
  nn::TransformerEncoderLayer layer(64, 4, o);
  layer.eval();
  Tensor<float> src({64, 8, 64}), out({64, 8, 64});
  std::vector<int64_t> capacity;
  std::vector<std::size_t> blocks;
  // On a fresh thread: its arena starts empty, whatever other tests did here.
  std::thread([&] {
    for (int call = 0; call < 5; ++call) {
      layer.forward(src.view<3>(), out.view<3>());
      capacity.push_back(thread_arena().capacity());
      blocks.push_back(thread_arena().block_count());
    }
  }).join();
  EXPECT_GT(capacity.front(), 0);
  EXPECT_EQ(capacity, std::vector<int64_t>(5, capacity.front()));
  EXPECT_EQ(blocks, std::vector<std::size_t>(5, 1));
}

TEST(Arena, FlashAttentionReusesItsThreadsArena) {
  // Tiles, and one query against many keys (key ranges merged from partial
  // results that live in the calling thread's arena).
  Tensor<float> q({1, 4, 256, 64}), k({1, 4, 256, 64}), v({1, 4, 256, 64}), out({1, 4, 256, 64});
  Tensor<float> q1({1, 1, 1, 64}), k1({1, 1, 4096, 64}), v1({1, 1, 4096, 64}), out1({1, 1, 1, 64});
  for (Tensor<float>* t : {&q, &k, &v, &q1, &k1, &v1})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = static_cast<float>(i % 7) * 0.1f;
  AttentionOptions opts;
  opts.backend = Backend::Flash;
  std::vector<int64_t> capacity;
  std::thread([&] {
    for (int call = 0; call < 5; ++call) {
      attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), causal(), opts);
      attention(q1.view<4>(), k1.view<4>(), v1.view<4>(), out1.view<4>(), {}, opts);
      capacity.push_back(thread_arena().capacity());
    }
  }).join();
  EXPECT_GT(capacity.front(), 0);
  EXPECT_EQ(capacity, std::vector<int64_t>(5, capacity.front()));
}

TEST(Arena, FlashBackwardReusesItsThreadsArena) {
  // Tasks of whole key/value heads, and one head whose key tiles are split
  // (the shares of dq live in the calling thread's arena).
  Tensor<float> q({2, 4, 256, 64}), k({2, 4, 256, 64}), v({2, 4, 256, 64}), out({2, 4, 256, 64});
  Tensor<float> q1({1, 1, 64, 64}), k1({1, 1, 2048, 64}), v1({1, 1, 2048, 64}),
      out1({1, 1, 64, 64});
  Tensor<float> lse({2, 4, 256}), lse1({1, 1, 64}), dq(q.shape()), dk(k.shape()), dv(v.shape()),
      dq1(q1.shape()), dk1(k1.shape()), dv1(v1.shape());
  for (Tensor<float>* t : {&q, &k, &v, &q1, &k1, &v1})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = static_cast<float>(i % 7) * 0.1f;
  AttentionOptions opts;
  opts.backend = Backend::Flash;
  attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), causal(), opts, {},
            lse.view<3>());
  attention(q1.view<4>(), k1.view<4>(), v1.view<4>(), out1.view<4>(), {}, opts, {}, lse1.view<3>());
  std::vector<int64_t> capacity;
  std::thread([&] {
    for (int call = 0; call < 5; ++call) {
      // dout = out: any gradient will do.
      attention_backward(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), lse.view<3>(),
                         out.view<4>(), dq.view<4>(), dk.view<4>(), dv.view<4>(), causal(), opts);
      attention_backward(q1.view<4>(), k1.view<4>(), v1.view<4>(), out1.view<4>(), lse1.view<3>(),
                         out1.view<4>(), dq1.view<4>(), dk1.view<4>(), dv1.view<4>(), {}, opts);
      capacity.push_back(thread_arena().capacity());
    }
  }).join();
  EXPECT_GT(capacity.front(), 0);
  EXPECT_EQ(capacity, std::vector<int64_t>(5, capacity.front()));
}

}  // namespace
}  // namespace maskattn
