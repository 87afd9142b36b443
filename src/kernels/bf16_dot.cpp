// AVX-512 BF16 micro-kernels (see bf16_dot.hpp). Every function that uses the
// instructions carries the target attribute; the file is compiled for the
// baseline, so nothing here runs unless available() said yes.
#include "kernels/bf16_dot.hpp"

// gcc 12's AVX-512 headers start several intrinsics from _mm512_undefined_*()
// and then warn that it may be used uninitialised (GCC bug 105593); the
// warning is about the header, not this code. (Clang has no such warning
// group and would warn about the pragma.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
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
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, ab);
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
      const __m512bh kb =
          as_bh(_mm512_set1_epi32(static_cast<int>(load_pair(k + kk * ks + 2 * x2))));
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

// out[j] = sum of the lanes of v[j], j < 16: a transpose-and-add tree (three
// instructions per input vector instead of a full reduction each).
MASKATTN_BF16_TARGET __attribute__((always_inline)) inline __m512 sum_lanes16(const __m512 v[16]) {
  __m512 t[8], u[4], w[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)  // per 128-bit block: [a02, b02, a13, b13]
    t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // per block: the block's sums of 4 inputs
    const __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)  // blocks 0+2, 1+3 of two inputs
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88),
                       _mm512_shuffle_f32x4(w[0], w[1], 0xDD));
}

// s[r * ld + j] = q_r . k_j for RB rows and all nk keys, 16 / RB keys at a
// time: each key chunk is loaded once for the RB rows, and the RB x (16 / RB)
// dot products (accumulator r * KB + jj) are reduced by one sum_lanes16, so
// lane r * KB + jj holds (row r, key jj). Past nk the last key is read again
// (its sums land in lanes the caller overwrites).
template <int RB>
MASKATTN_BF16_TARGET void scores_rows(const uint16_t* q, int64_t dpad, const uint16_t* k,
                                      int64_t k_stride, int64_t nk, int64_t dim, float* s,
                                      int64_t ld) {
  constexpr int KB = 16 / RB;
  const int64_t chunks = dpad / 32;
  const int64_t tail = dim - (chunks - 1) * 32;  // elements of the last chunk, 1..32
  const __mmask32 last = tail >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << tail) - 1u);
  for (int64_t j = 0; j < nk; j += KB) {
    const uint16_t* kp[KB];
#pragma GCC unroll 16
    for (int jj = 0; jj < KB; ++jj) kp[jj] = k + std::min<int64_t>(j + jj, nk - 1) * k_stride;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int a = 0; a < 16; ++a) acc[a] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks; ++c) {
      const __mmask32 m = c + 1 == chunks ? last : ~__mmask32{0};
#pragma GCC unroll 16
      for (int jj = 0; jj < KB; ++jj) {
        const __m512bh kc = as_bh(_mm512_maskz_loadu_epi16(m, kp[jj] + 32 * c));
#pragma GCC unroll 4
        for (int r = 0; r < RB; ++r)
          acc[r * KB + jj] = _mm512_dpbf16_ps(acc[r * KB + jj], kc,
                                              as_bh(_mm512_load_si512(q + r * dpad + 32 * c)));
      }
    }
    const __m512 sums = sum_lanes16(acc);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r)  // lanes [r KB, r KB + KB) to s[r][j, j + KB)
      _mm512_mask_storeu_ps(s + r * ld + j - r * KB,
                            static_cast<__mmask16>(((1u << KB) - 1u) << (r * KB)), sums);
  }
}

// o[r][x0, x0 + 64) += sum_j2 (p pair of row r) . (v pair at x), RB rows.
template <int RB>
MASKATTN_BF16_TARGET void pv_rows(const uint32_t* pp, int64_t ldp, const uint32_t* vp,
                                  int64_t nk_pairs, int64_t dv, int64_t x0, const __mmask16 m[4],
                                  float* o, int64_t ldo) {
  const __mmask16 m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3];
  const __mmask16 mm[4] = {m0, m1, m2, m3};
  __m512 acc[RB][4];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_maskz_loadu_ps(mm[c], o + r * ldo + x0 + 16 * c);
  for (int64_t j2 = 0; j2 < nk_pairs; ++j2) {
    const uint32_t* v = vp + j2 * dv + x0;
    __m512bh vc[4];
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) vc[c] = as_bh(_mm512_maskz_loadu_epi32(mm[c], v + 16 * c));
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512bh pb = as_bh(_mm512_set1_epi32(static_cast<int>(pp[r * ldp + j2])));
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], vc[c], pb);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(o + r * ldo + x0 + 16 * c, mm[c], acc[r][c]);
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
  for (; j + 8 <= nk; j += 8)
    scores_block<8>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
  for (; j + 4 <= nk; j += 4)
    scores_block<4>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
  for (; j + 2 <= nk; j += 2)
    scores_block<2>(qt, k + j * k_stride, k_stride, full, odd, st + j * kQueries);
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
  // (a_i, b_i) for i in [0, 16) and in [16, 32) of two 32-element chunks.
  const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                      39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  for (int64_t j = 0; j < nk; j += 2) {
    const uint16_t* r0 = v + j * v_stride;
    const uint16_t* r1 = r0 + v_stride;
    const bool second = j + 1 < nk;
    uint32_t* out = vp + (j / 2) * dv;
    for (int64_t x = 0; x < dv; x += 32) {
      const int64_t n = dv - x < 32 ? dv - x : 32;
      const __mmask32 m = n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
      const __m512i a = _mm512_maskz_loadu_epi16(m, r0 + x);
      const __m512i b = second ? _mm512_maskz_loadu_epi16(m, r1 + x) : _mm512_setzero_si512();
      const __mmask16 m0 = static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
      _mm512_mask_storeu_epi32(out + x, m0, _mm512_permutex2var_epi16(a, lo, b));
      if (n > 16)
        _mm512_mask_storeu_epi32(out + x + 16, static_cast<__mmask16>(m >> 16),
                                 _mm512_permutex2var_epi16(a, hi, b));
    }
  }
}

