#include "model/weight_kernels.h"

#include <string.h>

#include "common/cpu.h"
#include "formats/gguf.h"
#include "formats/halfconv.h"
#include "formats/quant.h"
#include "model/weight.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WEIGHT_X86 1
#endif

// Values dequantized per step of the generic kernel: a multiple of every block size (32 and
// 256), and 1 KB of stack.
enum { CHUNK = 256 };

static float dot_scalar(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void row_dot_generic(uint32_t type, float *acc, const uint8_t *row, const float *x,
                            int64_t cols, int N) {
    const size_t chunk_bytes = (size_t)(CHUNK / quant_block_size(type)) * quant_block_bytes(type);
    float buf[CHUNK];
    for (int n = 0; n < N; n++) acc[n] = 0.0f;
    for (int64_t c0 = 0; c0 < cols; c0 += CHUNK, row += chunk_bytes) {
        const int64_t len = cols - c0 < CHUNK ? cols - c0 : CHUNK;
        quant_dequantize_row(type, row, buf, len);
        for (int n = 0; n < N; n++) acc[n] += dot_scalar(buf, x + n * cols + c0, len);
    }
}

#ifdef WEIGHT_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2 static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

AVX2 static void row_dot_generic_avx2(uint32_t type, float *acc, const uint8_t *row,
                                      const float *x, int64_t cols, int N) {
    const size_t chunk_bytes = (size_t)(CHUNK / quant_block_size(type)) * quant_block_bytes(type);
    float buf[CHUNK];
    for (int n = 0; n < N; n++) acc[n] = 0.0f;
    for (int64_t c0 = 0; c0 < cols; c0 += CHUNK, row += chunk_bytes) {
        const int64_t len = cols - c0 < CHUNK ? cols - c0 : CHUNK;
        quant_dequantize_row(type, row, buf, len);
        for (int n = 0; n < N; n++) acc[n] += dot_avx2(buf, x + n * cols + c0, len);
    }
}

// Four vectors of 8 weights w[0..32) of one 32-block against every x row: s[n] += w . x_n.
AVX2 static inline void fma_block32(__m256 *s, const __m256 w[4], const float *x, int64_t cols,
                                    int N) {
    for (int n = 0; n < N; n++) {
        const float *xn = x + n * cols;
        __m256 t = _mm256_mul_ps(w[0], _mm256_loadu_ps(xn));
        t = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xn + 8), t);
        t = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xn + 16), t);
        t = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xn + 24), t);
        s[n] = _mm256_add_ps(s[n], t);
    }
}

// 16 bytes of nibbles (ggml order: byte j holds value j low, value j + 16 high) as 32 floats.
AVX2 static inline void nibbles32(__m256 q[4], const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(raw, m4), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

// Q8_0: fp16 d, 32 int8; w = q d.
AVX2 static void row_dot_q8_0(uint32_t type, float *acc, const uint8_t *row, const float *x,
                              int64_t cols, int N) {
    (void)type;
    __m256 s[WEIGHT_GEMV_MAX_ROWS];
    for (int n = 0; n < N; n++) s[n] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 32; b++, row += 34) {
        const __m256 d = _mm256_set1_ps(half(row));
        __m256 w[4];
        for (int k = 0; k < 4; k++) {
            const __m128i q8 = _mm_loadl_epi64((const __m128i *)(row + 2 + 8 * k));
            w[k] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d);
        }
        fma_block32(s, w, x + b * 32, cols, N);
    }
    for (int n = 0; n < N; n++) acc[n] = hsum(s[n]);
}

// Q4_0: fp16 d, 16 bytes of nibbles; w = (q - 8) d.
AVX2 static void row_dot_q4_0(uint32_t type, float *acc, const uint8_t *row, const float *x,
                              int64_t cols, int N) {
    (void)type;
    __m256 s[WEIGHT_GEMV_MAX_ROWS];
    for (int n = 0; n < N; n++) s[n] = _mm256_setzero_ps();
    const __m256 eight = _mm256_set1_ps(8.0f);
    for (int64_t b = 0; b < cols / 32; b++, row += 18) {
        const __m256 d = _mm256_set1_ps(half(row));
        __m256 w[4];
        nibbles32(w, row + 2);
        for (int k = 0; k < 4; k++) w[k] = _mm256_mul_ps(_mm256_sub_ps(w[k], eight), d);
        fma_block32(s, w, x + b * 32, cols, N);
    }
    for (int n = 0; n < N; n++) acc[n] = hsum(s[n]);
}

