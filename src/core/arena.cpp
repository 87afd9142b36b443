#include "core/arena.hpp"

#include <algorithm>

namespace maskattn::detail {
namespace {

constexpr int64_t kAlign = 64;
constexpr int64_t kMinBlock = int64_t{1} << 20;  // 1 MiB: small frames never allocate twice

int64_t round_up(int64_t bytes) {
  return (checked_mul(1, bytes, "workspace bytes") + kAlign - 1) / kAlign * kAlign;
}

}  // namespace

int64_t Arena::capacity() const noexcept {
  int64_t n = 0;
  for (const Block& b : blocks_) n += b.size;
  return n;
}

Arena::Frame::Mark Arena::mark() const noexcept {
  if (blocks_.empty()) return {0, 0};
  return {current_, blocks_[current_].used};
}

void Arena::release(const Frame::Mark& m) noexcept {
  if (blocks_.empty()) return;
  for (std::size_t b = m.block + 1; b < blocks_.size(); ++b) blocks_[b].used = 0;
  blocks_[m.block].used = m.used;
  current_ = m.block;
}

void* Arena::allocate(int64_t bytes) {
  const int64_t need = std::max<int64_t>(round_up(bytes), kAlign);
  // The current block, then any later (already allocated, now unused) one.
  for (std::size_t b = current_; b < blocks_.size(); ++b) {
    Block& block = blocks_[b];
    if (block.size - block.used >= need) {
      void* p = block.data.get() + block.used;
      block.used += need;
      current_ = b;
      int64_t in_use = 0;
      for (std::size_t i = 0; i <= b; ++i) in_use += blocks_[i].used;
      high_water_ = std::max(high_water_, in_use);
      return p;
    }
  }
  // A new block after the others: the memory in use stays where it is.
  const int64_t size = std::max({need, kMinBlock, capacity()});
  blocks_.push_back(Block{aligned_uninitialized(size), size, 0});
  current_ = blocks_.size() - 1;
  return allocate(bytes);
}

void Arena::consolidate() {
  // Idle: nothing in use. Replace several blocks by one that holds the most
  // this arena has needed at once, so the next call allocates nothing.
  if (blocks_.size() > 1) {
    const int64_t size = std::max(high_water_, kMinBlock);
    blocks_.clear();
    blocks_.push_back(Block{aligned_uninitialized(size), size, 0});
  }
  current_ = 0;
  high_water_ = 0;
}

Arena& thread_arena() {
  thread_local Arena arena;
  return arena;
}

}  // namespace maskattn::detail
