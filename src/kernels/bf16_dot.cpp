// AVX-512 BF16 micro-kernels (see bf16_dot.hpp). Every function that uses the
// instructions carries the target attribute; the file is compiled for the
// baseline, so nothing here runs unless available() said yes.
#include "kernels/bf16_dot.hpp"

#include <immintrin.h>

#include <cstring>

#define MASKATTN_BF16_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace maskattn::detail::bf16 {
namespace {

// Register blocks: 12 keys (or 12 output columns) x 2 query vectors = 24
// accumulators of the 32 zmm registers, leaving room for the operands.
constexpr int kBlock = 12;

inline uint32_t load_pair(const uint16_t* p) {
  uint32_t x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

MASKATTN_BF16_TARGET inline __m512bh as_bh(__m512i x) { return reinterpret_cast<__m512bh>(x); }

// (a_i, b_i) pairs from [a0..a15 | b0..b15] (16-bit lanes): the interleave
// that turns two rows into pairs.
MASKATTN_BF16_TARGET inline __m512i interleave_halves(__m512i ab) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                       8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, ab);
}

// (a_i, b_i) pairs from the low 16 lanes (16-bit) of a and of b.
MASKATTN_BF16_TARGET inline __m512i interleave_low_halves(__m512i a, __m512i b) {
  const __m512i idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40,
                                       8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  return _mm512_permutex2var_epi16(a, idx, b);
}

template <int KB>
MASKATTN_BF16_TARGET void scores_block(const uint32_t* qt, const uint16_t* k, int64_t ks,
                                       int64_t full_pairs, bool odd, float* st) {
  __m512 acc[KB][2];
  for (int kk = 0; kk < KB; ++kk) acc[kk][0] = acc[kk][1] = _mm512_setzero_ps();
  for (int64_t x2 = 0; x2 < full_pairs; ++x2) {
    const __m512bh q0 = as_bh(_mm512_load_si512(qt + x2 * kQueries));
    const __m512bh q1 = as_bh(_mm512_load_si512(qt + x2 * kQueries + 16));
#pragma GCC unroll 12
    for (int kk = 0; kk < KB; ++kk) {
      const __m512bh kb = as_bh(_mm512_set1_epi32(static_cast<int>(load_pair(k + kk * ks + 2 * x2))));
      acc[kk][0] = _mm512_dpbf16_ps(acc[kk][0], q0, kb);
      acc[kk][1] = _mm512_dpbf16_ps(acc[kk][1], q1, kb);
    }
  }
  if (odd) {  // the last element alone: its pair's upper half is 0
    const __m512bh q0 = as_bh(_mm512_load_si512(qt + full_pairs * kQueries));
    const __m512bh q1 = as_bh(_mm512_load_si512(qt + full_pairs * kQueries + 16));
    for (int kk = 0; kk < KB; ++kk) {
      const __m512bh kb = as_bh(_mm512_set1_epi32(k[kk * ks + 2 * full_pairs]));
      acc[kk][0] = _mm512_dpbf16_ps(acc[kk][0], q0, kb);
      acc[kk][1] = _mm512_dpbf16_ps(acc[kk][1], q1, kb);
    }
  }
  for (int kk = 0; kk < KB; ++kk) {
    _mm512_store_ps(st + kk * kQueries, acc[kk][0]);
    _mm512_store_ps(st + kk * kQueries + 16, acc[kk][1]);
  }
}

template <int DB>
MASKATTN_BF16_TARGET void pv_block(const uint32_t* pp, const uint32_t* vp, int64_t nk_pairs,
                                   int64_t dv, float* ot) {
  __m512 acc[DB][2];
  for (int x = 0; x < DB; ++x) {
    acc[x][0] = _mm512_load_ps(ot + x * kQueries);
    acc[x][1] = _mm512_load_ps(ot + x * kQueries + 16);
  }
  for (int64_t j2 = 0; j2 < nk_pairs; ++j2) {
    const __m512bh p0 = as_bh(_mm512_load_si512(pp + j2 * kQueries));
    const __m512bh p1 = as_bh(_mm512_load_si512(pp + j2 * kQueries + 16));
    const uint32_t* v = vp + j2 * dv;
#pragma GCC unroll 12
    for (int x = 0; x < DB; ++x) {
      const __m512bh vb = as_bh(_mm512_set1_epi32(static_cast<int>(v[x])));
      acc[x][0] = _mm512_dpbf16_ps(acc[x][0], p0, vb);
      acc[x][1] = _mm512_dpbf16_ps(acc[x][1], p1, vb);
    }
  }
  for (int x = 0; x < DB; ++x) {
    _mm512_store_ps(ot + x * kQueries, acc[x][0]);
    _mm512_store_ps(ot + x * kQueries + 16, acc[x][1]);
  }
}

}  // namespace

bool available() noexcept {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bf16");
}

void scores(const uint32_t* qt, const uint16_t* k, int64_t k_stride, int64_t nk, int64_t dim,
            float* st) {
  const int64_t full = dim / 2;
  const bool odd = dim % 2 != 0;
  int64_t j = 0;
  for (; j + kBlock <= nk; j += kBlock)
    scores_block<kBlock>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
  // The rest in blocks of 8, 4, 2, 1.
  for (; j + 8 <= nk; j += 8) scores_block<8>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
  for (; j + 4 <= nk; j += 4) scores_block<4>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
  for (; j + 2 <= nk; j += 2) scores_block<2>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
  for (; j < nk; ++j) scores_block<1>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
}

MASKATTN_BF16_TARGET void pack_probabilities(const float* p, int64_t nk, uint32_t* pp) {
  for (int64_t j = 0; j < nk; j += 2) {
    const float* a = p + j * kQueries;
    for (int v = 0; v < 2; ++v) {
      const __m512 lo = _mm512_load_ps(a + 16 * v);
      const __m512 hi = j + 1 < nk ? _mm512_load_ps(a + kQueries + 16 * v) : _mm512_setzero_ps();
      // [bf16(lo) | bf16(hi)], then interleaved into (lo_i, hi_i) pairs.
      const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
      _mm512_store_si512(pp + (j / 2) * kQueries + 16 * v, interleave_halves(both));
    }
  }
}

MASKATTN_BF16_TARGET void pack_value_pairs(const uint16_t* v, int64_t v_stride, int64_t nk,
                                           int64_t dv, uint32_t* vp) {
  for (int64_t j = 0; j < nk; j += 2) {
    const uint16_t* r0 = v + j * v_stride;
    const uint16_t* r1 = r0 + v_stride;
    const bool second = j + 1 < nk;
    uint32_t* out = vp + (j / 2) * dv;
    for (int64_t x = 0; x < dv; x += 16) {
      const int64_t n = dv - x < 16 ? dv - x : 16;
      const __mmask32 m = static_cast<__mmask32>((1u << n) - 1u);
      const __m512i a = _mm512_maskz_loadu_epi16(m, r0 + x);
      const __m512i b = second ? _mm512_maskz_loadu_epi16(m, r1 + x) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(out + x, static_cast<__mmask16>(m), interleave_low_halves(a, b));
    }
  }
}

void accumulate_pv(const uint32_t* pp, const uint32_t* vp, int64_t nk_pairs, int64_t dv,
                   float* ot) {
  int64_t x = 0;
  for (; x + kBlock <= dv; x += kBlock) pv_block<kBlock>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x + 8 <= dv; x += 8) pv_block<8>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x + 4 <= dv; x += 4) pv_block<4>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x + 2 <= dv; x += 2) pv_block<2>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x < dv; ++x) pv_block<1>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
}

}  // namespace maskattn::detail::bf16