// Q4_1: fp16 d, fp16 m, 16 bytes of nibbles; w = q d + m.
AVX2 static void row_dot_q4_1(uint32_t type, float *acc, const uint8_t *row, const float *x,
                              int64_t cols, int N) {
    (void)type;
    __m256 s[WEIGHT_GEMV_MAX_ROWS];
    for (int n = 0; n < N; n++) s[n] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 32; b++, row += 20) {
        const __m256 d = _mm256_set1_ps(half(row)), m = _mm256_set1_ps(half(row + 2));
        __m256 w[4];
        nibbles32(w, row + 4);
        for (int k = 0; k < 4; k++) w[k] = _mm256_add_ps(_mm256_mul_ps(w[k], d), m);
        fma_block32(s, w, x + b * 32, cols, N);
    }
    for (int n = 0; n < N; n++) acc[n] = hsum(s[n]);
}

// Q4_K super-block (144 bytes, 256 values): fp16 d, fp16 dmin, 12 bytes packing eight 6-bit
// scales and mins, 128 bytes of nibbles. Sub-block j (32 values) is w = d sc_j q - dmin m_j;
// bytes 32i..32i+31 hold sub-block 2i in their low nibbles and 2i+1 in their high ones.
AVX2 static void row_dot_q4_k(uint32_t type, float *acc, const uint8_t *row, const float *x,
                              int64_t cols, int N) {
    (void)type;
    __m256 s[WEIGHT_GEMV_MAX_ROWS];
    for (int n = 0; n < N; n++) s[n] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < cols / 256; b++, row += 144) {
        const float d = half(row), dmin = half(row + 2);
        const uint8_t *qs = row + 16;
        uint8_t sc[8], mn[8];
        quant_k4_scales(row + 4, sc, mn);
        for (int i = 0; i < 4; i++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * i));
            const __m256i nib[2] = {_mm256_and_si256(raw, m4),
                                    _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4)};
            for (int h = 0; h < 2; h++) {
                const __m256 ds = _mm256_set1_ps(d * (float)sc[2 * i + h]);
                const __m256 dm = _mm256_set1_ps(dmin * (float)mn[2 * i + h]);
                const __m128i lo = _mm256_castsi256_si128(nib[h]);
                const __m128i hi = _mm256_extracti128_si256(nib[h], 1);
                __m256 w[4] = {_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)),
                               _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))),
                               _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)),
                               _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)))};
                for (int k = 0; k < 4; k++) w[k] = _mm256_sub_ps(_mm256_mul_ps(w[k], ds), dm);
                fma_block32(s, w, x + b * 256 + 64 * i + 32 * h, cols, N);
            }
        }
    }
    for (int n = 0; n < N; n++) acc[n] = hsum(s[n]);
}

// Row dequantization with the same expansions (the values of formats/quant.c bit for bit):
// what the panels and tiles of the large products are filled with.
AVX2 static void dequant_q8_0_avx2(uint32_t type, const uint8_t *row, float *y, int64_t n) {
    (void)type;
    for (int64_t b = 0; b < n / 32; b++, row += 34, y += 32) {
        const __m256 d = _mm256_set1_ps(half(row));
        for (int k = 0; k < 4; k++) {
            const __m128i q8 = _mm_loadl_epi64((const __m128i *)(row + 2 + 8 * k));
            _mm256_storeu_ps(y + 8 * k,
                             _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d));
        }
    }
}

AVX2 static void dequant_q4_0_avx2(uint32_t type, const uint8_t *row, float *y, int64_t n) {
    (void)type;
    const __m256 eight = _mm256_set1_ps(8.0f);
    for (int64_t b = 0; b < n / 32; b++, row += 18, y += 32) {
        const __m256 d = _mm256_set1_ps(half(row));
        __m256 w[4];
        nibbles32(w, row + 2);
        for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_sub_ps(w[k], eight), d));
    }
}

