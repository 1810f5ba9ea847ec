#include "model/weight_dot.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "formats/quant.h"
#include "model/weight_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DOT_X86 1
#endif

// An activation block for the 32-value weight types: scale, the sum of q (what Q4_0's -8
// offset and Q4_1's min multiply), 32 int8 values.
typedef struct {
    float d;
    int32_t sum;
    int8_t q[32];
} xq32;

// An activation super-block for the K-quants: one scale for 256 values, the sum of each 16 of
// them (the granularity of the Q2_K..Q6_K scales, mins and offsets), the int8 values.
typedef struct {
    float d;
    int16_t bsums[16];
    int8_t q[256];
} xq256;

// d = max|x| / 127 and q = x * (127 / max|x|) rounded to nearest even, so |q| <= 127 and
// |x - q d| <= d / 2 (up to one rounding of the product). A NaN or infinite x makes d NaN, so
// the products come out NaN as the fp32 path's would instead of quietly finite.
static float quantize_block(const float *x, int8_t *q, int n) {
    float amax = 0.0f;
    int finite = 1;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        finite &= a <= FLT_MAX;
        amax = a > amax ? a : amax;
    }
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < n; i++) q[i] = finite ? (int8_t)lrintf(x[i] * id) : 0;
    return finite ? amax / 127.0f : NAN;
}

static void quantize_x32(const float *x, xq32 *out, int64_t cols) {
    for (int64_t b = 0; b < cols / 32; b++, x += 32) {
        out[b].d = quantize_block(x, out[b].q, 32);
        int32_t s = 0;
        for (int i = 0; i < 32; i++) s += out[b].q[i];
        out[b].sum = s;
    }
}

static void quantize_x256(const float *x, xq256 *out, int64_t cols) {
    for (int64_t b = 0; b < cols / QUANT_QK_K; b++, x += QUANT_QK_K) {
        out[b].d = quantize_block(x, out[b].q, QUANT_QK_K);
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += out[b].q[16 * k + i];
            out[b].bsums[k] = (int16_t)s;
        }
    }
}

#ifdef DOT_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2 static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static const __m256i *v256(const void *p) { return (const __m256i *)p; }

// 32 unsigned weight bytes times 32 int8 activations: maddubs adds adjacent products into 16
// int16 lanes (at most 2 * 63 * 127 here: no saturation), madd multiplies those by the int16
// scales s and adds adjacent lanes into 8 int32.
AVX2 static __m256i dot_scaled(__m256i w, __m256i q, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, q), s);
}

AVX2 static __m256i dot_u8s8(__m256i w, __m256i q) {
    return dot_scaled(w, q, _mm256_set1_epi16(1));
}

// int16 lane k of each 128-bit half of v, broadcast over that half.
AVX2 static __m256i lane_k(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((int16_t)(((2 * k + 1) << 8) | (2 * k))));
}

// 16 int8 per-16 scales as int16, even groups in the low half and odd ones in the high, so
// that lane_k(v, c) scales the 32 values of chunk c (groups 2c and 2c + 1).
AVX2 static __m256i scales_even_odd(__m128i s8) {
    const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, order));
}

// sum_g c[g] bsums[g] for 16 int8 coefficients c in group order, as 8 int32 lanes.
AVX2 static __m256i bsums_dot(const int16_t *bsums, __m128i c8) {
    return _mm256_madd_epi16(_mm256_loadu_si256(v256(bsums)), _mm256_cvtepi8_epi16(c8));
}

// 16 bytes of nibbles (byte j: value j low, value j + 16 high) as 32 bytes in value order.
AVX2 static __m256i nibbles(const uint8_t *p) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)p), m4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

// Q8_0 (fp16 d, 32 int8): y = sum_b d_b dx_b sum q w. maddubs wants one unsigned operand:
// |w| times q carrying w's sign.
AVX2 static float dot_q8_0(const uint8_t *row, const void *xqv, int64_t cols) {
    const xq32 *x = xqv;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 32; b++, row += 34) {
        const __m256i w = _mm256_loadu_si256(v256(row + 2)), q = _mm256_loadu_si256(v256(x[b].q));
        const __m256i p = dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(row) * x[b].d), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum(acc);
}