void accumulate_pv(const uint32_t* pp, const uint32_t* vp, int64_t nk_pairs, int64_t dv,
                   float* ot) {
  int64_t x = 0;
  for (; x + kBlock <= dv; x += kBlock)
    pv_block<kBlock>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x + 8 <= dv; x += 8) pv_block<8>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x + 4 <= dv; x += 4) pv_block<4>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x + 2 <= dv; x += 2) pv_block<2>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
  for (; x < dv; ++x) pv_block<1>(pp, vp + x, nk_pairs, dv, ot + x * kQueries);
}

MASKATTN_BF16_TARGET void row_scores(const uint16_t* q, int64_t rows, int64_t dpad,
                                     const uint16_t* k, int64_t k_stride, int64_t nk, int64_t dim,
                                     float* s, int64_t ld) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4)
    scores_rows<4>(q + r * dpad, dpad, k, k_stride, nk, dim, s + r * ld, ld);
  for (; r + 2 <= rows; r += 2)
    scores_rows<2>(q + r * dpad, dpad, k, k_stride, nk, dim, s + r * ld, ld);
  for (; r < rows; ++r) scores_rows<1>(q + r * dpad, dpad, k, k_stride, nk, dim, s + r * ld, ld);
}

MASKATTN_BF16_TARGET void pack_row_probabilities(const float* p, int64_t ld, int64_t rows,
                                                 int64_t nk, uint32_t* pp, int64_t ldp) {
  // 32 keys at a time: [bf16(p[j..j+15]) | bf16(p[j+16..j+31])] is the keys in
  // memory order, so its 32-bit lanes are already the pairs.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < nk; j += 32) {
      const int64_t n = nk - j < 32 ? nk - j : 32;
      const __mmask16 m0 = static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
      const __mmask16 m1 = static_cast<__mmask16>(n >= 32  ? 0xFFFFu
                                                  : n > 16 ? (1u << (n - 16)) - 1u
                                                           : 0u);
      const __m512 lo = _mm512_maskz_loadu_ps(m0, p + r * ld + j);
      const __m512 hi = _mm512_maskz_loadu_ps(m1, p + r * ld + j + 16);
      const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
      const int64_t pairs = (n + 1) / 2;
      _mm512_mask_storeu_epi32(pp + r * ldp + j / 2,
                               static_cast<__mmask16>(pairs >= 16 ? 0xFFFFu : (1u << pairs) - 1u),
                               both);
    }
}

MASKATTN_BF16_TARGET void row_pv(const uint32_t* pp, int64_t ldp, int64_t rows, const uint32_t* vp,
                                 int64_t nk_pairs, int64_t dv, float* o, int64_t ldo) {
  // Windows of 64 output columns (4 vectors) x up to 4 rows of accumulators
  // in registers: each value pair vector is loaded once for the rows.
  for (int64_t x0 = 0; x0 < dv; x0 += 64) {
    __mmask16 m[4];
    for (int c = 0; c < 4; ++c) {
      const int64_t n = std::clamp<int64_t>(dv - x0 - 16 * c, 0, 16);
      m[c] = static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
    }
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4)
      pv_rows<4>(pp + r * ldp, ldp, vp, nk_pairs, dv, x0, m, o + r * ldo, ldo);
    for (; r + 2 <= rows; r += 2)
      pv_rows<2>(pp + r * ldp, ldp, vp, nk_pairs, dv, x0, m, o + r * ldo, ldo);
    for (; r < rows; ++r) pv_rows<1>(pp + r * ldp, ldp, vp, nk_pairs, dv, x0, m, o + r * ldo, ldo);
  }
}

}  // namespace maskattn::detail::bf16