AVX2 static void dequant_q4_1_avx2(uint32_t type, const uint8_t *row, float *y, int64_t n) {
    (void)type;
    for (int64_t b = 0; b < n / 32; b++, row += 20, y += 32) {
        const __m256 d = _mm256_set1_ps(half(row)), m = _mm256_set1_ps(half(row + 2));
        __m256 w[4];
        nibbles32(w, row + 4);
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(w[k], d), m));
    }
}

AVX2 static void dequant_q4_k_avx2(uint32_t type, const uint8_t *row, float *y, int64_t n) {
    (void)type;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < n / 256; b++, row += 144) {
        const float d = half(row), dmin = half(row + 2);
        const uint8_t *qs = row + 16;
        uint8_t sc[8], mn[8];
        quant_k4_scales(row + 4, sc, mn);
        for (int i = 0; i < 4; i++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * i));
            const __m256i nib[2] = {_mm256_and_si256(raw, m4),
                                    _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4)};
            for (int h = 0; h < 2; h++, y += 32) {
                const __m256 ds = _mm256_set1_ps(d * (float)sc[2 * i + h]);
                const __m256 dm = _mm256_set1_ps(dmin * (float)mn[2 * i + h]);
                const __m128i lo = _mm256_castsi256_si128(nib[h]);
                const __m128i hi = _mm256_extracti128_si256(nib[h], 1);
                const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
                for (int k = 0; k < 4; k++) {
                    const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
                    _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(q, ds), dm));
                }
            }
        }
    }
}

// 16-bit bases (HF bf16/f16 safetensors, GGUF F16/BF16) are widened once per panel of every
// training product, so the widening must run at memory speed, not one call per value.
AVX2 static void dequant_bf16_avx2(uint32_t type, const uint8_t *row, float *y, int64_t n) {
    (void)type;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * i));
        const __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(w));
    }
    bf16_buf_to_f32(row + 2 * i, (size_t)(n - i), y + i);
}

AVX2 static void dequant_f16_avx2(uint32_t type, const uint8_t *row, float *y, int64_t n) {
    (void)type;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i))));
    fp16_buf_to_f32(row + 2 * i, (size_t)(n - i), y + i);
}

#endif

// The one CPU check of the project (common/cpu.c), MEDTUNE_NO_AVX2 included.
int weight_kernels_avx2(void) { return cpu_avx2_fma(); }

weight_row_dot_fn weight_row_dot_kernel(uint32_t type) {
#ifdef WEIGHT_X86
    if (weight_kernels_avx2()) {
        switch (type) {
        case GGML_TYPE_Q8_0: return row_dot_q8_0;
        case GGML_TYPE_Q4_0: return row_dot_q4_0;
        case GGML_TYPE_Q4_1: return row_dot_q4_1;
        case GGML_TYPE_Q4_K: return row_dot_q4_k;
        default: return row_dot_generic_avx2;
        }
    }
#endif
    (void)type;
    return row_dot_generic;
}

static void dequant_generic(uint32_t type, const uint8_t *row, float *y, int64_t n) {
    quant_dequantize_row(type, row, y, n);
}

weight_dequant_fn weight_dequant_kernel(uint32_t type) {
#ifdef WEIGHT_X86
    if (weight_kernels_avx2()) {
        switch (type) {
        case GGML_TYPE_Q8_0: return dequant_q8_0_avx2;
        case GGML_TYPE_Q4_0: return dequant_q4_0_avx2;
        case GGML_TYPE_Q4_1: return dequant_q4_1_avx2;
        case GGML_TYPE_Q4_K: return dequant_q4_k_avx2;
        case GGML_TYPE_BF16: return dequant_bf16_avx2;
        case GGML_TYPE_F16: return dequant_f16_avx2;
        default: break;
        }
    }
#endif
    (void)type;
    return dequant_generic;
}

const char *weight_kernels_isa(void) {
    return weight_kernels_avx2() ? "avx2+fma" : "scalar";
}
