#include "formats/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "formats/halfconv.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ggml blocks are little-endian; this code assumes a little-endian host"
#endif

// Block size (elements) and bytes per block of every ggml type id the format defines, so
// offsets and sizes can be validated even for types that are not converted here.
static const struct {
    const char *name;
    uint32_t block, bytes;
} TYPES[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

int quant_type_known(uint32_t t) { return t < N_TYPES && TYPES[t].name; }

const char *ggml_type_name(uint32_t t) {
    static _Thread_local char buf[24];
    if (quant_type_known(t)) return TYPES[t].name;
    snprintf(buf, sizeof buf, "type %u", t);
    return buf;
}

uint32_t quant_block_size(uint32_t t) { return quant_type_known(t) ? TYPES[t].block : 0; }
uint32_t quant_block_bytes(uint32_t t) { return quant_type_known(t) ? TYPES[t].bytes : 0; }

size_t quant_row_bytes(uint32_t t, int64_t n) {
    if (!quant_type_known(t) || n < 0) return 0;
    return (size_t)n / TYPES[t].block * TYPES[t].bytes;
}

int quant_can_dequantize(uint32_t t) {
    switch (t) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K: return 1;
    default: return 0;
    }
}

int quant_can_quantize(uint32_t t) {
    return quant_can_dequantize(t) && t != GGML_TYPE_Q2_K && t != GGML_TYPE_Q3_K;
}

const char *quant_nearest_supported(uint32_t t) {
    switch (t) {
    case 9: case 15: return "Q8_0";                        // Q8_1, Q8_K: 8-bit
    case 16: case 17: case 19: case 22: case 29: case 34: case 35: return "Q2_K";  // <= 2.6 bpw
    case 18: case 21: return "Q3_K";                       // IQ3_*
    case 20: case 23: case 39: return "Q4_K";              // IQ4_NL, IQ4_XS, MXFP4
    case 24: case 25: case 26: case 27: case 28: return "F32";  // integer and F64 tensors
    default: return "F32";
    }
}

static int check_row(uint32_t t, int64_t n, int quantize) {
    if (!(quantize ? quant_can_quantize(t) : quant_can_dequantize(t))) {
        if (quantize && quant_can_dequantize(t))
            return err_set("quantizing to %s is not supported (supported: F32, F16, BF16, Q4_0, "
                           "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)",
                           ggml_type_name(t));
        return err_set("tensor type %s is not supported (nearest supported: %s)",
                       ggml_type_name(t), quant_nearest_supported(t));
    }
    if (n < 0 || n % TYPES[t].block != 0)
        return err_set("%lld elements is not a multiple of the %s block size %u", (long long)n,
                       ggml_type_name(t), TYPES[t].block);
    return 0;
}

