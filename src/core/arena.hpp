// Scratch memory for the modules' forward passes, kept between calls.
//
// A fresh 4 KiB page costs ~1.3 us to fault in on these VMs, so buffers that
// a forward pass needs every call must not be allocated every call. Each
// thread has one Arena (thread_arena()): a grow-only stack of 64-byte-aligned
// blocks. A Frame marks the stack on construction and pops back to the mark
// on destruction, so nested calls (a stack of layers, each with its own
// frame) share the same memory. Memory is never returned to the system; once
// the arena is idle (no frame open) its blocks are merged into one, so a
// steady workload settles on one block and no allocation at all.
//
// One arena per thread makes modules reentrant: concurrent forward passes on
// different threads use different arenas, and a module's weights are only
// read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn::detail {

class Arena {
 public:
  class Frame {
   public:
    explicit Frame(Arena& arena) : arena_(arena), mark_(arena.mark()) { ++arena_.open_frames_; }
    ~Frame() {
      arena_.release(mark_);
      --arena_.open_frames_;
      if (arena_.open_frames_ == 0) arena_.consolidate();
    }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

    // Uninitialised storage for n elements of T, 64-byte aligned, valid until
    // this frame ends.
    template <class T>
    T* alloc(int64_t n) {
      return static_cast<T*>(arena_.allocate(checked_mul(n, sizeof(T), "workspace bytes")));
    }

   private:
    Arena& arena_;
    struct Mark {
      std::size_t block;
      int64_t used;
    } mark_;
    friend class Arena;
  };

  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Bytes held (for tests).
  int64_t capacity() const noexcept;
  std::size_t block_count() const noexcept { return blocks_.size(); }

 private:
  struct Block {
    std::unique_ptr<std::byte, AlignedFree> data;
    int64_t size = 0;
    int64_t used = 0;
  };

  Frame::Mark mark() const noexcept;
  void release(const Frame::Mark& m) noexcept;
  void* allocate(int64_t bytes);
  void consolidate();

  std::vector<Block> blocks_;
  std::size_t current_ = 0;  // the block allocations come from
  int64_t high_water_ = 0;   // most bytes in use at once since the last merge
  int open_frames_ = 0;
};

// The calling thread's arena.
Arena& thread_arena();

}  // namespace maskattn::detail
