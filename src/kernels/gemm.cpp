// gemm() on oneDNN 2.6, through whichever of its two GEMMs is faster for the
// layout: dnnl_sgemm (BLAS-like, no set-up) or the matmul primitive, whose
// brgemm kernels (brg:avx512_core) oneDNN picks only for dense operands and
// compile-time scales. The choice is made in one place, use_matmul(), from
// these measurements (fp32, 2 threads, this project's AVX-512 machine; rate of
// matmul / rate of dnnl_sgemm, median over alternating calls; the columns
// dnnl_matmul and dnnl_sgemm of bench/bench_gemm.cpp repeat the main shapes,
// see BENCHMARKS.md):
//
//   B transposed (y = x W^T, the projections; W stored (n, k)):
//     m x n x k = 4096x512x512  1.18    4096x512x2048  1.34    128x1536x512  1.62
//                 16x512x512    3.2     4096x2048x512  0.97    2048^3        0.99
//                 1..15 x 512x512, 1..15 x 1536x512, 1..15 x 512x2048        0.26 .. 0.82
//     (dnnl_sgemm has fast small-m kernels up to m = 15, then drops 4x at m = 16)
//   both transposed (rare): 4x512x512  4.2    512x512x4096  1.42    2048^3  0.92
//   B not transposed (NN: backward dx = dy W; TN: dW = dy^T x):
//     NN 2048^3  0.93    NN 4096x512x512  0.94    NN 64x512x512  0.98    NN 4x512x512  0.52
//     TN 512x512x4096  0.93    TN 512x2048x4096  0.96    TN 2048x512x4096  1.08
//
// So: the matmul primitive when B is transposed (except A not transposed with
// m < 16), dnnl_sgemm otherwise, and dnnl_sgemm for any leading dimension past
// its row (a column slice of a wider buffer), for which the primitive would
// only fall back to gemm:jit, the very kernels of dnnl_sgemm.
//
// A primitive costs ~170 us to create (JIT) and ~2 us to find in oneDNN's own
// cache, 3 % of a 16x512x512 call: hence our cache of ready primitives.
//
// oneDNN cannot be trusted with the edges: matmul with m, n or k = 0 divides by
// zero (SIGFPE), and dnnl_sgemm with k = 0 and beta = 0 leaves C unwritten (NaN
// stays NaN). So alpha == 0 or k == 0 is C = beta * C here, written out (and,
// as in BLAS, A and B are not read then).
#include "kernels/gemm.hpp"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <utility>

namespace maskattn::detail {
namespace {

using dnnl::memory;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN splits a primitive's work for omp_get_max_threads() at creation and
// runs it on at most that many threads (on fewer when there are fewer, e.g. 1
// inside parallel_for: still correct). One created while the count was 1 would
// stay on one core after omp_set_num_threads(2), so the count is in the key.
int planned_threads() { return omp_get_max_threads(); }

// Everything a matmul primitive is specialised on. Strides are not part of it:
// this route only takes dense operands, whose strides follow from the shape.
struct MatmulKey {
  int64_t m, n, k;
  bool trans_a, trans_b;
  uint32_t alpha_bits, beta_bits;  // float bits: NaN compares equal to itself
  int threads;