static float half_at(const uint8_t *p) { return fp16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static void half_put(uint8_t *p, float v) {
    uint16_t h = f32_to_fp16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

// ---- dequantization: ggml's order of operations ----

// The 32-element types, fp16 d first:
//   Q4_0 (18 bytes): 16 bytes of nibbles; byte j holds element j (low nibble) and j+16 (high);
//                    x = (q - 8) d.
//   Q4_1 (20 bytes): fp16 m, nibbles as Q4_0; x = q d + m.
//   Q5_0 (22 bytes): u32 qh, nibbles as Q4_0; x = (q - 16) d with q = nibble | bit << 4, bit j
//                    of the little-endian qh belonging to element j.
//   Q5_1 (24 bytes): fp16 m, u32 qh, nibbles; x = q d + m.
static uint32_t qh_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void dequant_32(const uint8_t *b, float *y, int bits, int asym) {
    float d = half_at(b), m = asym ? half_at(b + 2) : 0.0f;
    const uint8_t *q = b + (asym ? 4 : 2);
    uint32_t qh = 0;
    if (bits == 5) {
        qh = qh_at(q);
        q += 4;
    }
    const int offset = 1 << (bits - 1);
    for (int j = 0; j < 16; j++) {
        int lo = (q[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
        int hi = (q[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        if (asym) {
            y[j] = (float)lo * d + m;
            y[j + 16] = (float)hi * d + m;
        } else {
            y[j] = (float)(lo - offset) * d;
            y[j + 16] = (float)(hi - offset) * d;
        }
    }
}

static void dequant_q4_0(const uint8_t *b, float *y) { dequant_32(b, y, 4, 0); }
static void dequant_q4_1(const uint8_t *b, float *y) { dequant_32(b, y, 4, 1); }
static void dequant_q5_0(const uint8_t *b, float *y) { dequant_32(b, y, 5, 0); }
static void dequant_q5_1(const uint8_t *b, float *y) { dequant_32(b, y, 5, 1); }

// Q8_0 (34 bytes): fp16 d, 32 int8 q; x = q d.
static void dequant_q8_0(const uint8_t *b, float *y) {
    float d = half_at(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

// Q2_K (84 bytes): scales[16] (low nibble: scale, high: min of each 16 elements), qs[64]
// (2-bit quants: byte l of each 32-byte group holds elements l, l+32, l+64, l+96 of its 128
// at shifts 0, 2, 4, 6), fp16 d, fp16 dmin; x = d sc q - dmin m.
static void dequant_q2_k(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *qs = b + 16;
    float d = half_at(b + 80), dmin = half_at(b + 82);
    for (int half = 0; half < 2; half++)
        for (int s = 0; s < 4; s++)
            for (int k = 0; k < 2; k++) {
                int g = half * 8 + s * 2 + k;  // 16-element group
                float dl = d * (float)(sc[g] & 0x0f), ml = dmin * (float)(sc[g] >> 4);
                const uint8_t *q = qs + half * 32 + k * 16;
                for (int l = 0; l < 16; l++) y[g * 16 + l] = dl * (float)((q[l] >> (2 * s)) & 3) - ml;
            }
}

// Q3_K (110 bytes): hmask[32] (bit i of byte l: high bit of element l + 32 i), qs[64] (low 2
// bits, laid out as Q2_K), scales[12] (16 6-bit scales: low nibbles in bytes 0..7, high 2 bits
// in bytes 8..11), fp16 d; x = d (sc - 32) (q - (high bit ? 0 : 4)).
static void dequant_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *qs = b + 32, *s = b + 96;
    float d = half_at(b + 108);
    uint8_t sc[16];
    quant_q3_k_scales(s, sc);
    for (int g = 0; g < 16; g++) {
        float dl = d * (float)(sc[g] - 32);
        int half = g / 8, shift = 2 * ((g % 8) / 2), k = g % 2;
        const uint8_t *q = qs + half * 32 + k * 16;
        for (int l = 0; l < 16; l++) {
            int e = g * 16 + l;  // element; its high bit is bit e / 32 of hmask[e % 32]
            int v = ((q[l] >> shift) & 3) - ((hm[e % 32] >> (e / 32)) & 1 ? 0 : 4);
            y[e] = dl * (float)v;
        }
    }
}

// Q4_K (144 bytes): fp16 d, fp16 dmin, scales[12], qs[128] (each 32 bytes: low nibbles are
// one 32-element sub-block, high nibbles the next); x = d sc q - dmin m.
static void dequant_q4_k(const uint8_t *b, float *y) {
    float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *s = b + 4, *qs = b + 16;
    uint8_t sc[8], m[8];
    quant_k4_scales(s, sc, m);
    for (int j = 0; j < 8; j++) {
        float dl = d * (float)sc[j], ml = dmin * (float)m[j];
        const uint8_t *q = qs + (j / 2) * 32;
        int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) y[j * 32 + l] = dl * (float)((q[l] >> shift) & 0x0f) - ml;
    }
}

// Q5_K (176 bytes): fp16 d, fp16 dmin, scales[12], qh[32] (bit j of byte l: fifth bit of
// element 32 j + l), qs[128] as Q4_K; x = d sc q - dmin m.
static void dequant_q5_k(const uint8_t *b, float *y) {
    float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
    uint8_t sc[8], m[8];
    quant_k4_scales(s, sc, m);
    for (int j = 0; j < 8; j++) {
        float dl = d * (float)sc[j], ml = dmin * (float)m[j];
        const uint8_t *q = qs + (j / 2) * 32;
        int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) {
            int v = ((q[l] >> shift) & 0x0f) | (((qh[l] >> j) & 1) << 4);
            y[j * 32 + l] = dl * (float)v - ml;
        }
    }
}

// Q6_K (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], fp16 d.
// Per 128 elements: ql byte l holds elements l (low) and l+64 (high), byte l+32 elements l+32
// and l+96; qh byte l holds the high bits of l, l+32, l+64, l+96 at shifts 0, 2, 4, 6.
// x = d sc (q - 32), scale per 16 elements.
static void dequant_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = half_at(b + 208);
    for (int e = 0; e < QUANT_QK_K; e++) {
        int h = e / 128, r = e % 128, part = r / 32, l = r % 32;
        uint8_t lowb = ql[h * 64 + l + (part % 2) * 32];
        int lo = part < 2 ? (lowb & 0x0f) : (lowb >> 4);
        int hi = (qh[h * 32 + l] >> (2 * part)) & 3;
        float dl = d * (float)sc[e / 16];
        y[e] = dl * (float)((lo | (hi << 4)) - 32);
    }
}

int quant_dequantize_row(uint32_t t, const void *src, float *dst, int64_t n) {
    if (check_row(t, n, 0) != 0) return -1;
    const uint8_t *s = src;
    size_t nb = (size_t)(n / TYPES[t].block), bs = TYPES[t].bytes, be = TYPES[t].block;
    void (*block)(const uint8_t *, float *) = NULL;
    switch (t) {
    case GGML_TYPE_F32:
        if (n) memcpy(dst, src, (size_t)n * 4);
        return 0;
    case GGML_TYPE_F16: fp16_buf_to_f32(s, (size_t)n, dst); return 0;
    case GGML_TYPE_BF16: bf16_buf_to_f32(s, (size_t)n, dst); return 0;
    case GGML_TYPE_Q4_0: block = dequant_q4_0; break;
    case GGML_TYPE_Q4_1: block = dequant_q4_1; break;
    case GGML_TYPE_Q5_0: block = dequant_q5_0; break;
    case GGML_TYPE_Q5_1: block = dequant_q5_1; break;
    case GGML_TYPE_Q8_0: block = dequant_q8_0; break;
    case GGML_TYPE_Q2_K: block = dequant_q2_k; break;
    case GGML_TYPE_Q3_K: block = dequant_q3_k; break;
    case GGML_TYPE_Q4_K: block = dequant_q4_k; break;
    case GGML_TYPE_Q5_K: block = dequant_q5_k; break;
    default: block = dequant_q6_k; break;
    }
    for (size_t i = 0; i < nb; i++) block(s + i * bs, dst + i * be);
    return 0;
}

// ---- quantization ----
// The 32-element types use ggml's reference rounding, so their bytes are what llama.cpp's
// reference quantizer and gguf-py write. The K-quants use the same kind of search as
// llama.cpp's reference (docs/formats.md): per sub-block, try a range of candidate scales,
// round, then refit scale and min by weighted least squares and keep the best; then the
// sub-block scales are themselves quantized to 6 (Q4_K/Q5_K) or 8 (Q6_K) bits and every
// element is rounded again against the scale it will really be decoded with.

// Round to nearest (ties to even) for |x| < 2^22: adding 1.5 * 2^23 leaves the integer in the
// low mantissa bits. Inline and branch-free, unlike lrintf, which the quantizers call per
// element per candidate scale.
static int round_int(float x) {
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// roundf (ties away from zero), which ggml's Q8_0 uses, from floorf (one instruction with
// SSE4.1): floor(a) + floor(2 (a - floor(a))) is exact where a + 0.5 could round up.
static float round_away(float x) {
    float a = fabsf(x), f = floorf(a);
    return copysignf(f + floorf(2.0f * (a - f)), x);
}

static void quant_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    half_put(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)round_away(x[j] * id);
}

// The element of largest magnitude, sign kept (the first one on ties).
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

// Packs 32 4-bit values: element j low nibble, element j+16 high nibble.
static void pack_nibbles(const uint8_t *q, uint8_t *out) {
    for (int j = 0; j < 16; j++) out[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
}

// Symmetric 32-element types: q = trunc(x / d + offset + 0.5) clamped, d = max / -offset so the
// largest magnitude lands exactly on the most negative level.
static void quant_sym(const float *x, int bits, uint8_t *q, float *d_out) {
    int offset = 1 << (bits - 1), top = (1 << bits) - 1;
    float d = signed_absmax(x, 32) / (float)-offset;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        int v = (int)(x[j] * id + ((float)offset + 0.5f));
        q[j] = (uint8_t)(v > top ? top : v);
    }
    *d_out = d;
}

// Asymmetric 32-element types: x = q d + min over [min, max].
static void quant_asym(const float *x, int bits, uint8_t *q, float *d_out, float *m_out) {
    int top = (1 << bits) - 1;
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; j++) {
        min = fminf(min, x[j]);
        max = fmaxf(max, x[j]);
    }
    float d = (max - min) / (float)top, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        int v = (int)((x[j] - min) * id + 0.5f);
        q[j] = (uint8_t)(v > top ? top : v);
    }
    *d_out = d;
    *m_out = min;
}

static uint32_t fifth_bits(const uint8_t *q) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) qh |= (uint32_t)(q[j] >> 4) << j;
    return qh;
}