// Q4_0 (fp16 d, nibbles, w = (n - 8) d): sum (n - 8) q = sum n q - 8 sum q.
AVX2 static float dot_q4_0(const uint8_t *row, const void *xqv, int64_t cols) {
    const xq32 *x = xqv;
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t b = 0; b < cols / 32; b++, row += 18) {
        const float d = half(row) * x[b].d;
        const __m256i p = dot_u8s8(nibbles(row + 2), _mm256_loadu_si256(v256(x[b].q)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
        off += d * (float)x[b].sum;
    }
    return hsum(acc) - 8.0f * off;
}

// Q4_1 (fp16 d, fp16 m, nibbles, w = n d + m): d dx sum n q + m dx sum q.
AVX2 static float dot_q4_1(const uint8_t *row, const void *xqv, int64_t cols) {
    const xq32 *x = xqv;
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t b = 0; b < cols / 32; b++, row += 20) {
        const __m256i p = dot_u8s8(nibbles(row + 4), _mm256_loadu_si256(v256(x[b].q)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(row) * x[b].d), _mm256_cvtepi32_ps(p), acc);
        off += half(row + 2) * x[b].d * (float)x[b].sum;
    }
    return hsum(acc) + off;
}

// Q4_K and Q5_K: sub-block j (32 values) is w = d sc_j n - dmin m_j, so the super-block adds
// d dx sum_j sc_j (sum n q) - dmin dx sum_j m_j (sum q): the integer sums are scaled by sc_j
// in madd and converted once per super-block, the mins multiply the activation's 16-sums.
// Bytes 32i..32i+31 of qs hold sub-block 2i (low nibbles) and 2i+1 (high); Q5_K's fifth bit
// of value 32j + l is bit j of qh[l]. Inlined twice, so `five` is a constant.
AVX2 static inline __attribute__((always_inline)) float dot_k4(const uint8_t *row,
                                                              const xq256 *x, int64_t cols,
                                                              int five) {
    const size_t bytes = five ? 176 : 144;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / QUANT_QK_K; b++, row += bytes, x++) {
        const uint8_t *qs = row + (five ? 48 : 16);
        uint8_t sc8[8], mn8[8];
        quant_k4_scales(row + 4, sc8, mn8);
        const __m128i mn = _mm_loadl_epi64((const __m128i *)mn8);
        // m_j for both 16-sums of sub-block j.
        const __m256i mins = _mm256_madd_epi16(_mm256_loadu_si256(v256(x->bsums)),
                                               _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn)));
        const __m256i sc = _mm256_broadcastsi128_si256(
            _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc8)));
        const __m256i qh = five ? _mm256_loadu_si256(v256(row + 16)) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) {
            const __m256i raw = _mm256_loadu_si256(v256(qs + 32 * i));
            __m256i lo = _mm256_and_si256(raw, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (five) {
                // Bit 0 of each byte after the shift is bit j of that byte (the 16-bit shift
                // brings neighbouring bits only into positions the mask clears).
                const __m256i b0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * i), one);
                const __m256i b1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * i + 1), one);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
            }
            const __m256i q0 = _mm256_loadu_si256(v256(x->q + 64 * i));
            const __m256i q1 = _mm256_loadu_si256(v256(x->q + 64 * i + 32));
            sumi = _mm256_add_epi32(sumi, dot_scaled(lo, q0, lane_k(sc, 2 * i)));
            sumi = _mm256_add_epi32(sumi, dot_scaled(hi, q1, lane_k(sc, 2 * i + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(row) * x->d), _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(_mm256_set1_ps(half(row + 2) * x->d), _mm256_cvtepi32_ps(mins), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_q4_k(const uint8_t *row, const void *xq, int64_t cols) {
    return dot_k4(row, xq, cols, 0);
}

AVX2 static float dot_q5_k(const uint8_t *row, const void *xq, int64_t cols) {
    return dot_k4(row, xq, cols, 1);
}

// Q6_K: w = d sc_g (n - 32) per 16 values with n in 0..63 (4 bits from ql, 2 from qh), so the
// super-block adds d dx (sum_g sc_g sum n q - 32 sum_g sc_g bsum_g). Per 128 values (half h):
// ql[0..32) low nibbles are values 0..31, ql[32..64) low 32..63, the high nibbles 64..95 and
// 96..127; qh byte l holds the top bits of l, l+32, l+64, l+96 at shifts 0, 2, 4, 6.
AVX2 static float dot_q6_k(const uint8_t *row, const void *xqv, int64_t cols) {
    const xq256 *x = xqv;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / QUANT_QK_K; b++, row += 210, x++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(row + 192));
        const __m256i sc = scales_even_odd(sc8);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256(v256(row + 64 * h));
            const __m256i l1 = _mm256_loadu_si256(v256(row + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256(v256(row + 128 + 32 * h));
            const __m256i low[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                                    _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                    _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
            for (int p = 0; p < 4; p++) {
                const __m256i top = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * p), m3);
                const __m256i n = _mm256_or_si256(low[p], _mm256_slli_epi16(top, 4));
                const int c = 4 * h + p;
                const __m256i q = _mm256_loadu_si256(v256(x->q + 32 * c));
                sumi = _mm256_add_epi32(sumi, dot_scaled(n, q, lane_k(sc, c)));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(bsums_dot(x->bsums, sc8), 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(row + 208) * x->d), _mm256_cvtepi32_ps(sumi),
                              acc);
    }
    return hsum(acc);
}

// Q2_K: w = d sc_g n - dmin m_g per 16 values (n in 0..3; sc the low and m the high nibble of
// scales[g]). Per 128 values (half h) the 32 bytes qs[32h..] hold, at shift 2s, the values
// 32s..32s+31 in order.
AVX2 static float dot_q2_k(const uint8_t *row, const void *xqv, int64_t cols) {
    const xq256 *x = xqv;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / QUANT_QK_K; b++, row += 84, x++) {
        const __m128i packed = _mm_loadu_si128((const __m128i *)row);
        const __m256i sc = scales_even_odd(_mm_and_si128(packed, m4));
        const __m256i mins = bsums_dot(x->bsums, _mm_and_si128(_mm_srli_epi16(packed, 4), m4));
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i raw = _mm256_loadu_si256(v256(row + 16 + 32 * h));
            for (int s = 0; s < 4; s++) {
                const int c = 4 * h + s;
                const __m256i n = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * s), m3);
                const __m256i q = _mm256_loadu_si256(v256(x->q + 32 * c));
                sumi = _mm256_add_epi32(sumi, dot_scaled(n, q, lane_k(sc, c)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(row + 80) * x->d), _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(_mm256_set1_ps(half(row + 82) * x->d), _mm256_cvtepi32_ps(mins),
                               acc);
    }
    return hsum(acc);
}

// Q3_K: w = d (sc_g - 32) (n - 4) per 16 values with n = low 2 bits + 4 * high bit in 0..7
// (the stored value is the low bits minus 4 when the high bit is clear). Low bits as Q2_K;
// the high bit of value 32c + l is bit c of hmask[l].
AVX2 static float dot_q3_k(const uint8_t *row, const void *xqv, int64_t cols) {
    const xq256 *x = xqv;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / QUANT_QK_K; b++, row += 110, x++) {
        uint8_t u[16];
        quant_q3_k_scales(row + 96, u);
        const __m128i sc8 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)u), _mm_set1_epi8(32));
        const __m256i sc = scales_even_odd(sc8);
        const __m256i hm = _mm256_loadu_si256(v256(row));
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i raw = _mm256_loadu_si256(v256(row + 32 + 32 * h));
            for (int s = 0; s < 4; s++) {
                const int c = 4 * h + s;
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, c), one);
                const __m256i n = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(raw, 2 * s), m3), _mm256_slli_epi16(hb, 2));
                const __m256i q = _mm256_loadu_si256(v256(x->q + 32 * c));
                sumi = _mm256_add_epi32(sumi, dot_scaled(n, q, lane_k(sc, c)));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(bsums_dot(x->bsums, sc8), 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(row + 108) * x->d), _mm256_cvtepi32_ps(sumi),
                              acc);
    }
    return hsum(acc);
}
#endif

