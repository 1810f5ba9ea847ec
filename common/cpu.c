#include "common/cpu.h"

#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

// F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
static int cpu_has_f16c(void) {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}

static int cpu_has_avx2_fma(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
}
#else
static int cpu_has_avx2_fma(void) { return 0; }
#endif

int cpu_avx2_fma(void) {
    // Read once: a path that changed inside a process would break bit-exact resume.
    static int cached = -1;
    if (cached < 0) {
        const char *off = getenv("MEDTUNE_NO_AVX2");
        cached = off && off[0] && !(off[0] == '0' && !off[1]) ? 0 : cpu_has_avx2_fma();
    }
    return cached;
}
