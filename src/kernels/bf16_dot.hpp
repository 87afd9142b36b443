// bfloat16 micro-kernels of the flash attention tiles on AVX-512 BF16
// (vdpbf16ps: 16 lanes, each the dot product of two bf16 pairs accumulated in
// float32), chosen at run time by available() (internal).
//
// Highway 1.0.3 has no bf16 dot product (its ReorderWidenMulAccumulate widens
// to float32), so these few kernels are written with intrinsics, each under a
// target attribute, in their own file; the tile loop that calls them is the
// per-target Highway code of attention/flash_kernels.cpp.
//
// "Pairs" hold two bfloat16 in a uint32, the first in the low half. The
// kernels work on tiles of kQueries queries (two vectors of 16 lanes), queries
// along the lanes: score tiles st (nk, 32) and output tiles ot (dv, 32), the
// layout of flash_kernels.cpp.
#pragma once

#include <cstdint>

namespace maskattn::detail::bf16 {

inline constexpr int64_t kQueries = 32;

// True when the CPU and the OS support AVX-512 F/BW/VL/DQ and AVX512_BF16.
bool available() noexcept;

// st[j * 32 + lane] = sum_x q[lane][x] * k[j][x] for keys j < nk, where
//   qt[x2 * 32 + lane] = (q[lane][2 x2], q[lane][2 x2 + 1]), x2 < ceil(dim / 2)
//   (an odd dim's last pair has 0 in its upper half), and key row j starts at
//   k + j * k_stride (bf16 bits, dim elements; nothing past them is read).
void scores(const uint32_t* qt, const uint16_t* k, int64_t k_stride, int64_t nk, int64_t dim,
            float* st);

// pp[j2 * 32 + lane] = (bf16(p[2 j2][lane]), bf16(p[2 j2 + 1][lane])) for
// j2 < ceil(nk / 2), rounding to nearest even; p is (nk, 32), a missing last
// row reads as 0.
void pack_probabilities(const float* p, int64_t nk, uint32_t* pp);

// vp[j2 * dv + x] = (v[2 j2][x], v[2 j2 + 1][x]) for j2 < ceil(nk / 2), x < dv,
// value row j at v + j * v_stride; a missing last row reads as 0.
void pack_value_pairs(const uint16_t* v, int64_t v_stride, int64_t nk, int64_t dv, uint32_t* vp);

// ot[x * 32 + lane] += sum_j p[j][lane] * v[j][x], x < dv, from the pairs of
// pack_probabilities and pack_value_pairs (nk_pairs = ceil(nk / 2)).
void accumulate_pv(const uint32_t* pp, const uint32_t* vp, int64_t nk_pairs, int64_t dv, float* ot);

// ---- rows: a few queries (decoding), keys along the lanes --------------------

// s[r * ld + j] = sum_x q[r][x] * k[j][x] for rows r < rows, keys j < nk, with
//   q: rows x dpad bf16 (dpad = dim rounded up to a multiple of 32, zeros past
//   dim), 64-byte aligned; key row j at k + j * k_stride (dim elements; nothing
//   past them is read); s rows of at least nk rounded up to 16 floats, 64-byte
//   aligned (the lanes past nk get 0).
void row_scores(const uint16_t* q, int64_t rows, int64_t dpad, const uint16_t* k, int64_t k_stride,
                int64_t nk, int64_t dim, float* s, int64_t ld);

// pp[r * ldp + j2] = (bf16(p[r * ld + 2 j2]), bf16(p[r * ld + 2 j2 + 1])) for
// j2 < ceil(nk / 2); a missing last element reads as 0.
void pack_row_probabilities(const float* p, int64_t ld, int64_t rows, int64_t nk, uint32_t* pp,
                            int64_t ldp);

// o[r * ldo + x] += sum_j p[r][j] * v[j][x], x < dv, from the pairs of
// pack_row_probabilities and pack_value_pairs (nk_pairs = ceil(nk / 2)).
void row_pv(const uint32_t* pp, int64_t ldp, int64_t rows, const uint32_t* vp, int64_t nk_pairs,
            int64_t dv, float* o, int64_t ldo);

}  // namespace maskattn::detail::bf16