// Q4_0, Q4_1, Q5_0, Q5_1 (layouts above dequant_32): fp16 d, fp16 min for the
// asymmetric _1 types, the fifth bits for 5-bit types, the low nibbles.
static void quant_32(const float *x, uint8_t *b, int bits, int asym) {
    uint8_t q[32];
    float d, m;
    if (asym) quant_asym(x, bits, q, &d, &m);
    else quant_sym(x, bits, q, &d);
    half_put(b, d);
    b += 2;
    if (asym) {
        half_put(b, m);
        b += 2;
    }
    if (bits == 5) {
        uint32_t qh = fifth_bits(q);
        memcpy(b, &qh, 4);
        b += 4;
        for (int j = 0; j < 32; j++) q[j] &= 0x0f;
    }
    pack_nibbles(q, b);
}

static void quant_q4_0(const float *x, uint8_t *b) { quant_32(x, b, 4, 0); }
static void quant_q4_1(const float *x, uint8_t *b) { quant_32(x, b, 4, 1); }
static void quant_q5_0(const float *x, uint8_t *b) { quant_32(x, b, 5, 0); }
static void quant_q5_1(const float *x, uint8_t *b) { quant_32(x, b, 5, 1); }

// Scale and min of one sub-block for x ~ scale * L - min_neg with L in [0, nmax], by weighted
// least squares: candidate inverse scales (nmax + rmin + k rdelta) / (max - min) for
// k = 0..nstep give candidate roundings L; for each, the scale and offset minimizing
// sum w (scale L + offset - x)^2 are solved in closed form (offset kept <= 0 so it fits an
// unsigned min). Returns the scale; *neg_min receives -offset (>= 0).
static float fit_scale_min(const float *x, const float *w, int n, int nmax, float rmin,
                           float rdelta, int nstep, float *neg_min) {
    float min = x[0], max = x[0], sum_w = 0.0f, sum_x = 0.0f;
    for (int i = 0; i < n; i++) {
        min = fminf(min, x[i]);
        max = fmaxf(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (max == min) {
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min), scale = 1.0f / iscale, best = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = round_int(iscale * (x[i] - min));
        l = l < 0 ? 0 : l > nmax ? nmax : l;
        float diff = scale * (float)l + min - x[i];
        best += w[i] * diff * diff;
    }
    for (int k = 0; k <= nstep; k++) {
        float is = ((float)nmax + rmin + rdelta * (float)k) / (max - min);
        float sl = 0.0f, sl2 = 0.0f, sxl = 0.0f;
        int L[32];
        for (int i = 0; i < n; i++) {
            int l = round_int(is * (x[i] - min));
            L[i] = l < 0 ? 0 : l > nmax ? nmax : l;
            sl += w[i] * (float)L[i];
            sl2 += w[i] * (float)L[i] * (float)L[i];
            sxl += w[i] * (float)L[i] * x[i];
        }
        float det = sum_w * sl2 - sl * sl;
        if (det <= 0.0f) continue;
        float s = (sum_w * sxl - sum_x * sl) / det, off = (sl2 * sum_x - sl * sxl) / det;
        if (off > 0.0f) {
            off = 0.0f;
            s = sxl / sl2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float diff = s * (float)L[i] + off - x[i];
            err += w[i] * diff * diff;
        }
        if (err < best) {
            best = err;
            scale = s;
            min = off;
        }
    }
    *neg_min = -min;
    return scale;
}

// Shared by Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins under fp16 d, dmin.
// Writes d, dmin and scales[12] into hdr and the final levels into L[256].
static void quant_k_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *hdr,
                           uint8_t *L) {
    float scales[8], mins[8], w[32], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum2 = 0.0f;
        for (int l = 0; l < 32; l++) sum2 += xs[l] * xs[l];
        // Weight each element by the block's RMS plus its own magnitude: large weights,
        // which dominate the matmul, are fitted more closely.
        float av = sqrtf(sum2 / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
        scales[j] = fit_scale_min(xs, w, 32, nmax, rmin, 0.1f, nstep, &mins[j]);
        max_scale = fmaxf(max_scale, scales[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    float inv_s = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    float inv_m = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    uint8_t *s = hdr + 4;
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = round_int(inv_s * scales[j]), lm = round_int(inv_m * mins[j]);
        ls = ls > 63 ? 63 : ls;
        lm = lm > 63 ? 63 : lm;
        if (j < 4) {
            s[j] = (uint8_t)ls;
            s[j + 4] = (uint8_t)lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    half_put(hdr, max_scale / 63.0f);
    half_put(hdr + 2, max_min / 63.0f);
    float d = half_at(hdr), dmin = half_at(hdr + 2);
    uint8_t sc[8], m[8];
    quant_k4_scales(s, sc, m);
    for (int j = 0; j < 8; j++) {
        float dl = d * (float)sc[j], ml = dmin * (float)m[j];
        for (int l = 0; l < 32; l++) {
            int v = dl != 0.0f ? round_int((x[32 * j + l] + ml) / dl) : 0;
            L[32 * j + l] = (uint8_t)(v < 0 ? 0 : v > nmax ? nmax : v);
        }
    }
}

static void quant_q4_k(const float *x, uint8_t *b) {
    uint8_t L[QUANT_QK_K];
    quant_k_scales(x, 15, -1.0f, 20, b, L);
    for (int j = 0; j < 8; j += 2)
        for (int l = 0; l < 32; l++)
            b[16 + (j / 2) * 32 + l] = (uint8_t)(L[32 * j + l] | (L[32 * (j + 1) + l] << 4));
}

static void quant_q5_k(const float *x, uint8_t *b) {
    uint8_t L[QUANT_QK_K];
    quant_k_scales(x, 31, -0.5f, 15, b, L);
    uint8_t *qh = b + 16, *qs = b + 48;
    memset(qh, 0, 32);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) qh[l] |= (uint8_t)((L[32 * j + l] >> 4) << j);
    for (int j = 0; j < 8; j += 2)
        for (int l = 0; l < 32; l++)
            qs[(j / 2) * 32 + l] =
                (uint8_t)((L[32 * j + l] & 0x0f) | ((L[32 * (j + 1) + l] & 0x0f) << 4));
}

// Symmetric scale of one 16-element Q6_K sub-block, levels in [-32, 31]: start from the scale
// that puts the largest magnitude on -32, try nearby inverse scales, keep the one maximizing
// (sum w x L)^2 / sum w L^2 (the error left after the least-squares scale), w = x^2.
static float fit_scale_sym(const float *x, int n) {
    float max = signed_absmax(x, n);
    if (max == 0.0f) return 0.0f;
    float best_scale = 0.0f, best = -1.0f;
    for (int k = -9; k <= 9; k++) {
        float is = -(32.0f + 0.1f * (float)k) / max;
        float sxl = 0.0f, sl2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = round_int(is * x[i]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            float w = x[i] * x[i];
            sxl += w * x[i] * (float)l;
            sl2 += w * (float)l * (float)l;
        }
        if (sl2 > 0.0f && (best < 0.0f || sxl * sxl > best * sl2)) {
            best = sxl * sxl / sl2;
            best_scale = sxl / sl2;
        }
    }
    return best_scale;
}

static void quant_q6_k(const float *x, uint8_t *b) {
    float scales[16], max_scale = 0.0f, amax = 0.0f;
    for (int g = 0; g < 16; g++) {
        scales[g] = fit_scale_sym(x + 16 * g, 16);
        if (fabsf(scales[g]) > amax) {
            amax = fabsf(scales[g]);
            max_scale = scales[g];
        }
    }
    uint8_t *ql = b, *qh = b + 128;
    int8_t *sc = (int8_t *)(b + 192);
    memset(b, 0, 210);
    float iscale = max_scale != 0.0f ? -128.0f / max_scale : 0.0f;
    half_put(b + 208, iscale != 0.0f ? 1.0f / iscale : 0.0f);
    for (int g = 0; g < 16; g++) {
        int v = round_int(iscale * scales[g]);
        sc[g] = (int8_t)(v > 127 ? 127 : v);
    }
    float d = half_at(b + 208);
    for (int e = 0; e < QUANT_QK_K; e++) {
        float dl = d * (float)sc[e / 16];
        int v = dl != 0.0f ? round_int(x[e] / dl) : 0;
        v = (v < -32 ? -32 : v > 31 ? 31 : v) + 32;
        int h = e / 128, r = e % 128, part = r / 32, l = r % 32;
        ql[h * 64 + l + (part % 2) * 32] |= (uint8_t)((v & 0x0f) << (part < 2 ? 0 : 4));
        qh[h * 32 + l] |= (uint8_t)((v >> 4) << (2 * part));
    }
}

int quant_quantize_row(uint32_t t, const float *src, void *dst, int64_t n) {
    if (check_row(t, n, 1) != 0) return -1;
    uint8_t *o = dst;
    if (t == GGML_TYPE_F32) {
        if (n) memcpy(dst, src, (size_t)n * 4);
        return 0;
    }
    if (t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = t == GGML_TYPE_F16 ? f32_to_fp16(src[i]) : f32_to_bf16(src[i]);
            o[2 * i] = (uint8_t)h;
            o[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return 0;
    }
    void (*block)(const float *, uint8_t *) = NULL;
    switch (t) {
    case GGML_TYPE_Q4_0: block = quant_q4_0; break;
    case GGML_TYPE_Q4_1: block = quant_q4_1; break;
    case GGML_TYPE_Q5_0: block = quant_q5_0; break;
    case GGML_TYPE_Q5_1: block = quant_q5_1; break;
    case GGML_TYPE_Q8_0: block = quant_q8_0; break;
    case GGML_TYPE_Q4_K: block = quant_q4_k; break;
    case GGML_TYPE_Q5_K: block = quant_q5_k; break;
    default: block = quant_q6_k; break;
    }
    size_t nb = (size_t)(n / TYPES[t].block), bs = TYPES[t].bytes, be = TYPES[t].block;
    for (size_t i = 0; i < nb; i++) block(src + i * be, o + i * bs);
    return 0;
}