weight_dot_fn weight_dot_kernel(uint32_t type) {
#ifdef DOT_X86
    if (weight_kernels_avx2()) {
        switch (type) {
        case GGML_TYPE_Q8_0: return dot_q8_0;
        case GGML_TYPE_Q4_0: return dot_q4_0;
        case GGML_TYPE_Q4_1: return dot_q4_1;
        case GGML_TYPE_Q2_K: return dot_q2_k;
        case GGML_TYPE_Q3_K: return dot_q3_k;
        case GGML_TYPE_Q4_K: return dot_q4_k;
        case GGML_TYPE_Q5_K: return dot_q5_k;
        case GGML_TYPE_Q6_K: return dot_q6_k;
        default: break;
        }
    }
#endif
    (void)type;
    return NULL;
}

int weight_dot_xq_block(uint32_t type) {
    if (!weight_dot_kernel(type)) return 0;
    return quant_block_size(type) == QUANT_QK_K ? QUANT_QK_K : 32;
}

size_t weight_dot_xq_bytes(uint32_t type, int64_t cols) {
    switch (weight_dot_xq_block(type)) {
    case 32: return (size_t)(cols / 32) * sizeof(xq32);
    case QUANT_QK_K: return (size_t)(cols / QUANT_QK_K) * sizeof(xq256);
    default: return 0;
    }
}

void weight_dot_quantize_x(uint32_t type, const float *x, void *xq, int64_t cols) {
    if (weight_dot_xq_block(type) == QUANT_QK_K)
        quantize_x256(x, xq, cols);
    else
        quantize_x32(x, xq, cols);
}
