/* bfloat16 products over weights blocked for AVX-512 BF16's dot product (galactica_ext.engine.blocked).

   out[m, n] = round_bf16(act(sum_k x[m, k] * w[n, k] + bias[n])) for bfloat16 rows x ([rows, size],
   row-major), a weight blocked as [blocks][size / 2][64][2] (64 outputs per block, the last padded
   with zeros; the two values of each pair of inputs side by side: what vdpbf16ps multiplies and
   sums into one float32 lane), an optional bias padded likewise (NULL: none) and the exact GELU
   (gelu != 0). Sums in float32, rounded once to bfloat16 (nearest even), written to out
   ([rows, features]: the padding's outputs are not). Each call computes the blocks [first, end);
   the caller splits the blocks between threads. Compiled with -mavx512f -mavx512bw -mavx512bf16; the caller checks
   that the CPU has them before loading it. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCK 64 /* outputs per block: four float32 vectors */
#define TILE 6   /* rows per pass over a block: 24 accumulators of 32 registers */

/* erf(x) by Abramowitz and Stegun 7.1.28 (|error| <= 3e-7): 1 - 1 / (1 + a1 x + ... + a6 x^6)^16
   for x >= 0, odd; far below a bfloat16 rounding step of GELU's result */
static inline __m512 erf_ps(__m512 x) {
    const __m512 ax = _mm512_abs_ps(x);
    __m512 p = _mm512_set1_ps(0.0000430638f);
    p = _mm512_fmadd_ps(p, ax, _mm512_set1_ps(0.0002765672f));
    p = _mm512_fmadd_ps(p, ax, _mm512_set1_ps(0.0001520143f));
    p = _mm512_fmadd_ps(p, ax, _mm512_set1_ps(0.0092705272f));
    p = _mm512_fmadd_ps(p, ax, _mm512_set1_ps(0.0422820123f));
    p = _mm512_fmadd_ps(p, ax, _mm512_set1_ps(0.0705230784f));
    p = _mm512_fmadd_ps(p, ax, _mm512_set1_ps(1.0f));
    p = _mm512_mul_ps(p, p); /* ^2 */
    p = _mm512_mul_ps(p, p); /* ^4 */
    p = _mm512_mul_ps(p, p); /* ^8 */
    p = _mm512_mul_ps(p, p); /* ^16; inf for large |x|: the quotient is then 0 */
    const __m512 e = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_div_ps(_mm512_set1_ps(1.0f), p));
    /* the sign of x back on e; NaN stays NaN */
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(e), sign));
}

/* x * (1 + erf(x / sqrt 2)) / 2 */
static inline __m512 gelu_ps(__m512 x) {
    const __m512 e = erf_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}

/* 16 bfloat16 values widened to float32 (their bits shifted into the high half) */
static inline __m512 widen(const uint16_t *p) {
    const __m256i bits = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

/* rows [row, row + tile) of one block (outputs [n, n + 64)); tile is a constant where inlined */
static inline void pass(const uint16_t *x, int64_t size, const uint16_t *block, const uint16_t *bias,
                        int gelu, uint16_t *out, int64_t features, int64_t row, int tile, int64_t n) {
    __m512 acc[TILE][4];
    const uint32_t *pairs[TILE];
    for (int i = 0; i < TILE; i++) {
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
        pairs[i] = (const uint32_t *)(x + (row + (i < tile ? i : 0)) * size);
    }
    const __m512i *w = (const __m512i *)block;
    for (int64_t p = 0; p < size / 2; p++, w += 4) {
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w);
        const __m512bh w1 = (__m512bh)_mm512_loadu_si512(w + 1);
        const __m512bh w2 = (__m512bh)_mm512_loadu_si512(w + 2);
        const __m512bh w3 = (__m512bh)_mm512_loadu_si512(w + 3);
        for (int i = 0; i < TILE; i++) {
            if (i >= tile) break;
            const __m512bh pair = (__m512bh)_mm512_set1_epi32((int)pairs[i][p]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], pair, w0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], pair, w1);
            acc[i][2] = _mm512_dpbf16_ps(acc[i][2], pair, w2);
            acc[i][3] = _mm512_dpbf16_ps(acc[i][3], pair, w3);
        }
    }
    for (int j = 0; j < 4; j++) {
        const __m512 b = bias ? widen(bias + n + 16 * j) : _mm512_setzero_ps();
        for (int i = 0; i < tile; i++) {
            __m512 v = _mm512_add_ps(acc[i][j], b);
            if (gelu) v = gelu_ps(v);
            const __m256i rounded = (__m256i)_mm512_cvtneps_pbh(v);
            uint16_t *to = out + (row + i) * features + n + 16 * j;
            const int64_t left = features - (n + 16 * j);
            if (left >= 16)
                _mm256_storeu_si256((__m256i *)to, rounded);
            else if (left > 0)
                _mm512_mask_storeu_epi16(to, (__mmask32)((1u << left) - 1), _mm512_castsi256_si512(rounded));
        }
    }
}

void blocked_product(uintptr_t x_address, int64_t rows, int64_t size, uintptr_t weight_address,
                     uintptr_t bias_address, int32_t gelu, uintptr_t out_address, int64_t features,
                     int64_t first, int64_t end) {
    const uint16_t *x = (const uint16_t *)x_address, *weight = (const uint16_t *)weight_address;
    const uint16_t *bias = (const uint16_t *)bias_address;
    uint16_t *out = (uint16_t *)out_address;
    for (int64_t b = first; b < end; b++) {
        const uint16_t *block = weight + b * BLOCK * size;
        for (int64_t row = 0; row < rows; row += TILE) {
            const int64_t left = rows - row;
            /* one inlined copy per tile height, so the loops over rows unroll */
            switch (left < TILE ? (int)left : TILE) {
            case 1: pass(x, size, block, bias, gelu, out, features, row, 1, b * BLOCK); break;
            case 2: pass(x, size, block, bias, gelu, out, features, row, 2, b * BLOCK); break;
            case 3: pass(x, size, block, bias, gelu, out, features, row, 3, b * BLOCK); break;
            case 4: pass(x, size, block, bias, gelu, out, features, row, 4, b * BLOCK); break;
            case 5: pass(x, size, block, bias, gelu, out, features, row, 5, b * BLOCK); break;
            default: pass(x, size, block, bias, gelu, out, features, row, TILE, b * BLOCK); break;
            }
        }
    }
}
