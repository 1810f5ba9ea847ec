#include "formats/halfconv.h"

#include <string.h>

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_to_f32(sign);
        // Subnormal: shift the mantissa up until its leading one becomes the implicit bit.
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400u));
        man &= 0x3ffu;
        return bits_to_f32(sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13));
    }
    return bits_to_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

uint16_t f32_to_fp16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;
    if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
    if (abs < 0x38800000u) {
        // Result is subnormal (or zero) in fp16: value / 2^-24 rounded to nearest even.
        if (abs < 0x33000000u) return sign;  // below half the smallest subnormal
        uint32_t exp = abs >> 23;
        uint32_t man = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - exp;  // 113 - exp + 13
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);  // round to nearest even at bit 13
    return sign | (uint16_t)((r - ((uint32_t)(127 - 15) << 23)) >> 13);
}

void fp16_buf_to_f32(const uint8_t *src, size_t n, float *out) {
    for (size_t i = 0; i < n; i++)
        out[i] = fp16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
}

void bf16_buf_to_f32(const uint8_t *src, size_t n, float *out) {
    for (size_t i = 0; i < n; i++)
        out[i] = bf16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
}