  bool operator==(const MatmulKey&) const = default;
};

struct MatmulKeyHash {
  std::size_t operator()(const MatmulKey& key) const noexcept {
    std::size_t h = 0;
    auto mix = [&h](std::size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
    mix(std::hash<int64_t>{}(key.m));
    mix(std::hash<int64_t>{}(key.n));
    mix(std::hash<int64_t>{}(key.k));
    mix((key.trans_a ? 1U : 0U) | (key.trans_b ? 2U : 0U));
    mix(key.alpha_bits);
    mix(key.beta_bits);
    mix(static_cast<std::size_t>(key.threads));
    return h;
  }
};

// One matmul primitive with its memory descriptors:
//   a: op(A) (m, k), b: op(B) (k, n), c: C (m, n), all dense row-major in
//   storage (a transposed operand is described by swapped strides).
struct Matmul {
  memory::desc a, b, c, scratchpad;
  dnnl::matmul primitive;
};

std::shared_ptr<const Matmul> create_matmul(const MatmulKey& key) {
  using dt = memory::data_type;
  const memory::dims a_strides = key.trans_a ? memory::dims{1, key.m} : memory::dims{key.k, 1};
  const memory::dims b_strides = key.trans_b ? memory::dims{1, key.k} : memory::dims{key.n, 1};
  auto mm = std::make_shared<Matmul>();
  mm->a = memory::desc({key.m, key.k}, dt::f32, a_strides);
  mm->b = memory::desc({key.k, key.n}, dt::f32, b_strides);
  mm->c = memory::desc({key.m, key.n}, dt::f32, memory::dims{key.n, 1});
  // C = alpha * (A . B) + beta * C: alpha is oneDNN's output scale, beta its
  // sum post-op, absent when beta == 0 so that C is never read.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const float alpha = std::bit_cast<float>(key.alpha_bits);
  const float beta = std::bit_cast<float>(key.beta_bits);
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(beta);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(mm->a, mm->b, mm->c), attr,
                                        cpu_engine());
  mm->scratchpad = pd.scratchpad_desc();
  mm->primitive = dnnl::matmul(pd);
  return mm;
}

// Least-recently-used map MatmulKey -> primitive, shared by all threads.
// Bounded because m (= batch * sequence length) changes from call to call in
// inference; 256 covers the shapes of a model's layers several times over.
// Entries are shared_ptr so that one evicted while another thread runs it
// lives until that call ends.
class MatmulCache {
 public:
  std::shared_ptr<const Matmul> get(const MatmulKey& key) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = index_.find(key); it != index_.end()) {
        order_.splice(order_.begin(), order_, it->second);
        return it->second->second;
      }
    }
    // Created outside the lock: it may take a JIT compilation, and two
    // threads creating the same key is harmless (the second insert is dropped).
    std::shared_ptr<const Matmul> created = create_matmul(key);
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) return it->second->second;
    order_.emplace_front(key, created);
    index_.emplace(key, order_.begin());
    if (order_.size() > kCapacity) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return created;
  }

 private:
  static constexpr std::size_t kCapacity = 256;
  using Entry = std::pair<MatmulKey, std::shared_ptr<const Matmul>>;
  std::mutex mutex_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<MatmulKey, std::list<Entry>::iterator, MatmulKeyHash> index_;
};

MatmulCache& matmul_cache() {
  static MatmulCache cache;
  return cache;
}

// The calling thread's scratchpad for the primitives (user mode: in library
// mode oneDNN allocates one for every execution). It only grows, so after the
// first calls of a model no call allocates (~0.5 MB for the shapes of bench_gemm).
class Scratchpad {
 public:
  void* get(std::size_t bytes) {
    if (bytes > size_) {
      const std::size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
      data_.reset(std::aligned_alloc(kAlign, rounded));
      if (!data_) throw std::bad_alloc();
      size_ = rounded;
    }
    return data_.get();
  }

 private:
  static constexpr std::size_t kAlign = 64;
  struct Free {
    void operator()(void* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<void, Free> data_;
  std::size_t size_ = 0;
};

// Calls from several threads each get their own stream and scratchpad; the
// primitives themselves are immutable and may run concurrently.
struct ThreadContext {
  dnnl::stream stream{cpu_engine()};
  Scratchpad scratchpad;
};

ThreadContext& thread_context() {
  thread_local ThreadContext context;
  return context;
}

void run_matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, const float* b, float beta, float* c) {
  const MatmulKey key{m,
                      n,
                      k,
                      trans_a,
                      trans_b,
                      std::bit_cast<uint32_t>(alpha),
                      std::bit_cast<uint32_t>(beta),
                      planned_threads()};
  const std::shared_ptr<const Matmul> mm = matmul_cache().get(key);
  ThreadContext& ctx = thread_context();
  const dnnl::engine& engine = cpu_engine();
  // oneDNN's memory takes void*; it never writes its SRC and WEIGHTS inputs.
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(mm->a, engine, const_cast<float*>(a))},
      {DNNL_ARG_WEIGHTS, memory(mm->b, engine, const_cast<float*>(b))},
      {DNNL_ARG_DST, memory(mm->c, engine, c)}};
  if (const std::size_t bytes = mm->scratchpad.get_size(); bytes > 0)
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(mm->scratchpad, engine, ctx.scratchpad.get(bytes)));
  mm->primitive.execute(ctx.stream, args);
  ctx.stream.wait();
}

// C (m, n) = beta * C, with beta == 0 writing zeros (not 0 * NaN).
void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

// The route, from the measurements at the top of this file.
bool use_matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, int64_t lda,
                int64_t ldb, int64_t ldc) {
  // Fewer rows than this with A not transposed: dnnl_sgemm's small-m kernels.
  constexpr int64_t kMinRows = 16;
  const bool dense = lda == (trans_a ? m : k) && ldb == (trans_b ? k : n) && ldc == n;
  return dense && trans_b && (trans_a || m >= kMinRows);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  assert(m >= 0 && n >= 0 && k >= 0);
  assert(lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n) && ldc >= n);
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  if (use_matmul(trans_a, trans_b, m, n, k, lda, ldb, ldc)) {
    run_matmul(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
    return;
  }
  [[maybe_unused]] const dnnl_status_t status = dnnl_sgemm(
      trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  assert(status == dnnl_success);
}

}  // namespace maskattn::detail
