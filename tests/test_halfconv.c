// fp16/bf16 conversions against the compiler's own _Float16 conversions (an independent
// implementation): every fp16 bit pattern widened, and ~1M fp32 patterns narrowed.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "formats/halfconv.h"
#include "tests/testlib.h"

#ifndef __FLT16_MAX__
int main(void) { test_skip("the compiler has no _Float16 to compare with"); }
#else
static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int main(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t h16 = (uint16_t)h;
        memcpy(&ref, &h16, 2);
        float want = (float)ref, got = fp16_to_f32(h16);
        if (isnan(want) ? !isnan(got) : bits(want) != bits(got))
            test_fail("fp16_to_f32(0x%04x) = %.9g, expected %.9g", h, (double)got, (double)want);
    }
    size_t checked = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 4093) {
        float f = from_bits((uint32_t)u);
        _Float16 ref = (_Float16)f;
        uint16_t want;
        memcpy(&want, &ref, 2);
        uint16_t got = f32_to_fp16(f);
        if (isnan(f) ? (got & 0x7c00) != 0x7c00 || !(got & 0x3ff) : got != want)
            test_fail("f32_to_fp16(%.9g [0x%08x]) = 0x%04x, expected 0x%04x", (double)f,
                      (uint32_t)u, got, want);
        // bf16 is the top half of fp32: widening back must give the nearest-even rounding.
        float b = bf16_to_f32(f32_to_bf16(f));
        if (!isnan(f) && !isinf(f)) {
            // Neighbours in magnitude, in double so the one past FLT_MAX is 2^128 (-> inf).
            uint32_t e = ((uint32_t)u >> 23) & 0xff;
            double lo = fabs((double)from_bits((uint32_t)u & 0xffff0000u));
            double hi = lo + ldexp(1.0, (e ? (int)e : 1) - 134);
            double a = fabs((double)f), got_mag = fabs((double)b);
            double want_mag = a - lo < hi - a ? lo : a - lo > hi - a ? hi : -1;
            if (want_mag >= 0x1p128) want_mag = INFINITY;
            if (want_mag >= 0 ? got_mag != want_mag : got_mag != lo && got_mag != hi)
                test_fail("f32_to_bf16(%.9g) = %.9g, not the nearest bf16", (double)f, (double)b);
            if (want_mag < 0 && (f32_to_bf16(f) & 1u))
                test_fail("f32_to_bf16(%.9g): tie not rounded to even", (double)f);
        }
        checked++;
    }
    // Exact ties: fp32 patterns halfway between two fp16 / two bf16 values.
    for (uint32_t top = 0; top < 0x3fc00u; top += 3) {
        float f = from_bits(top << 13 | 0x1000u);
        _Float16 ref = (_Float16)f;
        uint16_t want;
        memcpy(&want, &ref, 2);
        if (f32_to_fp16(f) != want) test_fail("fp16 tie %.9g: 0x%04x, expected 0x%04x", (double)f, f32_to_fp16(f), want);
    }
    for (uint32_t top = 0; top < 0x7f7fu; top++) {
        uint16_t want = (uint16_t)(top + (top & 1u));
        if (f32_to_bf16(from_bits(top << 16 | 0x8000u)) != want) test_fail("bf16 tie 0x%04x", top);
    }
    printf("halfconv: 65536 fp16 widenings and %zu fp32 narrowings match _Float16\n", checked);
    return 0;
}
#endif
